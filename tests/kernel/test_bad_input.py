"""Bad input to the magics, and a store that does not answer, in real kernels.

The contract: one line on stderr naming the problem, the cell's own result kept, and
nothing else lost: what the rest of the cell bound is logged, and records written while
the store was away reach it when it answers again.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer
from nbrun import (
    cell_records,
    copy_notebook,
    metric_history,
    only_run,
    result_text,
    running_kernel,
    stream_text,
)
from store_under_test import store_client

from jupyter_mlops.tracking.mlflow_store import PROBE_AFTER_IDLE_S

from conftest import free_port

STORE_LINE = "mlops: store problem"
LONG_SHOWN = "'a_name_longer_than_the_250_characters_ml'… (281 characters)"


def mlops_lines(cell: Any) -> list[str]:
    """Our lines under a cell (anything on stderr that is not ours is a failure too)."""
    lines = stream_text(cell, "stderr").splitlines()
    assert all(line.startswith("mlops") for line in lines), lines
    return lines


def sqlite_store(project: Path) -> MlflowClient:
    return store_client(project)


def test_bad_flags_names_and_values_say_one_line_and_lose_nothing_else(
    project: Path, tmp_path: Path
) -> None:
    # Given a notebook full of mistakes, on the embedded default store
    notebook = copy_notebook("bad_input.ipynb", project)
    # When it runs
    with running_kernel(notebook) as kernel:
        cells = [kernel.run(index) for index in range(len(kernel.nb.cells))]
    lines = [mlops_lines(cell) for cell in cells]
    # A tag key MLflow refuses, set through the API: one line, under whichever cell runs
    # when the writer finds out (the other tag of that call is written, see below)
    refused = [
        (index, line)
        for index, cell_lines in enumerate(lines)
        for line in cell_lines
        if "refuses these keys" in line
    ]
    assert len(refused) == 1 and refused[0][0] >= 9, refused
    assert "'kkkkkkkk" in refused[0][1]
    lines[refused[0][0]].remove(refused[0][1])

    # Then each mistake is one line under its cell, and nothing else is said
    assert lines == [
        # an unknown flag on the line magic (cell 1 then starts the run)
        ["mlops_track: unrecognized arguments: --bogus"],
        [],
        # an unknown flag, a bad --step: the cell runs untracked
        ["mlops: unrecognized arguments: --bogus-flag; the cell runs untracked"],
        ["mlops: argument --step: 'abc' is not an integer; the cell runs untracked"],
        # names that do not exist, a metric that is not a number: one line per problem
        ["mlops: --params names not defined: nope"],
        [
            "mlops: --metrics names not defined: missing",
            "mlops: --metrics names that are not numbers: label",
        ],
        # a param value over MLflow's 6000 characters: truncated in MLflow, whole in cells.jsonl
        [
            "mlops: param 'big' is 8000 characters; MLflow keeps the first 6000, "
            "cells.jsonl the whole value"
        ],
        # names MLflow cannot store (too long, characters it refuses): left out, named
        [
            "mlops: not logged, MLflow cannot store these names (over 250 characters or with "
            f"characters it refuses): {LONG_SHOWN}, 'मान'"
        ],
        [
            "mlops: not logged, MLflow cannot store these names (over 250 characters or with "
            f"characters it refuses): {LONG_SHOWN}"
        ],
        [],
        [],
        [],
    ]
    # and every cell's own result is kept
    assert result_text(cells[2]) == "2"
    for index in range(3, 11):
        assert result_text(cells[index]) == f"'kept-{index}'", index
    # the run ends normally: nothing was stuck behind the refused tag
    assert "ended FINISHED" in stream_text(cells[11], "stdout")

    client = sqlite_store(project)
    run = only_run(client, "bad-input")
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["lr"] == "0.1"
    assert params["big"] == ("abc " * 2000)[:6000]
    assert {"alpha": "0.3", "beta": "0.4", "last": "1.0"}.items() <= params.items()
    assert "nope" not in params and "untracked" not in params and "also_untracked" not in params
    assert not any(len(key) > 250 or key == "मान" for key in params)
    metrics = run.data.metrics
    assert metrics["acc"] == 0.5 and metrics["ok_metric"] == 1.5 and metrics["z"] == 2.0
    assert metrics["score"] == 0.7 and "label" not in metrics and "missing" not in metrics
    assert metric_history(client, run.info.run_id, "acc") == [(6, 0.5)]
    tags = run.data.tags
    assert tags["team"] == "a"
    assert tags["long_tag"] == "v" * 8000
    assert not any(key.startswith("kkk") for key in tags)
    # one record per tracked cell that ran tracked, with the whole long value
    records = cell_records(client, run.info.run_id, tmp_path)
    assert [r["execution_count"] for r in records] == [5, 6, 7, 8, 9, 11]
    assert records[2]["params"]["big"] == "abc " * 2000
    assert records[3]["params"] == {"alpha": "0.3", "beta": "0.4"}
    assert records[3]["metrics"] == {"score": 0.7}
    assert records[4]["metrics"] == {"ok_metric": 1.5}


def store_lines(cells: list[Any]) -> list[str]:
    return [line for cell in cells for line in mlops_lines(cell) if line.startswith(STORE_LINE)]


def test_store_unreachable_from_the_start_is_one_line_and_records_wait_for_it(
    project: Path, tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    # Given a tracking server that is down when the notebook starts
    mlflow_server.stop()
    notebook = copy_notebook("bad_store.ipynb", project)
    with running_kernel(notebook, MLFLOW_TRACKING_URI=mlflow_server.uri) as kernel:
        # When tracked cells run
        cells = [kernel.run(index) for index in (0, 1, 3, 4, 5)]
        # Then exactly one line names the store, under some cell, and no cell lost its result
        [line] = store_lines(cells)
        assert line.startswith(f"{STORE_LINE}, records kept in the spool "), line
        assert f"tracking server {mlflow_server.uri} does not answer: " in line
        assert [result_text(cells[i]) for i in (1, 2, 3, 4)] == [
            "'kept-1'",
            "'kept-3'",
            "'waited'",
            "'kept-5'",
        ]
        assert all(o.output_type != "error" for cell in cells for o in cell.outputs)
        # When the server comes up and the run is stopped
        mlflow_server.start()
        stop = kernel.run(7)
    # Then everything queued while it was down is in the store, and the run ended
    assert mlops_lines(stop) == []
    assert "ended FINISHED" in stream_text(stop, "stdout")
    assert_bad_store_run(MlflowClient(mlflow_server.uri), notebook, tmp_path)


def test_server_stopped_mid_notebook_is_one_line_and_nothing_is_lost(
    project: Path, tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    notebook = copy_notebook("bad_store.ipynb", project)
    with running_kernel(notebook, MLFLOW_TRACKING_URI=mlflow_server.uri) as kernel:
        # Given a run that is being written to a live server
        before = [kernel.run(index) for index in (0, 1, 2)]
        assert store_lines(before) == []
        # When the server goes away between cells
        written = time.monotonic()
        mlflow_server.stop()
        idle = time.monotonic() - written
        if idle < PROBE_AFTER_IDLE_S:  # the store probes a server it has not talked to lately
            time.sleep(PROBE_AFTER_IDLE_S - idle)
        during = [kernel.run(index) for index in (3, 4, 5)]
        # Then one line says so, once, and the cells keep their results
        assert len(store_lines(during)) == 1
        assert mlflow_server.uri in store_lines(during)[0]
        assert [result_text(cell) for cell in during] == ["'kept-3'", "'waited'", "'kept-5'"]
        # When it is back on the same port
        mlflow_server.start()
        stop = kernel.run(7)
    # Then the records queued meanwhile are written and the run ends
    assert mlops_lines(stop) == []
    assert "ended FINISHED" in stream_text(stop, "stdout")
    assert_bad_store_run(MlflowClient(mlflow_server.uri), notebook, tmp_path)


def assert_bad_store_run(client: MlflowClient, notebook: Path, tmp_path: Path) -> None:
    exp = client.get_experiment_by_name("bad-store")
    assert exp is not None
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`mlops.notebook` = '{notebook}'"
    )
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params == {"lr": "0.1", "beta": "0.2", "rows": "3"}
    assert [v for _, v in metric_history(client, run.info.run_id, "loss")] == [0.1, 0.05]
    assert len(metric_history(client, run.info.run_id, "acc")) == 1
    records = cell_records(client, run.info.run_id, tmp_path)
    assert [r["source"].splitlines()[-1] for r in records] == ["'kept-1'", "'kept-3'", "'kept-5'"]
    assert run.data.tags["mlops.tracked_cells"] == "3"
    assert client.list_artifacts(run.info.run_id, "snapshots")


def test_folder_store_without_the_opt_in_is_one_line_and_records_wait_for_it(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a folder store but no MLFLOW_ALLOW_FILE_STORE (MLflow refuses the folder then)
    folder = tmp_path / "mlruns"
    notebook = copy_notebook("bad_store.ipynb", project)
    with running_kernel(notebook, MLFLOW_TRACKING_URI=folder.as_uri()) as kernel:
        cells = [kernel.run(index) for index in (0, 1, 3, 4, 5)]
        # Then one line says what to do, and the cells keep their results
        assert store_lines(cells) == [
            f"{STORE_LINE}, records kept in the spool {project / '.mlops' / 'spool'} and written "
            "when it answers: MLflow refuses the folder store "
            f"{folder.as_uri()} unless MLFLOW_ALLOW_FILE_STORE=true is set in the kernel's "
            "environment"
        ]
        assert result_text(cells[4]) == "'kept-5'"
        # When the user opts in, in the kernel, and stops the run
        kernel.run(6)
        stop = kernel.run(7)
    # Then nothing was lost
    assert mlops_lines(stop) == []
    assert "ended FINISHED" in stream_text(stop, "stdout")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own client
    assert_bad_store_run(MlflowClient(folder.as_uri()), notebook, tmp_path)


def test_a_closed_port_is_one_line_and_stop_does_not_hang(project: Path) -> None:
    # Given a tracking URI where nothing listens
    uri = f"http://127.0.0.1:{free_port()}"
    notebook = copy_notebook("bad_store.ipynb", project)
    with running_kernel(notebook, MLFLOW_TRACKING_URI=uri) as kernel:
        cells = [kernel.run(index) for index in (0, 1, 3, 4, 5)]
        assert len(store_lines(cells)) == 1 and uri in store_lines(cells)[0]
        # When the run is stopped while the store still does not answer
        started = time.monotonic()
        stop = kernel.run(7)
        waited = time.monotonic() - started
    # Then stop says, in one line, that the records are kept, and returns in seconds
    [line] = mlops_lines(stop)
    assert re.match(r"mlops: run offline-[0-9a-f]{32} ends FINISHED when the store answers", line)
    assert f"tracking server {uri} does not answer" in line
    assert "records are kept in the spool" in line
    assert waited < 30, waited
