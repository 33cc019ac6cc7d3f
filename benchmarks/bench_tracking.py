"""What tracking a cell costs, against logging the same values with MLflow, in one run.

Every cell binds the same 5 params (literals) and 5 metrics (computed numbers whose
values change per cell) and logs them at its own step. Each way of logging below writes
into its own fresh SQLite store in a temporary folder, in this process:

* **ours, added per cell**: the real kernel path. An in-process IPython shell loads the
  extension, ``%mlops_track`` starts a run, and each ``%%mlops_track --no-snapshot
  --step N`` cell is timed with ``shell.run_cell`` and paired with the same body run
  untracked next to it; the difference is what tracking adds to the cell: the magic's
  argument parsing, reading the bindings, the session's rules and the queueing. The
  store is written by our background thread, which counts only as far as it slows the
  cell down. Snapshots are off (``--no-snapshot``); the cell record (``cells.jsonl``,
  secret-masked source) is on. After the first cell the params are unchanged, so they
  are written once, as when a notebook re-binds its params.
* **mlflow sync**: ``mlflow.log_params`` + ``mlflow.log_metrics(step=...)`` called
  directly (no cell around them), the batch calls; and, for reference, one
  ``log_param``/``log_metric`` call per value.
* **mlflow async**: the batch calls with ``synchronous=False`` called directly: the time
  to enqueue (flushed after each block, untimed).
* **a whole notebook**: the tracked cells run back to back, then ``jupyter_mlops.flush()``,
  against cells that call the async batch calls, run back to back in the same shell,
  then ``mlflow.flush_async_logging()``: the flush wait (the target) and the time from
  the first cell to everything written.

The per-cell ways take turns by blocks of cells (``ROUNDS``), so that a change of load
on the machine during the run weighs on each alike. Our background thread competes with
the cells for the GIL, so a busy machine hurts ours more than its share: the load
average is printed, and the numbers mean little when it is above the number of CPUs.

Both sides are then read back with ``MlflowClient``: params and metric histories (key,
value, step) must be identical, else this exits 1. A missed target is printed, not an
error.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

WARMUP = 20
CELLS = 200
ROUNDS = 8
STEPS = range(WARMUP + CELLS)
PARAMS: dict[str, Any] = {
    "lr": 0.01,
    "batch_size": 64,
    "optimizer": "adam",
    "dropout": 0.2,
    "use_bn": True,
}
METRICS = ("acc", "loss", "f1", "precision", "recall")
EXPERIMENT = "bench-tracking"
TARGET_ADDED_MS = 1.0
TARGET_SYNC_RATIO = 30.0
TARGET_FLUSH_RATIO = 10.0


def metric_values(step: int) -> dict[str, float]:
    return {name: 0.5 + 0.4 * math.sin(step + 7 * k) for k, name in enumerate(METRICS)}


def cell_body(step: int) -> str:
    lines = [f"{name} = {value!r}" for name, value in PARAMS.items()]
    lines += [f"{name} = float({value!r})" for name, value in metric_values(step).items()]
    return "\n".join(lines) + "\n"


def tracked_cell(step: int) -> str:
    return f"%%mlops_track --no-snapshot --step {step}\n{cell_body(step)}"


def mlflow_async_cell(step: int) -> str:
    params = ", ".join(f"{name!r}: {name}" for name in PARAMS)
    metrics = ", ".join(f"{name!r}: {name}" for name in METRICS)
    return (
        f"{cell_body(step)}mlflow.log_params({{{params}}}, synchronous=False)\n"
        f"mlflow.log_metrics({{{metrics}}}, step={step}, synchronous=False)\n"
    )


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[94]


def ms(seconds: float) -> float:
    return seconds * 1000


@contextlib.contextmanager
def scratch_folder() -> Iterator[Path]:
    """A temporary working folder; the caller's folder and environment are left as found.

    MLflow puts the artifacts of a store named by an absolute SQLite path under
    ``./mlruns``, and ``mlflow.set_tracking_uri`` sets ``MLFLOW_TRACKING_URI``.
    """
    saved_env = dict(os.environ)
    here = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(here)
            os.environ.clear()
            os.environ.update(saved_env)


def sqlite_uri(root: Path, name: str) -> str:
    (root / name).mkdir()
    return f"sqlite:///{root / name / 'mlflow.db'}"


# -- the IPython shell ------------------------------------------------------------------
class Shell:
    """An in-process IPython shell with the extension loaded; its output is kept aside."""

    def __init__(self) -> None:
        from IPython.testing.globalipapp import start_ipython

        self.ip: Any = start_ipython()
        self.output = io.StringIO()
        self.ip.run_line_magic("load_ext", "jupyter_mlops")

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        with contextlib.redirect_stdout(self.output), contextlib.redirect_stderr(self.output):
            yield

    def run(self, code: str) -> float:
        with self.quiet():
            started = time.perf_counter()
            result = self.ip.run_cell(code, store_history=True)
            elapsed = time.perf_counter() - started
        result.raise_error()
        return elapsed

    def start_tracking(self, uri: str, run_name: str) -> str:
        from jupyter_mlops import api

        with self.quiet():
            self.ip.run_line_magic(
                "mlops_track",
                f"--experiment {EXPERIMENT} --run-name {run_name} --tracking-uri {uri} --new-run",
            )
        return api.current_run_id(120)  # waits for the writer to create the run

    def our_messages(self) -> list[str]:
        lines = self.output.getvalue().splitlines()
        return [line for line in lines if "mlops" in line and "tracking run" not in line]


def blocks() -> list[range]:
    """STEPS in ROUNDS blocks (the first with the warm-up): the ways take turns by block."""
    size = CELLS // ROUNDS
    firsts = [0, *range(WARMUP + size, len(STEPS), size)]
    return [STEPS[first:nxt] for first, nxt in zip(firsts, [*firsts[1:], len(STEPS)], strict=True)]


class OursCells:
    """``%%mlops_track`` cells, each paired with the same body run untracked."""

    def __init__(self, shell: Shell, uri: str) -> None:
        self.shell = shell
        self.uri = uri
        self.run_id = shell.start_tracking(uri, "ours-cells")
        self.tracked: list[float] = []
        self.plain: list[float] = []

    def block(self, steps: range) -> None:
        from jupyter_mlops import api

        for step in steps:
            if step == WARMUP:
                api.flush(120)
            # Alternate which runs first so that neither always follows the other.
            if step % 2:
                untracked_time = self.shell.run(cell_body(step))
                tracked_time = self.shell.run(tracked_cell(step))
            else:
                tracked_time = self.shell.run(tracked_cell(step))
                untracked_time = self.shell.run(cell_body(step))
            if step >= WARMUP:
                self.tracked.append(tracked_time)
                self.plain.append(untracked_time)
        # Our writer's backlog is ours to pay: it must not run during another way's turn.
        if not api.flush(120):
            raise RuntimeError(f"our writer did not flush: {api.last_error()}")

    def end(self) -> None:
        from jupyter_mlops import api

        api.end_run()


class MlflowCells:
    """One run in its own store, logged to with MLflow's fluent API, a block at a time."""

    def __init__(self, uri: str, run_name: str, log: Callable[[int], None]) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.name = run_name
        self.log = log
        self.times: list[float] = []
        self.flush_s = 0.0
        mlflow.set_tracking_uri(uri)
        folder = Path(uri[len("sqlite:///") :]).parent
        experiment_id = MlflowClient(uri).create_experiment(
            EXPERIMENT, artifact_location=(folder / "artifacts").as_uri()
        )
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
            self.run_id: str = run.info.run_id

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        with mlflow.start_run(run_id=self.run_id):
            yield

    def block(self, steps: range) -> None:
        import mlflow

        with self.active():
            for step in steps:
                started = time.perf_counter()
                self.log(step)
                if step >= WARMUP:
                    self.times.append(time.perf_counter() - started)
            started = time.perf_counter()
            mlflow.flush_async_logging()
            self.flush_s += time.perf_counter() - started

    def end(self) -> None:
        pass


