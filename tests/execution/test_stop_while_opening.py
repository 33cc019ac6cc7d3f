"""A stop signal that lands while a run is being opened or handed to a worker.

The signal handler raises ``KeyboardInterrupt`` on whatever line is running. Between
creating a run and recording it, an interrupt used to leave the run RUNNING forever (CI
caught it: ``DELETE /batches/<id>`` right after the point's run appeared). Here the
interrupt is raised from the store or the executor at exactly those moments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from test_batch import kernels_for_notebook
from test_run import store

from conftest import copy_notebook


class InterruptingStore:
    """The real store, raising KeyboardInterrupt once, as the first artifact named
    ``path`` is written (a point's ``parameters.json`` comes after its run was created
    and its params logged, a batch's ``points.json`` after its snapshot)."""

    def __init__(self, inner: Any, path: str = "parameters.json") -> None:
        self.inner = inner
        self.path = path
        self.fired = False

    def put_artifact(self, run_id: str, path: str, data: bytes) -> None:
        if path == self.path and not self.fired:
            self.fired = True
            raise KeyboardInterrupt
        self.inner.put_artifact(run_id, path, data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def all_runs(client: MlflowClient) -> list[Any]:
    experiments = [e.experiment_id for e in client.search_experiments()]
    return list(client.search_runs(experiments))


def batch_runner(project: Path) -> Any:
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.execution.batch import BatchRequest, BatchRunner

    copy_notebook("run_params.ipynb", project)
    request = BatchRequest(
        notebook=project / "run_params.ipynb", grids=[("lr", [0.1, 0.2])], workers=1
    )
    return BatchRunner(request, resolve_tracking_location(cwd=project))


def test_a_stop_while_a_points_run_opens_leaves_no_run_running(project: Path) -> None:
    runner = batch_runner(project)
    runner.store = InterruptingStore(runner._store())
    outcome = runner.run()
    assert outcome.interrupted
    assert sorted((r.index, r.status) for r in outcome.results) == [
        (1, "NOT_RUN"),
        (2, "NOT_RUN"),
    ]
    runs = all_runs(store(project))
    assert len(runs) == 2, "the batch and the point whose opening was interrupted"
    assert {r.info.status for r in runs} == {"KILLED"}


def test_a_stop_while_the_batch_run_opens_ends_it_and_its_kernels(project: Path) -> None:
    runner = batch_runner(project)
    runner.store = InterruptingStore(runner._store(), "points.json")
    with pytest.raises(KeyboardInterrupt):
        runner.run()
    runs = all_runs(store(project))
    assert [(r.data.tags["mlops.kind"], r.info.status) for r in runs] == [("batch", "KILLED")]
    assert kernels_for_notebook(project / "run_params.ipynb") == []


def test_a_stop_while_a_point_is_submitted_ends_its_run_once(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jupyter_mlops.execution import batch

    real_make_executor = batch.make_executor

    class InterruptedSubmit:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def submit(self, job: Any) -> Any:
            raise KeyboardInterrupt

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(
        batch, "make_executor", lambda *a: InterruptedSubmit(real_make_executor(*a))
    )
    reported: list[tuple[int, str]] = []
    runner = batch_runner(project)
    runner.on_point = lambda result: reported.append((result.index, result.status))
    outcome = runner.run()
    assert outcome.interrupted
    assert sorted((r.index, r.status) for r in outcome.results) == [(1, "KILLED"), (2, "NOT_RUN")]
    assert reported == [(1, "KILLED")]
    runs = all_runs(store(project))
    assert len(runs) == 2 and {r.info.status for r in runs} == {"KILLED"}
    assert [r.info.run_name for r in runs].count("point-001") == 1


def test_a_stop_while_a_single_run_opens_ends_it_killed(project: Path) -> None:
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.execution.runner import RunRequest, run_notebook
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

    copy_notebook("run_params.ipynb", project)
    location = resolve_tracking_location(cwd=project)
    with pytest.raises(KeyboardInterrupt):
        run_notebook(
            RunRequest(notebook=project / "run_params.ipynb"),
            location,
            store=InterruptingStore(MlflowRunStore(location)),
        )
    runs = all_runs(store(project))
    assert [r.info.status for r in runs] == ["KILLED"]
