"""Where batch points execute: worker processes on this machine, or a Dask cluster.

Both run :func:`execute_point`, which needs no tracking store (the orchestrator opens and
closes runs; the kernel writes its own records), so a worker imports Papermill and
nothing of MLflow. Every point gets a fresh kernel; only the worker process is reused,
which keeps Papermill's import (seconds) out of each point.

The local pool starts its workers when it is created, and each starts the kernel of its
first point, so that their start-up overlaps the orchestrator's (importing MLflow,
creating the store) on the cores it leaves free. And a local worker starts the kernel
for its next point as it begins the current one (see :class:`_Kernel`): a kernel takes
longer to start than a small notebook takes to run, and its start then overlaps the
current point's cells, its kernel's shutdown and the orchestrator closing one run and
opening the next. The spare kernel is still fresh: it has run nothing when its point
takes it, and no kernel ever runs a second point. Its process is forked from the worker's
zygote, which imported ipykernel once (:mod:`~jupyter_mlops.execution.kernel_forks`).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gc
import importlib
import json
import multiprocessing
import os
import queue
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import IO, Any, Protocol

from jupyter_mlops.core.errors import UsageError
from jupyter_mlops.core.settings import ENV_RUN_ID
from jupyter_mlops.execution.runner import (
    Failure,
    RunPlan,
    _register_engine,
    execute_plan,
    kernel_start_failure,
    launch_kernel,
    run_in_kernel,
)

#: Overlay entries that change from point to point; a spare kernel is started without
#: them and is given them when its point takes it (all else must be the same).
PER_POINT_VARIABLES = (ENV_RUN_ID,)
#: How long a taken spare kernel may take to answer (it has been starting meanwhile).
SPARE_READY_TIMEOUT_S = 60.0
#: How long a starting worker waits for its turn to warm up before it goes ahead anyway.
WARM_UP_TURN_S = 30.0
#: What executing a point imports, imported once when a local worker starts.
WORKER_IMPORTS = (
    "papermill",
    "papermill.exceptions",
    "nbclient.exceptions",
    "jupyter_client.manager",
    "jupyter_client.kernelspec",
    "jupyter_client.asynchronous.client",
    "jupyter_client.blocking.client",
)


@dataclass(frozen=True)
class PointJob:
    """One point, ready to execute: its plan and the kernel's environment overlay.

    ``more`` says whether points remain to be submitted after this one: only then does a
    local worker start a kernel ahead for its next point (a kernel started for no point
    is half a second of CPU taken from the last points).
    """

    key: str
    plan: RunPlan
    overlay: Mapping[str, str]
    more: bool = True


def execute_point(job: PointJob) -> Failure | None:
    """Run in a worker: execute the point's notebook in a fresh kernel."""
    if _spares_enabled:
        return _execute_with_spare(job)
    return execute_plan(job.plan, job.overlay)


# -- local workers ----------------------------------------------------------------------
#: Set by the local pool's worker start-up: only there do kernels start ahead of their
#: point (a Dask worker is shared and long-lived, it keeps no spare kernel).
_spares_enabled = False
_spare: _Kernel | None = None
#: Whether this worker is executing a point (else SIGTERM just ends it).
_executing = False


def _warm_worker(turns: Any = None, first: PointJob | None = None) -> None:
    """Worker start-up: SIGTERM interrupts like Ctrl-C (so kernels are shut down),
    Papermill (with what executing a point imports) is imported once per worker instead
    of once per point, and the kernel of the worker's first point starts now.

    ``first`` is any point of the batch without its run (a kernel gets its run id when
    its point takes it): the first kernels then start while the orchestrator is still
    importing MLflow and opening the store, instead of after. ``turns`` (a semaphore of
    the pool) lets only as many workers warm up at once as there are cores besides the
    orchestrator's: its start-up is the batch's critical path, and workers and kernels
    starting all at once took CPU from it (their first points began 0.7 s later).
    """
    global _spares_enabled

    def interrupt(_signum: int, _frame: object) -> None:
        if not _executing:  # idle: leave quietly, the exit kills the spare kernel
            raise SystemExit(0)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    from jupyter_mlops.fast_imports import skip_slow_optional_imports

    skip_slow_optional_imports()
    _skip_hdfs_support()
    # A worker never waits long for its turn: then it warms up anyway.
    turn = turns is not None and turns.acquire(timeout=WARM_UP_TURN_S)
    try:
        for module in WORKER_IMPORTS:
            importlib.import_module(module)
        _register_engine()
        _spares_enabled = True
        atexit.register(_worker_exit)
        if first is not None:
            _start_spare(first.plan, first.overlay)
            _wait_for_spare()
    finally:
        if turn:
            turns.release()


