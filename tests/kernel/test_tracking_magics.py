"""``%mlops_track`` in real kernels (nbclient), checked against the real SQLite store."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from nbrun import artifact_text, only_run, running_kernel
from store_under_test import store_client

from jupyter_mlops.core.cells import analyze_source
from jupyter_mlops.core.errors import UsageError
from jupyter_mlops.core.secrets import SecretMasker
from jupyter_mlops.kernel.magics import MlopsMagics, _cell_parser, _plain_args, _words
from jupyter_mlops.tracking.writer import AsyncWriter

from conftest import copy_notebook

SECRET = "s3cr3t-value-from-env-0042"


def execute(notebook: Path, order: list[int] | None = None) -> Any:
    """Run the notebook in a fresh kernel (cells in ``order`` if given) and save it."""
    with running_kernel(notebook, MLOPS_TEST_SECRET_TOKEN=SECRET) as kernel:
        for index in order if order is not None else range(len(kernel.nb.cells)):
            kernel.run(index)
    return kernel.nb


def store(project: Path) -> MlflowClient:
    return store_client(project)


def outputs_text(cell: Any) -> str:
    return "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs
    )


def test_params_metrics_cells_snapshot_and_masking(project: Path, tmp_path: Path) -> None:
    # Given a notebook with tracked cells
    notebook = copy_notebook("tracked_params_metrics.ipynb", project)
    # When it runs in a real kernel
    nb = execute(notebook)
    # Then the store holds the run with what the cells bound
    client = store(project)
    run = only_run(client, "tracked-test")
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "basic"
    params = run.data.params
    assert params["lr"] == "0.01"  # first value kept
    assert params["layers"] == "[64, 32]"
    assert params["name"] == "rf"
    assert params["use_bias"] == "True"
    assert params["api_key"] == "***MASKED***"
    assert "acc" not in params and "n_rows" not in params
    # metrics: computed numbers only, NumPy scalars included, bools excluded; step = exec count
    history = {
        k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)]
        for k in ("acc", "loss", "n_rows")
    }
    assert history["acc"] == [(3, 0.9), (4, 0.95)]
    assert history["loss"] == [(3, 0.25)]
    assert history["n_rows"] == [(3, 2.0)]
    assert "flag" not in run.data.metrics
    # the changed param: kept first value, history artifact, tag, one message to the user
    assert run.data.tags["mlops.params_changed"] == "lr"
    changes = [
        json.loads(line)
        for line in artifact_text(
            client, run.info.run_id, "params_history.jsonl", tmp_path
        ).splitlines()
    ]
    assert changes == [{"name": "lr", "value": "0.02", "step": 4, "cell": changes[0]["cell"]}]
    assert "param 'lr' changed from 0.01 to 0.02" in outputs_text(nb.cells[4])
    # tags describing where the run happened
    tags = run.data.tags
    assert tags["mlops.notebook"] == str(notebook)
    assert tags["mlops.python"].count(".") == 2
    assert len(tags["mlops.environment_hash"]) == 64
    assert "ipykernel==" in artifact_text(client, run.info.run_id, "environment.txt", tmp_path)
    # cell records: provenance of each metric
    records = [
        json.loads(line)
        for line in artifact_text(client, run.info.run_id, "cells.jsonl", tmp_path).splitlines()
    ]
    assert [r["execution_count"] for r in records] == [2, 3, 4]
    assert records[1]["metrics"] == {"acc": 0.9, "loss": 0.25, "n_rows": 2.0}
    assert records[2]["metrics"] == {"acc": 0.95}
    assert all(r["status"] == "ok" and len(r["source_sha256"]) == 64 for r in records)
    assert records[1]["duration_s"] >= 0
    # secrets are masked in records and snapshots, and counted
    cells_text = json.dumps(records)
    assert "hunter2hunter2hunter2" not in cells_text and "abcd1234efgh5678" not in cells_text
    snapshot = tags["mlops.snapshot"]
    snap = artifact_text(client, run.info.run_id, f"snapshots/{snapshot}.ipynb", tmp_path)
    assert "%%mlops_track --metrics acc" in snap
    assert "hunter2hunter2hunter2" not in snap and "***MASKED***" in snap
    assert int(tags["mlops.secrets_masked"]) >= 3
    # the unchanged input notebook is stored once
    assert len(client.list_artifacts(run.info.run_id, "snapshots")) == 1
    # the status line talks about the run
    assert "tracked cells" in outputs_text(nb.cells[5])


def test_secret_printed_by_a_cell_is_masked_in_the_snapshot(project: Path, tmp_path: Path) -> None:
    # Given a notebook saved with the output of a cell that printed an env secret
    notebook = copy_notebook("tracked_params_metrics.ipynb", project)
    execute(notebook)  # writes outputs (including the printed secret) into the file
    assert SECRET in notebook.read_text()
    # When it runs again (its snapshot now has that output)
    nb = execute(notebook)
    # Then no snapshot stored holds the secret in clear
    client = store(project)
    exp = client.get_experiment_by_name("tracked-test")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    latest = runs[0]
    for item in client.list_artifacts(latest.info.run_id, "snapshots"):
        text = artifact_text(client, latest.info.run_id, item.path, tmp_path)
        assert SECRET not in text
        assert "token ***MASKED***" in text
    assert SECRET in outputs_text(nb.cells[4])  # the user's own output is untouched


def test_failing_cell_reraises_the_users_error_and_is_recorded(
    project: Path, tmp_path: Path
) -> None:
    notebook = copy_notebook("tracked_error.ipynb", project)
    nb = execute(notebook)
    # The user's exception, unchanged, with no frames of ours
    errors = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert [e.ename for e in errors] == ["ZeroDivisionError"]
    assert not any("jupyter_mlops" in line for line in errors[0].traceback)
    # a bad flag: one line, and the cell still ran
    text = outputs_text(nb.cells[2])
    assert "unrecognized arguments: --bogus-flag" in text and "runs untracked" in text
    assert text.count("\n") == 1
    client = store(project)
    run = only_run(client, "tracked-error")
    assert run.data.params == {"alpha": "0.5"}
    records = [
        json.loads(line)
        for line in artifact_text(client, run.info.run_id, "cells.jsonl", tmp_path).splitlines()
    ]
    assert len(records) == 1
    assert records[0]["status"] == "error"
    assert records[0]["error"] == {"ename": "ZeroDivisionError", "evalue": "division by zero"}


def test_cells_run_out_of_order_warn_once_and_tag_the_run(project: Path) -> None:
    notebook = copy_notebook("tracked_out_of_order.ipynb", project)
    nb = execute(notebook, order=[0, 2, 1, 3])
    assert "cells ran out of order" in outputs_text(nb.cells[1])
    assert "'base'" in outputs_text(nb.cells[1])
    run = only_run(store(project), "tracked-order")
    assert "uses 'base'" in run.data.tags["mlops.out_of_order"]


@pytest.mark.parametrize("name", ["tracked_params_metrics.ipynb"])
def test_rerun_of_the_same_notebook_makes_a_new_run(project: Path, name: str) -> None:
    notebook = copy_notebook(name, project)
    execute(notebook)
    execute(notebook)
    exp = store(project).get_experiment_by_name("tracked-test")
    assert len(store(project).search_runs([exp.experiment_id])) == 2


# -- the shortcuts of a tracked cell's path give the answers of the long way ------------
@pytest.mark.parametrize(
    "line",
    [
        "",
        "--step 3",
        "--params a,b  --metrics x\t",
        "--params 'a b'",
        '--x "y z"',
        "a\\ b",
        "a\x0bb",
        "a\xa0b",
        "#not-a-comment --step 4",
    ],
)
def test_the_magic_line_is_split_as_shlex_splits_it(line: str) -> None:
    assert _words(line) == shlex.split(line)


PLAIN_LINES = ["", "--no-snapshot --step 25", "--params a,b --metrics x --step 0"]


@pytest.mark.parametrize(
    "line",
    [
        *PLAIN_LINES,
        "--step -3",
        "--st 3",
        "--step=3",
        "--params",
        "--step 3 --step 4",
        "--step x",
        "--bogus",
        "--params --step 2",
    ],
)
def test_a_plain_magic_line_is_parsed_as_argparse_parses_it(line: str) -> None:
    parser = _cell_parser()
    try:
        expected: Any = vars(parser.parse_args(line.split()))
    except UsageError:
        expected = None  # refused: argparse says why, the shortcut stays out of it
    plain = _plain_args(parser, line.split())
    assert (plain is not None) == (line in PLAIN_LINES)
    assert plain is None or vars(plain) == expected


def test_masking_a_whole_text_masks_and_counts_what_each_line_would() -> None:
    env = {"MY_API_TOKEN": "tok-9f8e7d6c5b"}
    texts = [
        "%%mlops_track --step 3\nlr = 0.01\nacc = float(0.8365)\n",
        "url = 'https://u:pw123456@host/x'\nq = 'http://h/?token=abcdef123456'\n",
        "print('tok-9f8e7d6c5b')\r\nx = 1\x0bpassword = 'hunter2hunter2'\n",
        "\u017fecret = 'abcdefghijkl'\nna\u00efve = 1",
    ]
    for text in texts:
        masker, by_line = SecretMasker(env), SecretMasker(env)
        expected = [by_line._mask_line(line) for line in text.splitlines(keepends=True)]
        assert masker.mask(text) == "".join(masked for masked, _ in expected)
        assert masker.masked_count == sum(count for _, count in expected)


@pytest.mark.parametrize(
    "source",
    [
        "df = load()\nprint(df.x)\n%time z = q\n",
        "\ufb01le_df = load()\nx = \ufb01le_df + na\u00efve\n",  # the parser reads NFKC names
        "def f():\n    return other\n",
    ],
)
def test_the_words_of_a_cell_include_every_name_it_uses_or_binds(source: str) -> None:
    # (the dataset and out-of-order checks skip the walk of the tree on them)
    analysis = analyze_source(source)
    names = {*analysis.used_names, *analysis.literal_bindings, *analysis.computed_bindings}
    assert names and names <= analysis.mentioned_names


def test_cells_run_back_to_back_refresh_the_panel_once_from_the_writer() -> None:
    refreshed: list[str] = []
    writer = AsyncWriter(lambda: SimpleNamespace(), linger_s=1.0)  # type: ignore[arg-type,return-value]
    magics = MlopsMagics(None)
    magics._panel = SimpleNamespace(refresh=lambda: refreshed.append("refresh"))
    for _cell in range(5):
        magics._refresh_panel_later(SimpleNamespace(writer=writer))
    assert writer.flush(10)
    assert refreshed == ["refresh"]
    writer.close()
