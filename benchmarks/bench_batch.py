"""A 16-point sweep: ``jupyter mlops batch --workers 2`` against plain Papermill, in one run.

The notebook is ``notebooks/small_params.ipynb``: a ``parameters`` cell ``x = 1`` and two
tiny cells, no tracking, so what is compared is the execution machinery. Measured, each
in a fresh temporary project (a ``pyproject.toml``, the embedded SQLite default store):

* **ours**: ``jupyter-mlops batch small_params.ipynb --grid x=1,...,16 --workers 2`` as a
  subprocess, wall time from launch to exit, on a new project (the store is created by
  the batch) and then again in the same project (the store exists); and once more with
  ``JUPYTER_MLOPS_FORK_KERNELS=0``, each kernel started as a new process instead of
  forked from the worker's zygote (``jupyter_mlops/execution/kernel_forks.py``), to show
  what forking gains;
* **papermill CLI**: 16 sequential ``papermill in.ipynb out_i.ipynb -p x i`` calls;
* **in-process**: one Python process that imports Papermill once (reported apart, not
  counted) and calls ``papermill.execute_notebook`` 16 times; only the calls are timed.

The CLI and in-process executions take turns point by point, and ours runs between their
halves, so a change of load on the machine weighs on all of them alike.

Now and then a bare Papermill call takes seconds longer than the others (here, kernels
that did not exit on their shutdown request, killed 2.5 s later), and the sums include
that; so the median call of the sequential contenders, and the ratios on it, are printed
next to the sums.

"Our overhead per point" is the worker time our batch spends beyond a bare Papermill
execution: ``(ours wall x workers - sum of the 16 in-process executions) / 16``. Ours
wall also holds our fixed start-up (importing MLflow, opening the store, the parent run),
which is split out from the runs' own timestamps. It is negative when our kernels,
forked from a process that imported ipykernel once, start faster than Papermill's.

Every result is checked: the batch's 16 child runs FINISHED with their ``x``, each
executed notebook exists and printed ``x``, ``y`` for its point, and every point ran in a
fresh kernel (16 distinct kernel pids, each notebook's first cell is ``In [1]``). A wrong
result exits 1; a missed target is printed, not an error.

``--tracking`` also runs ``small_params_tracked.ipynb`` (``%mlops_track`` in the cells)
through ours and in-process, and reports it apart as "with tracking".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE / "notebooks" / "small_params.ipynb"
TRACKED_NOTEBOOK = HERE / "notebooks" / "small_params_tracked.ipynb"
POINTS = 16
WORKERS = 2
TARGET_CLI_RATIO = 5.0
TARGET_IN_PROCESS_RATIO = 1.8
#: Variables that would send a store elsewhere than the temporary project's default.
UNSET = (
    "MLFLOW_TRACKING_URI",
    "JUPYTER_MLOPS_HOME",
    "JPY_SESSION_NAME",
    "JUPYTER_MLOPS_FORK_KERNELS",
)
#: Ours with every kernel started as a new process (not forked from a zygote).
NOT_FORKED = {"JUPYTER_MLOPS_FORK_KERNELS": "0"}

# One process, Papermill imported once, then one execute_notebook per line on stdin
# ("source<TAB>output<TAB>x<TAB>cwd"); each answer is the seconds the call took.
IN_PROCESS_HELPER = """
import sys, time
started = time.perf_counter()
import papermill
print(time.perf_counter() - started, flush=True)
for line in sys.stdin:
    source, output, x, cwd = line.rstrip("\\n").split("\\t")
    started = time.perf_counter()
    papermill.execute_notebook(
        source, output, parameters={"x": int(x)}, progress_bar=False, cwd=cwd
    )
    print(time.perf_counter() - started, flush=True)
