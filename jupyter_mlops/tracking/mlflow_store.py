"""The MLflow implementation of :class:`RunStore`: the one module that imports mlflow.

It hides MLflow habits from the rest of the code: experiments on the embedded default
get their artifact folder under ``.mlops/`` (not ``./mlruns`` of whatever the working
directory was), ``log_batch`` calls are split at MLflow's per-request limits (count and
size; over-long values are truncated as MLflow itself does, keys MLflow would refuse are
left out with a warning instead of failing the whole batch), and MLflow's exceptions
become our typed errors, in one line.

A tracking server that stopped answering fails fast: MLflow's HTTP client retries a
refused connection for about four minutes before it raises, while the writer above keeps
records (in the offline spool) and retries with its own backoff, so before talking to a
server that failed or was idle the store asks its ``/health`` with a short timeout, and
MLflow's own retries are made short (``HTTP_DEFAULTS``, unless the user set them).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from jupyter_mlops.core.cells import storable_name
from jupyter_mlops.core.errors import (
    CredentialsError,
    MlopsError,
    NotFoundError,
    StoreUnavailableError,
    UsageError,
)
from jupyter_mlops.core.settings import (
    ENV_ALLOW_FILE_STORE,
    TrackingLocation,
    redact_uri,
    sqlite_path,
)
from jupyter_mlops.tracking.health import server_problem
from jupyter_mlops.tracking.store import Batch, MetricPoint, RunHandle, RunRecord

# MLflow's per-request limits for log_batch (mlflow/utils/validation.py).
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
#: MLflow's server refuses a log_batch request over 1 MB of JSON; stay well under it.
MAX_BATCH_JSON_BYTES = 500_000
#: A server not talked to for this long (or that failed last time) is probed first.
PROBE_AFTER_IDLE_S = 0.5
PROBE_TIMEOUT_S = 3.0
#: MLflow's HTTP client settings used unless the user set them: a dead server is found
#: out in a few seconds (2 retries, 1 s backoff factor), a slow answer waits 30 s.
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
#: MLflow's error codes for a refused login, with their HTTP status.
CREDENTIAL_CODES = {"UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403}
#: Longest error text passed up: it becomes one line under a cell.
MAX_ERROR_TEXT = 300
T = TypeVar("T")
log = logging.getLogger(__name__)

LOCKED = re.compile(r"database is locked|database table is locked", re.IGNORECASE)
#: A row another writer inserted between MLflow's "is it there?" and its insert (SQLite's
#: and PostgreSQL's wording): MLflow's ``log_inputs`` creates a dataset that way, so two
#: runs of one experiment logging the same data at once can fail. Asked again, MLflow finds
#: the row and links it.
DUPLICATE_ROW = re.compile(
    r"UNIQUE constraint failed|duplicate key value violates unique constraint", re.IGNORECASE
)


def _json_size(key: str, value: str) -> int:
    """About how many bytes an entity takes in a log_batch request (non-ASCII is escaped)."""
    return len(json.dumps(key)) + len(json.dumps(value)) + 32


def _entity_size(kind: str, entity: Any) -> int:
    """About how many bytes a param, tag or metric takes in a log_batch request."""
    if kind == "metrics":
        return len(json.dumps(entity.key)) + 64  # value, step and timestamp are numbers
    return _json_size(entity.key, entity.value)


def _requests(params: list[Any], tags: list[Any], metrics: list[Any]) -> Iterator[dict[str, Any]]:
    """The entities in as few ``log_batch`` requests as MLflow's limits allow.

    Each MLflow call costs a round of its own (reading the run, a commit; an HTTP request
    to a server), so a cell's metrics and its tags go in one call instead of one per kind.
    Params come first, then tags, then metrics, as before; each request stays within the
    count limits per kind and in all, and within ``MAX_BATCH_JSON_BYTES`` of JSON.
    """
    kinds = (
        ("params", params, MAX_PARAMS_PER_BATCH),
        ("tags", tags, MAX_TAGS_PER_BATCH),
        ("metrics", metrics, MAX_METRICS_PER_BATCH),
    )
    request: dict[str, list[Any]] = {"params": [], "tags": [], "metrics": []}
    count = size = 0
    for kind, items, limit in kinds:
        for item in items:
            cost = _entity_size(kind, item)
            full = len(request[kind]) == limit or count == MAX_ENTITIES_PER_BATCH
            if count and (full or size + cost > MAX_BATCH_JSON_BYTES):
                yield {k: v for k, v in request.items() if v}
                request = {"params": [], "tags": [], "metrics": []}
                count = size = 0
            request[kind].append(item)
            count += 1
            size += cost
    if count:
        yield {k: v for k, v in request.items() if v}


def _quoted(text: str) -> str:
    """``text`` inside a single-quoted MLflow search string."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def one_line(text: str, limit: int = MAX_ERROR_TEXT) -> str:
    """The first line of ``text``, cut at ``limit`` characters: an error shown under a cell."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def search_in_memory(runs: list[Any], filter_string: str, order_by: str) -> list[Any]:
    """MLflow's own filter and ordering over ``Run`` entities held in memory.

    What MLflow's file store runs for ``search_runs``: same syntax, same ties (start time
    then run id), same errors, which become ``UsageError``.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.utils.search_utils import SearchUtils

    try:
        found = SearchUtils.filter(runs, filter_string)  # type: ignore[no-untyped-call]
        return list(SearchUtils.sort(found, [order_by]))  # type: ignore[no-untyped-call]
    except MlflowException as error:
        raise UsageError(f"searching runs: {one_line(str(error.message))}") from None


