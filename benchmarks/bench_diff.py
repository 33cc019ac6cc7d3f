"""Our notebook diff against nbdime's, on large and image-heavy notebooks, in one run.

nbdime's notebook diff is quadratic in the number of cells (nbdime issues #358, #396).
`jupyter_mlops.core.notebook_diff.diff_notebooks` returns the same diff, computed from
sparse matches. This generates pairs of notebooks of 100, 1,000 and 5,000 cells (cell ids,
outputs, one cell in 20 with a ~100 KB base64 PNG; about 5% of the cells edited, inserted
or deleted), writes them to a temporary directory and times, on each pair:

* ours: reading both files (`json.loads`) and diffing (which joins the lines split on
  disk, as nbformat's reader does);
* `nbdime.diff_notebooks` in this process, on the notebooks as nbformat reads them
  (reading excluded);
* the `nbdiff` CLI (`nbdiff a b --out diff.json`: start-up, reading, validation, diff);

checks that the three diffs are identical, and prints the median times and the ratios
nbdime / ours. The target: under 1.5 s and at least 20x faster than nbdime at 5,000 cells.
nbdime takes tens of seconds there, so the large sizes run fewer times.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import nbformat
import nbformat.reader
from nbformat import v4

BIN = Path(sys.executable).parent
#: (cells, repeats of ours, repeats of nbdime and of the CLI)
SIZES = ((100, 5, 3), (1_000, 3, 1), (5_000, 3, 1))
CHANGED = 0.05
IMAGE_EVERY = 20
IMAGE_BYTES = 75_000  # ~100 KB once base64-encoded
TARGET_SECONDS = 1.5
TARGET_RATIO = 20.0
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


class Row(NamedTuple):
    cells: int
    size_mb: float
    ours: float
    nbdime: float
    nbdiff: float
    identical: bool


def new_cell(rng: random.Random, number: int) -> Any:
    if number % 7 == 0:
        return v4.new_markdown_cell(f"## Step {number}\n\nWhat step {number} does, and why.\n")
    source = (
        f"result_{number} = transform(data, step={number})\n"
        f"print('step {number}:', result_{number}.shape)\n"
    )
    cell = v4.new_code_cell(source, execution_count=number)
    cell.outputs.append(
        v4.new_output("stream", name="stdout", text=f"step {number}: ({rng.randint(1, 999)}, 8)\n")
    )
    if number % IMAGE_EVERY == 3:
        png = base64.b64encode(rng.randbytes(IMAGE_BYTES)).decode()
        data = {"image/png": png, "text/plain": "<Figure size 640x480 with 1 Axes>"}
        cell.outputs.append(v4.new_output("display_data", data=data))
    else:
        cell.outputs.append(
            v4.new_output(
                "execute_result", data={"text/plain": f"{rng.random():.6f}"}, execution_count=number
            )
        )
    return cell


def edited(rng: random.Random, cells: list[Any], fresh: Callable[[], Any]) -> list[Any]:
    """A copy of ``cells`` with about ``CHANGED`` of them edited, inserted or deleted."""
    out: list[Any] = []
    for cell in cells:
        if rng.random() >= CHANGED:
            out.append(cell)
            continue
        kind = rng.random()
        if kind < 0.15:
            continue  # deleted
        if kind < 0.3:
            out.append(fresh())  # inserted before
            out.append(cell)
            continue
        changed = copy.deepcopy(cell)
        if kind < 0.75 or cell.cell_type != "code":
            changed.source += "# edited\n"
        else:
            changed.outputs[0]["text"] = "step changed\n"
        out.append(changed)
    return out


def write_pair(directory: Path, cells: int, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    counter = iter(range(cells, 10 * cells))
    base = [new_cell(rng, number) for number in range(cells)]
    remote = edited(rng, base, lambda: new_cell(rng, next(counter)))
    paths = []
    for name, cell_list in (("base", base), ("remote", remote)):
        path = directory / f"{name}-{cells}.ipynb"
        notebook = v4.new_notebook(cells=cell_list, metadata={"kernelspec": KERNELSPEC})
        nbformat.write(notebook, path)  # as Jupyter saves it: multiline strings split in lines
        paths.append(path)
    return paths[0], paths[1]


def read_json(path: Path) -> Any:
    """Ours reads the JSON as it is (``diff_notebooks`` joins the lines split on disk)."""
    return json.loads(path.read_text(encoding="utf-8"))


def read_nbformat(path: Path) -> Any:
    """The notebook as `nbformat.read` hands it to nbdime, minus the schema validation."""
    return nbformat.reader.reads(path.read_text(encoding="utf-8"))


def timed(repeats: int, run: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(directory: Path, cells: int, ours_repeats: int, their_repeats: int) -> Row:
    import nbdime
    from nbdime.diff_utils import to_clean_dicts

    from jupyter_mlops.core.notebook_diff import diff_notebooks

    base, remote = write_pair(directory, cells, seed=cells)
    size_mb = (base.stat().st_size + remote.stat().st_size) / 2**20
    ours, our_diff = timed(ours_repeats, lambda: diff_notebooks(read_json(base), read_json(remote)))
    a, b = read_nbformat(base), read_nbformat(remote)
    in_process, their_diff = timed(their_repeats, lambda: nbdime.diff_notebooks(a, b))
    out = directory / f"diff-{cells}.json"
    command = [str(BIN / "nbdiff"), str(base), str(remote), "--out", str(out)]
    cli, _ = timed(their_repeats, lambda: subprocess.run(command, check=True))
    same = our_diff == to_clean_dicts(their_diff)
    same = same and json.loads(json.dumps(our_diff)) == json.loads(out.read_text())
    return Row(cells, size_mb, ours, in_process, cli, same)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cells, ours_repeats, their_repeats in SIZES:
            rows.append(measure(Path(tmp), cells, ours_repeats, their_repeats))
            print(f"... {cells} cells measured", file=sys.stderr)

    print(
        f"{'cells':>6}{'MB (a+b)':>10}{'ours (s)':>10}{'nbdime (s)':>12}{'nbdiff (s)':>12}"
        f"{'nbdime/ours':>13}{'nbdiff/ours':>13}{'identical':>11}"
    )
    for row in rows:
        print(
            f"{row.cells:>6}{row.size_mb:>10.1f}{row.ours:>10.3f}{row.nbdime:>12.3f}"
            f"{row.nbdiff:>12.3f}{row.nbdime / row.ours:>12.1f}x{row.nbdiff / row.ours:>12.1f}x"
            f"{'yes' if row.identical else 'NO':>11}"
        )
    last = rows[-1]
    met = (
        last.ours < TARGET_SECONDS
        and last.nbdime / last.ours >= TARGET_RATIO
        and all(row.identical for row in rows)
    )
    print(
        f"target (< {TARGET_SECONDS} s and >= {TARGET_RATIO:.0f}x nbdime at {last.cells} cells, "
        f"identical diffs): {'target met' if met else 'target MISSED'}"
    )


if __name__ == "__main__":
    main()
