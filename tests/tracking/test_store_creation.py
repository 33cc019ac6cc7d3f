"""Several processes creating one new SQLite store at once: every one succeeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from conftest import clean_env

OPEN_AND_LOG = """
import sys
from pathlib import Path
from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.store import Batch
store = MlflowRunStore(resolve_tracking_location(cwd=Path(sys.argv[1]), environ={}))
run = store.start_run("together", f"p{sys.argv[2]}", {})
store.log_batch(run.run_id, Batch(params={"who": sys.argv[2]}))
store.end_run(run.run_id, "FINISHED")
"""


def test_six_processes_create_the_same_new_store(project: Path) -> None:
    # Given a project without a database, when six processes open it at the same moment
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_LOG, str(project), str(i)],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(6)
    ]
    results = [(p.wait(timeout=180), p.stderr.read() if p.stderr else "") for p in processes]
    # Then every one succeeded and wrote its run
    assert [code for code, _ in results] == [0] * 6, [err[-800:] for _, err in results]
    client = MlflowClient(f"sqlite:///{project}/.mlops/mlflow.db")
    experiment = client.get_experiment_by_name("together")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["who"] for r in runs) == [str(i) for i in range(6)]
    assert {r.info.status for r in runs} == {"FINISHED"}
