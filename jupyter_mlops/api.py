"""The Python API: ``import jupyter_mlops as mlops; mlops.start_run(); mlops.log_metrics(...)``.

The magics and this API share one active session per process, so metrics logged with
``mlops.log_metrics`` in a notebook land in the run that ``%mlops_track`` started, and a
notebook executed by ``jupyter mlops run`` (which sets ``JUPYTER_MLOPS_RUN_ID``) writes
into the runner's run instead of opening a new one.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import UsageError
from jupyter_mlops.core.secrets import SecretMasker
from jupyter_mlops.core.session import TrackingSession
from jupyter_mlops.core.settings import (
    ENV_HEARTBEAT,
    ENV_KERNEL_NAME,
    ENV_NOTEBOOK,
    ENV_RUN_ID,
    ENV_SESSION_NAME,
    TrackingLocation,
    resolve_tracking_location,
)
from jupyter_mlops.tracking.store import RunHandle, RunStore
from jupyter_mlops.tracking.writer import AsyncWriter

#: How long exit waits for queued records before giving up (they are then reported lost).
EXIT_FLUSH_TIMEOUT_S = 60.0

_lock = threading.Lock()
_session: TrackingSession | None = None
#: Every session of this kernel that may still have records queued (an ended one too):
#: a run started offline is created later, and its queued records need its real id.
_sessions: weakref.WeakSet[TrackingSession] = weakref.WeakSet()
_writer: AsyncWriter | None = None
_location: TrackingLocation | None = None
_store: RunStore | None = None


def notebook_path() -> str | None:
    """The notebook this process runs: set by our runner, else by JupyterLab."""
    return os.environ.get(ENV_NOTEBOOK) or os.environ.get(ENV_SESSION_NAME) or None


def default_experiment() -> str:
    path = notebook_path()
    if path:
        return Path(path).stem
    script = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return script if script and script not in ("-c", "ipykernel_launcher") else "Default"


def active_session() -> TrackingSession | None:
    return _session


def tracking_location() -> TrackingLocation | None:
    """Where the active (or last) run of this kernel tracks, and which rule chose it."""
    return _location


def _make_store(location: TrackingLocation) -> Callable[[], RunStore]:
    def build() -> RunStore:
        global _store
        from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

        _store = MlflowRunStore(location)
        return _store

    return build


def _spool_for(location: TrackingLocation) -> Any:
    """Where this kernel's records wait while the store does not answer."""
    from jupyter_mlops.core.settings import spool_folder
    from jupyter_mlops.tracking.spool import Spool

    return Spool(spool_folder(location), location.uri)


def start_run(
    experiment: str | None = None,
    run_name: str | None = None,
    tracking_uri: str | None = None,
    new_run: bool = False,
    run_id: str | None = None,
    on_started: Callable[[RunHandle], None] | None = None,
) -> TrackingSession:
    """Start tracking, or return the active session when there is one and ``new_run`` is False.

    The run is created by the writer thread; the first call for a kind of store imports
    MLflow here first (see ``import_client_modules``), later calls return at once.
    ``run_id`` (or ``JUPYTER_MLOPS_RUN_ID``) resumes an existing run.
    """
    global _session, _writer, _location
    from jupyter_mlops.tracking.environment import environment_listing, run_tags
    from jupyter_mlops.tracking.mlflow_store import import_client_modules

    with _lock:
        location = resolve_tracking_location(tracking_uri)
        if _session is not None and not _session.ended and not new_run:
            if tracking_uri and _location is not None and location.uri != _location.uri:
                raise UsageError(
                    f"this kernel already tracks to {_location.uri}; "
                    "use --new-run to start a run at another location"
                )
            return _session
        if _session is not None and not _session.ended:
            _session.stop("FINISHED")
        if _writer is None or (_location is not None and _location.uri != location.uri):
            if _writer is not None:
                _writer.close()
            # In this thread, not the writer's: see import_client_modules.
            import_client_modules(location)
            _writer = AsyncWriter(
                _make_store(location), spool=_spool_for(location), on_created=_adopt_created
            )
            _location = location
        install_kernel_shutdown_hook()
        resume = run_id or (os.environ.get(ENV_RUN_ID) if _session is None else None)
        _stop_heartbeat()
        _session = TrackingSession(
            _writer,
            experiment=experiment or default_experiment(),
            run_name=run_name,
            tags=run_tags(notebook_path(), os.environ.get(ENV_KERNEL_NAME)),
            resume_run_id=resume or None,
            masker=SecretMasker(),
            environment=environment_listing,
            on_started=on_started,
        )
        _sessions.add(_session)
        _start_heartbeat(_session)
        return _session


