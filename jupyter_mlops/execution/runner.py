"""One notebook, one tracked run: Papermill execution wrapped in an MLflow run.

The runner creates the run before the kernel starts and hands its id to the kernel in
``JUPYTER_MLOPS_RUN_ID``, so ``%mlops_track`` and ``mlops.log_metrics`` in the notebook
write into this run instead of opening their own. The kernel is started by us (not by
Papermill) so that we choose its environment, give it time to flush its tracking queue
at shutdown, and always shut it down, whatever ended the execution.

Whatever happens, the executed notebook (partial when execution stopped) stays on disk
and is logged to the run, and the run ends FINISHED, FAILED or KILLED.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from jupyter_mlops.core.errors import UsageError
from jupyter_mlops.core.lineage import TAG_ENVIRONMENT_HASH
from jupyter_mlops.core.notebook_file import read_notebook
from jupyter_mlops.core.parameters import (
    Params,
    check_against_notebook,
    declared_parameters,
)
from jupyter_mlops.core.secrets import SecretMasker
from jupyter_mlops.core.session import param_text
from jupyter_mlops.core.settings import (
    ENV_HEARTBEAT,
    ENV_KERNEL_NAME,
    ENV_NOTEBOOK,
    ENV_RUN_ID,
    ENV_SESSION_NAME,
    ENV_TRACKING_URI,
    TrackingLocation,
)
from jupyter_mlops.core.snapshot import canonical_bytes, masked_copy, prepare_snapshot
from jupyter_mlops.tracking.store import Batch

ENGINE_NAME = "jupyter_mlops"
#: The kernel flushes its tracking queue at exit; give it this long before it is killed.
KERNEL_EXIT_WAIT_S = 30.0
#: How often a shutdown looks whether the kernel has exited.
EXIT_POLL_S = 0.01
#: After an interrupted cell, how long the kernel may take to exit before a second interrupt.
REINTERRUPT_AFTER_S = 2.0
OUTPUTS_DIRNAME = "outputs"

TAG_KIND = "mlops.kind"
TAG_INPUT_SNAPSHOT = "mlops.input_snapshot"
TAG_INPUT_NOTEBOOK = "mlops.input_notebook"
TAG_OUTPUT = "mlops.output_notebook"
TAG_FAILURE = "mlops.failure"
TAG_POINT_KEY = "mlops.point_key"
TAG_ATTEMPTS = "mlops.attempts"
EXECUTED_ARTIFACT = "executed"


@dataclass
class RunRequest:
    """What ``jupyter mlops run`` was asked to do, in plain values."""

    notebook: Path
    params: Params = field(default_factory=dict)
    experiment: str | None = None
    run_name: str | None = None
    output: Path | None = None
    kernel: str | None = None
    cell_timeout: float | None = None
    allow_unknown_params: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None
    #: Where the kernel runs; default: the notebook's folder (relative paths mean its files).
    cwd: Path | None = None


@dataclass(frozen=True)
class RunPlan:
    """A checked request: everything known before the store or a kernel is touched."""

    request: RunRequest
    notebook: dict[str, Any]
    input_path: Path
    output_path: Path
    kernel: str
    experiment: str
    snapshot_sha: str
    snapshot_bytes: bytes

    @property
    def kernel_cwd(self) -> Path:
        """Where the kernel runs: the requested folder, else the notebook's own."""
        return self.request.cwd or self.input_path.parent


@dataclass
class Failure:
    """Why an execution did not succeed, in words a user can act on."""

    kind: str  # cell_error | timeout | dead_kernel | interrupted | kernel_start | internal
    message: str
    cell_index: int | None = None
    execution_count: int | None = None
    ename: str | None = None
    evalue: str | None = None


@dataclass
class RunOutcome:
    run_id: str
    status: str  # FINISHED | FAILED | KILLED
    output_path: Path
    duration_s: float
    params: Params
    metrics: dict[str, float] = field(default_factory=dict)
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.status == "FINISHED"

    def summary(self) -> str:
        """One line: what happened, where the executed notebook is, which run."""
        if self.ok:
            metrics = " ".join(f"{k}={v:.6g}" for k, v in sorted(self.metrics.items()))
            tail = f" metrics: {metrics}" if metrics else ""
            return (
                f"FINISHED in {self.duration_s:.1f}s - run {self.run_id}; "
                f"executed notebook: {self.output_path}{tail}"
            )
        reason = self.failure.message if self.failure else "failed"
        return f"{self.status}: {reason}; executed notebook: {self.output_path}; run {self.run_id}"


