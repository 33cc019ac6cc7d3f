"""IPython magics, the kernel adapter: ``%mlops_track`` and ``%%mlops_track``.

``%%mlops_track`` is not run as an ordinary cell magic. An input transformer removes the
magic line, so IPython runs the body as the normal cell it is: a user's exception
surfaces unchanged with IPython's own traceback and no frames of ours, ``display`` and
the last-expression value behave as usual, and papermill sees a failing cell fail.
IPython's ``pre_run_cell`` and ``post_run_cell`` events time the cell and hand what it
bound to the tracking session.

Whatever goes wrong on our side is one line on stderr under the cell, and the cell's own
result stands: a bad flag, a name that is not defined or not a number, a name or value
MLflow cannot store, and a store that does not answer, said once until it answers again
(records stay queued meanwhile and are written then).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import re
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from jupyter_mlops.core.errors import MlopsError, UsageError

CELL_MAGIC = "%%mlops_track"
#: MLflow's limit on experiment names (``MAX_EXPERIMENT_NAME_LENGTH``).
MAX_EXPERIMENT_NAME = 500
#: MLflow stores a metric step as a signed 64-bit integer.
STEP_RANGE = (-(2**63), 2**63 - 1)
#: How an error of the offline spool begins (a full disk): said even after a store problem.
SPOOL_FAILURE = "cannot spool"
#: ``%mlops_track stop`` stops waiting once the store has been failing this long.
STOP_PATIENCE_S = 5.0
#: What makes ``shlex.split`` differ from ``str.split``: quotes, backslashes, and
#: whitespace other than the space, tab, CR and LF that shlex splits on.
SHELL_SYNTAX = re.compile(r"[\"'\\]|[^\S \t\r\n]")


class _Parser(argparse.ArgumentParser):
    """argparse that raises our UsageError instead of exiting the kernel."""

    def error(self, message: str) -> Any:
        raise UsageError(message)

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise UsageError(message or "invalid arguments")


@functools.lru_cache(maxsize=1)
def _line_parser() -> _Parser:
    parser = _Parser(prog="%mlops_track", add_help=False)
    parser.add_argument("--experiment")
    parser.add_argument("--run-name")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--new-run", action="store_true")
    return parser


@functools.lru_cache(maxsize=1)
def _runs_parser() -> _Parser:
    parser = _Parser(prog="%mlops_runs", add_help=False)
    parser.add_argument("--experiment")
    parser.add_argument("--filter", default="")
    parser.add_argument("--max", type=int, default=200)
    return parser


@functools.lru_cache(maxsize=1)
def _register_parser() -> _Parser:
    parser = _Parser(prog="%mlops_register", add_help=False)
    parser.add_argument("variable")
    parser.add_argument("--name", required=True)
    parser.add_argument("--alias")
    parser.add_argument("--flavor", choices=["auto", "sklearn", "pyfunc"], default="auto")
    parser.add_argument("--input-example", metavar="VAR")
    parser.add_argument("--artifact", metavar="PATH")
    return parser


def _step(text: str) -> int:
    try:
        step = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not STEP_RANGE[0] <= step <= STEP_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{text} is outside MLflow's 64-bit step range")
    return step


@functools.lru_cache(maxsize=1)
def _cell_parser() -> _Parser:
    parser = _Parser(prog="%%mlops_track", add_help=False)
    parser.add_argument("--params", type=lambda s: [n.strip() for n in s.split(",") if n.strip()])
    parser.add_argument("--metrics", type=lambda s: [n.strip() for n in s.split(",") if n.strip()])
    parser.add_argument("--step", type=_step)
    parser.add_argument("--no-snapshot", action="store_true")
    return parser


def _words(text: str) -> list[str]:
    """``shlex.split(text)``; without quotes, escapes or unusual whitespace that is
    ``text.split()``, several times faster."""
    return shlex.split(text) if SHELL_SYNTAX.search(text) else text.split()


def _plain_args(parser: argparse.ArgumentParser, words: list[str]) -> argparse.Namespace | None:
    """``parser.parse_args(words)`` for the plain lines cells use, several times faster.

    Plain: each word is a whole option string, given once, followed by its value when it
    takes one (a value not starting with "-"). Anything else (an abbreviation, ``--x=v``,
    a negative number, a value its type refuses...) is None: argparse parses it, or says
    what is wrong.
    """
    options = {name: action for action in parser._actions for name in action.option_strings}
    parsed = {action.dest: action.default for action in parser._actions}
    seen: set[str] = set()
    index = 0
    while index < len(words):
        action = options.get(words[index])
        if action is None or action.dest in seen or action.choices is not None:
            return None
        seen.add(action.dest)
        if action.nargs == 0:  # a flag
            parsed[action.dest] = action.const
            index += 1
            continue
        if action.nargs is not None or index + 1 == len(words) or words[index + 1][:1] == "-":
            return None
        value = words[index + 1]
        try:
            parsed[action.dest] = action.type(value) if callable(action.type) else value
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            return None
        index += 2
    return argparse.Namespace(**parsed)


@functools.lru_cache(maxsize=64)
def _cell_args(text: str) -> argparse.Namespace:
    """The parsed ``%%mlops_track`` arguments; cached, since a notebook repeats the same
    few lines. Callers must not mutate it."""
    parser, words = _cell_parser(), _words(text)
    plain = _plain_args(parser, words)
    return plain if plain is not None else parser.parse_args(words)


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def _short(name: str, limit: int = 40) -> str:
    return repr(name) if len(name) <= limit else f"{name[:limit]!r}… ({len(name)} characters)"


def split_cell_magic(raw_cell: str) -> tuple[str, str] | None:
    """``(magic arguments, body)`` when the cell starts with ``%%mlops_track``."""
    stripped = raw_cell.lstrip("\n")
    first, _, body = stripped.partition("\n")
    if first.split(" ", 1)[0].strip() != CELL_MAGIC:
        return None
    return first[len(CELL_MAGIC) :].strip(), body


def strip_tracking_line(lines: list[str]) -> list[str]:
    """Input transformer: drop the ``%%mlops_track`` line so the body runs as a plain cell."""
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index < len(lines) and lines[index].split(" ", 1)[0].strip() == CELL_MAGIC:
        return [*lines[:index], "\n", *lines[index + 1 :]]
    return lines


@dataclass
class _TrackedCell:
    args: argparse.Namespace
    raw_cell: str
    cell_id: str | None
    wall_start: float
    clock_start: float


@magics_class
class MlopsMagics(Magics):
    """``%mlops_track`` (line) and ``%%mlops_track`` (cell)."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._current: _TrackedCell | None = None
        self._panel: Any = None
        self._notebook: Any = None
        #: The store error already shown; None once the store answers again.
        self._store_problem_shown: str | None = None
        #: Params already reported as longer than MLflow keeps.
        self._long_params_shown: set[str] = set()

    # -- line magic --------------------------------------------------------------
    @line_magic
    def mlops_track(self, line: str) -> None:
        """Start or resume tracking; ``status``, ``stop``, ``off``, ``on``."""
        from jupyter_mlops import api

        words = shlex.split(line)
        command = words[0] if words and not words[0].startswith("-") else None
        try:
            if command is None:
                self._start(words)
            elif command == "status":
                self._status()
            elif command == "stop":
                self._stop()
            elif command in ("off", "on"):
                session = api.active_session() or (api.start_run() if command == "on" else None)
                if session is None:
                    _say("mlops: no active run")
                    return
                session.enabled = command == "on"
                print(f"mlops: tracking {'on' if session.enabled else 'off'} for tracked cells")
            else:
                raise UsageError(
                    f"unknown subcommand {command!r}; use status, stop, off, on, or flags: "
                    "--experiment --run-name --tracking-uri --new-run"
                )
        except MlopsError as error:
            _say(f"mlops_track: {error}")

    def _start(self, words: list[str]) -> None:
        from jupyter_mlops import api

        args = _line_parser().parse_args(words)
        if args.experiment is not None and len(args.experiment) > MAX_EXPERIMENT_NAME:
            raise UsageError(
                f"experiment name {_short(args.experiment)} is over MLflow's limit of "
                f"{MAX_EXPERIMENT_NAME} characters"
            )
        session = api.start_run(
            experiment=args.experiment,
            run_name=args.run_name,
            tracking_uri=args.tracking_uri,
            new_run=args.new_run,
            on_started=self._on_started,
        )
        self._notebook = self._notebook or _notebook_source()
        from jupyter_mlops.kernel.widgets import RunPanel

        self._panel = RunPanel(session, api.notebook_path())
        self._panel.show()

    def _stop(self) -> None:
        """End the run and wait for the store, but not for long when the store is failing."""
        from jupyter_mlops import api

        session = api.active_session()
        if session is None:
            _say("mlops: no active run")
            return
        deadline = time.monotonic() + api.EXIT_FLUSH_TIMEOUT_S
        failing_since: float | None = None
        done = api.end_run("FINISHED", timeout=0)
        while not done:
            done = api.flush(0.2)
            now = time.monotonic()
            if api.last_error() is None:
                failing_since = None
            elif failing_since is None:
                failing_since = now
            if now > deadline or (
                failing_since is not None and now - failing_since > STOP_PATIENCE_S
            ):
                break
        run = f"run {session.handle.run_id}" if session.handle else "the run (not created yet)"
        if done and api.last_error() is None:
            self._store_problem_shown = None
            print(f"mlops: {run} ended FINISHED")
            return
        self._store_problem_shown = api.last_error()  # this line names it
        if api.credentials_refused():
            _say(
                f"mlops: {run} is not ended yet: {api.last_error()}. Set them in this kernel "
                "(%env MLFLOW_TRACKING_PASSWORD=...) and run `%mlops_track stop` again; "
                f"{api.pending() + api.spooled()} records are kept until then"
            )
            return
        if api.spooled() and not api.pending():
            _say(
                f"mlops: {run} ends FINISHED when the store answers: {api.spooled()} records "
                f"are kept in the spool {api.spool_folder()} ({api.last_error()}); this kernel "
                "writes them when the store answers, `jupyter mlops sync` does too"
            )
            return
        _say(
            f"mlops: {run} is not ended yet, {api.pending()} records kept queued: "
            f"{api.last_error() or 'the store is still writing'}; they are written and the "
            "run ends FINISHED when the store answers (keep this kernel running)"
        )

    def _on_started(self, _handle: Any) -> None:
        if self._panel is not None:
            self._panel.refresh()

    def _status(self) -> None:
        from jupyter_mlops import api
        from jupyter_mlops.core.settings import redact_uri, resolve_tracking_location

        session = api.active_session()
        if session is None:
            location = resolve_tracking_location()
            print(
                f"mlops: not tracking; would track to {redact_uri(location.uri)} "
                f"({location.source})"
            )
            return
        run = session.handle.run_id if session.handle else "starting"
        state = "on" if session.enabled else "off"
        tracked = api.tracking_location()
        where = f" at {redact_uri(tracked.uri)} ({tracked.source})" if tracked else ""
        print(
            f"mlops: run {run} in experiment {session.experiment!r}{where}, tracking {state}, "
            f"{len(session.cells)} tracked cells, {len(session.params)} params, "
            f"{api.pending()} records queued"
            + (f", {api.spooled()} in the spool {api.spool_folder()}" if api.spooled() else "")
        )
        error = api.last_error()
        if error:
            print(f"mlops: store problem, records kept queued: {error}")

    @line_magic
    def mlops_runs(self, line: str) -> Any:
        """``%mlops_runs [--experiment E] [--filter F] [--max N]``: a sortable runs table.

        The experiment defaults to the active run's, else the notebook's name; the filter
        is MLflow's search syntax (``metrics.acc > 0.9 and params.lr = '0.01'``).
        """
        from jupyter_mlops import api
        from jupyter_mlops.core.settings import resolve_tracking_location
        from jupyter_mlops.kernel.runs_widget import RunsTable, load_runs

        try:
            args = _runs_parser().parse_args(shlex.split(line))
            if args.max < 1:
                raise UsageError(f"--max must be at least 1, not {args.max}")
            session = api.active_session()
            if session is not None:
                api.flush(5.0)  # the table shows what the cells above logged
            experiment = args.experiment or (
                session.experiment if session is not None else api.default_experiment()
            )
            location = api._location or resolve_tracking_location()
            runs = load_runs(location, experiment, args.filter, args.max)
        except MlopsError as error:
            _say(f"mlops_runs: {error}")
            return None
        return RunsTable(runs, f"experiment {experiment!r}")

    @line_magic
    def mlops_register(self, line: str) -> None:
        """``%mlops_register VAR --name NAME [--alias A] [--flavor auto|sklearn|pyfunc]``.

        Logs the model in ``VAR`` into the current run and registers a new version. A
        failure fails the cell with one line (IPython's UsageError shows no traceback), so
        a notebook run by ``jupyter mlops run`` stops there too.
        """
        from IPython.core.error import UsageError as CellError

        from jupyter_mlops import api
        from jupyter_mlops.core.registration import pick_input_example

        try:
            args = _register_parser().parse_args(shlex.split(line))
            assert self.shell is not None
            namespace = self.shell.user_ns
            if args.variable not in namespace:
                raise UsageError(_no_variable(args.variable, namespace))
            obj = namespace[args.variable]
            example = pick_input_example(obj, namespace, args.input_example)
            registered = api.register_model(
                obj,
                args.name,
                args.alias,
                flavor=args.flavor,
                input_example=example[1] if example else None,
                artifact_path=args.artifact,
            )
        except (MlopsError, ValueError) as error:
            raise CellError(f"mlops_register: {error}") from None
        for message in registered.messages:
            _say(f"mlops: {message}")
        example_note = f"; input example from {example[0]}" if example else ""
        print(f"mlops: {registered.summary()}{example_note}")

    # -- cell magic ----------------------------------------------------------------
    @cell_magic("mlops_track")  # type: ignore[arg-type]
    def mlops_track_cell(self, line: str, cell: str) -> None:
        """Only reached when the cell magic is called indirectly (``run_cell_magic``)."""
        _say("mlops: %%mlops_track must be the first line of a cell; running the cell untracked")
        assert self.shell is not None
        self.shell.run_cell(cell, store_history=False)  # type: ignore[no-untyped-call]

    # -- IPython events --------------------------------------------------------------
    def pre_run_cell(self, info: Any) -> None:
        self._current = None
        split = split_cell_magic(getattr(info, "raw_cell", "") or "")
        if split is None:
            return
        try:
            args = _cell_args(split[0])
        except (MlopsError, ValueError) as error:
            _say(f"mlops: {error}; the cell runs untracked")
            return
        self._current = _TrackedCell(
            args=args,
            raw_cell=info.raw_cell,
            cell_id=getattr(info, "cell_id", None),
            wall_start=time.time(),
            clock_start=time.perf_counter(),
        )

    def post_run_cell(self, result: Any) -> None:
        tracked, self._current = self._current, None
        if tracked is not None:
            duration = time.perf_counter() - tracked.clock_start
            try:
                self._record(tracked, result, duration)
            except MlopsError as error:
                _say(f"mlops: {error}")
            except Exception as error:  # never let tracking break the user's notebook
                _say(f"mlops: tracking failed for this cell ({type(error).__name__}: {error})")
        self._report_store_problem()

    def _report_store_problem(self) -> None:
        """Say once, under whichever cell runs next, that the store fails; again after it recovers.

        The writer finds out in the background, so the line comes with the first cell that
        finishes after it did, tracked or not.
        """
        api = sys.modules.get("jupyter_mlops.api")  # not imported: nothing was ever tracked
        if api is None or (api.active_session() is None and api.pending() == 0):
            return
        dropped = api.take_dropped()
        if dropped:
            more = f" (and {len(dropped) - 1} more)" if len(dropped) > 1 else ""
            _say(f"mlops: {dropped[0]}{more}")
        error = api.last_error()
        if error is None:
            self._store_problem_shown = None
        elif self._store_problem_shown is None or (
            error.startswith(SPOOL_FAILURE)
            and not self._store_problem_shown.startswith(SPOOL_FAILURE)
        ):
            self._store_problem_shown = error
            if api.spooled():
                _say(
                    f"mlops: store problem, records kept in the spool {api.spool_folder()} "
                    f"and written when it answers: {error}"
                )
            else:
                _say(f"mlops: store problem, records kept queued and retried: {error}")

    def _record(self, tracked: _TrackedCell, result: Any, duration: float) -> None:
        from jupyter_mlops import api

        session = api.active_session() or api.start_run(on_started=self._on_started)
        if not session.enabled:
            return
        if self._notebook is None:
            self._notebook = _notebook_source()
        assert self.shell is not None
        namespace = self.shell.user_ns
        param_names, metric_names, unstorable = _storable_names(tracked, namespace)
        if unstorable:
            _say(
                "mlops: not logged, MLflow cannot store these names (over 250 characters or "
                f"with characters it refuses): {', '.join(_short(n) for n in unstorable)}"
            )
        error = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        recorded = len(session.cells)
        messages = session.record_cell(
            source=tracked.raw_cell,
            execution_count=getattr(result, "execution_count", None),
            started=tracked.wall_start,
            duration_s=duration,
            namespace=namespace,
            error=error,
            param_names=param_names,
            metric_names=metric_names,
            step=tracked.args.step,
            notebook=None if tracked.args.no_snapshot else self._notebook.latest,
            cell_id=tracked.cell_id or self._notebook.current_cell_id(),
        )
        for message in messages:
            _say(message)
        _log_dataframes(session, tracked.raw_cell, namespace)
        if len(session.cells) > recorded:
            self._report_long_params(session.cells[-1].params, session.params)
        if self._panel is not None:
            self._refresh_panel_later(session)

    def _refresh_panel_later(self, session: Any) -> None:
        """Refresh the panel from the writer thread, after what this cell logged.

        A widget update is a comm message: cells run back to back then update the panel
        once per write of the queue instead of once each (the newest refresh replaces a
        pending one), and the cell does not wait for it. ``_on_started`` refreshes from
        that thread too.
        """
        panel = self._panel
        session.writer.call(lambda _store: panel.refresh(), key="panel")

    def _report_long_params(self, cell_params: dict[str, str], logged: dict[str, str]) -> None:
        """Once per param: MLflow keeps only the start of a value over its limit."""
        from jupyter_mlops.tracking.mlflow_store import MAX_PARAM_VALUE

        for name, text in cell_params.items():
            if (
                len(text) > MAX_PARAM_VALUE
                and logged.get(name) == text
                and name not in self._long_params_shown
            ):
                self._long_params_shown.add(name)
                _say(
                    f"mlops: param {name!r} is {len(text)} characters; MLflow keeps the first "
                    f"{MAX_PARAM_VALUE}, cells.jsonl the whole value"
                )