def _skip_hdfs_support() -> None:
    """Mark ``pyarrow`` missing in this worker: Papermill imports ``pyarrow.fs`` (and
    with it NumPy), about 0.2 s of CPU per worker, only for ``hdfs://`` paths, while a
    point's notebooks are always local files. Its user code runs in the kernel, another
    process, where nothing is marked missing."""
    if "pyarrow" not in sys.modules:
        sys.modules["pyarrow"] = None  # type: ignore[assignment]  # import raises ImportError


def _ready() -> None:
    """A task that does nothing: submitted once per worker to start them all now."""


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def _shared(overlay: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in overlay.items() if k not in PER_POINT_VARIABLES}


@functools.cache
def _prompt_client() -> type[Any]:
    """nbclient's kernel client, without the 0.2 s it loses per point on a drain.

    jupyter_client's ``wait_for_ready`` ends by reading IOPub until it has been quiet for
    0.2 s, to drop the status messages of its own ``kernel_info`` requests. nbclient
    ignores every message that answers no request of its own, so that drain is only a
    fixed 0.2 s of waiting per point; the rest (the ``kernel_info`` reply, and IOPub
    proven connected by a first message before any cell runs) is kept.
    """
    from jupyter_client.asynchronous.client import AsyncKernelClient

    class PromptKernelClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except queue.Empty:
                    pass
                else:
                    if reply["msg_type"] == "kernel_info_reply":
                        try:  # IOPub is connected once it brings the request's status
                            await self.iopub_channel.get_msg(timeout=0.2)
                        except queue.Empty:
                            pass
                        else:
                            self._handle_kernel_info_reply(reply)
                            return
                if not await self._async_is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    return PromptKernelClient


@functools.cache
def _manager_class() -> type[Any]:
    """Kernels forked from the worker's zygote (see :mod:`kernel_forks`)."""
    from jupyter_mlops.execution.kernel_forks import ForkingKernelManager

    return ForkingKernelManager


class _Kernel:
    """A kernel started by this worker: for a point, or as the spare for the next one.

    A spare is started like the kernel of the point just run (same kernel, working folder
    and environment) except for the variables of :data:`PER_POINT_VARIABLES`; the point
    that takes it sets those in the kernel's ``os.environ`` (a silent execution: no
    history, no execution count, no output, no ``pre_run_cell``) before its first cell.
    Only Python kernels get spares.
    """

    def __init__(self, plan: RunPlan, shared: dict[str, str]) -> None:
        self.kernel = plan.kernel
        self.cwd = plan.kernel_cwd
        self.shared = shared
        # The kernel's stderr: kept open as long as the kernel, closed by its point.
        self.log: IO[bytes] = tempfile.TemporaryFile(prefix="mlops-kernel-")  # noqa: SIM115
        try:
            self.km = launch_kernel(plan, shared, self.log, _prompt_client(), _manager_class())
        except BaseException:
            self.log.close()
            raise

    def fits(self, plan: RunPlan, overlay: Mapping[str, str]) -> bool:
        return (
            self.kernel == plan.kernel
            and self.cwd == plan.kernel_cwd
            and self.shared == _shared(overlay)
        )

    def hand_over(self, overlay: Mapping[str, str]) -> None:
        """Set the point's own variables in the kernel; raises if it does not answer."""
        own = {k: overlay[k] for k in PER_POINT_VARIABLES if k in overlay}
        code = f"__import__('os').environ.update(__import__('json').loads({json.dumps(own)!r}))"
        reply = self._ask(
            lambda client: client.execute(code, silent=True, store_history=False, allow_stdin=False)
        )
        if reply["content"].get("status") != "ok":
            raise RuntimeError(f"the spare kernel refused its environment: {reply['content']}")

    def wait_ready(self, timeout: float) -> None:
        """Return once the kernel answers (a ``kernel_info`` request: it runs nothing)."""
        self._ask(lambda client: client.kernel_info(), timeout)

    def _ask(
        self, send: Callable[[Any], str], timeout: float = SPARE_READY_TIMEOUT_S
    ) -> dict[str, Any]:
        """The reply to the shell request ``send`` makes; raises if the kernel does not
        answer in ``timeout`` seconds."""
        from jupyter_client.blocking.client import BlockingKernelClient

        client = BlockingKernelClient(
            **self.km.get_connection_info(session=True), connection_file=self.km.connection_file
        )
        # The shell channel only: the request waits in its socket until the kernel is up
        # (no wait_for_ready, whose IOPub flush alone takes 0.2 s; nbclient waits after).
        client.start_channels(iopub=False, stdin=False, hb=False, control=False)
        try:
            msg_id = send(client)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    reply: dict[str, Any] = client.get_shell_msg(timeout=0.5)
                except queue.Empty:
                    if not self.km.is_alive():
                        raise RuntimeError("the spare kernel died") from None
                    if time.monotonic() > deadline:
                        raise RuntimeError("the spare kernel did not answer") from None
                    continue
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    return reply
        finally:
            client.stop_channels()

    def discard(self) -> None:
        """Kill it: it has run nothing, there is nothing to flush."""
        with contextlib.suppress(Exception):
            if self.km.has_kernel:
                self.km.shutdown_kernel(now=True)
        self.log.close()


