"""``%mlops_track`` in real kernels (nbclient), checked against the real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from nbrun import artifact_text, only_run, running_kernel
from store_under_test import store_client

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
