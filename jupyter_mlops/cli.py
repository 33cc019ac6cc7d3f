"""``jupyter mlops`` (also ``jupyter-mlops``): the shell and CI adapter.

Parses flags, calls one core function with plain values, prints the result, and turns
our typed errors into a one-line message and an exit status. Imports of anything heavy
happen inside the command that needs them, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from jupyter_mlops._version import __version__
from jupyter_mlops.check_command import add_check_parser
from jupyter_mlops.core.errors import MlopsError, exit_code_for
from jupyter_mlops.diff_command import add_diff_parsers
from jupyter_mlops.registry_command import add_registry_parsers
from jupyter_mlops.review_command import add_review_parser

Command = Callable[[argparse.Namespace], int]


def _cmd_status(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.core.status import collect_status

    location = resolve_tracking_location(args.tracking_uri)
    status = collect_status(location)
    status["spool"] = _spool_status(location)
    if args.json:
        print(json.dumps(status, indent=2))
        return 0 if status["store"]["ok"] else 3
    tracking, store = status["tracking"], status["store"]
    print(f"jupyter-mlops {status['version']}")
    print(f"tracking uri:  {tracking['uri']}")
    print(f"chosen by:     {tracking['source']} ({tracking['detail']})")
    if tracking.get("artifact_uri"):
        print(f"artifacts:     {tracking['artifact_uri']}")
    print(f"project root:  {tracking['project_root']}")
    print(f"store:         {'answers' if store['ok'] else 'UNREACHABLE'} - {store['message']}")
    spool = status["spool"]
    if spool["pending"]:
        print(
            f"spool:         {spool['pending']} records waiting in {spool['folder']} "
            "(`jupyter mlops sync` writes them)"
        )
    else:
        print("spool:         empty")
    return 0 if store["ok"] else 3


def _spool_status(location: Any) -> dict[str, Any]:
    """How many records the offline spool holds for this store."""
    from jupyter_mlops.core.settings import spool_folder
    from jupyter_mlops.tracking.spool import Spool

    spool = Spool(spool_folder(location), location.uri)
    return {"folder": str(spool.folder), "pending": spool.pending_count(any_store=False)}


def _cmd_sync(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.errors import StoreUnavailableError
    from jupyter_mlops.core.settings import redact_uri, resolve_tracking_location, spool_folder
    from jupyter_mlops.tracking.spool import Spool

    location = resolve_tracking_location(args.tracking_uri)
    spool = Spool(spool_folder(location), location.uri)
    pending = spool.pending()
    mine = [info for info in pending if info.tracking_uri == spool.tracking_uri]
    for info in pending:
        if info not in mine:
            print(f"kept for another store: {info.describe()}", file=sys.stderr)
    count = sum(len(info.pending) for info in mine)
    if args.dry_run:
        for info in mine:
            print(info.describe())
        print(f"jupyter mlops sync: {count} records pending in {spool.folder}")
        return 0
    if not count:
        print(f"jupyter mlops sync: nothing to replay in {spool.folder}")
        return 0
    from jupyter_mlops.tracking.mlflow_store import MlflowRunStore

    try:
        store = MlflowRunStore(location)
        report = spool.replay(store)
    except StoreUnavailableError as error:
        left = spool.pending_count(any_store=False)
        raise StoreUnavailableError(
            f"{error}; {left} records kept in {spool.folder}, run sync again when it answers"
        ) from None
    for message in report.skipped:
        print(f"jupyter mlops sync: {message}", file=sys.stderr)
    print(
        f"jupyter mlops sync: {report.replayed} records replayed from {report.journals} "
        f"journal(s) into {redact_uri(location.uri)}"
    )
    return 0


@contextlib.contextmanager
def signals_interrupt() -> Iterator[list[int]]:
    """SIGTERM behaves like Ctrl-C while a command runs; yields the signals received.

    Runs and batches catch ``KeyboardInterrupt`` to end their runs KILLED and shut their
    kernels down, so a ``kill`` from a CI system cleans up like Ctrl-C does.
    """
    received: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _collect_params(args: argparse.Namespace) -> dict[str, Any]:
    """``-f`` file, then ``-y`` YAML, then ``-p`` pairs: later ones win (Papermill's order)."""
    from pathlib import Path

    from jupyter_mlops.core.errors import NotFoundError
    from jupyter_mlops.core.parameters import params_from_pairs, params_from_yaml

    params: dict[str, Any] = {}
    for file in args.parameters_file or []:
        path = Path(file)
        if not path.is_file():
            raise NotFoundError(f"parameters file {file} does not exist")
        params.update(params_from_yaml(path.read_text(encoding="utf-8"), file))
    for text in args.parameters_yaml or []:
        params.update(params_from_yaml(text, "-y"))
    params.update(params_from_pairs(args.parameters or []))
    return params


def _add_execution_flags(sub: argparse.ArgumentParser, params_file_flag: str = "-f") -> None:
    sub.add_argument("notebook", help="the notebook to execute")
    sub.add_argument(
        "-p",
        "--parameters",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="a parameter, typed like papermill -p (True, None, 3, 0.1, text)",
    )
    sub.add_argument("-y", "--parameters-yaml", action="append", metavar="YAML")
    file_flags = ["-f", "--parameters-file"] if params_file_flag == "-f" else [params_file_flag]
    sub.add_argument(*file_flags, dest="parameters_file", action="append", metavar="FILE")
    sub.add_argument("--experiment", metavar="NAME", help="default: the notebook's name")
    sub.add_argument("--kernel", metavar="NAME", help="default: the notebook's kernelspec")
    sub.add_argument("--cell-timeout", type=float, metavar="S", help="fail a cell after S seconds")
    sub.add_argument(
        "--allow-unknown-params",
        action="store_true",
        help="inject parameters the notebook's parameters cell does not define",
    )


def _exit_for_signals(received: list[int]) -> int:
    return 128 + received[0] if received else 130


def _cmd_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.execution.runner import RunRequest, run_notebook

    request = RunRequest(
        notebook=Path(args.notebook),
        params=_collect_params(args),
        experiment=args.experiment,
        run_name=args.run_name,
        output=Path(args.output) if args.output else None,
        kernel=args.kernel,
        cell_timeout=args.cell_timeout,
        allow_unknown_params=args.allow_unknown_params,
    )
    location = resolve_tracking_location(args.tracking_uri)
    with signals_interrupt() as received:
        outcome = run_notebook(request, location)
    stream = sys.stdout if outcome.ok else sys.stderr
    print(f"jupyter mlops run: {outcome.summary()}", file=stream)
    if outcome.status == "KILLED":
        return _exit_for_signals(received)
    return 0 if outcome.ok else 1


def _skip_collection_at_exit() -> None:
    """Skip the garbage collection at this process's exit (as batch workers do).

    A batch's orchestrator holds MLflow, SQLAlchemy and pandas: collecting their objects
    at exit took 1 to 2 s after the batch was done, the command still not returned.
    Nothing a batch leaves waits for that collection: its runs are ended, its kernels
    shut down, its workers joined, all explicitly; what reference counting frees is
    still freed. Here, not in the batch runner: it is this process's exit, not a library's.
    """
    import atexit
    import gc

    atexit.register(gc.freeze)


def _cmd_batch(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jupyter_mlops.core.parameters import parse_grid
    from jupyter_mlops.core.progress import Progress, parse_sort, progress_line
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.execution.batch import BatchRequest, BatchRunner, PointResult, load_sweep

    sort_metric, descending = parse_sort(args.sort)
    grids = [parse_grid(spec) for spec in args.grid or []]
    points: list[dict[str, Any]] = []
    if args.sweep:
        sweep_grids, points = load_sweep(Path(args.sweep))
        grids += sweep_grids
    if args.max_failures is not None and args.max_failures < 1:
        from jupyter_mlops.core.errors import UsageError

        raise UsageError(f"--max-failures must be at least 1, not {args.max_failures}")
    request = BatchRequest(
        notebook=Path(args.notebook),
        grids=grids,
        points=points,
        base_params=_collect_params(args),
        experiment=args.experiment,
        kernel=args.kernel,
        cell_timeout=args.cell_timeout,
        allow_unknown_params=args.allow_unknown_params,
        workers=args.workers,
        executor=args.executor,
        scheduler=args.scheduler,
        resume=args.resume,
        max_failures=args.max_failures,
        output_dir=Path(args.output_dir).resolve() if args.output_dir else None,
    )
    interactive = sys.stderr.isatty()

    def show_progress(progress: Progress) -> None:
        if interactive:
            print(f"\r{progress_line(progress)}", end="", file=sys.stderr, flush=True)

    def show_point(result: PointResult) -> None:
        from jupyter_mlops.core.parameters import describe

        if not interactive:
            print(
                f"point {result.index} {result.status} {describe(result.params)}"
                + (f": {result.message}" if result.message else ""),
                file=sys.stderr,
                flush=True,
            )

    location = resolve_tracking_location(args.tracking_uri)
    _skip_collection_at_exit()
    with signals_interrupt() as received:
        runner = BatchRunner(
            request,
            location,
            on_progress=show_progress,
            on_point=show_point,
            interrupted=lambda: bool(received),
        )
        outcome = runner.run()
    if interactive:
        print(file=sys.stderr)
    print(_batch_table(outcome, sort_metric, descending))
    finished = sum(1 for r in outcome.results if r.status in ("FINISHED", "SKIPPED"))
    print(f"batch {outcome.batch_id}: {finished}/{len(outcome.results)} points finished")
    if outcome.stopped_early:
        print(f"batch {outcome.batch_id}: {outcome.stopped_early}", file=sys.stderr)
    if not outcome.ok:
        print(
            f"resume with: jupyter mlops batch {args.notebook} --resume {outcome.batch_id}",
            file=sys.stderr,
        )
    if outcome.interrupted:
        return _exit_for_signals(received)
    return 0 if outcome.ok else 1


def _batch_table(outcome: Any, sort_metric: str | None, descending: bool) -> str:
    from jupyter_mlops.core.progress import format_table, sort_rows

    rows = sort_rows([r.row() for r in outcome.results], sort_metric, descending)
    names: list[str] = []
    metrics: list[str] = [sort_metric] if sort_metric else []
    for row in rows:
        names += [n for n in row["params"] if n not in names]
        metrics += [m for m in sorted(row["metrics"]) if m not in metrics]
    # What the sweep varies first, the parameters every point shares after.
    varying = {n for n in names if len({str(r["params"].get(n)) for r in rows}) > 1}
    names = [n for n in names if n in varying] + [n for n in names if n not in varying]
    metrics = metrics[:6]
    headers = ["#", *names, "status", *metrics, "seconds", "run"]
    table = [
        [
            row["index"],
            *[row["params"].get(n) for n in names],
            row["status"],
            *[row["metrics"].get(m) for m in metrics],
            None if row["duration_s"] is None else round(row["duration_s"], 1),
            (row["run_id"] or "")[:12],
        ]
        for row in rows
    ]
    return format_table(headers, table)


def _load_pipeline(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from jupyter_mlops.core.pipeline_spec import load_pipeline
    from jupyter_mlops.core.settings import find_project_root

    path = Path(args.file)
    return load_pipeline(path, find_project_root(path.resolve().parent))


def _cmd_pipeline_show(args: argparse.Namespace) -> int:
    from jupyter_mlops.execution.pipeline import show

    print(show(_load_pipeline(args)))
    return 0


def _cmd_pipeline_status(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.progress import format_table
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.execution.pipeline import PipelineRunner

    pipeline = _load_pipeline(args)
    runner = PipelineRunner(pipeline, resolve_tracking_location(args.tracking_uri))
    states = runner.status()
    rows = [
        [
            s.name,
            "fresh" if s.fresh else "stale",
            "; ".join(s.reasons) or "-",
            (s.last_run_id or "")[:12],
        ]
        for s in states
    ]
    print(format_table(["step", "state", "why", "last run"], rows))
    return 0


def _cmd_pipeline_run(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.execution.pipeline import PipelineRunner, StepState

    pipeline = _load_pipeline(args)
    runner = PipelineRunner(pipeline, resolve_tracking_location(args.tracking_uri))

    def report(state: StepState) -> None:
        detail = state.message or ("; ".join(state.reasons) if state.outcome == "ran" else "")
        run = f" run {state.run_id}" if state.run_id else ""
        line = f"step {state.name}: {state.outcome}{run}" + (f" ({detail})" if detail else "")
        print(line, file=sys.stderr if state.outcome in ("failed", "blocked") else sys.stdout)

    with signals_interrupt():
        outcome = runner.run(force=args.force, dry_run=args.dry_run, on_step=report)
    failed = [s for s in outcome.steps if s.outcome == "failed"]
    if failed:
        names = ", ".join(s.name for s in failed)
        print(
            f"jupyter mlops pipeline: step {names} failed; pipeline run {outcome.run_id}",
            file=sys.stderr,
        )
        return 1
    if outcome.run_id:
        print(f"pipeline {pipeline.name}: done, run {outcome.run_id}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.execution.reproduce import reproduce

    with signals_interrupt():
        result = reproduce(
            args.run_id, resolve_tracking_location(args.tracking_uri), args.tolerance
        )
    verdict = result.verdict
    stream = sys.stdout if verdict.reproduced else sys.stderr
    print(
        f"jupyter mlops reproduce: {args.run_id}: {verdict.explain()} "
        f"(new run {result.outcome.run_id}, executed notebook {result.outcome.output_path})",
        file=stream,
    )
    return 0 if verdict.reproduced else 1


def _cmd_sweep(args: argparse.Namespace) -> int:
    from jupyter_mlops.core.heartbeat import parse_duration
    from jupyter_mlops.core.settings import resolve_tracking_location
    from jupyter_mlops.tracking.heartbeat import now_ms
    from jupyter_mlops.tracking.sweep import sweep

    found = sweep(
        resolve_tracking_location(args.tracking_uri),
        parse_duration(args.stale_after),
        args.dry_run,
    )
    now = now_ms()
    verb = "would end" if args.dry_run else "ended"
    for run in found:
        print(f"{verb} run {run.run_id} ({run.run_name}) KILLED: {run.reason(now)}")
    print(f"jupyter mlops sweep: {len(found)} stale RUNNING run(s) {verb}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter mlops",
        description="Notebook governance on MLflow: track, run, diff, review, register.",
    )
    parser.add_argument("--version", action="version", version=f"jupyter-mlops {__version__}")
    parser.add_argument(
        "--tracking-uri",
        metavar="URI",
        help="tracking location (default: MLFLOW_TRACKING_URI, pyproject.toml, then .mlops/)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    status = commands.add_parser(
        "status", help="show the resolved tracking location and whether the store answers"
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.set_defaults(handler=_cmd_status)

    run = commands.add_parser(
        "run", help="execute a notebook through papermill as one tracked MLflow run"
    )
    _add_execution_flags(run)
    run.add_argument("--output", metavar="PATH", help="executed notebook ({name} fills a param)")
    run.add_argument("--run-name", metavar="NAME")
    run.set_defaults(handler=_cmd_run)

    batch = commands.add_parser(
        "batch", help="a parameter sweep: a parent run and a child run per point"
    )
    _add_execution_flags(batch, params_file_flag="--parameters-file")
    batch.add_argument(
        "--grid", action="append", metavar="NAME=V1,V2", help="values of one parameter"
    )
    batch.add_argument("-f", "--sweep", metavar="SWEEP.yaml", help="grid: and/or points: lists")
    batch.add_argument("--workers", type=int, default=2, help="points executing at once")
    batch.add_argument("--executor", choices=["local", "dask"], default="local")
    batch.add_argument("--scheduler", metavar="ADDR", help="Dask scheduler (tcp://HOST:PORT)")
    batch.add_argument("--resume", metavar="BATCH", help="rerun the points not FINISHED")
    batch.add_argument("--max-failures", type=int, metavar="K", help="stop after K failures")
    batch.add_argument("--sort", metavar="METRIC[:asc]", help="order of the result table")
    batch.add_argument("--output-dir", metavar="DIR", help="folder of the executed notebooks")
    batch.set_defaults(handler=_cmd_batch)

    repro = commands.add_parser(
        "reproduce", help="re-execute a run's snapshot with its params and compare the results"
    )
    repro.add_argument("run_id", metavar="RUN_ID")
    repro.add_argument(
        "--tolerance", type=float, default=1e-9, metavar="T", help="relative and absolute"
    )
    repro.set_defaults(handler=_cmd_reproduce)

    pipeline = commands.add_parser("pipeline", help="run, explain and show mlops.yaml pipelines")
    pipeline_commands = pipeline.add_subparsers(dest="pipeline_command", metavar="ACTION")

    def pipeline_help(_args: argparse.Namespace) -> int:
        pipeline.print_help()
        return 2

    pipeline.set_defaults(handler=pipeline_help)
    for action, helptext, handler in (
        ("run", "run the steps that are not fresh", _cmd_pipeline_run),
        ("status", "say which steps are fresh or stale, and why", _cmd_pipeline_status),
        ("show", "print the steps and what they need", _cmd_pipeline_show),
    ):
        sub = pipeline_commands.add_parser(action, help=helptext)
        sub.add_argument("file", nargs="?", default="mlops.yaml", help="default: mlops.yaml")
        sub.set_defaults(handler=handler)
        if action == "run":
            sub.add_argument(
                "--force", action="append", metavar="STEP", help="run STEP even if fresh"
            )
            sub.add_argument(
                "--dry-run", action="store_true", help="say what would run, run nothing"
            )
    sync = commands.add_parser(
        "sync", help="write the records the offline spool kept while the store did not answer"
    )
    sync.add_argument("--dry-run", action="store_true", help="list what is pending, write nothing")
    sync.set_defaults(handler=_cmd_sync)
    sweep = commands.add_parser(
        "sweep", help="end RUNNING runs whose process died (no heartbeat) as KILLED"
    )
    sweep.add_argument(
        "--stale-after", default="10m", metavar="DURATION", help="no heartbeat for this long"
    )
    sweep.add_argument("--dry-run", action="store_true", help="list them, change nothing")
    sweep.set_defaults(handler=_cmd_sweep)
    add_check_parser(commands)
    add_registry_parsers(commands)
    add_diff_parsers(commands)
    add_review_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from jupyter_mlops.fast_imports import skip_slow_optional_imports

    skip_slow_optional_imports()
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Command | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except MlopsError as error:
        print(f"jupyter mlops {args.command}: {error}", file=sys.stderr)
        return exit_code_for(error)
    except KeyboardInterrupt:
        print(f"jupyter mlops {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