"""


class WrongResult(Exception):
    """A contender produced something else than it should: the benchmark exits 1."""


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in UNSET}


def new_project(root: Path, name: str, notebook: Path) -> Path:
    """A project folder (its ``pyproject.toml`` makes it the root) holding ``notebook``."""
    folder = root / name
    folder.mkdir()
    (folder / "pyproject.toml").write_text(f'[project]\nname = "{name}"\nversion = "0"\n')
    shutil.copy(notebook, folder / notebook.name)
    return folder


# -- the contenders ---------------------------------------------------------------------
@dataclass
class BatchTiming:
    wall: float
    launched: float  # epoch seconds
    exited: float
    batch_id: str
    project: Path


def run_ours(project: Path, notebook_name: str, env: dict[str, str] | None = None) -> BatchTiming:
    grid = "x=" + ",".join(str(x) for x in range(1, POINTS + 1))
    command = [str(BIN / "jupyter-mlops"), "batch", notebook_name, "--grid", grid]
    command += ["--workers", str(WORKERS)]
    launched = time.time()
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=project,
        env={**environment(), **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    exited = time.time()
    if done.returncode != 0:
        raise WrongResult(
            f"jupyter-mlops batch exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    found = re.search(r"^batch ([0-9a-f]+): (\d+)/(\d+) points finished", done.stdout, re.M)
    if not found or found.group(2) != str(POINTS) or found.group(3) != str(POINTS):
        raise WrongResult(f"jupyter-mlops batch did not finish {POINTS} points:\n{done.stdout}")
    return BatchTiming(wall, launched, exited, found.group(1), project)


def run_papermill_cli(project: Path, x: int) -> float:
    output = project / f"cli_{x:02d}.ipynb"
    command = [str(BIN / "papermill"), NOTEBOOK.name, output.name, "-p", "x", str(x)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=project, env=environment(), capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise WrongResult(f"papermill exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return elapsed


class InProcess:
    """The helper process: Papermill imported once, then one execution per request."""

    def __init__(self, folder: Path) -> None:
        self.log = (folder / "in-process-helper.log").open("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-c", IN_PROCESS_HELPER],
            cwd=folder,
            env=environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.import_s = self._answer()

    def _answer(self) -> float:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.log.seek(0)
            raise WrongResult(f"the in-process helper died:\n{self.log.read()[-3000:]}")
        return float(line)

    def execute(self, source: Path, output: Path, x: int) -> float:
        assert self.process.stdin is not None
        self.process.stdin.write(f"{source}\t{output}\t{x}\t{source.parent}\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)
        self.log.close()


# -- checking the results -----------------------------------------------------------------
def printed_by(path: Path) -> tuple[int, int, int, int | None]:
    """``x``, ``y`` and the kernel pid the notebook printed, and its first cell's count."""
    if not path.is_file():
        raise WrongResult(f"no executed notebook at {path}")
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    text = "".join(
        "".join(out.get("text", "")) for out in cells[-1]["outputs"] if out.get("name") == "stdout"
    )
    numbers = text.split()
    if len(numbers) != 3:
        raise WrongResult(f"{path}: the last cell printed {text!r}, not 'x y pid'")
    x, y, pid = (int(n) for n in numbers)
    return x, y, pid, cells[0].get("execution_count")


def check_notebook(path: Path, x: int) -> int:
    """Check one executed notebook for point ``x``; its kernel's pid."""
    got_x, y, pid, first_count = printed_by(path)
    if got_x != x or y != x * 499500:
        raise WrongResult(f"{path}: printed x={got_x} y={y}, expected x={x} y={x * 499500}")
    if first_count != 1:
        raise WrongResult(f"{path}: the first cell ran as In [{first_count}], not in a new kernel")
    return pid