def _start_spare(plan: RunPlan, overlay: Mapping[str, str]) -> None:
    """Start the kernel for this worker's next point, if it can have one."""
    global _spare
    _discard_spare()
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec(plan.kernel)
        if spec.language.lower() != "python":
            return
        _spare = _Kernel(plan, _shared(overlay))
    except Exception:  # no spare: the next point starts its own kernel
        _spare = None


def _wait_for_spare() -> None:
    """Wait until the spare kernel answers; one that does not is discarded at its point."""
    if _spare is not None:
        with contextlib.suppress(Exception):
            _spare.wait_ready(WARM_UP_TURN_S)


def _take_spare(plan: RunPlan, overlay: Mapping[str, str]) -> _Kernel | None:
    """The spare kernel, ready for this point; None when there is none that fits."""
    global _spare
    spare, _spare = _spare, None
    if spare is None:
        return None
    taken = False
    try:
        # When it died or does not answer, the point starts a kernel the usual way.
        with contextlib.suppress(Exception):
            if spare.fits(plan, overlay) and spare.km.is_alive():
                spare.hand_over(overlay)
                taken = True
    finally:
        if not taken:
            spare.discard()
    return spare if taken else None


def _worker_exit() -> None:
    """At a worker's exit: kill its spare kernel, and skip the final garbage collection.

    A worker holds nothing that needs finalizing (its kernels are shut down explicitly),
    and collecting the objects of Papermill and its imports takes a few tenths of a
    second per worker, which the pool's shutdown would wait for.
    """
    _discard_spare()
    from jupyter_mlops.execution.kernel_forks import close_zygote

    close_zygote()
    gc.freeze()


def _discard_spare() -> None:
    global _spare
    spare, _spare = _spare, None
    if spare is not None:
        spare.discard()


def _execute_with_spare(job: PointJob) -> Failure | None:
    """:func:`~jupyter_mlops.execution.runner.execute_plan` in a kernel started ahead.

    The same steps and failures as ``execute_plan``, except where the kernel comes from,
    and that the next point's kernel starts as this one begins.
    """
    global _executing
    _executing = True
    try:
        return _execute_in_kernel(job)
    finally:
        _executing = False


def _execute_in_kernel(job: PointJob) -> Failure | None:
    plan, overlay = job.plan, job.overlay
    kernel = _take_spare(plan, overlay)
    if kernel is None:
        try:
            kernel = _Kernel(plan, dict(overlay))
        except Exception as error:  # the kernel's command could not be launched
            return kernel_start_failure(plan, error)
    if job.more:
        # Now, not after the cells: a kernel takes longer to start (~0.5 s of CPU) than a
        # small point takes to run and shut its own kernel down.
        _start_spare(plan, overlay)
    try:
        return run_in_kernel(kernel.km, plan, kernel.log)
    finally:
        kernel.log.close()


class Executor(Protocol):
    def submit(self, job: PointJob) -> Any: ...

    def wait_any(self, futures: set[Any], timeout: float) -> tuple[set[Any], set[Any]]: ...

    def result(self, future: Any) -> Failure | None: ...

    def done_submitting(self) -> None: ...

    def stop(self, interrupt: bool) -> None: ...


