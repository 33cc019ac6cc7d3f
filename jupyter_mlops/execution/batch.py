"""``jupyter mlops batch``: a parameter sweep as one parent run with a child run per point.

The orchestrator (this process) is the only one that opens and closes runs; points
execute elsewhere (worker processes, Dask workers) in fresh kernels that write their own
records into their point's run. Runs are opened just before their point is submitted,
so opening the next run overlaps with the points already executing.

Every point carries an idempotency key (a hash of the batch id and its parameters),
tagged on its run. ``--resume`` reruns the points whose latest run is not FINISHED; a
Dask task retried after a worker died writes into the run opened for it, never a second.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jupyter_mlops.core.errors import ConfigError, NotFoundError, UsageError
from jupyter_mlops.core.parameters import (
    Params,
    check_against_notebook,
    declared_parameters,
    expand_grid,
    point_key,
)
from jupyter_mlops.core.progress import Progress
from jupyter_mlops.core.settings import TrackingLocation, redact_uri
from jupyter_mlops.execution.executors import Executor, PointJob, make_executor
from jupyter_mlops.execution.runner import (
    OUTPUTS_DIRNAME,
    TAG_INPUT_NOTEBOOK,
    TAG_INPUT_SNAPSHOT,
    TAG_KIND,
    TAG_POINT_KEY,
    Failure,
    RunPlan,
    RunRequest,
    _slug,
    close_run,
    end_abandoned_run,
    kernel_overlay,
    open_run,
    open_run_store,
    plan_run,
    run_heartbeat,
    status_of,
)
from jupyter_mlops.tracking.store import Batch

POINTS_ARTIFACT = "points.json"
SUMMARY_ARTIFACT = "summary.json"
TAG_BATCH_SIZE = "mlops.batch.points"
TAG_BATCH_NOTEBOOK = "mlops.batch.notebook"


@dataclass
class BatchRequest:
    notebook: Path
    grids: list[tuple[str, list[Any]]] = field(default_factory=list)
    points: list[Params] = field(default_factory=list)
    base_params: Params = field(default_factory=dict)
    experiment: str | None = None
    kernel: str | None = None
    cell_timeout: float | None = None
    allow_unknown_params: bool = False
    workers: int = 2
    executor: str = "local"
    scheduler: str | None = None
    resume: str | None = None
    max_failures: int | None = None
    output_dir: Path | None = None


@dataclass
class PointResult:
    index: int
    params: Params
    key: str
    status: str  # FINISHED | FAILED | KILLED | SKIPPED (finished before a resume) | NOT_RUN
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    duration_s: float | None = None
    output_path: Path | None = None
    message: str | None = None

    def row(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "params": self.params,
            "key": self.key,
            "status": self.status,
            "run_id": self.run_id,
            "metrics": self.metrics,
            "duration_s": self.duration_s,
            "output": str(self.output_path) if self.output_path else None,
            "message": self.message,
        }


@dataclass
class BatchOutcome:
    batch_id: str
    notebook: Path
    results: list[PointResult]
    interrupted: bool = False
    stopped_early: str | None = None

    @property
    def failed(self) -> list[PointResult]:
        return [r for r in self.results if r.status in ("FAILED", "KILLED", "NOT_RUN")]

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.failed


@dataclass
class _Point:
    index: int
    params: Params
    key: str


@dataclass
class _InFlight:
    """A submitted point: its plan, its open child run, when it was submitted."""

    point: _Point
    plan: RunPlan
    run_id: str
    started: float
    finished: float | None = None  # when its result came back
    closed: bool = False  # its run ended and its result reported


def _validate_points(points: list[Params], plan: RunPlan, notebook: str, allow: bool) -> None:
    declared = declared_parameters(plan.notebook)
    for point in points:
        check_against_notebook(point, declared, notebook, allow)


def plan_points(request: BatchRequest) -> list[Params]:
    """The points of a new batch: the grid's product plus the listed points, on the base."""
    points = expand_grid(request.grids, request.base_params) if request.grids else []
    points += [{**request.base_params, **p} for p in request.points]
    if not points:
        raise UsageError("nothing to sweep: give --grid NAME=V1,V2 or -f sweep.yaml")
    seen: set[str] = set()
    unique = []
    for point in points:
        canonical = json.dumps(point, sort_keys=True, default=str)
        if canonical not in seen:
            seen.add(canonical)
            unique.append(point)
    return unique