def log_batches(step: int, synchronous: bool = True) -> None:
    import mlflow

    mlflow.log_params(PARAMS, synchronous=synchronous)
    mlflow.log_metrics(metric_values(step), step=step, synchronous=synchronous)


def log_each(step: int) -> None:
    import mlflow

    for name, value in PARAMS.items():
        mlflow.log_param(name, value)
    for name, number in metric_values(step).items():
        mlflow.log_metric(name, number, step=step)


def notebook(
    shell: Shell, cell: Callable[[int], str], flush: Callable[[], object]
) -> tuple[float, float]:
    """Run the warm-up cells and flush, then (seconds running the cells, seconds flushing)."""
    for step in STEPS[:WARMUP]:
        shell.run(cell(step))
    flush()
    started = time.perf_counter()
    for step in STEPS[WARMUP:]:
        shell.run(cell(step))
    ran = time.perf_counter()
    flush()
    return ran - started, time.perf_counter() - ran


def ours_notebook(shell: Shell, uri: str) -> tuple[str, float, float]:
    from jupyter_mlops import api

    def flush() -> None:
        if not api.flush(120):
            raise RuntimeError(f"our writer did not flush: {api.last_error()}")

    run_id = shell.start_tracking(uri, "ours-notebook")
    cells_s, flush_s = notebook(shell, tracked_cell, flush)
    api.end_run()
    return run_id, cells_s, flush_s


