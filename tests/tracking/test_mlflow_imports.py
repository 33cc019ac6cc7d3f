"""MLflow is imported by the thread that starts tracking, never beside a cell importing it.

MLflow's modules import each other in circles, so two threads importing them at once can
both fail ("cannot import name '_get_store' from partially initialized module
'mlflow.tracking'"): the demo's evaluate step met it when its writer thread opened the
store while the next cell ran ``import mlflow.pyfunc``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from store_under_test import store_client

from conftest import clean_env

START_THEN_IMPORT = """
import jupyter_mlops as mlops
mlops.start_run(experiment="imports")
import mlflow.pyfunc  # at once, as the cell after %mlops_track does
mlops.log_metrics({"loaded": float(hasattr(mlflow.pyfunc, "load_model"))})
mlops.end_run()
"""

OPEN_AFTER_IMPORTING = """
import json, sys
from pathlib import Path
from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore, import_client_modules
from jupyter_mlops.tracking.store import Batch

location = resolve_tracking_location(cwd=Path(sys.argv[1]))
import_client_modules(location)
before = set(sys.modules)
store = MlflowRunStore(location)
run = store.start_run("imports", "r", {"t": "1"})
store.log_batch(run.run_id, Batch(params={"p": "1"}))
store.put_artifact(run.run_id, "cells.jsonl", b"{}")
store.end_run(run.run_id, "FINISHED")
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_a_run_started_then_mlflow_pyfunc_imported_at_once_both_work(project: Path) -> None:
    # Given a process that starts a run and imports mlflow.pyfunc right after
    result = subprocess.run(
        [sys.executable, "-c", START_THEN_IMPORT],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    # Then neither the import nor the run broke
    assert result.returncode == 0, result.stderr[-3000:]
    assert "partially initialized" not in result.stderr, result.stderr[-3000:]
    client = store_client(project)
    experiment = client.get_experiment_by_name("imports")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["loaded"] == 1.0


@pytest.mark.own_store
@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_opening_a_store_imports_nothing_that_import_client_modules_left_out(
    project: Path, kind: str
) -> None:
    # Given a store of this kind, and the modules import_client_modules imports for it
    env = clean_env()
    if kind == "file":
        env["MLFLOW_TRACKING_URI"] = (project / "mlruns").as_uri()
        env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    # When a store is opened and a run written after importing them
    result = subprocess.run(
        [sys.executable, "-c", OPEN_AFTER_IMPORTING, str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # Then no MLflow, SQLAlchemy or Alembic module was left to import later (in a thread)
    late = json.loads(result.stdout.strip().splitlines()[-1])
    packages = {"mlflow", "sqlalchemy", "alembic"}
    assert [name for name in late if name.split(".")[0] in packages] == []


def test_a_module_another_mlflow_version_lacks_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.tracking import mlflow_store

    location = resolve_tracking_location(cwd=tmp_path, environ={})
    monkeypatch.setattr(mlflow_store, "_client_modules_imported", set())
    monkeypatch.setitem(mlflow_store.CLIENT_MODULES, "sqlite", ("mlflow.store.renamed_since",))
    mlflow_store.import_client_modules(location)  # no error: that MLflow never imports it
    assert "sqlite" in mlflow_store._client_modules_imported
    # but a module named there that fails for want of another module still fails
    monkeypatch.setattr(mlflow_store, "_client_modules_imported", set())
    monkeypatch.setitem(mlflow_store.CLIENT_MODULES, "sqlite", ("jupyter_mlops.no_such.child",))
    with pytest.raises(ModuleNotFoundError):
        mlflow_store.import_client_modules(location)