def _adopt_created(created: dict[str, RunHandle]) -> None:
    """The writer created runs started offline: their sessions switch to the real ids."""
    for session in list(_sessions):
        session.adopt_created_runs(created)


_heartbeat: Any = None


def _start_heartbeat(session: TrackingSession) -> None:
    """Tag the run alive every interval, so ``jupyter mlops sweep`` can tell a dead one."""
    global _heartbeat
    from jupyter_mlops.core.heartbeat import TAG_HEARTBEAT, heartbeat_interval
    from jupyter_mlops.tracking.heartbeat import Heartbeat, now_ms

    interval = heartbeat_interval(os.environ, ENV_HEARTBEAT)

    def beat() -> None:
        if not session.ended:
            session.set_tags({TAG_HEARTBEAT: str(now_ms())})

    _heartbeat = Heartbeat(interval, beat)


def _stop_heartbeat() -> None:
    global _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None


def _require() -> TrackingSession:
    if _session is None or _session.ended:
        return start_run()
    return _session


def log_params(params: Mapping[str, Any], step: int | None = None) -> list[str]:
    """Log params (first value kept; later values go to params_history.jsonl)."""
    return _require().log_params(params, step=step)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> dict[str, float]:
    """Log numeric metrics at ``step``."""
    return _require().log_metrics(metrics, step=step)


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    """Upload a file into the run (``artifact_path`` is a folder inside the run)."""
    path = Path(local_path)
    if not path.is_file():
        raise UsageError(f"log_artifact: {path} is not a file")
    target = f"{artifact_path.strip('/')}/{path.name}" if artifact_path else path.name
    _require().log_artifact_bytes(target, path.read_bytes())


def set_tags(tags: Mapping[str, Any]) -> None:
    _require().set_tags({k: str(v) for k, v in tags.items()})


def flush(timeout: float | None = None) -> bool:
    """Wait until everything logged so far is in the store; False if ``timeout`` ran out."""
    return _writer.flush(timeout) if _writer is not None else True


def end_run(status: str = "FINISHED", timeout: float | None = EXIT_FLUSH_TIMEOUT_S) -> bool:
    """End the active run with ``status`` and wait for the store; True when all is written."""
    global _session
    if status not in ("FINISHED", "FAILED", "KILLED"):
        raise UsageError(f"end_run: status must be FINISHED, FAILED or KILLED, not {status!r}")
    session = _session
    if session is None:
        return True
    _stop_heartbeat()
    session.stop(status)
    _session = None
    return flush(timeout)


def current_run_id(timeout: float | None = 30.0) -> str:
    """The active run's id, waiting for the writer to create the run if needed."""
    session = _require()
    if session.handle is None:
        flush(timeout)
    return session.run_id()


def _registry_store() -> Any:
    """A store for the model registry, once everything queued for the run is written.

    The lineage tags of a version are read from the run, so the snapshot, params and
    dataset inputs queued by tracked cells must be in the store first. Registration is
    synchronous (the user waits for the version number), on its own client: the writer's
    queue keeps retrying a failing store, a registration should fail at once instead.
    """
    from jupyter_mlops.core.errors import StoreUnavailableError
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

    current_run_id()
    if not flush(EXIT_FLUSH_TIMEOUT_S) or last_error() is not None:
        raise StoreUnavailableError(
            "the tracking store has not written this run yet: "
            f"{last_error() or 'timed out'}; nothing was registered"
        )
    assert _location is not None
    return MlflowRunStore(_location)


def log_model(
    obj: Any,
    artifact_path: str = "model",
    *,
    flavor: str = "auto",
    input_example: Any = None,
) -> str:
    """Save ``obj`` as an MLflow model in the active run at ``artifact_path``, unregistered.

    A pipeline step logs its model this way; ``outputs: {model: ...}`` in ``mlops.yaml``
    registers it once the step succeeded. Returns the artifact path.
    """
    from jupyter_mlops.tracking.registry import log_model as log_into_run

    store = _registry_store()
    logged = log_into_run(
        store,
        current_run_id(),
        obj,
        flavor=flavor,
        artifact_path=artifact_path,
        input_example=input_example,
    )
    return logged.artifact_path