class LocalExecutor:
    """A pool of worker processes (spawned: the orchestrator holds database connections).

    Every worker starts now, not at the first points, and starts the kernel of its first
    point (``first``, see :func:`_warm_worker`): Papermill's import and the first kernels
    then overlap the orchestrator's own start-up (importing MLflow, opening the store),
    which takes longer than both, on the cores it leaves free.
    """

    def __init__(self, workers: int, first: PointJob | None = None) -> None:
        if workers < 1:
            raise UsageError(f"--workers must be at least 1, not {workers}")
        context = multiprocessing.get_context("spawn")
        turns = context.BoundedSemaphore(max(1, _usable_cpus() - 1))
        self.pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_warm_worker,
            initargs=(turns, first),
        )
        for _ in range(workers):  # the pool spawns a worker per task while none is idle
            self.pool.submit(_ready)
        # Kept to stop them after done_submitting(), when the pool no longer lists them.
        self.processes = list(self.pool._processes.values())

    def submit(self, job: PointJob) -> Future[Failure | None]:
        return self.pool.submit(execute_point, job)

    def wait_any(self, futures: set[Any], timeout: float) -> tuple[set[Any], set[Any]]:
        done, pending = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return set(done), set(pending)

    def result(self, future: Any) -> Failure | None:
        result: Failure | None = future.result()
        return result

    def done_submitting(self) -> None:
        """No more points: each worker leaves once it is idle (with its spare kernel), not
        all at the end, so the batch's end waits for the last point's worker alone."""
        self.pool.shutdown(wait=False)

    def stop(self, interrupt: bool) -> None:
        """Cancel what has not started; on interrupt, stop the running points too."""
        self.pool.shutdown(wait=not interrupt, cancel_futures=True)
        if interrupt:
            for process in self.processes:
                if process.is_alive():
                    process.terminate()  # SIGTERM: the worker shuts its kernel down
        for process in self.processes:  # after done_submitting, shutdown no longer waits
            process.join(timeout=60)
            if process.is_alive():
                process.kill()


class DaskExecutor:
    """Points as tasks on a Dask distributed cluster (``--scheduler tcp://HOST:PORT``).

    Each task is keyed by the point's idempotency key: when a worker dies, Dask runs the
    task again elsewhere, and since the run was opened by the orchestrator, the retry
    writes into the same run instead of creating a second one.
    """

    def __init__(self, scheduler: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise UsageError(
                "--executor dask needs the 'distributed' package",
                hint="pip install 'jupyter-mlops[dask]'",
            ) from None
        try:
            self.client = Client(scheduler, timeout=30)  # type: ignore[no-untyped-call]
        except OSError as error:
            raise UsageError(f"cannot reach the Dask scheduler at {scheduler}: {error}") from None

    def submit(self, job: PointJob) -> Any:
        return self.client.submit(execute_point, job, key=f"mlops-point-{job.key}", pure=False)

    def wait_any(self, futures: set[Any], timeout: float) -> tuple[set[Any], set[Any]]:
        from distributed import wait as dask_wait
        from distributed.client import FIRST_COMPLETED as DASK_FIRST

        try:
            result = dask_wait(  # type: ignore[no-untyped-call]
                list(futures), timeout=timeout, return_when=DASK_FIRST
            )
        except TimeoutError:
            return set(), set(futures)
        return set(result.done), set(result.not_done)

    def result(self, future: Any) -> Failure | None:
        result: Failure | None = future.result()
        return result

    def done_submitting(self) -> None:
        """Nothing to release early: the cluster's workers are not ours."""

    def stop(self, interrupt: bool) -> None:
        self.client.close()  # type: ignore[no-untyped-call]


def make_executor(
    kind: str, workers: int, scheduler: str | None, first: PointJob | None = None
) -> Executor:
    """The executor of ``kind``; ``first`` (any point, without its run) lets local workers
    start their first kernels ahead."""
    if kind == "local":
        return LocalExecutor(workers, first)
    if kind == "dask":
        if not scheduler:
            raise UsageError("--executor dask needs --scheduler tcp://HOST:PORT")
        return DaskExecutor(scheduler)
    raise UsageError(f"--executor must be local or dask, not {kind!r}")