def _point_output(folder: Path, point: _Point) -> Path:
    slug = "-".join(_slug(f"{k}={v}") for k, v in point.params.items())[:100]
    return folder / f"{point.index:03d}-{slug or 'defaults'}.ipynb"


class BatchRunner:
    """One batch from start to summary; ``on_progress`` is called after every change."""

    def __init__(
        self,
        request: BatchRequest,
        location: TrackingLocation,
        on_progress: Callable[[Progress], None] | None = None,
        on_point: Callable[[PointResult], None] | None = None,
        interrupted: Callable[[], bool] | None = None,
    ) -> None:
        self.request = request
        self.location = location
        self.on_progress = on_progress or (lambda _p: None)
        self.on_point = on_point or (lambda _r: None)
        # Whether a stop signal arrived. Its handler raises KeyboardInterrupt, but Python
        # drops an exception raised inside a callback it ignores errors of (an import
        # lock's weakref callback, a finalizer): the loop asks as well, every half second.
        self.interrupted = interrupted or (lambda: False)
        self.store: Any = None
        self.started = time.monotonic()
        # The batch run, once created (or the one resumed).
        self.batch_id: str | None = None
        # The points' runs opened and not closed yet (the heartbeat reads it in its thread).
        self._open_runs: set[str] = set()

    # -- planning (raises before anything is written) ---------------------------------
    def _store(self) -> Any:
        if self.store is None:
            self.store = open_run_store(self.location)
        return self.store

    def _resume_points(self, batch_id: str) -> tuple[list[_Point], dict[str, Any]]:
        if self.location.store_missing():
            raise NotFoundError(
                f"no batch {batch_id}: there is no tracking database at {self.location.sqlite_path}"
            )
        store = self._store()
        try:
            parent = store.get_run(batch_id)
        except NotFoundError:
            raise NotFoundError(
                f"no batch {batch_id} at {redact_uri(self.location.uri)}: no run has that id"
            ) from None
        if parent.tags.get(TAG_KIND) != "batch":
            raise UsageError(
                f"run {batch_id} is not a batch (its kind is {parent.tags.get(TAG_KIND)!r})"
            )
        recorded = json.loads(store.read_artifact(batch_id, POINTS_ARTIFACT))
        points = [_Point(p["index"], p["params"], p["key"]) for p in recorded]
        children = store.find_runs(
            [parent.experiment_id], f"tags.`mlflow.parentRunId` = '{batch_id}'"
        )
        latest: dict[str, Any] = {}
        for child in children:  # newest first
            key = child.tags.get(TAG_POINT_KEY)
            if key and key not in latest:
                latest[key] = child
        return points, latest

    # -- running ------------------------------------------------------------------
    def run(self) -> BatchOutcome:
        request = self.request
        base_plan = plan_run(
            RunRequest(
                notebook=request.notebook,
                params=dict(request.base_params),
                experiment=request.experiment,
                kernel=request.kernel,
                cell_timeout=request.cell_timeout,
                allow_unknown_params=request.allow_unknown_params,
            ),
            self.location.project_root,
        )
        finished_before: dict[str, Any] = {}
        if request.resume:
            points, latest = self._resume_points(request.resume)
            finished_before = {k: r for k, r in latest.items() if r.status == "FINISHED"}
            pending = len(points) - len(finished_before)
        else:
            params_list = plan_points(request)
            _validate_points(
                params_list, base_plan, str(request.notebook), request.allow_unknown_params
            )
            pending = len(params_list)
        # No more workers than points, each starting its first point's kernel from any
        # point without its run (a worker or a kernel for no point is CPU taken away).
        workers = min(request.workers, max(1, pending))
        first = PointJob("", base_plan, kernel_overlay(base_plan, "", self.location.uri))
        executor = make_executor(
            request.executor, workers, request.scheduler, first if pending else None
        )
        # From here on kernels may be running and the batch run may be open: whatever
        # raises (a stop signal outside the points' loop, the store going away) stops the
        # kernels and ends the batch run, so neither outlives the command.
        heartbeat = None
        try:
            if request.resume:
                self.batch_id = request.resume
                self._store().set_status(request.resume, "RUNNING")
            else:
                points = self._open_parent(base_plan, params_list)
            outcome, todo = self._begin(base_plan, points, finished_before)
            # After _begin: its switch to WAL needs the database without another writer.
            heartbeat = run_heartbeat(self._store(), self._alive_runs)
            self._execute(executor, base_plan, self._output_folder(base_plan), todo, outcome)
        except BaseException as error:
            executor.stop(interrupt=True)
            if self.batch_id:
                end_abandoned_run(self._store(), self.batch_id, error)
            raise
        finally:
            if heartbeat is not None:
                heartbeat.stop()
        self._close_parent(outcome)
        outcome.results.sort(key=lambda r: r.index)
        return outcome

    def _alive_runs(self) -> tuple[str, ...]:
        # tuple() of a set copies it without letting another thread run meanwhile.
        return (*([self.batch_id] if self.batch_id else []), *tuple(self._open_runs))

    def _begin(
        self, base_plan: RunPlan, points: list[_Point], finished_before: dict[str, Any]
    ) -> tuple[BatchOutcome, list[_Point]]:
        """The outcome with the points a resume skips, and the points still to run."""
        assert self.batch_id is not None
        enable_sqlite_wal(self.location)
        outcome = BatchOutcome(self.batch_id, base_plan.input_path, [])
        todo: list[_Point] = []
        for point in points:
            if point.key in finished_before:
                previous = finished_before[point.key]
                result = PointResult(
                    point.index,
                    point.params,
                    point.key,
                    "SKIPPED",
                    run_id=previous.run_id,
                    metrics=previous.metrics,
                    message="finished before the resume",
                )
                outcome.results.append(result)
            else:
                todo.append(point)
        return outcome, todo

    def _output_folder(self, base_plan: RunPlan) -> Path:
        assert self.batch_id is not None
        return self.request.output_dir or (
            self.location.project_root
            / ".mlops"
            / OUTPUTS_DIRNAME
            / _slug(base_plan.input_path.stem)
            / f"batch-{self.batch_id[:8]}"
        )

    def _open_parent(self, plan: RunPlan, params_list: list[Params]) -> list[_Point]:
        """Create the batch run (``self.batch_id``) with its snapshot and its points."""
        from jupyter_mlops.tracking.environment import run_tags

        store = self._store()
        tags = {
            **run_tags(str(plan.input_path), plan.kernel),
            TAG_KIND: "batch",
            TAG_BATCH_SIZE: str(len(params_list)),
            TAG_BATCH_NOTEBOOK: str(plan.input_path),
            TAG_INPUT_NOTEBOOK: str(plan.input_path),
            TAG_INPUT_SNAPSHOT: plan.snapshot_sha,
        }
        batch_id = self.batch_id = str(store.start_run(plan.experiment, None, tags).run_id)
        store.put_artifact(batch_id, f"snapshots/{plan.snapshot_sha}.ipynb", plan.snapshot_bytes)
        points = [_Point(i, p, point_key(batch_id, p)) for i, p in enumerate(params_list, start=1)]
        store.put_artifact(
            batch_id,
            POINTS_ARTIFACT,
            json.dumps(
                [{"index": p.index, "params": p.params, "key": p.key} for p in points],
                indent=1,
                default=str,
            ).encode(),
        )
        return points

    def _progress(self, outcome: BatchOutcome, running: int, total: int) -> None:
        done = sum(1 for r in outcome.results if r.status in ("FINISHED", "SKIPPED"))
        failed = sum(1 for r in outcome.results if r.status in ("FAILED", "KILLED"))
        self.on_progress(Progress(total, done, failed, running, time.monotonic() - self.started))

    def _execute(
        self,
        executor: Executor,
        base_plan: RunPlan,
        folder: Path,
        todo: list[_Point],
        outcome: BatchOutcome,
    ) -> None:
        from jupyter_mlops.tracking.environment import environment_listing, run_tags

        request = self.request
        # Asked once per batch, not once per point: the package listing, and git (two
        # processes) for the tags every run carries.
        facts = (run_tags(str(base_plan.input_path), base_plan.kernel), environment_listing())
        total = len(outcome.results) + len(todo)
        capacity = max(1, request.workers)
        in_flight: dict[Any, _InFlight] = {}
        # Executed points waiting for their run to be closed, with how they ended.
        ended: list[tuple[_InFlight, Failure | None]] = []
        queue = list(todo)
        # A point whose run is open but which is not in ``in_flight`` yet. A stop signal
        # may land on any line: each step below is ordered so that the handler finds
        # every open run in ``opened``, ``in_flight`` or ``ended``, at worst twice (it
        # closes each once) and never nowhere.
        opened: _InFlight | None = None
        failures = 0
        self._progress(outcome, 0, total)
        try:
            while queue or in_flight or ended:
                while queue and len(in_flight) < capacity and outcome.stopped_early is None:
                    point = queue[0]
                    opened = self._open_point(base_plan, outcome.batch_id, folder, point, facts)
                    job = PointJob(
                        point.key,
                        opened.plan,
                        kernel_overlay(opened.plan, opened.run_id, self.location.uri),
                        more=len(queue) > 1,
                    )
                    in_flight[executor.submit(job)] = opened
                    queue.pop(0)
                    opened = None
                    self._progress(outcome, len(in_flight), total)
                    if not queue:
                        executor.done_submitting()
                if ended:
                    # Closed after the next points were submitted: their workers would
                    # otherwise wait for these writes.
                    for entry, failure in ended:
                        self._finish_point(outcome, entry, failure)
                    ended.clear()
                    self._progress(outcome, len(in_flight), total)
                if not in_flight:
                    break
                done, _ = executor.wait_any(set(in_flight), 0.5)
                if self.interrupted():
                    raise KeyboardInterrupt
                for future in done:
                    entry = in_flight[future]
                    entry.finished = time.monotonic()
                    try:
                        failure = executor.result(future)
                    except Exception as error:  # the worker itself died or raised
                        failure = Failure("internal", f"the point's worker failed: {error!r}"[:500])
                    ended.append((entry, failure))
                    del in_flight[future]
                    if failure is not None:
                        failures += 1
                        limit = request.max_failures
                        if limit is not None and failures >= limit:
                            plural = "s" if failures > 1 else ""
                            outcome.stopped_early = (
                                f"stopped after {failures} failed point{plural} "
                                f"(--max-failures {limit})"
                            )
            for point in queue:
                outcome.results.append(
                    PointResult(
                        point.index,
                        point.params,
                        point.key,
                        "NOT_RUN",
                        message=outcome.stopped_early,
                    )
                )
            executor.stop(interrupt=False)
        except KeyboardInterrupt:
            outcome.interrupted = True
            executor.stop(interrupt=True)
            for entry, failure in ended:  # executed before the stop: closed as they ended
                self._finish_point(outcome, entry, failure)
            stopped = Failure("interrupted", "interrupted by the user")
            for entry in [*in_flight.values(), *([opened] if opened is not None else [])]:
                self._finish_point(outcome, entry, stopped)
            reported = {result.index for result in outcome.results}
            for point in queue:
                if point.index not in reported:
                    outcome.results.append(
                        PointResult(
                            point.index, point.params, point.key, "NOT_RUN", message="interrupted"
                        )
                    )

    def _open_point(
        self,
        base_plan: RunPlan,
        batch_id: str,
        folder: Path,
        point: _Point,
        facts: tuple[dict[str, str], tuple[str, str]],
    ) -> _InFlight:
        """The point's plan and its child run, opened now (just before it is submitted)."""
        plan = replace(
            base_plan,
            request=replace(
                base_plan.request,
                params=dict(point.params),
                parent_run_id=batch_id,
                run_name=f"point-{point.index:03d}",
                tags={TAG_POINT_KEY: point.key, "mlops.batch": batch_id},
            ),
            output_path=_point_output(folder, point),
        )
        host_tags, environment = facts
        run_id = open_run(plan, self._store(), environment=environment, host_tags=host_tags)
        self._open_runs.add(run_id)
        return _InFlight(point, plan, run_id, time.monotonic())

    def _finish_point(
        self, outcome: BatchOutcome, entry: _InFlight, failure: Failure | None
    ) -> None:
        """Close an executed point's run, and report it (once: a stop may find it twice)."""
        if entry.closed:
            return
        result = self._close_point(entry, failure)
        entry.closed = True
        self._open_runs.discard(entry.run_id)
        outcome.results.append(result)
        self.on_point(result)

    def _close_point(self, entry: _InFlight, failure: Failure | None) -> PointResult:
        store = self._store()
        status = status_of(failure)
        close_run(store, entry.run_id, entry.plan, status, failure)
        metrics = store.get_run(entry.run_id).metrics
        point = entry.point
        return PointResult(
            point.index,
            point.params,
            point.key,
            status,
            run_id=entry.run_id,
            metrics=metrics,
            duration_s=(entry.finished or time.monotonic()) - entry.started,
            output_path=entry.plan.output_path,
            message=failure.message if failure else None,
        )

    def _close_parent(self, outcome: BatchOutcome) -> None:
        store = self._store()
        finished = sum(1 for r in outcome.results if r.status in ("FINISHED", "SKIPPED"))
        failed = len(outcome.results) - finished
        summary = json.dumps([r.row() for r in outcome.results], indent=1, default=str)
        store.put_artifact(outcome.batch_id, SUMMARY_ARTIFACT, summary.encode())
        store.log_batch(
            outcome.batch_id,
            Batch(
                tags={
                    "mlops.batch.finished": str(finished),
                    "mlops.batch.failed": str(failed),
                    **(
                        {"mlops.batch.stopped": outcome.stopped_early}
                        if outcome.stopped_early
                        else {}
                    ),
                }
            ),
        )
        status = "KILLED" if outcome.interrupted else ("FINISHED" if failed == 0 else "FAILED")
        store.end_run(outcome.batch_id, status)


def enable_sqlite_wal(location: TrackingLocation) -> None:
    """Write-ahead logging on the embedded database before writers fan out.

    With WAL, readers never block the writer and a writer waits for another instead of
    failing at once; together with the store's retries on ``database is locked``, kernels
    of parallel points write safely into one SQLite file. The mode is stored in the file.
    """
    db = location.sqlite_path
    if db is None:
        return
    import sqlite3

    # The switch needs the file to itself: while another process writes (a kernel in Lab,
    # another batch), SQLite answers "database is locked" at once, not after the timeout.
    deadline = time.monotonic() + 30
    while True:
        try:
            with sqlite3.connect(db, timeout=30) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def load_sweep(path: Path) -> tuple[list[tuple[str, list[Any]]], list[Params]]:
    from jupyter_mlops.core.parameters import points_from_sweep

    if not path.is_file():
        raise NotFoundError(f"sweep file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    return points_from_sweep(text, str(path))