def mlflow_async_notebook(shell: Shell, uri: str) -> tuple[str, float, float]:
    import mlflow

    shell.ip.user_ns["mlflow"] = mlflow
    way = MlflowCells(uri, "mlflow-async-notebook", lambda _step: None)
    with way.active():
        cells_s, flush_s = notebook(shell, mlflow_async_cell, mlflow.flush_async_logging)
    return way.run_id, cells_s, flush_s


# -- identical records ------------------------------------------------------------------
Records = tuple[dict[str, str], list[tuple[str, float, int]]]


def records(uri: str, run_id: str) -> Records:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(run_id)
    history = sorted(
        (m.key, m.value, m.step)
        for key in run.data.metrics
        for m in client.get_metric_history(run_id, key)
    )
    return dict(run.data.params), history


def compare(label: str, ours: Records, theirs: Records) -> bool:
    expected = (
        {name: str(value) for name, value in PARAMS.items()},
        sorted(
            (name, value, step) for step in STEPS for name, value in metric_values(step).items()
        ),
    )
    same = ours == theirs == expected
    print(
        f"identical records, {label}: {'OK' if same else 'DIFFERS'} "
        f"({len(ours[0])} vs {len(theirs[0])} params, "
        f"{len(ours[1])} vs {len(theirs[1])} metric points, {len(expected[1])} expected)"
    )
    if not same:
        for name, (params, points) in (("ours", ours), ("mlflow", theirs)):
            extra = sorted(set(points) - set(expected[1]))[:3]
            missing = sorted(set(expected[1]) - set(points))[:3]
            print(f"  {name}: params {params}; unexpected points {extra}; missing {missing}")
    return same


# -- report -----------------------------------------------------------------------------
def verdict(met: bool) -> str:
    return "target met" if met else "target MISSED"


def row(label: str, median: float, high: float, ratio: str = "") -> None:
    print(f"{label:<44}{ms(median):>10.3f}{ms(high):>10.3f}{ratio:>10}")


