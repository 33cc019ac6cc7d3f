"""Several processes creating one new SQLite store at once: every one succeeds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
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


@pytest.mark.own_store
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


def test_a_new_store_is_copied_from_the_empty_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore, _template_path

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    stores = []
    for name in ("first", "second"):
        root = tmp_path / name
        root.mkdir()
        monkeypatch.chdir(root)
        stores.append(MlflowRunStore(resolve_tracking_location(cwd=root, environ={})))
        # Given the first store was created by MLflow, the template now exists
        assert _template_path().is_file()
    # Then the copy is a store like any other: its own Default experiment, runs, registry
    second = stores[1]
    default = second.client.get_experiment("0")
    assert default.artifact_location == str(tmp_path / "second" / "mlruns" / "0")
    run = second.start_run("copied", "r", {"k": "v"})
    second.end_run(run.run_id, "FINISHED")
    assert second.get_run(run.run_id).status == "FINISHED"
    assert stores[0].find_runs(stores[0].experiment_ids()) == []
    second.client.create_registered_model("m")
    assert [m.name for m in second.client.search_registered_models()] == ["m"]
