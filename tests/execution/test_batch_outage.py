"""A team tracking server that goes away for 30 s in the middle of a batch (issue 8).

The server is the team set-up (``mlflow server`` on PostgreSQL with proxied artifacts);
its process stops while PostgreSQL stays up, as when the server restarts or the network
drops. The kernels keep logging into the offline spool, the orchestrator waits for the
server to open and close runs, and once it answers everything is written: every metric
value exactly once (counted in PostgreSQL itself), every run with its final status, the
spool empty.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer
from postgres_server import PostgresServer

from jupyter_mlops.core.settings import resolve_tracking_location, spool_folder
from jupyter_mlops.tracking.spool import Spool

from conftest import VENV_BIN, clean_env, copy_notebook

OUTAGE_S = 30.0
POINTS = (1, 2, 3, 4)
STEPS = 40


def first_metric_logged(client: MlflowClient, experiment: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            runs = client.search_runs([found.experiment_id], "metrics.value >= 0")
            if runs:
                return
        time.sleep(0.3)
    raise AssertionError("no point logged a metric in time")


def start_cli(project: Path, uri: str, *args: str) -> subprocess.Popen[str]:
    """``jupyter mlops ARGS`` in the project, tracking to ``uri``, its output piped."""
    return subprocess.Popen(
        [str(VENV_BIN / "jupyter-mlops"), *args],
        cwd=project,
        env=clean_env(MLFLOW_TRACKING_URI=uri),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_server_stopped_for_30_s_mid_batch_loses_and_duplicates_nothing(
    project: Path, team_server: MlflowServer, postgres_server: PostgresServer
) -> None:
    mlflow_server = team_server.start()  # running, whatever an earlier test did to it
    name = f"offline-batch-{secrets.token_hex(4)}"
    copy_notebook("slow_metrics.ipynb", project)
    grid = ",".join(str(p) for p in POINTS)
    batch = start_cli(
        project,
        mlflow_server.uri,
        "batch",
        "slow_metrics.ipynb",
        "--grid",
        f"point={grid}",
        "--workers",
        "2",
        "--experiment",
        name,
    )
    try:
        client = MlflowClient(mlflow_server.uri)
        # Given a batch whose first points are logging
        first_metric_logged(client, name, time.monotonic() + 120)
        # When the server stops for 30 s and comes back on the same port
        location = resolve_tracking_location(mlflow_server.uri, cwd=project)
        spool = Spool(spool_folder(location, environ={}), location.uri)
        stopped = time.monotonic()
        mlflow_server.stop()
        time.sleep(OUTAGE_S / 2)
        spooled_during_outage = spool.pending_count()
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - stopped)))
        mlflow_server.start()
        stdout, stderr = batch.communicate(timeout=300)
    finally:
        if batch.poll() is None:
            batch.kill()
            batch.communicate()
        mlflow_server.start()  # back for the next test even when this one failed
    # Then the batch finished every point
    assert batch.returncode == 0, stderr
    assert "4/4 points finished" in stdout
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("mlops.kind") == "batch"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == len(POINTS), "one run per point, no stray run"
    assert parents[0].info.status == "FINISHED"
    for run in children:
        point = int(run.data.params["point"])
        history = client.get_metric_history(run.info.run_id, "value")
        assert sorted((m.step, m.value) for m in history) == [
            (step, point * 1000 + step) for step in range(STEPS)
        ], f"point {point} lost or duplicated values"
        assert run.info.status == "FINISHED", point
        assert run.info.end_time is not None
    # And PostgreSQL itself holds each value once (MLflow's history would show duplicates too)
    rows = postgres_server.query(
        "SELECT count(*), count(DISTINCT (metrics.run_uuid, metrics.step)) FROM metrics"
        " JOIN runs ON runs.run_uuid = metrics.run_uuid"
        " WHERE runs.experiment_id = %s AND metrics.key = 'value'",
        int(experiment.experiment_id),
    )
    assert rows == [(len(POINTS) * STEPS, len(POINTS) * STEPS)]
    # And the kernels kept their records in the spool meanwhile, which holds nothing any more
    assert spooled_during_outage > 0
    assert spool.pending_count() == 0
    assert spool.journal_paths() == []


def test_a_pipeline_step_whose_kernel_ends_while_the_server_is_down_waits_for_it(
    project: Path, team_server: MlflowServer
) -> None:
    """The step's notebook (10 s) ends inside a 30 s outage: its kernel leaves its last
    records in the spool, and the pipeline waits for the server to close the step's run
    (before, it failed at once), replaying the spool first."""
    mlflow_server = team_server.start()
    name = f"outage-{secrets.token_hex(4)}"
    copy_notebook("slow_metrics.ipynb", project)
    (project / "mlops.yaml").write_text(
        f"name: {name}\nsteps:\n  slow:\n    notebook: slow_metrics.ipynb\n"
        "    params: {point: 7}\n"
    )
    pipeline = start_cli(project, mlflow_server.uri, "pipeline", "run")
    try:
        client = MlflowClient(mlflow_server.uri)
        first_metric_logged(client, name, time.monotonic() + 120)
        mlflow_server.stop()
        time.sleep(OUTAGE_S)
        mlflow_server.start()
        stdout, stderr = pipeline.communicate(timeout=300)
    finally:
        if pipeline.poll() is None:
            pipeline.kill()
            pipeline.communicate()
        mlflow_server.start()
    assert pipeline.returncode == 0, stderr
    assert "step slow: ran" in stdout, stdout
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    [step] = [r for r in runs if r.data.tags.get("mlops.pipeline.step") == "slow"]
    assert step.info.status == "FINISHED"
    history = client.get_metric_history(step.info.run_id, "value")
    assert sorted((m.step, m.value) for m in history) == [(s, 7000 + s) for s in range(STEPS)]
    [parent] = [r for r in runs if r.data.tags.get("mlops.kind") == "pipeline"]
    assert parent.info.status == "FINISHED"
    location = resolve_tracking_location(mlflow_server.uri, cwd=project)
    assert Spool(spool_folder(location, environ={}), location.uri).pending_count() == 0