class KeptErrors(logging.Filter):
    """Errors MLflow logs from its async writer threads, kept for the report, not printed.

    Re-logging the same params from cell to cell races in MLflow's async thread pool (two
    batches insert the same keys at once: ``UNIQUE constraint failed``). The records are
    still checked below; this only counts the failed writes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            self.messages.append(record.getMessage())
            return False
        return True


def main() -> int:
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial tables..."
    mlflow_errors = KeptErrors()
    logging.getLogger("mlflow.utils.async_logging.async_logging_queue").addFilter(mlflow_errors)
    load = os.getloadavg()[0]
    with scratch_folder() as root:
        shell = Shell()
        uris = {
            name: sqlite_uri(root, name)
            for name in (
                "ours_cells",
                "ours_notebook",
                "mlflow_sync",
                "mlflow_sync_each",
                "mlflow_async",
                "mlflow_async_notebook",
            )
        }
        ours = OursCells(shell, uris["ours_cells"])
        sync = MlflowCells(uris["mlflow_sync"], "mlflow-sync", log_batches)
        each = MlflowCells(uris["mlflow_sync_each"], "mlflow-sync-each", log_each)
        enqueue = MlflowCells(
            uris["mlflow_async"], "mlflow-async", lambda step: log_batches(step, False)
        )
        ways: list[OursCells | MlflowCells] = [ours, sync, each, enqueue]
        for steps in blocks():
            for way in ways:
                way.block(steps)
        ours.end()
        ours_nb_run, ours_cells_s, ours_flush_s = ours_notebook(shell, uris["ours_notebook"])
        async_nb_run, async_cells_s, async_nb_flush_s = mlflow_async_notebook(
            shell, uris["mlflow_async_notebook"]
        )
        tracked, plain = ours.tracked, ours.plain
        sync_times, each_times, async_times = sync.times, each.times, enqueue.times

        print(
            f"{CELLS} cells of {len(PARAMS)} params + {len(METRICS)} metrics at a step of "
            f"their own, after {WARMUP} warm-up cells; a fresh SQLite store for each way; "
            f"load average {load:.1f} at the start on {os.cpu_count()} CPUs"
        )
        added = [t - p for t, p in zip(tracked, plain, strict=True)]
        added_median = statistics.median(added)

        def vs_ours(times: list[float]) -> str:
            return f"{statistics.median(times) / added_median:.1f}x"

        print(f"{'per cell':<44}{'median ms':>10}{'p95 ms':>10}{'/ ours':>10}")
        row("ours: added by %%mlops_track (real magic)", added_median, p95(added))
        row("  tracked cell, run_cell", statistics.median(tracked), p95(tracked))
        row("  same cell untracked, run_cell", statistics.median(plain), p95(plain))
        row("mlflow sync log_params + log_metrics", *stats(sync_times), vs_ours(sync_times))
        row("mlflow sync, one log_param/log_metric each", *stats(each_times), vs_ours(each_times))
        row("mlflow async (synchronous=False), enqueue", *stats(async_times), vs_ours(async_times))

        print()
        print(
            f"{'a notebook of ' + str(CELLS) + ' cells, back to back':<44}"
            f"{'cells s':>10}{'flush s':>10}{'total s':>10}"
        )
        notebooks = [
            ("ours: %%mlops_track cells", ours_cells_s, ours_flush_s),
            ("mlflow async: cells calling log_*", async_cells_s, async_nb_flush_s),
        ]
        for label, cells_s, flush_s in notebooks:
            print(f"{label:<44}{cells_s:>10.3f}{flush_s:>10.3f}{cells_s + flush_s:>10.3f}")
        flush_ratio = async_nb_flush_s / ours_flush_s
        total_ratio = (async_cells_s + async_nb_flush_s) / (ours_cells_s + ours_flush_s)
        print(f"{'mlflow async cells / ours':<44}{'':>10}{flush_ratio:>9.1f}x{total_ratio:>9.1f}x")

        sync_ratio = statistics.median(sync_times) / added_median
        print()
        print(
            f"added per tracked cell: {ms(added_median):.3f} ms median "
            f"(target < {TARGET_ADDED_MS:g} ms): {verdict(ms(added_median) < TARGET_ADDED_MS)}"
        )
        print(
            f"mlflow sync (batch calls) / ours: {sync_ratio:.1f}x "
            f"(target >= {TARGET_SYNC_RATIO:g}x): {verdict(sync_ratio >= TARGET_SYNC_RATIO)}"
        )
        print(
            f"notebook flush, mlflow async / ours: {flush_ratio:.1f}x "
            f"(target >= {TARGET_FLUSH_RATIO:g}x): {verdict(flush_ratio >= TARGET_FLUSH_RATIO)}"
            f"; first cell to all written: {total_ratio:.1f}x"
        )
        ours_cells = records(ours.uri, ours.run_id)
        ours_nb = records(uris["ours_notebook"], ours_nb_run)
        same = [
            compare(f"ours vs {way.name}", ours_cells, records(way.uri, way.run_id))
            for way in (sync, each, enqueue)
        ]
        same.append(
            compare(
                "ours vs mlflow-async-notebook",
                ours_nb,
                records(uris["mlflow_async_notebook"], async_nb_run),
            )
        )
        for line in shell.our_messages():
            print(f"the extension said: {line}")
        if mlflow_errors.messages:
            first = mlflow_errors.messages[0].splitlines()[0]
            print(
                f"mlflow async: {len(mlflow_errors.messages)} of its background writes failed, "
                f"e.g. {first[:150]}"
            )
        load = max(load, os.getloadavg()[0])
        if load > (os.cpu_count() or 1) / 2:
            print(f"note: the machine was busy (load average up to {load:.1f}): rerun when idle")
        return 0 if all(same) else 1


def stats(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), p95(values)


if __name__ == "__main__":
    sys.exit(main())
