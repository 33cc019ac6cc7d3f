"""Our notebook diff is nbdime's, entry for entry, on a corpus of notebook pairs.

For every pair: ``diff_notebooks(a, b)`` equals ``nbdime.diff_notebooks(a, b)`` (as plain
JSON) and ``nbdime.patch(a, ours) == b``. The corpus: pairs built here (inserted, deleted,
moved, duplicated and edited cells, outputs and images, metadata, with and without cell
ids, empty, identical and unrelated notebooks), the ``tests/notebooks/<base>--<variant>``
files, and random edit sequences from hypothesis.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbdime
import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nbdime.diff_utils import to_clean_dicts
from nbdime.diffing.notebooks import reset_notebook_differ, set_notebook_diff_targets
from nbdime.diffing.seq_bruteforce import bruteforce_compute_snakes

from jupyter_mlops.core.notebook_diff import (
    diff_notebooks,
    in_memory_form,
    patch_notebook,
    trace_lcs,
)

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
Notebook = Any


# --- building notebooks -------------------------------------------------------------------


def notebook(cells: list[dict[str, Any]], ids: bool = True, **metadata: Any) -> Notebook:
    """A v4 notebook (NotebookNode, as nbformat reads it); no ids means nbformat 4.4."""
    cells = copy.deepcopy(cells)
    if not ids:
        for cell in cells:
            cell.pop("id", None)
    return nbformat.from_dict(
        {
            "cells": cells,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}, **metadata},
            "nbformat": 4,
            "nbformat_minor": 5 if ids else 4,
        }
    )


def code(source: str, *outputs: dict[str, Any], id: str = "", count: int | None = 1) -> dict:
    return {
        "cell_type": "code",
        "execution_count": count,
        "id": id or f"c-{zlib.crc32(source.encode()):08x}",
        "metadata": {},
        "outputs": list(outputs),
        "source": source,
    }


def markdown(source: str, id: str = "") -> dict:
    return {
        "cell_type": "markdown",
        "id": id or f"m-{zlib.crc32(source.encode()):08x}",
        "metadata": {},
        "source": source,
    }


def raw(source: str, id: str = "") -> dict:
    return {"cell_type": "raw", "id": id or "raw", "metadata": {}, "source": source}


def stream(text: str, name: str = "stdout") -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def result(text: str, count: int = 1) -> dict:
    return {
        "output_type": "execute_result",
        "execution_count": count,
        "data": {"text/plain": text},
        "metadata": {},
    }


def image(seed: int, size: int = 600) -> dict:
    png = base64.b64encode(random.Random(seed).randbytes(size)).decode()
    return {
        "output_type": "display_data",
        "data": {"image/png": png, "text/plain": "<Figure size 640x480 with 1 Axes>"},
        "metadata": {},
    }


def error(name: str = "ValueError", value: str = "bad value") -> dict:
    return {
        "output_type": "error",
        "ename": name,
        "evalue": value,
        "traceback": ["Traceback (most recent call last)", f"{name}: {value}"],
    }


def random_cell(rng: random.Random, key: str) -> dict:
    kind = rng.random()
    if kind < 0.2:
        source = rng.choice(["# Title", "Some *text*.", "", f"## Part {key}\n\nDetails of {key}."])
        return markdown(source, id=f"id-{key}")
    if kind < 0.25:
        return raw(rng.choice(["raw", f"raw {key}"]), id=f"id-{key}")
    source = rng.choice(
        ["", "x", "print(x)", f"x_{key} = {rng.randint(0, 9)}", f"y = f(x)\nz = g(y, {key})\n"]
    )
    outputs = []
    if rng.random() < 0.5:
        outputs.append(stream(rng.choice(["1\n", "hello\n", f"value {key}\n"])))
    if rng.random() < 0.3:
        outputs.append(result(rng.choice(["0", "42", f"'{key}'"]), count=rng.randint(1, 3)))
    if rng.random() < 0.15:
        outputs.append(image(rng.randint(0, 3), size=rng.choice([60, 600])))
    if rng.random() < 0.05:
        outputs.append(error())
    return code(source, *outputs, id=f"id-{key}", count=rng.randint(1, 5))


def sample(n: int, seed: int, ids: bool = True) -> Notebook:
    rng = random.Random(seed)
    return notebook([random_cell(rng, f"{seed}-{k}") for k in range(n)], ids=ids)


def edit(nb: Notebook, rng: random.Random, operation: str) -> None:
    """One random edit of the kind ``operation``, in place."""
    cells = nb.cells
    where = rng.randrange(len(cells)) if cells else 0
    if operation == "insert" or not cells:
        cell = nbformat.from_dict(random_cell(rng, f"new-{rng.randrange(10**6)}"))
        if nb.nbformat_minor < 5:
            cell.pop("id")
        cells.insert(rng.randint(0, len(cells)), cell)
    elif operation == "delete":
        del cells[where]
    elif operation == "move":
        cells.insert(rng.randint(0, len(cells) - 1), cells.pop(where))
    elif operation == "duplicate":
        cells.insert(rng.randint(0, len(cells)), copy.deepcopy(cells[where]))
    elif operation == "source":
        cell = cells[where]
        cell.source = rng.choice(
            [cell.source + "\n# more", cell.source[:-1], "rewritten(completely)", ""]
        )
    elif operation == "outputs" and cells[where].cell_type == "code":
        cell = cells[where]
        choice = rng.random()
        if choice < 0.3 or not cell.outputs:
            cell.outputs.append(nbformat.from_dict(stream(f"more {rng.randrange(9)}\n")))
        elif choice < 0.5:
            cell.outputs = []
        elif cell.outputs[0].output_type == "stream":
            cell.outputs[0].text += "changed\n"
        elif cell.outputs[0].output_type == "display_data":
            cell.outputs[0] = nbformat.from_dict(image(rng.randrange(99), rng.choice([60, 90])))
        elif cell.outputs[0].output_type == "execute_result" and choice < 0.8:
            cell.outputs[0].data["text/plain"] += rng.choice(["1", "\n2"])
        else:
            cell.outputs.pop(0)
    elif operation == "count" and cells[where].cell_type == "code":
        cells[where].execution_count = rng.randint(1, 99)
    elif operation == "metadata":
        cells[where].metadata["tags"] = [rng.choice(["a", "b"])]
    elif operation == "id" and "id" in cells[where]:
        cells[where].id = f"renamed-{rng.randrange(10**6)}"
    elif operation == "type":
        cell = cells[where]
        kept = {"source": cell.source, "metadata": cell.metadata}
        if "id" in cell:
            kept["id"] = cell.id
        if cell.cell_type == "code":
            cells[where] = nbformat.from_dict({"cell_type": "markdown", **kept})
        else:
            kept.update(cell_type="code", execution_count=None, outputs=[])
            cells[where] = nbformat.from_dict(kept)
    elif operation == "notebook":
        nb.metadata["language_info"] = {"name": "python", "version": f"3.{rng.randrange(13)}"}


OPERATIONS = (
    "insert",
    "delete",
    "move",
    "duplicate",
    "source",
    "outputs",
    "count",
    "metadata",
    "id",
    "type",
    "notebook",
)


def edited(nb: Notebook, seed: int, edits: int, operations: tuple[str, ...] = OPERATIONS) -> Any:
    rng = random.Random(seed)
    nb = copy.deepcopy(nb)
    for _ in range(edits):
        edit(nb, rng, rng.choice(operations))
    return nb


# --- the check ------------------------------------------------------------------------------


def nbdime_diff(a: Notebook, b: Notebook) -> list[dict[str, Any]]:
    return to_clean_dicts(nbdime.diff_notebooks(a, b))


def assert_same_diff(a: Notebook, b: Notebook, expected: Any = None) -> None:
    ours = diff_notebooks(a, b)
    if expected is None:
        expected = nbdime_diff(a, b)
    assert ours == expected
    assert json.dumps(ours, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert patch_notebook(a, ours) == to_clean_dicts(in_memory_form(b))


# --- the corpus -----------------------------------------------------------------------------

X, Y, Z = code("x = 1", stream("1\n"), id="x"), code("y = 2", id="y"), markdown("# Z", id="z")
BASE = sample(14, seed=1)
NO_IDS = sample(14, seed=2, ids=False)


def moved(nb: Notebook, source: int, target: int) -> Notebook:
    nb = copy.deepcopy(nb)
    nb.cells.insert(target, nb.cells.pop(source))
    return nb


def without_id(cell: dict) -> dict:
    return {key: value for key, value in cell.items() if key != "id"}


def changed(nb: Notebook, change: Callable[[Notebook], Any]) -> Notebook:
    nb = copy.deepcopy(nb)
    change(nb)
    return nb


def templated(n: int, ids: bool) -> Notebook:
    """Look-alike cells (one template, one number changing): many pairs nearly match."""
    cells = []
    for k in range(n):
        if k % 5 == 0:
            cells.append(markdown(f"## Step {k}\n\nWhat step {k} does.\n", id=f"t{k}"))
        else:
            outputs = [stream(f"step {k}: {k * 7 % 11}\n"), result(f"{k / 7:.4f}", count=k)]
            if k % 9 == 0:
                outputs.append(image(k, size=3000))
            cells.append(code(f"r_{k} = step(data, {k})\nprint(r_{k})", *outputs, id=f"t{k}"))
    return notebook(cells, ids=ids)


PAIRS: dict[str, Callable[[], tuple[Notebook, Notebook]]] = {
    "identical": lambda: (BASE, copy.deepcopy(BASE)),
    "identical without ids": lambda: (NO_IDS, copy.deepcopy(NO_IDS)),
    "both empty": lambda: (notebook([]), notebook([])),
    "from empty": lambda: (notebook([]), BASE),
    "to empty": lambda: (BASE, notebook([])),
    "inserted first": lambda: (BASE, changed(BASE, lambda nb: nb.cells.insert(0, X))),
    "inserted last": lambda: (BASE, changed(BASE, lambda nb: nb.cells.append(Z))),
    "inserted in the middle, no ids": lambda: (
        NO_IDS,
        changed(NO_IDS, lambda nb: nb.cells.insert(7, without_id(code("new()")))),
    ),
    "deleted": lambda: (BASE, changed(BASE, lambda nb: nb.cells.__delitem__(slice(3, 6)))),
    "deleted, no ids": lambda: (NO_IDS, changed(NO_IDS, lambda nb: nb.cells.pop(0))),
    "first moved last": lambda: (BASE, moved(BASE, 0, 13)),
    "last moved first, no ids": lambda: (NO_IDS, moved(NO_IDS, 13, 0)),
    "neighbours swapped": lambda: (BASE, moved(BASE, 4, 5)),
    "source edited": lambda: (BASE, changed(BASE, lambda nb: setattr(nb.cells[2], "source", "q"))),
    "outputs cleared": lambda: (
        BASE,
        changed(BASE, lambda nb: [c.update(outputs=[]) for c in nb.cells if "outputs" in c]),
    ),
    "image replaced": lambda: (
        notebook([code("plot()", image(1, size=20_000))]),
        notebook([code("plot()", image(2, size=20_000))]),
    ),
    "cell type changed": lambda: (notebook([X, Y]), notebook([X, markdown("y = 2", id="y")])),
    "ids changed, content kept": lambda: (
        BASE,
        changed(BASE, lambda nb: [c.update(id=f"other-{k}") for k, c in enumerate(nb.cells)]),
    ),
    "some cells without ids": lambda: (
        changed(BASE, lambda nb: [c.pop("id") for c in nb.cells[::3]]),
        changed(edited(BASE, 3, 4), lambda nb: [c.pop("id", None) for c in nb.cells[1::3]]),
    ),
    "notebook and cell metadata": lambda: (
        BASE,
        changed(
            BASE,
            lambda nb: (
                nb.metadata.update(kernelspec={"name": "ir", "display_name": "R"}, extra=[1]),
                nb.cells[1].metadata.update(tags=["parameters"]),
                setattr(nb, "nbformat_minor", 4),
            ),
        ),
    ),
    "unrelated notebooks": lambda: (sample(12, seed=5), sample(9, seed=6)),
    "unrelated notebooks, no ids": lambda: (sample(12, seed=5, ids=False), sample(9, 6, False)),
    "one cell twice": lambda: (notebook([X]), notebook([X, X])),
    "three to two, no ids": lambda: (notebook([X, X, X], ids=False), notebook([X, X], ids=False)),
    "alternating duplicates": lambda: (notebook([X, Y, X, Z]), notebook([Y, X, Y, Z, X])),
    "many empty cells, no ids": lambda: (
        notebook([code("")] * 8 + [Y] + [code("")] * 5, ids=False),
        notebook([code("")] * 5 + [Y] + [code("", stream("!\n"))] + [code("")] * 9, ids=False),
    ),
    "short sources, no ids": lambda: (
        notebook([code(s) for s in "abcabcdefa"], ids=False),
        notebook([code(s) for s in "bcaxcbadfe"], ids=False),
    ),
    "nan in metadata": lambda: (
        notebook([X, Y], extra=float("nan")),
        notebook([X, Y], extra=float("nan")),
    ),
    "same nan object in a cell": lambda: (
        lambda nan_cell: (notebook([nan_cell, Y]), notebook([nan_cell, Y]))
    )({**X, "metadata": {"score": float("nan")}}),
    "errors and attachments": lambda: (
        notebook([code("f()", error()), {**markdown("![a](attachment:a.png)"), "attachments": {}}]),
        notebook(
            [
                code("f()", error(value="other")),
                {
                    **markdown("![a](attachment:a.png)"),
                    "attachments": {"a.png": {"image/png": image(3)["data"]["image/png"]}},
                },
            ]
        ),
    ),
    "templated, 5% edited, no ids": lambda: (
        templated(120, ids=False),
        edited(templated(120, ids=False), seed=7, edits=6),
    ),
    "300 cells, 5% edited": lambda: (sample(300, seed=8), edited(sample(300, seed=8), 9, 15)),
}


@pytest.mark.parametrize("name", PAIRS)
def test_same_diff_as_nbdime(name: str) -> None:
    a, b = PAIRS[name]()
    assert_same_diff(a, b)
    assert_same_diff(b, a)


def file_pairs() -> list[tuple[Path, Path]]:
    pairs = []
    for variant in sorted(NOTEBOOKS.glob("diff_*--*.ipynb")):
        base = variant.with_name(variant.name.split("--")[0] + ".ipynb")
        pairs.append((base, variant))
    return pairs


@pytest.mark.parametrize(("base", "variant"), file_pairs(), ids=lambda p: p.name)
def test_same_diff_as_nbdiff_on_files(base: Path, variant: Path) -> None:
    """As nbdiff reads the files (nbformat), and straight from the JSON (lines split)."""
    a, b = nbformat.read(base, as_version=4), nbformat.read(variant, as_version=4)
    expected = nbdime_diff(a, b)
    assert expected  # the variants do differ
    assert_same_diff(a, b, expected)
    on_disk_a, on_disk_b = json.loads(base.read_text()), json.loads(variant.read_text())
    assert isinstance(on_disk_a["cells"][0]["source"], list)
    assert_same_diff(on_disk_a, on_disk_b, expected)
    assert_same_diff(b, a)


@pytest.mark.parametrize("seed", range(5))
def test_in_memory_form_joins_lines_as_nbformat_reads_them(seed: int) -> None:
    nb = sample(30, seed)
    nb.cells.append(nbformat.from_dict({**markdown("a\nb"), "attachments": {"a.png": {}}}))
    nb.cells[-1].attachments["a.png"] = {"text/plain": "x\ny\n", "application/json": ["z"]}
    on_disk = json.loads(nbformat.writes(nb))
    expected = to_clean_dicts(nbformat.v4.rwbase.rejoin_lines(nbformat.from_dict(on_disk)))
    assert to_clean_dicts(in_memory_form(on_disk)) == expected == to_clean_dicts(nb)
    assert in_memory_form(nb) is nb


def test_there_are_file_pairs() -> None:
    assert len(file_pairs()) >= 3


@settings(max_examples=300, deadline=None)
@given(
    cells=st.integers(0, 24),
    seed=st.integers(0, 10**6),
    edits=st.integers(0, 10),
    ids=st.booleans(),
)
def test_same_diff_as_nbdime_after_random_edits(
    cells: int, seed: int, edits: int, ids: bool
) -> None:
    a = sample(cells, seed, ids=ids)
    assert_same_diff(a, edited(a, seed + 1, edits))


VOCABULARY = [
    X,
    Y,
    Z,
    code("x = 1", stream("2\n"), id="x"),  # same id as X, another output
    code("x = 1 ", stream("1\n"), id="x2"),  # nearly X
    code("", id="e"),
    markdown("# Z!", id="z"),
]


@settings(max_examples=200, deadline=None)
@given(
    a=st.lists(st.sampled_from(range(len(VOCABULARY))), max_size=14),
    b=st.lists(st.sampled_from(range(len(VOCABULARY))), max_size=14),
    ids=st.booleans(),
)
def test_same_diff_as_nbdime_on_repeated_look_alike_cells(
    a: list[int], b: list[int], ids: bool
) -> None:
    """Duplicated ids and cells, near-duplicates: many equally long alignments to choose from."""
    assert_same_diff(
        notebook([VOCABULARY[k] for k in a], ids=ids), notebook([VOCABULARY[k] for k in b], ids=ids)
    )


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_trace_lcs_picks_the_pairs_of_nbdimes_brute_force(data: st.DataObject) -> None:
    n, m = data.draw(st.integers(0, 9)), data.draw(st.integers(0, 9))
    if data.draw(st.booleans()):  # an equivalence (ids, hashes): runs and repeats
        keys = st.integers(0, data.draw(st.integers(0, 4)))
        a, b = (
            data.draw(st.lists(keys, min_size=n, max_size=n)),
            data.draw(st.lists(keys, min_size=m, max_size=m)),
        )
        grid = [[x == y for y in b] for x in a]
    else:  # any relation (the fuzzy predicates are not transitive)
        grid = [data.draw(st.lists(st.booleans(), min_size=m, max_size=m)) for _ in range(n)]
    snakes = bruteforce_compute_snakes(list(range(n)), list(range(m)), lambda i, j: grid[i][j])
    expected = [(i + k, j + k) for i, j, length in snakes for k in range(length)]
    columns: dict[int, list[int]] = {}
    for i in range(n):
        for j in range(m):
            if grid[i][j]:
                columns.setdefault(j, []).append(i)
    assert trace_lcs(n, m, columns) == expected


# --- the candidate filters never drop a pair nbdime's predicates accept ---------------------


def near_miss_cells(rng: random.Random, count: int) -> list[dict]:
    """Cells that nearly match each other: texts at the similarity and length thresholds."""
    base = "".join(rng.choice("abcdefgh \n") for _ in range(rng.choice([8, 30, 120])))

    def text() -> str:
        chars = list(base)
        for _ in range(rng.choice([0, 0, 1, 2, 4, 12])):
            where = rng.randrange(len(chars) + 1)
            if chars and rng.random() < 0.5:
                del chars[min(where, len(chars) - 1)]
            else:
                chars.insert(where, rng.choice("abz\n"))
        return "".join(chars)[: rng.choice([3, 9, 10, 11, 1000])]

    def output() -> dict:
        kind = rng.random()
        if kind < 0.4:
            return stream(text(), name=rng.choice(["stdout", "stdout", "stderr"]))
        if kind < 0.7:
            out = result(text(), count=rng.choice([1, 1, 2]))
            out["metadata"] = rng.choice([{}, {}, {"a": 1}, {"a": 1.0}])
            return out
        if kind < 0.9:
            out = image(rng.randrange(2), size=60)
            out["data"]["text/plain"] = text()
            return out
        return error(value=rng.choice(["bad", "worse"]))

    cells = []
    for k in range(count):
        kind = rng.random()
        if kind < 0.3:
            cells.append(markdown(text(), id=f"n{k}"))
        else:
            outputs = [output() for _ in range(rng.choice([0, 1, 1, 2]))]
            cells.append(code(text(), *outputs, id=f"n{k}", count=k))
    return cells


def brute_force_matches(a: list[Any], b: list[Any], predicate: Callable) -> dict[int, list[int]]:
    columns: dict[int, list[int]] = {}
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            if predicate(x, y):
                columns.setdefault(j, []).append(i)
    return columns


def assert_filters_keep_every_match(a: list[Any], b: list[Any]) -> None:
    from nbdime.diffing import notebooks as nbd

    from jupyter_mlops.core.notebook_diff import _NotebookDiff, _Side

    differ = _NotebookDiff(nbd)
    differ.a, differ.b = _Side(a), _Side(b)
    for level in (0, 1, 2):
        expected = brute_force_matches(a, b, differ.predicates[level])
        assert differ.matches_by_content(level, 0, 0, len(a), len(b)) == expected, level


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(0, 10), m=st.integers(0, 10))
def test_candidate_filters_keep_every_match(seed: int, n: int, m: int) -> None:
    rng = random.Random(seed)
    cells = [nbformat.from_dict(cell) for cell in near_miss_cells(rng, n + m)]
    assert_filters_keep_every_match(cells[:n], cells[n:])


@pytest.mark.parametrize("outputs", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_candidate_filters_keep_every_match_in_large_groups(seed: int, outputs: bool) -> None:
    """Large groups (48 candidates and more) filter on a character-count matrix (NumPy)."""
    rng = random.Random(seed)
    cells = [nbformat.from_dict(cell) for cell in near_miss_cells(rng, 160)]
    for cell in cells:  # one group per level: one cell type, outputs of one shape
        texts = [cell.source, "x"] if outputs else ["x", cell.source]
        cell.update(cell_type="code", source=texts[1], outputs=[])
        if outputs:  # the near misses are in the outputs
            cell.outputs.append(nbformat.from_dict(result(texts[0])))
    assert_filters_keep_every_match(cells[:80], cells[80:])


def test_length_window_holds_every_length_real_quick_ratio_lets_through() -> None:
    from jupyter_mlops.core.notebook_diff import _length_window, _ratio_below

    for threshold in (0.95, 0.7):
        for la in range(1, 400):
            low, high = _length_window(la, threshold)
            passing = [lb for lb in range(1, 900) if not _ratio_below(la, lb, threshold)]
            assert low <= min(passing) and max(passing) <= high


def test_customised_nbdime_differs_are_honoured() -> None:
    a, b = BASE, edited(BASE, seed=11, edits=6, operations=("outputs", "source", "count"))
    set_notebook_diff_targets(outputs=False, details=False)
    try:  # (the diff leaves outputs out: it does not patch a into b)
        assert diff_notebooks(a, b) == nbdime_diff(a, b)
    finally:
        reset_notebook_differ()
    assert diff_notebooks(a, b) == nbdime_diff(a, b)


def outcome(run: Callable[[], Any]) -> Any:
    try:
        return run()
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize(
    "cells",
    [
        [{"cell_type": "code", "source": "x", "metadata": {}}],  # no outputs
        [{"cell_type": "markdown", "metadata": {}}],  # no source
        [{"source": "x", "metadata": {}}],  # no cell type
        [{**X, "id": 7}],  # an id that is not a string
    ],
)
def test_malformed_cells_fare_as_in_nbdime(cells: list[dict]) -> None:
    a = nbformat.from_dict({"cells": [Y, Z], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})
    b = copy.deepcopy(a)
    b.cells[1:1] = nbformat.from_dict(cells)
    assert outcome(lambda: diff_notebooks(a, b)) == outcome(lambda: nbdime_diff(a, b))
    assert outcome(lambda: diff_notebooks(b, a)) == outcome(lambda: nbdime_diff(b, a))


def test_not_notebooks_are_refused_as_nbdime_does() -> None:
    with pytest.raises(TypeError):
        diff_notebooks([], {})  # type: ignore[arg-type]