def offset_page(items: list[T], page_token: str | None, size: int) -> tuple[list[T], str | None]:
    """A page of ``items`` by MLflow's offset page token, and the next page's token.

    The tokens are those MLflow's SQL store hands out, so a page from memory and one from
    ``search_runs`` continue each other.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.utils.search_utils import SearchUtils

    try:
        start = SearchUtils.parse_start_offset_from_page_token(page_token)  # type: ignore[no-untyped-call]
    except MlflowException as error:
        raise UsageError(f"searching runs: {one_line(str(error.message))}") from None
    end = int(start) + size
    if end >= len(items):
        return items[int(start) : end], None
    token = SearchUtils.create_page_token(end)  # type: ignore[no-untyped-call]
    return items[int(start) : end], token.decode("ascii") if isinstance(token, bytes) else token


def prepare_local_store(location: TrackingLocation) -> None:
    """Create the folder of an embedded SQLite store, git-ignored, before MLflow opens it."""
    if location.kind != "sqlite":
        return
    db_path = sqlite_path(location.uri)
    folder = db_path.parent
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
        if folder.name == ".mlops":
            (folder / ".gitignore").write_text("# tracking data of jupyter-mlops\n*\n")


#: The modules an ``MlflowClient`` imports when it opens each kind of store, beyond what
#: ``mlflow.tracking`` imports itself: the SQL stores pull in SQLAlchemy and, to check the
#: schema on every open, Alembic and MLflow's migration scripts.
_SQL_STORE_MODULES = (
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.tracking.sqlalchemy_workspace_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_workspace_store",
    "mlflow.store.db.trace_analytics",
    "mlflow.store.db.trace_analytics_prepopulation",
    "alembic.command",
    "alembic.config",
)
CLIENT_MODULES: dict[str, tuple[str, ...]] = {
    "sqlite": (*_SQL_STORE_MODULES, "sqlalchemy.dialects.sqlite"),
    "database": _SQL_STORE_MODULES,
    "file": ("mlflow.store.tracking.file_store", "mlflow.store.model_registry.file_store"),
}
_client_modules_lock = threading.Lock()
_client_modules_imported: set[str] = set()


def import_client_modules(location: TrackingLocation) -> None:
    """Import MLflow, and what its client for ``location`` uses, in the calling thread.

    Why this is not left to whichever thread opens the store first: MLflow's modules
    import each other in circles (``mlflow.tracking`` and ``mlflow.pyfunc`` do). When two
    threads import them at once, for example a kernel's tracking writer opening the store
    while the next cell runs ``import mlflow.pyfunc``, Python's deadlock check hands each
    thread the other's half-made module and both fail with "cannot import name ... from
    partially initialized module". So ``api.start_run`` calls this in the cell's thread
    before it starts the writer, and the threads of our own that open stores (a server's
    run index beside its handlers) take turns here. Importing what is imported already is
    free, so only the first call for a kind of store costs anything.
    """
    kind = str(location.kind)
    if kind in _client_modules_imported:
        return
    with _client_modules_lock:
        importlib.import_module("mlflow.tracking")
        for name in CLIENT_MODULES.get(kind, ()):
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as error:
                if error.name != name:
                    raise
                # An MLflow 3.x without it: its client cannot import it later either.
                # tests/tracking/test_mlflow_imports.py says what that version imports.
        _client_modules_imported.add(kind)


@contextlib.contextmanager
def creation_lock(location: TrackingLocation) -> Iterator[None]:
    """Processes opening one SQLite store take turns while MLflow creates or checks its
    tables: two creating a new database at once would both run the migrations and one
    would fail ("table already exists", "duplicate column", "database is locked")."""
    if location.kind != "sqlite":
        yield
        return
    import fcntl

    lock_path = sqlite_path(location.uri).with_suffix(".lock")
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _template_path() -> Path:
    """An empty database made by this MLflow version, kept to copy instead of migrating."""
    import mlflow

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "jupyter-mlops" / f"empty-store-mlflow-{mlflow.__version__}.db"


def _from_template(db_path: Path) -> bool:
    """Create a new SQLite store by copying the empty template (MLflow's migrations take
    about a second); False when there is none or it does not fit, and nothing is left."""
    import sqlite3

    template = _template_path()
    if not template.is_file():
        return False
    try:
        shutil.copyfile(template, db_path)
        # What MLflow itself writes when it creates a store: the Default experiment under
        # the working directory's mlruns/, created now.
        now = int(time.time() * 1000)
        default_location = str(Path.cwd() / "mlruns" / "0")
        with contextlib.closing(sqlite3.connect(db_path)) as con:
            con.execute(
                "UPDATE experiments SET artifact_location = ?, creation_time = ?, "
                "last_update_time = ? WHERE experiment_id = 0",
                (default_location, now, now),
            )
            con.commit()
        return True
    except (OSError, sqlite3.Error):
        db_path.unlink(missing_ok=True)
        return False


def _save_template(db_path: Path) -> None:
    """Keep a just-created, still empty store as the template (best effort, atomic)."""
    import sqlite3

    template = _template_path()
    if template.is_file() or Path(f"{db_path}-wal").exists():
        return
    try:
        with contextlib.closing(sqlite3.connect(db_path)) as con:
            runs = con.execute("SELECT count(*) FROM runs").fetchone()[0]
            experiments = con.execute("SELECT count(*) FROM experiments").fetchone()[0]
        if runs or experiments != 1:
            return
        template.parent.mkdir(parents=True, exist_ok=True)
        partial = template.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(db_path, partial)
        partial.replace(template)
    except (OSError, sqlite3.Error):
        return


class MlflowRunStore:
    """Runs, params, metrics, tags and artifacts through ``MlflowClient``."""

    def __init__(self, location: TrackingLocation, retries: int = 5) -> None:
        try:
            prepare_local_store(location)
            import_client_modules(location)
            from mlflow.tracking import MlflowClient
        except Exception as exc:
            raise self._open_error(location, exc) from None

        # A progress bar per downloaded artifact is noise in a CLI's output and a kernel's.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        # Against a tracking server, ending a run prints "View run ... at: URL" lines on
        # stdout (after one more GET of the run): they would land in a CLI's result table.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        if location.kind == "http":
            # A server that went away must be noticed in seconds: MLflow's defaults retry a
            # refused request for minutes (7 retries, backoff factor 2, 120 s timeout). What
            # the writer cannot write meanwhile goes to the offline spool (spool.py).
            for name, value in HTTP_DEFAULTS.items():
                os.environ.setdefault(name, value)
        # Creating a database logs its migrations at INFO on stderr: noise in a CLI's output.
        for noisy in ("mlflow.store.db.utils", "alembic.runtime.migration"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

        self.location = location
        self.tracking_uri = location.uri
        self.retries = retries
        self._last_ok: float | None = None
        try:
            # Opening a SQLite store creates its tables; a folder store may be refused here.
            with creation_lock(location):
                db_path = sqlite_path(location.uri) if location.kind == "sqlite" else None
                created = db_path is not None and not db_path.exists()
                copied = created and db_path is not None and _from_template(db_path)
                self.client = MlflowClient(tracking_uri=location.uri, registry_uri=location.uri)
                if db_path is not None:
                    # The registry's tables are checked on first use: inside the lock too.
                    self.client.search_registered_models(max_results=1)
                    if created and not copied:
                        _save_template(db_path)
        except Exception as exc:
            raise self._open_error(location, exc) from None
        self._experiments: dict[str, str] = {}

    @staticmethod
    def _open_error(location: TrackingLocation, exc: Exception) -> StoreUnavailableError:
        """Why the store cannot be opened: the writer keeps records and tries again."""
        shown = redact_uri(location.uri)
        if location.kind == "file" and ENV_ALLOW_FILE_STORE in str(exc):
            return StoreUnavailableError(
                f"MLflow refuses the folder store {shown} unless {ENV_ALLOW_FILE_STORE}=true "
                "is set in the kernel's environment"
            )
        return StoreUnavailableError(
            f"cannot open the tracking store {shown}: {type(exc).__name__}: {one_line(str(exc))}"
        )

    # -- errors -----------------------------------------------------------------
    def _check_server(self) -> None:
        """Fail in seconds, not minutes, when a tracking server that failed or idled is gone."""
        if self.location.kind != "http":
            return
        if self._last_ok is not None and time.monotonic() - self._last_ok < PROBE_AFTER_IDLE_S:
            return
        problem = server_problem(self.tracking_uri, PROBE_TIMEOUT_S)
        if problem is not None:
            self._last_ok = None
            raise StoreUnavailableError(problem)

    def _call(self, what: str, action: Callable[[], T], retry_duplicates: bool = False) -> T:
        """Run a client call; retry SQLite lock errors; turn failures into our errors.

        ``retry_duplicates``: also retry a call that lost a race to insert the same row
        (``DUPLICATE_ROW``); only for calls that look the row up before inserting it.
        """
        from mlflow.exceptions import MlflowException

        self._check_server()
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                result = action()
                self._last_ok = time.monotonic()
                return result
            except MlopsError:
                raise
            except Exception as exc:  # MLflow, connection, disk and SQLAlchemy errors
                transient = LOCKED.search(str(exc)) or (
                    retry_duplicates and DUPLICATE_ROW.search(str(exc))
                )
                if transient and attempt < self.retries:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                self._last_ok = None
                if isinstance(exc, MlflowException):
                    code = getattr(exc, "error_code", "")
                    message = one_line(str(exc.message))
                    if code == "RESOURCE_DOES_NOT_EXIST":
                        raise NotFoundError(f"{what}: {message}") from None
                    if code == "INVALID_PARAMETER_VALUE":
                        raise UsageError(f"{what}: {message}") from None
                    if code in CREDENTIAL_CODES:
                        raise CredentialsError(
                            f"{what}: the tracking server {redact_uri(self.tracking_uri)} "
                            f"refused the credentials (HTTP {CREDENTIAL_CODES[code]}): check "
                            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
                        ) from None
                    raise StoreUnavailableError(
                        f"{what} failed at {redact_uri(self.tracking_uri)}: {message}"
                    ) from None
                raise StoreUnavailableError(
                    f"{what} failed at {redact_uri(self.tracking_uri)}: "
                    f"{type(exc).__name__}: {one_line(str(exc))}"
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
        start_time_ms: int | None = None,
    ) -> RunHandle:
        experiment_id = self.experiment_id(experiment)
        all_tags = dict(tags)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self._call(
            "starting a run",
            lambda: self.client.create_run(
                experiment_id, start_time=start_time_ms, tags=all_tags, run_name=run_name
            ),
        )
        return self._handle(run)

    def run_with_tag(self, key: str, value: str) -> str | None:
        """The id of an active run tagged ``key = value`` in any experiment, or None.

        How replay finds a run it may have created before (its creation key).
        """
        from mlflow.entities import ViewType

        experiments = self._call(
            "listing experiments",
            lambda: self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY),
        )
        ids = [e.experiment_id for e in experiments]
        for start in range(0, len(ids), 100):  # MLflow searches at most 100 experiments
            runs = self.find_runs(ids[start : start + 100], f"tags.`{key}` = '{value}'", 1)
            if runs:
                return runs[0].run_id
        return None

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
        """Write the batch in as many requests as MLflow's limits need.

        Values over MLflow's limits are truncated (as MLflow does itself); a key MLflow would
        refuse is left out with a warning, since one bad key would fail the whole request and
        the writer would hold every later record behind it.
        """
        from mlflow.entities import Metric, Param, RunTag

        keys = {*batch.params, *batch.tags, *(m.key for m in batch.metrics)}
        refused = sorted(k for k in keys if not storable_name(k))
        if refused:
            shown = ", ".join(repr(k if len(k) <= 40 else k[:40] + "…") for k in refused)
            log.warning(
                "mlops: not logged, MLflow refuses these keys (over 250 characters or with "
                "characters it does not accept): %s",
                shown,
            )
        params = [
            Param(k, v[:MAX_PARAM_VALUE]) for k, v in batch.params.items() if storable_name(k)
        ]
        tags = [RunTag(k, v[:MAX_TAG_VALUE]) for k, v in batch.tags.items() if storable_name(k)]
        metrics = [
            Metric(m.key, m.value, m.timestamp_ms, m.step)
            for m in batch.metrics
            if storable_name(m.key)
        ]
        for entities in _requests(params, tags, metrics):
            self._log_batch_call(run_id, entities)

    def _log_batch_call(self, run_id: str, entities: dict[str, list[Any]]) -> None:
        what = " and ".join(entities)
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

    def end_run(self, run_id: str, status: str, end_time_ms: int | None = None) -> None:
        """End the run now, or at ``end_time_ms`` (a replayed end keeps its own time)."""
        self._call(
            f"ending run {run_id}",
            lambda: self.client.set_terminated(run_id, status=status, end_time=end_time_ms),
        )

    def read_artifact(self, run_id: str, path: str) -> bytes:
        """The bytes of one artifact of a run."""
        with tempfile.TemporaryDirectory(prefix="mlops-download-") as tmp:
            local = self._call(
                f"downloading {path} of run {run_id}",
                lambda: self.client.download_artifacts(run_id, path, tmp),
            )
            return Path(local).read_bytes()

    def experiment_ids(self) -> list[str]:
        """Ids of every active experiment (searches that span the whole store)."""
        found = self._call("listing experiments", lambda: self.client.search_experiments())
        return [str(e.experiment_id) for e in found]

    def artifact_infos(
        self, run_id: str, folder: str | None = None, artifact_uri: str | None = None
    ) -> list[Any]:
        """MLflow ``FileInfo`` of what is directly under ``folder`` of a run's own artifacts.

        Not ``MlflowClient.list_artifacts``: in MLflow 3 it also lists the run's logged
        models, looked up through the global tracking URI rather than this store's.
        """
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        def listing() -> list[Any]:
            uri = artifact_uri or self.client.get_run(run_id).info.artifact_uri
            return list(get_artifact_repository(uri, self.tracking_uri).list_artifacts(folder))

        return self._call(f"listing the artifacts of run {run_id}", listing)

    def list_artifacts(self, run_id: str, folder: str | None = None) -> list[str]:
        """Paths of the files directly under ``folder`` of a run's artifacts (none: empty)."""
        return [info.path for info in self.artifact_infos(run_id, folder) if not info.is_dir]

    def find_artifact(self, run_id: str, path: str) -> bytes | None:
        """The bytes of an artifact, or None when the run has no such file.

        Listing first tells "missing" apart from "store failed": a download of a missing
        file fails with an error that looks like any other I/O error.
        """
        folder, _, _name = path.rpartition("/")
        if path not in self.list_artifacts(run_id, folder or None):
            return None
        return self.read_artifact(run_id, path)

    def model_version_run(
        self, name: str, version: str | None = None, alias: str | None = None
    ) -> tuple[str, str]:
        """``(version, run id)`` of a registered model version, by number or by alias."""
        what = f"models:/{name}/{version}" if version else f"models:/{name}@{alias}"
        if version:
            found = self._call(
                f"reading {what}", lambda: self.client.get_model_version(name, version)
            )
        else:
            found = self._call(
                f"reading {what}",
                lambda: self.client.get_model_version_by_alias(name, alias or ""),
            )
        if not found.run_id:
            raise NotFoundError(f"{what} was not logged from a run, so it has no notebook")
        return str(found.version), str(found.run_id)

    def model_versions(self, name: str | None = None, run_id: str | None = None) -> list[Any]:
        """Versions of model ``name``, or the versions logged from ``run_id``, newest first."""
        clauses = [f"name = '{_quoted(name)}'"] if name else []
        if run_id:
            clauses.append(f"run_id = '{_quoted(run_id)}'")
        found = self._call(
            "searching model versions",
            lambda: self.client.search_model_versions(" and ".join(clauses)),
        )
        return sorted(found, key=lambda v: (v.name, -int(v.version)))

    def model_alias_version(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at, or None when the model has no such alias."""
        model = self._call(
            f"reading registered model {name}", lambda: self.client.get_registered_model(name)
        )
        version = (getattr(model, "aliases", None) or {}).get(alias)
        return str(version) if version is not None else None

    def set_model_version_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        def tag_all() -> None:
            for key, value in tags.items():
                self.client.set_model_version_tag(name, version, key, value)

        self._call(f"tagging models:/{name}/{version}", tag_all)

    # -- reading back -------------------------------------------------------------
    @staticmethod
    def _record(run: Any) -> RunRecord:
        return RunRecord(
            run_id=run.info.run_id,
            experiment_id=str(run.info.experiment_id),
            run_name=run.info.run_name or "",
            status=str(run.info.status),
            start_time_ms=run.info.start_time,
            end_time_ms=run.info.end_time,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=dict(run.data.tags),
            artifact_uri=run.info.artifact_uri,
        )

    def get_run(self, run_id: str) -> RunRecord:
        """One run, or ``NotFoundError`` naming the id."""
        return self._record(
            self._call(f"reading run {run_id}", lambda: self.client.get_run(run_id))
        )

    def find_runs(
        self, experiment_ids: list[str], filter_string: str = "", max_results: int = 1000
    ) -> list[RunRecord]:
        """Runs matching an MLflow search filter, newest first."""
        runs = self._call(
            "searching runs",
            lambda: self.client.search_runs(
                experiment_ids,
                filter_string=filter_string,
                max_results=max_results,
                order_by=["attributes.start_time DESC"],
            ),
        )
        return [self._record(run) for run in runs]

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.log_batch(run_id, Batch(tags=tags))

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        history = self._call(
            f"reading metric {key} of run {run_id}",
            lambda: self.client.get_metric_history(run_id, key),
        )
        return [MetricPoint(m.key, m.value, m.step, m.timestamp) for m in history]

    def set_status(self, run_id: str, status: str) -> None:
        """Mark a run SCHEDULED, RUNNING, ... without ending it (batch points before they start)."""
        self._call(f"updating run {run_id}", lambda: self.client.update_run(run_id, status=status))
