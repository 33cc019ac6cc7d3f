"""The MLflow implementation of :class:`RunStore`: the one module that imports mlflow.

It hides three MLflow habits from the rest of the code: experiments on the embedded
default get their artifact folder under ``.mlops/`` (not ``./mlruns`` of whatever the
working directory was), ``log_batch`` calls are split at MLflow's per-request limits,
and MLflow's exceptions become our typed errors.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

from jupyter_mlops.core.errors import MlopsError, NotFoundError, StoreUnavailableError, UsageError
from jupyter_mlops.core.settings import TrackingLocation, redact_uri
from jupyter_mlops.tracking.store import Batch, RunHandle

# MLflow's per-request limits for log_batch (mlflow/utils/validation.py).
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
T = TypeVar("T")

LOCKED = re.compile(r"database is locked|database table is locked", re.IGNORECASE)


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def prepare_local_store(location: TrackingLocation) -> None:
    """Create the folder of an embedded SQLite store, git-ignored, before MLflow opens it."""
    if location.kind != "sqlite":
        return
    db_path = Path(unquote(location.uri[len("sqlite:///") :]))
    folder = db_path.parent
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
        if folder.name == ".mlops":
            (folder / ".gitignore").write_text("# tracking data of jupyter-mlops\n*\n")


class MlflowRunStore:
    """Runs, params, metrics, tags and artifacts through ``MlflowClient``."""

    def __init__(self, location: TrackingLocation, retries: int = 5) -> None:
        prepare_local_store(location)
        from mlflow.tracking import MlflowClient

        self.location = location
        self.tracking_uri = location.uri
        self.retries = retries
        self.client = MlflowClient(tracking_uri=location.uri, registry_uri=location.uri)
        self._experiments: dict[str, str] = {}

    # -- errors -----------------------------------------------------------------
    def _call(self, what: str, action: Callable[[], T]) -> T:
        """Run a client call; retry SQLite lock errors; turn failures into our errors."""
        from mlflow.exceptions import MlflowException

        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                return action()
            except MlopsError:
                raise
            except Exception as exc:  # MLflow, connection, disk and SQLAlchemy errors
                if LOCKED.search(str(exc)) and attempt < self.retries:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                if isinstance(exc, MlflowException):
                    code = getattr(exc, "error_code", "")
                    if code == "RESOURCE_DOES_NOT_EXIST":
                        raise NotFoundError(f"{what}: {exc.message}") from None
                    if code == "INVALID_PARAMETER_VALUE":
                        raise UsageError(f"{what}: {exc.message}") from None
                    raise StoreUnavailableError(
                        f"{what} failed at {redact_uri(self.tracking_uri)}: {exc.message}"
                    ) from None
                raise StoreUnavailableError(
                    f"{what} failed at {redact_uri(self.tracking_uri)}: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- experiments and runs ---------------------------------------------------
    def _artifact_location(self, name: str) -> str | None:
        if not self.location.artifact_uri:
            return None
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "experiment"
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        return f"{self.location.artifact_uri}/{slug}-{digest}"

    def experiment_id(self, name: str) -> str:
        """The id of experiment ``name``, created (with our artifact folder) when missing."""
        if name in self._experiments:
            return self._experiments[name]

        def get_or_create() -> str:
            from mlflow.exceptions import MlflowException

            found = self.client.get_experiment_by_name(name)
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    self.client.restore_experiment(found.experiment_id)
                return str(found.experiment_id)
            try:
                return str(
                    self.client.create_experiment(
                        name, artifact_location=self._artifact_location(name)
                    )
                )
            except MlflowException as exc:  # another process created it first
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise exc from None
                return str(found.experiment_id)

        experiment_id = self._call(f"opening experiment {name!r}", get_or_create)
        self._experiments[name] = experiment_id
        return experiment_id

    def _handle(self, run: Any) -> RunHandle:
        experiment = self._call(
            "reading experiment", lambda: self.client.get_experiment(run.info.experiment_id)
        )
        return RunHandle(
            run_id=run.info.run_id,
            experiment_id=str(run.info.experiment_id),
            experiment_name=experiment.name,
            run_name=run.info.run_name or "",
            artifact_uri=run.info.artifact_uri,
        )

    def start_run(
        self,
        experiment: str,
        run_name: str | None,
        tags: dict[str, str],
        parent_run_id: str | None = None,
    ) -> RunHandle:
        experiment_id = self.experiment_id(experiment)
        all_tags = dict(tags)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self._call(
            "starting a run",
            lambda: self.client.create_run(experiment_id, tags=all_tags, run_name=run_name),
        )
        return self._handle(run)

    def resume_run(self, run_id: str) -> RunHandle:
        run = self._call(f"reading run {run_id}", lambda: self.client.get_run(run_id))
        if run.info.status != "RUNNING":
            self._call(
                f"reopening run {run_id}",
                lambda: self.client.update_run(run_id, status="RUNNING"),
            )
        return self._handle(run)

    def logged_params(self, run_id: str) -> dict[str, str]:
        run = self._call(f"reading run {run_id}", lambda: self.client.get_run(run_id))
        return dict(run.data.params)

    def run_status(self, run_id: str) -> str:
        run = self._call(f"reading run {run_id}", lambda: self.client.get_run(run_id))
        return str(run.info.status)

    # -- writing ----------------------------------------------------------------
    def log_batch(self, run_id: str, batch: Batch) -> None:
        from mlflow.entities import Metric, Param, RunTag

        params = [Param(k, v[:MAX_PARAM_VALUE]) for k, v in batch.params.items()]
        tags = [RunTag(k, v[:MAX_TAG_VALUE]) for k, v in batch.tags.items()]
        metrics = [Metric(m.key, m.value, m.timestamp_ms, m.step) for m in batch.metrics]
        for param_chunk in _chunks(params, MAX_PARAMS_PER_BATCH):
            self._log_batch_call(run_id, "params", {"params": param_chunk})
        for tag_chunk in _chunks(tags, MAX_TAGS_PER_BATCH):
            self._log_batch_call(run_id, "tags", {"tags": tag_chunk})
        for metric_chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
            self._log_batch_call(run_id, "metrics", {"metrics": metric_chunk})

    def _log_batch_call(self, run_id: str, what: str, entities: dict[str, list[Any]]) -> None:
        self._call(f"logging {what}", lambda: self.client.log_batch(run_id, **entities))  # type: ignore[arg-type]

    def put_artifact(self, run_id: str, path: str, data: bytes) -> None:
        """Write ``data`` as the artifact ``path`` of the run (replacing an earlier version)."""
        relative = Path(path)
        if relative.is_absolute() or ".." in relative.parts:
            raise UsageError(f"artifact path {path!r} must be relative and stay inside the run")
        with tempfile.TemporaryDirectory(prefix="mlops-artifact-") as tmp:
            local = Path(tmp) / relative.name
            local.write_bytes(data)
            parent = str(relative.parent) if str(relative.parent) != "." else None
            self._call(
                f"uploading {path}",
                lambda: self.client.log_artifact(run_id, str(local), artifact_path=parent),
            )

    def end_run(self, run_id: str, status: str) -> None:
        self._call(
            f"ending run {run_id}", lambda: self.client.set_terminated(run_id, status=status)
        )

    def read_artifact(self, run_id: str, path: str) -> bytes:
        """The bytes of one artifact of a run."""
        with tempfile.TemporaryDirectory(prefix="mlops-download-") as tmp:
            local = self._call(
                f"downloading {path} of run {run_id}",
                lambda: self.client.download_artifacts(run_id, path, tmp),
            )
            return Path(local).read_bytes()
