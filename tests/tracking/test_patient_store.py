"""The runner's patient store on a real SQLite store: a start whose answer was lost is
retried without a second run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import StoreUnavailableError
from jupyter_mlops.core.settings import resolve_tracking_location
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
from jupyter_mlops.tracking.patience import PatientStore
from jupyter_mlops.tracking.store import TAG_CREATION_KEY


class LosesFirstAnswers:
    """The real store, except that its first ``lost`` start_run calls create the run and
    then fail, as when the server's reply never arrives."""

    def __init__(self, real: MlflowRunStore, lost: int) -> None:
        self.real = real
        self.lost = lost
        self.starts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def start_run(self, *args: Any, **kwargs: Any) -> Any:
        self.starts += 1
        handle = self.real.start_run(*args, **kwargs)
        if self.starts <= self.lost:
            raise StoreUnavailableError("tracking server http://127.0.0.1:9 does not answer")
        return handle


def runs_named(store: MlflowRunStore, name: str) -> list[Any]:
    experiment = store.experiment_id("patience")
    return store.find_runs([experiment], f"attributes.run_name = '{name}'")


def test_a_start_whose_answer_was_lost_makes_one_run(project: Path) -> None:
    real = MlflowRunStore(resolve_tracking_location())
    flaky = LosesFirstAnswers(real, lost=2)
    patient = PatientStore(flaky, patience_s=30)
    patient.answered = True  # the store answered before: an outage is waited out
    handle = patient.start_run("patience", "lost-twice", {"mlops.kind": "run"})
    assert flaky.starts == 1, "the later tries found the run the first one created"
    runs = runs_named(real, "lost-twice")
    assert [r.run_id for r in runs] == [handle.run_id]
    assert runs[0].status == "RUNNING" and runs[0].tags["mlops.kind"] == "run"
    assert len(runs[0].tags[TAG_CREATION_KEY]) == 32

    steady = PatientStore(real).start_run("patience", "steady", {TAG_CREATION_KEY: "given"})
    assert [r.run_id for r in runs_named(real, "steady")] == [steady.run_id]
    assert real.get_run(steady.run_id).tags[TAG_CREATION_KEY] == "given"
