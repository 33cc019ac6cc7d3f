"""A kernel whose tracking server is down when it ends: its records wait in the spool
and reach the server with ``jupyter mlops sync``."""

from __future__ import annotations

import time
from pathlib import Path

from mlflow.tracking import MlflowClient
from mlflow_server import MlflowServer
from nbrun import copy_notebook, running_kernel
from test_bad_input import assert_bad_store_run, mlops_lines, store_lines

from jupyter_mlops.core.settings import resolve_tracking_location, spool_folder
from jupyter_mlops.tracking.mlflow_store import PROBE_AFTER_IDLE_S
from jupyter_mlops.tracking.spool import Spool

from conftest import run_cli


def test_records_of_a_kernel_that_ended_offline_reach_the_store_with_sync(
    project: Path, tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    notebook = copy_notebook("bad_store.ipynb", project)
    location = resolve_tracking_location(mlflow_server.uri, cwd=project)
    spool = Spool(spool_folder(location, environ={}), location.uri)
    with running_kernel(notebook, MLFLOW_TRACKING_URI=mlflow_server.uri) as kernel:
        # Given a run written to a live server
        before = [kernel.run(index) for index in (0, 1, 2)]
        assert store_lines(before) == []
        # When the server goes away and more tracked cells run
        mlflow_server.stop()
        time.sleep(PROBE_AFTER_IDLE_S)
        during = [kernel.run(index) for index in (3, 4, 5)]
        # Then one line says the records are kept in the spool
        [line] = store_lines(during)
        assert f"records kept in the spool {spool.folder}" in line
        status = kernel.run(7)  # `%mlops_track stop` with the server still down
        assert "ends FINISHED when the store answers" in "".join(mlops_lines(status))
    # The kernel ended offline: its journal is on disk, nothing is on the server yet
    assert spool.pending_count() > 0
    # jupyter mlops sync says it cannot write them yet, and keeps them
    refused = run_cli(project, "--tracking-uri", mlflow_server.uri, "sync")
    assert refused.returncode == 3 and refused.stderr.count("\n") == 1, refused.stderr
    assert "records kept in" in refused.stderr
    listed = run_cli(project, "--tracking-uri", mlflow_server.uri, "sync", "--dry-run")
    assert listed.returncode == 0 and "end_run" in listed.stdout
    # When the server is back, sync writes them
    mlflow_server.start()
    synced = run_cli(project, "--tracking-uri", mlflow_server.uri, "sync")
    assert synced.returncode == 0, synced.stderr
    assert "records replayed" in synced.stdout
    assert spool.pending_count() == 0 and spool.journal_paths() == []
    assert_bad_store_run(MlflowClient(mlflow_server.uri), notebook, tmp_path)
    again = run_cli(project, "--tracking-uri", mlflow_server.uri, "sync")
    assert again.returncode == 0 and "nothing to replay" in again.stdout


def test_a_run_started_while_the_server_is_down_is_created_by_sync(
    project: Path, tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    # Given a tracking server that is down when the notebook starts tracking
    mlflow_server.stop()
    notebook = copy_notebook("bad_store.ipynb", project)
    location = resolve_tracking_location(mlflow_server.uri, cwd=project)
    spool = Spool(spool_folder(location, environ={}), location.uri)
    with running_kernel(notebook, MLFLOW_TRACKING_URI=mlflow_server.uri) as kernel:
        # When tracked cells run and the run is stopped, all while it is down
        cells = [kernel.run(index) for index in (0, 1, 3, 4, 5)]
        [line] = store_lines(cells)
        assert f"records kept in the spool {spool.folder}" in line
        stop = kernel.run(7)
        assert "ends FINISHED when the store answers" in "".join(mlops_lines(stop))
    # Then the kernel ended with everything on disk, the run's creation included
    pending = [record["op"] for info in spool.pending() for record in info.pending]
    assert pending[0] == "start_run" and pending[-1] == "end_run", pending
    # And once the server is back, sync creates the run and writes every record once
    mlflow_server.start()
    synced = run_cli(project, "--tracking-uri", mlflow_server.uri, "sync")
    assert synced.returncode == 0, synced.stderr
    assert spool.pending_count() == 0 and spool.journal_paths() == []
    assert_bad_store_run(MlflowClient(mlflow_server.uri), notebook, tmp_path)