# -- planning ---------------------------------------------------------------------------
def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", str(value)).strip("-.")[:60] or "x"


def default_output(project_root: Path, notebook: Path, params: Mapping[str, Any]) -> Path:
    """``<project>/.mlops/outputs/<stem>/<time>-<params>.ipynb``: never decided by a param."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    suffix = "-".join(_slug(f"{k}={v}") for k, v in params.items())[:100]
    name = f"{stamp}-{suffix}" if suffix else stamp
    return project_root / ".mlops" / OUTPUTS_DIRNAME / _slug(notebook.stem) / f"{name}.ipynb"


def render_output(template: Path, params: Mapping[str, Any]) -> Path:
    """An ``--output`` with ``{name}`` placeholders, filled with slugs of the values.

    Values are slugged (no ``/``, no ``..``), so a parameter can name the file but never
    move it out of the folder the user chose.
    """
    text = str(template)
    if "{" not in text:
        return template
    folder, name = os.path.split(text)
    if "{" in folder:
        raise UsageError(f"--output {text}: placeholders are allowed in the file name only")
    try:
        filled = name.format(**{k: _slug(v) for k, v in params.items()})
    except (KeyError, IndexError, ValueError) as error:
        raise UsageError(f"--output {text}: cannot fill the placeholder {error}") from None
    return Path(folder) / filled


def kernel_name_of(notebook: Mapping[str, Any], requested: str | None) -> str:
    if requested:
        return requested
    spec = (notebook.get("metadata") or {}).get("kernelspec") or {}
    name = spec.get("name") if isinstance(spec, dict) else None
    return str(name) if name else "python3"


def check_kernel(name: str) -> None:
    """Refuse a kernel that is not installed, naming those that are."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(name)
    except NoSuchKernel:
        known = ", ".join(sorted(manager.find_kernel_specs())) or "none"
        raise UsageError(f"no kernel named {name!r} (installed: {known})") from None


def plan_run(request: RunRequest, project_root: Path) -> RunPlan:
    """Check everything that can be checked without side effects; raise usage errors."""
    input_path = request.notebook.expanduser().resolve()
    notebook = read_notebook(input_path)
    check_against_notebook(
        request.params,
        declared_parameters(notebook),
        str(request.notebook),
        request.allow_unknown_params,
    )
    if request.cell_timeout is not None and request.cell_timeout <= 0:
        raise UsageError(f"--cell-timeout must be positive, not {request.cell_timeout}")
    if request.output is not None:
        output = render_output(request.output.expanduser(), request.params).resolve()
        if output.suffix != ".ipynb":
            raise UsageError(f"--output {request.output} must end in .ipynb")
        if output == input_path:
            raise UsageError("--output must not overwrite the input notebook")
    else:
        output = default_output(project_root, input_path, request.params)
    kernel = kernel_name_of(notebook, request.kernel)
    check_kernel(kernel)
    sha, data = prepare_snapshot(notebook, SecretMasker())
    return RunPlan(
        request=request,
        notebook=notebook,
        input_path=input_path,
        output_path=output,
        kernel=kernel,
        experiment=request.experiment or input_path.stem,
        snapshot_sha=sha,
        snapshot_bytes=data,
    )