def check_batch(timing: BatchTiming, tracked: bool = False) -> dict[str, float]:
    """Check the batch's runs and notebooks; the phases of its wall time from the runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{timing.project / '.mlops' / 'mlflow.db'}")
    parent = client.get_run(timing.batch_id)
    if parent.info.status != "FINISHED":
        raise WrongResult(f"batch run {timing.batch_id} is {parent.info.status}")
    children = client.search_runs(
        [parent.info.experiment_id],
        f"tags.`mlflow.parentRunId` = '{timing.batch_id}'",
        max_results=1000,
    )
    if len(children) != POINTS:
        raise WrongResult(f"batch {timing.batch_id} has {len(children)} child runs, not {POINTS}")
    pids = set()
    for child in children:
        if child.info.status != "FINISHED":
            raise WrongResult(f"child run {child.info.run_id} is {child.info.status}")
        x = int(child.data.params["x"])
        pids.add(check_notebook(Path(child.data.tags["mlops.output_notebook"]), x))
        if tracked and child.data.metrics.get("y") != x * 499500:
            raise WrongResult(f"child run {child.info.run_id}: metric y is not {x * 499500}")
    if sorted(int(c.data.params["x"]) for c in children) != list(range(1, POINTS + 1)):
        raise WrongResult(f"batch {timing.batch_id}: the child runs' x are not 1..{POINTS}")
    if len(pids) != POINTS:
        raise WrongResult(f"batch {timing.batch_id}: {len(pids)} kernel pids for {POINTS} points")
    first_open = min(c.info.start_time for c in children) / 1000
    last_close = max(c.info.end_time for c in children) / 1000
    return {
        "startup": first_open - timing.launched,
        "points": last_close - first_open,
        "wind-down": timing.exited - last_close,
    }


# -- the report ---------------------------------------------------------------------------
@dataclass
class Row:
    what: str
    wall: float
    calls: list[float] = field(default_factory=list)  # a sequential contender's calls


def verdict(met: bool) -> str:
    return "target met" if met else "target MISSED"


def table(rows: list[Row], ours: float) -> None:
    print(f"{'what':<52}{'wall (s)':>9}{'per point':>11}{'median':>8}{'/ ours':>9}")
    for row in rows:
        median = f"{statistics.median(row.calls):>8.3f}" if row.calls else f"{'':>8}"
        print(
            f"{row.what:<52}{row.wall:>9.2f}{row.wall / POINTS:>11.3f}{median}"
            f"{row.wall / ours:>8.2f}x"
        )


def slow_calls(calls: list[float]) -> int:
    """Calls over twice the median: a kernel slow to start or to shut down."""
    median = statistics.median(calls)
    return sum(1 for c in calls if c > 2 * median)


def sweep(folder: Path, helper: InProcess, tracking: bool) -> dict[str, Any]:
    """CLI and in-process executions point by point, ours between their halves."""
    notebook = TRACKED_NOTEBOOK if tracking else NOTEBOOK
    cli_project = None if tracking else new_project(folder, "papermill-cli", notebook)
    inproc_project = new_project(folder, f"in-process{'-tracked' * tracking}", notebook)
    ours_project = new_project(folder, f"ours{'-tracked' * tracking}", notebook)
    cli: list[float] = []
    inproc: list[float] = []
    ours: BatchTiming | None = None
    for x in range(1, POINTS + 1):
        if cli_project is not None:
            cli.append(run_papermill_cli(cli_project, x))
        source = inproc_project / notebook.name
        inproc.append(helper.execute(source, inproc_project / f"in_{x:02d}.ipynb", x))
        if x == POINTS // 2:
            ours = run_ours(ours_project, notebook.name)
    assert ours is not None
    again = None if tracking else run_ours(ours_project, notebook.name)
    unforked = None if tracking else run_ours(ours_project, notebook.name, NOT_FORKED)
    # Check everything after the clocks stopped (this imports MLflow here).
    for x in range(1, POINTS + 1):
        if cli_project is not None:
            check_notebook(cli_project / f"cli_{x:02d}.ipynb", x)
        check_notebook(inproc_project / f"in_{x:02d}.ipynb", x)
    phases = check_batch(ours, tracked=tracking)
    for timing in (again, unforked):
        if timing is not None:
            check_batch(timing)
    return {
        "cli": cli,
        "inproc": inproc,
        "ours": ours,
        "again": again,
        "unforked": unforked,
        "phases": phases,
    }


def report(result: dict[str, Any], import_s: float | None) -> tuple[float, float]:
    ours: BatchTiming = result["ours"]
    inproc = sum(result["inproc"])
    rows = [Row(f"ours: batch --workers {WORKERS} (new store)", ours.wall)]
    if result["again"] is not None:
        rows.append(Row(f"ours: batch --workers {WORKERS} (existing store)", result["again"].wall))
    if result["unforked"] is not None:
        rows.append(Row("ours, kernels not forked (existing store)", result["unforked"].wall))
    if result["cli"]:
        rows.append(
            Row(f"papermill CLI, {POINTS} sequential calls", sum(result["cli"]), result["cli"])
        )
    rows.append(
        Row(f"papermill.execute_notebook, {POINTS} in-process calls", inproc, result["inproc"])
    )
    table(rows, ours.wall)
    if import_s is not None:
        print(f"{'  (import papermill in that process, once, not counted)':<52}{import_s:>9.2f}")
    phases = result["phases"]
    print(
        f"ours (new store): {phases['startup']:.2f} s from launch to the first point's run "
        f"opened, {phases['points']:.2f} s of points, {phases['wind-down']:.2f} s after the last "
        "point's run closed"
    )
    for name, calls in (("papermill CLI", result["cli"]), ("in-process", result["inproc"])):
        if calls and slow_calls(calls):
            print(f"{name}: {slow_calls(calls)} of {POINTS} calls took over twice the median")
    overhead = (ours.wall * WORKERS - inproc) / POINTS
    print(
        f"our overhead per point: {overhead:.3f} s "
        f"((ours wall x {WORKERS} workers - in-process sum) / {POINTS})"
    )
    if result["again"] is not None:
        again = (result["again"].wall * WORKERS - inproc) / POINTS
        print(f"our overhead per point, existing store: {again:.3f} s")
    cli_ratio = sum(result["cli"]) / ours.wall if result["cli"] else 0.0
    return cli_ratio, inproc / ours.wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tracking", action="store_true", help="also run the notebook with %%mlops_track"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        folder = Path(tmp)
        try:
            warm = new_project(folder, "warm-up", NOTEBOOK)
            run_papermill_cli(warm, 0)  # the file cache, for every contender alike
            helper = InProcess(folder)
            try:
                result = sweep(folder, helper, tracking=False)
                tracked = sweep(folder, helper, tracking=True) if args.tracking else None
            finally:
                helper.close()
        except WrongResult as error:
            print(f"wrong result: {error}", file=sys.stderr)
            return 1
        print(f"{POINTS} points of {NOTEBOOK.name}, {WORKERS} workers, {os.cpu_count()} cores")
        cli_ratio, inproc_ratio = report(result, helper.import_s)
        typical = POINTS * statistics.median(result["inproc"]) / result["ours"].wall
        typical_cli = POINTS * statistics.median(result["cli"]) / result["ours"].wall
        print(
            f"papermill CLI / ours: {cli_ratio:.2f}x (target >= {TARGET_CLI_RATIO:g}x): "
            f"{verdict(cli_ratio >= TARGET_CLI_RATIO)}; on the median call: {typical_cli:.2f}x"
        )
        print(
            f"in-process / ours: {inproc_ratio:.2f}x (target >= {TARGET_IN_PROCESS_RATIO:g}x): "
            f"{verdict(inproc_ratio >= TARGET_IN_PROCESS_RATIO)}; on the median call: "
            f"{typical:.2f}x"
        )
        print(
            f"every point in a fresh kernel: {POINTS} distinct kernel pids, each first cell In [1]"
        )
        if tracked is not None:
            print(f"\nwith tracking ({TRACKED_NOTEBOOK.name}), reported apart:")
            report(tracked, None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