def register_model(
    obj: Any,
    name: str,
    alias: str | None = None,
    *,
    flavor: str = "auto",
    input_example: Any = None,
    artifact_path: str | None = None,
) -> Any:
    """Log ``obj`` into the active run and register it as a new version of ``name``.

    The version carries the run's lineage as tags; ``alias`` is subject to the project's
    promotion policy (``require_review_for`` in ``pyproject.toml``), checked before
    anything is written. Returns the registration (``.name``, ``.version``, ``.uri``).
    """
    from jupyter_mlops.core.lineage import load_policy
    from jupyter_mlops.core.registration import detect_flavor
    from jupyter_mlops.tracking.registry import register_object

    detect_flavor(obj, flavor)  # a non-model is refused before waiting for the store
    store = _registry_store()
    assert _location is not None
    return register_object(
        store,
        current_run_id(),
        obj,
        name,
        alias=alias,
        flavor=flavor,
        input_example=input_example,
        artifact_path=artifact_path,
        policy=load_policy(_location.project_root),
    )


def last_error() -> str | None:
    """The store error that keeps records queued right now, as one line (None when fine)."""
    if _writer is None or _writer.last_error is None:
        return None
    return str(_writer.last_error)


def credentials_refused() -> bool:
    """Whether the records wait because the tracking server refused our credentials."""
    from jupyter_mlops.core.errors import CredentialsError

    return _writer is not None and isinstance(_writer.last_error, CredentialsError)


def take_dropped() -> list[str]:
    """Records the store refused for good since the last call (each reported once)."""
    return _writer.take_dropped() if _writer is not None else []


def pending() -> int:
    return _writer.pending_count() if _writer is not None else 0


def spooled() -> int:
    """Records in the offline spool, waiting for the store (0 when it answers)."""
    return _writer.spooled_count() if _writer is not None else 0


def spool_folder() -> str | None:
    """The folder of this kernel's offline spool (None before tracking started)."""
    if _writer is None or _writer.spool is None:
        return None
    return str(_writer.spool.folder)


def finish_for_exit(timeout: float = EXIT_FLUSH_TIMEOUT_S) -> bool:
    """The process is about to end: end our run and write everything queued.

    Called when the kernel gets its shutdown request (while the interpreter is still
    whole: at interpreter exit, MLflow cannot start threads any more) and again at exit
    for plain scripts. A run the notebook did not stop stays RUNNING when it was resumed
    from ``JUPYTER_MLOPS_RUN_ID`` (the runner ends it); otherwise the kernel ending is the
    end of the run. Returns False, after saying so on stderr, when records are left.
    """
    if _writer is None:
        return True
    if _session is not None and not _session.ended and not os.environ.get(ENV_RUN_ID):
        _session.stop("FINISHED")
    if _writer.flush(timeout) and _writer.last_error is None:
        return True
    spooled_now, in_memory = _writer.spooled_count(), _writer.pending_count()
    if spooled_now and not in_memory and _exit_said == spooled_now:
        return False  # said at the kernel's shutdown already; nothing changed since
    if spooled_now:
        _said_at_exit(spooled_now)
        print(
            f"jupyter-mlops: the tracking store does not answer ({last_error()}); "
            f"{spooled_now} tracking records are kept in the spool {spool_folder()}: they are "
            "written when a process tracking to this store sees it answer, or by "
            "`jupyter mlops sync`",
            file=sys.stderr,
        )
    if in_memory or not spooled_now:
        print(
            f"jupyter-mlops: {in_memory} tracking records could not be written "
            f"at exit: {last_error() or 'timed out'}",
            file=sys.stderr,
        )
    return False


_exit_said = 0


def _said_at_exit(spooled_now: int) -> None:
    global _exit_said
    _exit_said = spooled_now


def install_kernel_shutdown_hook() -> None:
    """In an IPython kernel, flush before the kernel answers its shutdown request."""
    if "ipykernel" not in sys.modules:
        return
    from jupyter_mlops.kernel.shutdown import flush_before_kernel_shutdown

    flush_before_kernel_shutdown(finish_for_exit)


atexit.register(finish_for_exit)