# -- the run in the store ---------------------------------------------------------------
def open_run(
    plan: RunPlan,
    store: Any,
    run_id: str | None = None,
    environment: tuple[str, str] | None = None,
    host_tags: dict[str, str] | None = None,
) -> str:
    """Create the run (or reuse ``run_id``) and log what is known before execution.

    ``environment`` is the package listing and its hash, ``host_tags`` the tags of
    :func:`~jupyter_mlops.tracking.environment.run_tags`, when the caller already has
    them (a batch lists the packages and asks git once, not once per point).
    """
    from jupyter_mlops.tracking.environment import environment_listing, run_tags

    request = plan.request
    listing, digest = environment or environment_listing()
    tags = {
        **(host_tags if host_tags is not None else run_tags(str(plan.input_path), plan.kernel)),
        TAG_KIND: "run",
        TAG_INPUT_NOTEBOOK: str(plan.input_path),
        TAG_INPUT_SNAPSHOT: plan.snapshot_sha,
        TAG_OUTPUT: str(plan.output_path),
        TAG_ENVIRONMENT_HASH: digest,
        **request.tags,
    }
    resumed: int | None = None  # the attempt this is, when ``run_id`` is reused
    if run_id is None:
        handle = store.start_run(
            plan.experiment, request.run_name, tags, parent_run_id=request.parent_run_id
        )
        run_id = handle.run_id
    else:
        previous = store.get_run(run_id)
        resumed = int(previous.tags.get(TAG_ATTEMPTS, "0") or 0) + 1
        store.resume_run(run_id)
    assert run_id is not None
    try:
        if resumed is not None:
            store.log_batch(run_id, Batch(tags={**tags, TAG_ATTEMPTS: str(resumed)}))
        # One masking for both records: a param whose name looks secret is masked whole
        # in parameters.json too, not only in the run's params.
        masker = SecretMasker()
        masked = {k: masker.mask_param(k, v) for k, v in request.params.items()}
        store.log_batch(run_id, Batch(params={k: param_text(v) for k, v in masked.items()}))
        store.put_artifact(run_id, f"snapshots/{plan.snapshot_sha}.ipynb", plan.snapshot_bytes)
        store.put_artifact(
            run_id, "parameters.json", json.dumps(masked, indent=1, default=str).encode()
        )
        store.put_artifact(run_id, "environment.txt", listing.encode())
    except BaseException as error:
        # Nobody else knows this run yet: it is ended here, not left RUNNING.
        end_abandoned_run(store, run_id, error)
        raise
    return run_id


def open_run_store(location: TrackingLocation) -> Any:
    """The store ``run``, ``batch`` and ``pipeline`` open and close their runs with.

    Patient through a short outage (see ``tracking/patience.py``), and it replays what
    kernels left in the offline spool before a run is closed. MLflow is imported without
    the data-frame libraries: these processes only open, write and close runs, and
    MLflow's import is on their critical path.
    """
    from jupyter_mlops.fast_imports import without_dataframe_libraries
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore
    from jupyter_mlops.tracking.patience import PatientStore

    with without_dataframe_libraries():
        return PatientStore(MlflowRunStore(location))


def end_abandoned_run(store: Any, run_id: str, error: BaseException) -> None:
    """End a run whose opening was cut short: KILLED by a stop signal, FAILED otherwise.

    A stop signal raises ``KeyboardInterrupt`` on whatever line runs, so between creating
    a run and recording it anywhere a caller's handler would find it, the opener itself
    must end it. When the store is what failed, this fails too; ``jupyter mlops sweep``
    ends such a run later.
    """
    status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
    with contextlib.suppress(Exception):
        store.end_run(run_id, status)


def close_run(store: Any, run_id: str, plan: RunPlan, status: str, failure: Failure | None) -> None:
    """Log the executed notebook (masked) and the failure, then end the run.

    What the kernel left in the offline spool (it ended while the store was down) is
    replayed first, so the run is complete before its final status.
    """
    replay_spool = getattr(store, "replay_spool", None)
    if replay_spool is not None:
        replay_spool()
    tags: dict[str, str] = {}
    if failure is not None:
        tags[TAG_FAILURE] = failure.message[:2000]
    if plan.output_path.is_file():
        try:
            executed = json.loads(plan.output_path.read_text(encoding="utf-8"))
            masked = masked_copy(executed, SecretMasker())
            store.put_artifact(
                run_id, f"{EXECUTED_ARTIFACT}/{plan.input_path.name}", canonical_bytes(masked)
            )
        except (OSError, ValueError) as error:
            tags["mlops.executed_notebook_error"] = str(error)[:500]
    if tags:
        store.log_batch(run_id, Batch(tags=tags))
    store.end_run(run_id, status)


