"""The interface the rest of jupyter-mlops uses to write runs, whatever the backend.

The only implementation talking to a real store is :class:`MlflowRunStore` in
``mlflow_store.py``; tests of the core may use a fake. Values here are plain Python.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

#: Every run we create carries a key of our own, so that creating it again (a retry, a
#: replay of the offline spool) finds it instead of making a second run.
TAG_CREATION_KEY = "mlops.creation_key"


def with_creation_key(tags: dict[str, str]) -> dict[str, str]:
    """``tags`` with a creation key: the one they carry, else a new one."""
    return {**tags, TAG_CREATION_KEY: tags.get(TAG_CREATION_KEY) or uuid.uuid4().hex}


@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int
    timestamp_ms: int


@dataclass
class Batch:
    """Everything to write to one run in one go (the writer coalesces records into these)."""

    params: dict[str, str] = field(default_factory=dict)
    metrics: list[MetricPoint] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.params or self.metrics or self.tags)

    def merge(self, other: Batch) -> None:
        # A later param value never replaces the first: the session already decided.
        for key, value in other.params.items():
            self.params.setdefault(key, value)
        self.metrics.extend(other.metrics)
        self.tags.update(other.tags)


@dataclass(frozen=True)
class RunHandle:
    run_id: str
    experiment_id: str
    experiment_name: str
    run_name: str
    artifact_uri: str


@dataclass(frozen=True)
class RunRecord:
    """A run as read back from the store, in plain values."""

    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_time_ms: int | None
    end_time_ms: int | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifact_uri: str


class RunStore(Protocol):
    """What tracking needs from a store. Implementations raise ``StoreUnavailableError``."""

    tracking_uri: str

    def start_run(
        self,
        experiment: str,
        run_name: str | None,
        tags: dict[str, str],
        parent_run_id: str | None = None,
        start_time_ms: int | None = None,
    ) -> RunHandle: ...

    def resume_run(self, run_id: str) -> RunHandle: ...

    def logged_params(self, run_id: str) -> dict[str, str]: ...

    def log_batch(self, run_id: str, batch: Batch) -> None: ...

    def put_artifact(self, run_id: str, path: str, data: bytes) -> None: ...

    def end_run(self, run_id: str, status: str) -> None: ...

    def run_status(self, run_id: str) -> str: ...
