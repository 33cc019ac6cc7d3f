"""One tracked notebook, the same run, on each MLflow set-up besides the embedded default.

The default (SQLite under ``.mlops/``) is covered by ``tests/kernel/test_tracking_magics.py``.
Here the same notebook tracks to a local folder (``MLFLOW_ALLOW_FILE_STORE``) and to a real
``mlflow server`` over HTTP whose artifacts go through its proxy (``--serve-artifacts``),
each chosen by ``MLFLOW_TRACKING_URI`` and by ``pyproject.toml``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer
from nbrun import artifact_text, cell_records, copy_notebook, execute, metric_history

from jupyter_mlops.core.settings import TrackingLocation
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.store import Batch, MetricPoint

pytestmark = pytest.mark.own_store
SECRET = "s3cr3t-value-from-env-0042"
NOTEBOOK = "tracked_params_metrics.ipynb"


def use_pyproject(project: Path, tracking_uri: str) -> None:
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "scratch"\n\n[tool.jupyter-mlops]\ntracking_uri = "{tracking_uri}"\n'
    )


def run_of(client: MlflowClient, notebook: Path) -> Any:
    """The one run of experiment ``tracked-test`` that ``notebook`` wrote."""
    exp = client.get_experiment_by_name("tracked-test")
    assert exp is not None, "experiment tracked-test was not created"
    runs = client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`mlops.notebook` = '{notebook}'"
    )
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def assert_tracked_run(client: MlflowClient, notebook: Path, tmp: Path) -> Any:
    """What ``tracked_params_metrics.ipynb`` writes, read back through ``client``."""
    run = run_of(client, notebook)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "basic"
    assert run.data.params == {
        "lr": "0.01",
        "layers": "[64, 32]",
        "name": "rf",
        "use_bias": "True",
        "api_key": "***MASKED***",
        "password": "***MASKED***",
    }
    # metrics with the execution count as step
    assert metric_history(client, run_id, "acc") == [(3, 0.9), (4, 0.95)]
    assert metric_history(client, run_id, "loss") == [(3, 0.25)]
    assert metric_history(client, run_id, "n_rows") == [(3, 2.0)]
    tags = run.data.tags
    assert tags["mlops.notebook"] == str(notebook)
    assert tags["mlops.params_changed"] == "lr"
    assert tags["mlops.tracked_cells"] == "3"
    assert len(tags["mlops.environment_hash"]) == 64
    # artifacts: cell records, params history, environment, one snapshot
    records = cell_records(client, run_id, tmp / "cells")
    assert [r["execution_count"] for r in records] == [2, 3, 4]
    assert records[1]["metrics"] == {"acc": 0.9, "loss": 0.25, "n_rows": 2.0}
    history = artifact_text(client, run_id, "params_history.jsonl", tmp / "history")
    assert [json.loads(line)["value"] for line in history.splitlines()] == ["0.02"]
    assert "ipykernel==" in artifact_text(client, run_id, "environment.txt", tmp / "env")
    snapshot_path = f"snapshots/{tags['mlops.snapshot']}.ipynb"
    assert [a.path for a in client.list_artifacts(run_id, "snapshots")] == [snapshot_path]
    snapshot = artifact_text(client, run_id, snapshot_path, tmp / "snapshot")
    assert "%%mlops_track --metrics acc" in snapshot
    assert SECRET not in snapshot and "hunter2hunter2hunter2" not in snapshot
    return run


@pytest.mark.parametrize("configured_by", ["environment", "pyproject"])
def test_folder_store(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured_by: str
) -> None:
    # Given a folder store, opted in with MLFLOW_ALLOW_FILE_STORE, as a file: URI in the
    # environment or as a plain path relative to the project root in pyproject.toml
    folder = project / "team-runs" if configured_by == "pyproject" else tmp_path / "mlruns"
    env = {"MLFLOW_ALLOW_FILE_STORE": "true", "MLOPS_TEST_SECRET_TOKEN": SECRET}
    if configured_by == "pyproject":
        use_pyproject(project, "team-runs")
    else:
        env["MLFLOW_TRACKING_URI"] = folder.as_uri()
    notebook = copy_notebook(NOTEBOOK, project)
    # When the notebook runs in a kernel started from a subfolder-free project
    execute(notebook, **env)
    # Then the run is in the folder, with its artifacts beside it, and nothing went elsewhere
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own client
    client = MlflowClient(folder.as_uri())
    run = assert_tracked_run(client, notebook, tmp_path / "downloads")
    assert run.info.artifact_uri.startswith(folder.as_uri() + "/")
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert (artifacts / "cells.jsonl").is_file()
    assert not (project / ".mlops").exists()
    assert not (project / "mlruns").exists()


@pytest.mark.parametrize("configured_by", ["environment", "pyproject"])
def test_mlflow_server_with_proxied_artifacts(
    project: Path, tmp_path: Path, mlflow_server: MlflowServer, configured_by: str
) -> None:
    # Given a tracking server that proxies artifacts, named in the environment or in
    # pyproject.toml (then the kernel has no MLFLOW_TRACKING_URI for MLflow to fall back on)
    env = {"MLOPS_TEST_SECRET_TOKEN": SECRET}
    if configured_by == "pyproject":
        use_pyproject(project, mlflow_server.uri)
    else:
        env["MLFLOW_TRACKING_URI"] = mlflow_server.uri
    notebook = copy_notebook(NOTEBOOK, project)
    # When the notebook runs
    execute(notebook, **env)
    # Then the server holds the run; its artifacts were uploaded through the proxy and are
    # downloaded through it here
    client = MlflowClient(mlflow_server.uri)
    run = assert_tracked_run(client, notebook, tmp_path / "downloads")
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    # and they landed in the server's artifacts destination, nowhere near the project
    relative = run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    stored = mlflow_server.artifacts / relative
    records = (stored / "cells.jsonl").read_text()
    assert records == artifact_text(client, run.info.run_id, "cells.jsonl", tmp_path / "again")
    assert (stored / "snapshots" / f"{run.data.tags['mlops.snapshot']}.ipynb").is_file()
    assert not (project / ".mlops").exists()
    assert not (project / "mlruns").exists() and not (project / "mlartifacts").exists()


def test_a_large_batch_is_split_for_the_server_and_refused_keys_are_left_out(
    tmp_path: Path, mlflow_server: MlflowServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a run on the server and a batch too big for one request: MLflow documents 1 MB
    # per log_batch request (and a proxy in front of a team server, nginx by default, takes
    # no more); 100 long non-ASCII params are about 3.6 MB of JSON. And keys MLflow refuses.
    location = TrackingLocation(mlflow_server.uri, "argument", "test", tmp_path)
    store = MlflowRunStore(location)
    run = store.start_run("large-batches", None, {})
    requests: list[int] = []
    send = store.client.log_batch

    def measured(run_id: str, metrics: Any = (), params: Any = (), tags: Any = ()) -> Any:
        entities = [[e.key, e.value] for e in [*params, *tags]]
        requests.append(len(json.dumps(entities)) + 60 * len(metrics))
        return send(run_id, metrics=metrics, params=params, tags=tags)

    store.client.log_batch = measured  # type: ignore[method-assign]
    params = {f"p{i:03d}": "é" * 7000 for i in range(100)}
    refused = {"k" * 300: "too long a key", "मान": "characters MLflow refuses"}
    metrics = [MetricPoint("m", float(i), i, 0) for i in range(1500)]
    # When it is logged
    with caplog.at_level(logging.WARNING, logger="jupyter_mlops"):
        store.log_batch(run.run_id, Batch(params={**params, **refused}, metrics=metrics))
    # Then it went in requests under 1 MB each
    assert len(requests) > 3 and max(requests) < 1_000_000, requests
    # and every param is there, cut at MLflow's 6000 characters, the refused keys are not,
    # and one warning names them
    client = MlflowClient(mlflow_server.uri)
    assert client.get_run(run.run_id).data.params == {name: "é" * 6000 for name in params}
    assert len(client.get_metric_history(run.run_id, "m")) == 1500
    [warning] = [r.getMessage() for r in caplog.records if "refuses these keys" in r.getMessage()]
    assert "'kkkkkkkk" in warning and "'मान'" in warning