def _storable_names(
    tracked: _TrackedCell, namespace: Any
) -> tuple[list[str] | None, list[str] | None, list[str]]:
    """The ``--params`` and ``--metrics`` lists without names MLflow cannot store, and the
    names left out, given or found by the cell analysis, that would have been logged."""
    from jupyter_mlops.core.cells import analyze_source, storable_name, unstorable_bindings

    params, metrics = tracked.args.params, tracked.args.metrics
    dropped = [n for n in [*(params or ()), *(metrics or ())] if not storable_name(n)]
    if params is None or metrics is None:
        analysis = analyze_source(tracked.raw_cell)
        dropped += unstorable_bindings(
            analysis, namespace, params=params is None, metrics=metrics is None
        )
    if params is not None:
        params = [n for n in params if storable_name(n)]
    if metrics is not None:
        metrics = [n for n in metrics if storable_name(n)]
    return params, metrics, list(dict.fromkeys(dropped))


def _no_variable(name: str, namespace: Any) -> str:
    import difflib

    names = [n for n in namespace if not n.startswith("_")]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"no variable named {name!r} in this notebook{hint}"


def _log_dataframes(session: Any, source: str, namespace: Any) -> None:
    """Queue the DataFrames the cell bound or read as dataset inputs of the run.

    Shallow copies go to the writer thread (copy-on-write keeps them as the cell saw
    them); hashing and logging happen there, never on the cell's path.
    """
    if "pandas" not in sys.modules:
        return  # no DataFrame can exist
    from jupyter_mlops.core.cells import analyze_source
    from jupyter_mlops.core.registration import pick_dataframes

    analysis = analyze_source(source)
    if not pick_dataframes(analysis.mentioned_names, namespace):
        return  # no word of the cell names a DataFrame: no need to walk its tree
    frames = pick_dataframes([*analysis.computed_bindings, *sorted(analysis.used_names)], namespace)
    if not frames:
        return
    from jupyter_mlops import api
    from jupyter_mlops.tracking.environment import TAG_NOTEBOOK

    copies = {name: frame.copy(deep=False) for name, frame in frames.items()}
    notebook = api.notebook_path()
    tags = {TAG_NOTEBOOK: notebook} if notebook else {}

    def log(store: Any) -> None:
        from jupyter_mlops.tracking.datasets import log_dataframes

        log_dataframes(store, session.run_id(), copies, tags)

    session.writer.call(log)


def _notebook_source() -> Any:
    from jupyter_mlops import api
    from jupyter_mlops.kernel.live_notebook import LiveNotebook

    source = LiveNotebook(api.notebook_path())
    source.open_comm()
    return source


_magics: MlopsMagics | None = None


def register(ipython: Any) -> None:
    """Register magics, the transformer and the event hooks (once per shell)."""
    global _magics
    if _magics is not None and _magics.shell is ipython:
        return
    _magics = MlopsMagics(ipython)
    ipython.register_magics(_magics)
    if strip_tracking_line not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(strip_tracking_line)
    ipython.events.register("pre_run_cell", _magics.pre_run_cell)
    ipython.events.register("post_run_cell", _magics.post_run_cell)


def unregister(ipython: Any) -> None:
    """Remove the hooks and write what is queued."""
    global _magics
    from jupyter_mlops import api

    if strip_tracking_line in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.remove(strip_tracking_line)
    if _magics is not None:
        for event, hook in (
            ("pre_run_cell", _magics.pre_run_cell),
            ("post_run_cell", _magics.post_run_cell),
        ):
            with contextlib.suppress(ValueError):
                ipython.events.unregister(event, hook)
    _magics = None
    api.flush(30)