# -- execution --------------------------------------------------------------------------
def _register_engine() -> None:
    """A Papermill engine that executes in a kernel we started and keeps it ours."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines

    from jupyter_mlops.kernel.live_notebook import COMM_TARGET

    if ENGINE_NAME in papermill_engines._engines:
        return

    class OwnKernelEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man: Any,
            kernel_name: str,
            log_output: bool = False,
            stdout_file: Any = None,
            stderr_file: Any = None,
            start_timeout: int = 60,
            execution_timeout: float | None = None,
            **kwargs: Any,
        ) -> Any:
            client = PapermillNotebookClient(
                nb_man,
                km=kwargs["km"],
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                kernel_name=kernel_name,
                log=_quiet_logger(),
                log_output=log_output,
                stdout_file=stdout_file,
                stderr_file=stderr_file,
            )
            # Headless: nobody sends live models, the kernel snapshots the file it runs.
            client.comm_open_handlers[COMM_TARGET] = lambda _msg: None
            stable_injected_cell_id(nb_man.nb)
            try:
                return client.execute()
            finally:
                # A stop signal during the client's start leaves its channels half made,
                # and closing them can fail (seen: ZMQError): that must not replace the
                # KeyboardInterrupt the runner turns into a KILLED run.
                if client.kc is not None:
                    with contextlib.suppress(Exception):
                        client.kc.stop_channels()

    papermill_engines.register(ENGINE_NAME, OwnKernelEngine)


def run_heartbeat(store: Any, run_ids: Callable[[], Iterable[str]]) -> Any:
    """Tag the runs ``run_ids()`` names alive while this process executes them.

    A SIGKILL leaves them stale, for ``jupyter mlops sweep``; without the beats, a sweep
    would end a batch or a pipeline (and the points or steps whose notebook tracks
    nothing itself) KILLED while it still runs, once it ran longer than the limit.
    ``run_ids`` is asked at each beat (from the heartbeat's thread): a batch's open runs
    change as it goes. One failing run does not keep the others from their beat.
    """
    from jupyter_mlops.core.heartbeat import TAG_HEARTBEAT, heartbeat_interval
    from jupyter_mlops.tracking.heartbeat import Heartbeat, now_ms

    # Past a patient store: a beat during an outage fails at once and is skipped.
    writer = getattr(store, "inner", store)

    def beat() -> None:
        alive = Batch(tags={TAG_HEARTBEAT: str(now_ms())})
        for run_id in run_ids():
            with contextlib.suppress(Exception):
                writer.log_batch(run_id, alive)

    return Heartbeat(heartbeat_interval(os.environ, ENV_HEARTBEAT), beat, name="run")


INJECTED_CELL_ID = "injected-parameters"


def stable_injected_cell_id(notebook: Any) -> None:
    """Give Papermill's injected-parameters cell the same id in every run.

    Papermill makes a random one, so two runs of one notebook differ in that id and a
    review comment on the parameters could not be anchored across versions.
    """
    cells = notebook.get("cells", [])
    if any(cell.get("id") == INJECTED_CELL_ID for cell in cells):
        return
    for cell in cells:
        if "injected-parameters" in ((cell.get("metadata") or {}).get("tags") or []):
            cell["id"] = INJECTED_CELL_ID
            return


def _quiet_logger() -> Any:
    """nbclient logs timeouts and dead kernels at ERROR; our one-line summary says it better."""
    import logging

    logger = logging.getLogger("jupyter_mlops.execution.nbclient")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger


def kernel_overlay(plan: RunPlan, run_id: str, tracking_uri: str) -> dict[str, str]:
    """What the kernel's environment adds to its host's: where and into which run to track.

    Only these few names travel to the process that starts the kernel (a Dask worker may
    be another machine with its own environment).
    """
    return {
        ENV_RUN_ID: run_id,
        ENV_NOTEBOOK: str(plan.input_path),
        ENV_KERNEL_NAME: plan.kernel,
        ENV_TRACKING_URI: tracking_uri,
    }


def kernel_environment(overlay: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with ``overlay`` on top, minus a Lab session's notebook."""
    env = {k: v for k, v in os.environ.items() if k != ENV_SESSION_NAME}
    env.update(overlay)
    return env


def status_of(failure: Failure | None) -> str:
    if failure is None:
        return "FINISHED"
    return "KILLED" if failure.kind == "interrupted" else "FAILED"


def _failed_cell(output_path: Path) -> tuple[int | None, int | None, str]:
    """The cell that failed or was running, from the executed notebook Papermill saved.

    A cell that raised is marked ``failed``. When execution stopped from outside (timeout,
    dead kernel, signal) Papermill marks the running cell ``completed`` on its way out, so
    the culprit is then the last cell that has a start time.
    """
    try:
        nb = json.loads(output_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None, None, ""
    found: tuple[int, dict[str, Any]] | None = None
    code_cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    for index, cell in enumerate(code_cells, start=1):
        papermill = (cell.get("metadata") or {}).get("papermill") or {}
        if papermill.get("status") in ("running", "failed"):
            found = (index, cell)
            break
        if papermill.get("start_time"):
            found = (index, cell)
    if found is None:
        return None, None, ""
    index, cell = found
    source = cell.get("source", "")
    text = ("".join(source) if isinstance(source, list) else str(source)).strip()
    return index, cell.get("execution_count"), text.splitlines()[0][:80] if text else ""


def _cell_words(output_path: Path) -> str:
    index, count, first_line = _failed_cell(output_path)
    if index is None:
        return "a cell"
    label = f"code cell {index}" + (f" (In [{count}])" if count else "")
    return f"{label} `{first_line}`" if first_line else label


def launch_kernel(
    plan: RunPlan,
    overlay: Mapping[str, str],
    log: IO[bytes],
    client_factory: Any = None,
    manager_class: Any = None,
) -> Any:
    """A started kernel manager for ``plan``: its kernel, its folder, this process's
    environment with ``overlay`` on top; the kernel's stderr goes to ``log``.

    The manager stays synchronous for us, but nbclient awaits its client: a blocking one
    would stall its event loop on IOPub and no cell timeout would ever fire, so the client
    is asynchronous (``client_factory`` may refine it). ``manager_class`` (a
    ``KernelManager``) may change how the kernel's process starts.
    """
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.manager import KernelManager

    km = (manager_class or KernelManager)(kernel_name=plan.kernel)
    km.shutdown_wait_time = KERNEL_EXIT_WAIT_S
    km.client_factory = client_factory or AsyncKernelClient
    try:
        km.start_kernel(
            env=kernel_environment(overlay),
            cwd=str(plan.kernel_cwd),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    except BaseException:  # failed or interrupted while launching: leave no process behind
        with contextlib.suppress(Exception):
            km.shutdown_kernel(now=True)
        raise
    return km


def kernel_start_failure(plan: RunPlan, error: Exception) -> Failure:
    return Failure("kernel_start", f"the kernel {plan.kernel!r} did not start: {error}")


def run_in_kernel(km: Any, plan: RunPlan, log: IO[bytes]) -> Failure | None:
    """Execute ``plan`` in the started kernel of ``km``, then shut that kernel down."""
    _register_engine()
    plan.output_path.parent.mkdir(parents=True, exist_ok=True)
    busy = True
    try:
        failure = _execute_in(km, plan, log)
        busy = failure is not None and failure.kind in ("timeout", "interrupted")
        return failure
    finally:
        _shutdown(km, busy)


def execute_plan(plan: RunPlan, overlay: Mapping[str, str]) -> Failure | None:
    """Run the notebook through Papermill in a fresh kernel; None on success.

    Needs no store: the kernel writes its own records, the caller opens and closes the
    run. That is what lets a batch run this in worker processes or on Dask workers.
    """
    with tempfile.TemporaryFile(prefix="mlops-kernel-") as log:
        try:
            km = launch_kernel(plan, overlay, log)
        except Exception as error:  # the kernel's command could not be launched
            return kernel_start_failure(plan, error)
        return run_in_kernel(km, plan, log)


def _execute_in(km: Any, plan: RunPlan, kernel_log: Any) -> Failure | None:
    import papermill
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    try:
        papermill.execute_notebook(
            str(plan.input_path),
            str(plan.output_path),
            parameters=dict(plan.request.params),
            engine_name=ENGINE_NAME,
            kernel_name=plan.kernel,
            progress_bar=False,
            cwd=str(plan.kernel_cwd),
            execution_timeout=plan.request.cell_timeout,
            km=km,
        )
    except PapermillExecutionError as error:
        return Failure(
            "cell_error",
            f"{_cell_words(plan.output_path)} raised {error.ename}: {str(error.evalue)[:300]}",
            cell_index=error.cell_index,
            execution_count=error.exec_count,
            ename=error.ename,
            evalue=str(error.evalue)[:2000],
        )
    except CellTimeoutError:
        return Failure(
            "timeout",
            f"{_cell_words(plan.output_path)} ran longer than --cell-timeout "
            f"{plan.request.cell_timeout:g}s",
        )
    except DeadKernelError:
        return Failure(
            "dead_kernel",
            f"the kernel died while running {_cell_words(plan.output_path)}"
            + _last_words(kernel_log),
        )
    except KeyboardInterrupt:
        return Failure("interrupted", f"interrupted while running {_cell_words(plan.output_path)}")
    except RuntimeError as error:  # the kernel did not answer in time, and the like
        return Failure("kernel_start", f"{type(error).__name__}: {error}")
    return None


def _last_words(log: Any) -> str:
    """The last line the kernel wrote to stderr, if any: often why it died."""
    try:
        log.seek(0)
        lines = [line for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    except (OSError, ValueError):
        return ""
    lines = [line for line in lines if "running over TCP without encryption" not in line]
    return f" (kernel stderr: {lines[-1].strip()[:200]})" if lines else ""


def _shutdown(km: Any, busy: bool) -> None:
    """Stop the kernel: interrupt a running cell first, then let it flush and exit."""
    try:
        if not km.has_kernel:
            return
        if busy and km.is_alive():
            km.interrupt_kernel()
        if km.is_alive():
            _stop_alive(km, busy)
        else:
            km.shutdown_kernel(now=True)
    except BaseException as error:
        # The kernel is gone already, or a stop signal cut the graceful wait short:
        # make sure no process is left, and let the signal go on to end the run KILLED.
        with contextlib.suppress(Exception):
            km.shutdown_kernel(now=True)
        if not isinstance(error, Exception):
            raise


def _stop_alive(km: Any, busy: bool = False) -> None:
    """``km.shutdown_kernel()``, looking for the kernel's exit every 10 ms, not 100 ms.

    The same steps (ask it to exit, wait for it, past half the wait terminate it, then
    kill it; release its sockets and files), minus the interrupt it sends first, which an
    idle IPython kernel ignores. A kernel takes about 0.25 s to exit: the coarser look
    added 50 ms to every execution, on the critical path of each batch point.

    ``busy``: a cell was running and the kernel was interrupted. That interrupt may have
    landed while the kernel was idle between two cells, the next one already queued: it
    then runs, and the kernel takes no shutdown request until it ends. So when the kernel
    is still alive after ``REINTERRUPT_AFTER_S``, it is interrupted once more; a terminated
    kernel would lose what its tracking had not written yet.
    """
    km.request_shutdown()
    if busy and not _exits_within(km, REINTERRUPT_AFTER_S):
        km.interrupt_kernel()
    km.finish_shutdown(pollinterval=EXIT_POLL_S)
    km.cleanup_resources()


def _exits_within(km: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while km.is_alive():
        if time.monotonic() > deadline:
            return False
        time.sleep(EXIT_POLL_S)
    return True


def run_notebook(
    request: RunRequest,
    location: TrackingLocation,
    store: Any | None = None,
    run_id: str | None = None,
) -> RunOutcome:
    """Plan, open the run, execute, close the run: ``jupyter mlops run`` end to end.

    Usage errors are raised before anything is written. An execution that fails returns
    an outcome with status FAILED (KILLED when interrupted), never raises.
    """
    started = time.monotonic()
    plan = plan_run(request, location.project_root)
    if store is None:
        store = open_run_store(location)
    run_id = open_run(plan, store, run_id)
    failure: Failure | None
    heartbeat = None
    try:
        heartbeat = run_heartbeat(store, lambda: (run_id,))
        failure = execute_plan(plan, kernel_overlay(plan, run_id, location.uri))
    except BaseException:
        if heartbeat is not None:
            heartbeat.stop()
        close_run(store, run_id, plan, "KILLED", Failure("interrupted", "interrupted"))
        raise
    heartbeat.stop()
    status = status_of(failure)
    close_run(store, run_id, plan, status, failure)
    metrics = store.get_run(run_id).metrics
    return RunOutcome(
        run_id=run_id,
        status=status,
        output_path=plan.output_path,
        duration_s=time.monotonic() - started,
        params=dict(request.params),
        metrics=metrics,
        failure=failure,
    )
