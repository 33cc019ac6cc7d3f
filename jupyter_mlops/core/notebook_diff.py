"""A notebook diff identical to ``nbdime.diff_notebooks``, fast on large notebooks.

nbdime aligns the ``cells`` lists of two notebooks with a multilevel LCS
(``compute_snakes_multilevel``): first on cell ids, then, between those matches, on a
strict comparison of source and outputs, then a moderate one, then an approximate one.
At every level it fills the whole ``len(a) x len(b)`` grid of predicate calls and of LCS
lengths in Python (``bruteforce_compute_snakes``), and it diffs every aligned pair of
cells, equal or not: tens of seconds at 5,000 cells (nbdime issues #358 and #396).

This module computes the same alignment, pair for pair, without the grid:

* at each level only the pairs that can compare equal are looked at. Cell ids are joined
  through a dict. For the content levels, cells are bucketed by what nbdime's predicate
  requires to be equal (cell type; number, types and keys of the outputs, their MIME types
  and the output fields it compares with ``!=``), then by source length and character
  counts (the ``real_quick_ratio`` and ``quick_ratio`` cut-offs nbdime applies first, same
  arithmetic), and nbdime's own predicate decides each remaining candidate; equal cells
  compare equal without a call;
* the LCS is computed from these sparse matches (Hunt-Szymanski thresholds, with an undo
  log per column) and traced back with exactly the tie-breaking of nbdime's trace-back
  over its full table (take a match, else drop an ``a`` item if that keeps the LCS
  length, else drop a ``b`` item), so moved and duplicated cells line up as in nbdime;
* aligned cells that are equal (``==`` and no NaN) are not diffed: nbdime's diff of equal
  cells is empty. nbdime diffs the others, and the result is assembled with nbdime's own
  builders, so entries come in the same order.

The answer is ``nbdime.diff_notebooks(A, B)`` where ``A`` and ``B`` are ``a`` and ``b`` as
nbformat's reader hands them to nbdime: multiline strings joined (``in_memory_form``; the
files store them as lists of lines, which nbdime cannot diff) and every dict a
NotebookNode (nbdime needs attribute access on outputs); for notebooks from
``nbformat.read`` that is ``nbdime.diff_notebooks(a, b)``. It comes back as plain dicts
and lists. Inputs of an unusual shape, and a customised nbdime configuration (its ignore
options), take nbdime's own path.

nbdime, nbformat and NumPy are imported inside the functions: ``core`` stays light to import.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Hashable
from typing import Any, NamedTuple

#: A diff in nbdime's format: a list of entries ``{"op": ..., "key": ..., ...}``.
Diff = list[dict[str, Any]]
#: Matches of one alignment level: local column -> ascending local rows.
_Columns = dict[int, list[int]]

#: Levels of nbdime's cell alignment, in its order of precedence (highest first).
_BY_ID, _STRICT, _MODERATE, _APPROXIMATE = 3, 2, 1, 0
#: ``compare_text_strict`` and ``compare_text_approximate`` similarity thresholds.
_STRICT_RATIO = 0.95
_APPROXIMATE_RATIO = 0.7
#: ``compare_text_approximate`` aligns two texts both shorter than this without comparing.
_SHORT_TEXT = 10
_RICH_OUTPUTS = ("display_data", "execute_result")
#: Ranges of candidates from which the quick_ratio cut-off runs on a matrix (NumPy).
_MATRIX_MIN_CANDIDATES = 48
_MATRIX_MAX_ENTRIES = 4_000_000
#: Output keys ``compare_output_strict`` does not compare with ``!=``.
_STRICT_SKIPS = frozenset(("output_type", "data"))
#: Output keys that ``compare_output_approximate`` or ``compare_output_strict`` does not
#: compare with ``!=``, by output type (``compare_cell_moderate`` accepts either match).
_OUTPUT_SKIPS = frozenset(("output_type", "metadata", "execution_count", "data"))
_MODERATE_SKIPS = {
    "stream": _OUTPUT_SKIPS | {"text"},
    "error": _OUTPUT_SKIPS | {"traceback"},
}


class _Fallback(Exception):
    """This input or configuration takes nbdime's own path."""


class _Features(NamedTuple):
    cell_type: str
    text: str  # the source, joined
    truthy: bool  # bool() of the source as stored (a list of one empty line is true)
    moderate: Hashable  # output signatures, see _Side.features
    strict: Hashable


def diff_notebooks(a: dict[str, Any], b: dict[str, Any]) -> Diff:
    """nbdime's diff of notebook ``a`` to notebook ``b``, as plain JSON-able data."""
    from nbdime.diffing import notebooks as nbd

    a, b = in_memory_form(a), in_memory_form(b)
    try:
        result = _NotebookDiff(nbd).diff(a, b)
    except _Fallback:
        result = nbd.diff_notebooks(_from_dict(a), _from_dict(b))
    return list(_plain(result))


def patch_notebook(a: dict[str, Any], diff: Diff) -> dict[str, Any]:
    """Notebook ``a`` with ``diff`` applied (``nbdime.patch``), as plain JSON-able data."""
    from nbdime.diff_utils import to_diffentry_dicts
    from nbdime.patching import patch

    patched = patch(_from_dict(in_memory_form(a)), to_diffentry_dicts(diff))
    return dict(_plain(patched))


def in_memory_form(notebook: Any) -> Any:
    """``notebook`` with the multiline strings of its cells joined, as nbformat reads them.

    On disk, sources, stream texts and text MIME data are lists of lines; nbformat's reader
    joins them (``rejoin_lines``) and nbdime diffs only that form (it asserts on lists).
    A notebook already in that form is returned as it is; otherwise a copy that shares
    everything it does not change.
    """
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
        return notebook
    cells = notebook["cells"]
    joined = [_rejoined_cell(cell) for cell in cells]
    if all(new is old for new, old in zip(joined, cells, strict=True)):
        return notebook
    return {**notebook, "cells": joined}


def _joined(value: Any) -> str | None:
    """A list of lines joined; None if ``value`` is not a list of strings."""
    if isinstance(value, list | tuple) and all(isinstance(line, str) for line in value):
        return "".join(value)
    return None


def _rejoined_bundle(bundle: Any) -> Any:
    """``rejoin_lines`` on a MIME bundle: every value but JSON data, copied on write."""
    if not isinstance(bundle, dict):
        return bundle
    changes = {}
    for mimetype, value in bundle.items():
        text = None if _is_json_mimetype(mimetype) else _joined(value)
        if text is not None:
            changes[mimetype] = text
    return {**bundle, **changes} if changes else bundle


def _rejoined_output(output: Any) -> Any:
    if not isinstance(output, dict):
        return output
    kind = output.get("output_type", "")
    if kind in _RICH_OUTPUTS:
        data = _rejoined_bundle(output.get("data"))
        return output if data is output.get("data") else {**output, "data": data}
    text = _joined(output.get("text")) if kind else None
    return output if text is None else {**output, "text": text}


def _rejoined_cell(cell: Any) -> Any:
    """``rejoin_lines`` on one cell: source, attachments, outputs (code), copied on write."""
    if not isinstance(cell, dict):
        return cell
    changes: dict[str, Any] = {}
    source = _joined(cell.get("source"))
    if source is not None:
        changes["source"] = source
    attachments = cell.get("attachments")
    if isinstance(attachments, dict):
        bundles = {name: _rejoined_bundle(bundle) for name, bundle in attachments.items()}
        if any(bundles[name] is not bundle for name, bundle in attachments.items()):
            changes["attachments"] = bundles
    outputs = cell.get("outputs")
    if cell.get("cell_type") == "code" and isinstance(outputs, list | tuple):
        joined = [_rejoined_output(output) for output in outputs]
        if any(new is not old for new, old in zip(joined, outputs, strict=True)):
            changes["outputs"] = joined
    return {**cell, **changes} if changes else cell


def _is_json_mimetype(mimetype: Any) -> bool:
    """JSON data is a list or dict of its own: nbformat does not join it."""
    return isinstance(mimetype, str) and (
        mimetype == "application/json"
        or (mimetype.startswith("application/") and mimetype.endswith("+json"))
    )


def _from_dict(value: Any) -> Any:
    """``value`` as ``nbformat.read`` hands it over: every dict a NotebookNode."""
    import nbformat

    return nbformat.from_dict(value)  # type: ignore[no-untyped-call]


def _plain(value: Any) -> Any:
    """``value`` with every dict subclass (DiffEntry, NotebookNode) turned into a dict."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _has_nan(value: Any) -> bool:
    """Whether a NaN float is anywhere in ``value`` (``==`` on containers skips NaN by identity)."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if item != item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def _same(x: Any, y: Any) -> bool:
    """Whether nbdime sees ``x`` and ``y`` as equal (it diffs them to nothing)."""
    return bool(x == y) and not _has_nan(x)


def _frozen(value: Any) -> Hashable:
    """A hashable stand-in for JSON ``value``: equal stand-ins for ``==`` values, and only them.

    (Up to a NaN met twice as the same object, which makes the stand-ins equal: a weaker
    filter, never a wrong one.)
    """
    if isinstance(value, dict):
        return frozenset((key, _frozen(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return tuple(_frozen(item) for item in value)
    if value is None or isinstance(value, str | int | float):
        return value
    raise _Fallback


def _shared_characters(x: Counter[str], y: Counter[str]) -> int:
    """The size of the multiset intersection (what difflib's ``quick_ratio`` counts)."""
    if len(x) > len(y):
        x, y = y, x
    return sum(min(count, y[char]) for char, count in x.items() if char in y)


def _ratio_below(la: int, lb: int, threshold: float) -> bool:
    """difflib's ``real_quick_ratio() < threshold`` for strings of lengths ``la`` and ``lb``."""
    return 2.0 * min(la, lb) / (la + lb) < threshold


def _length_window(length: int, threshold: float) -> tuple[int, int]:
    """Lengths that may pass ``real_quick_ratio() >= threshold`` with ``length`` (a superset)."""
    low = int(length * threshold / (2.0 - threshold)) - 1
    high = int(length * (2.0 - threshold) / threshold) + 1
    return max(low, 0), high


def trace_lcs(n: int, m: int, columns: _Columns) -> list[tuple[int, int]]:
    """The LCS pairs nbdime's ``bruteforce_compute_snakes`` picks, from the sparse matches.

    ``columns[j]`` lists, ascending, the rows ``i < n`` with ``compare(A[i], B[j])`` true
    (``j < m``). nbdime fills the table ``R[x][y]`` = LCS length of ``A[:x]`` and ``B[:y]``
    and traces back from ``(n, m)``: on a match at ``(x-1, y-1)`` it takes it; else if
    ``R[x-1][y] == R[x][y]`` it drops ``A[x-1]``; else it drops ``B[y-1]``.

    Column ``y`` of ``R`` is described by its thresholds: the sorted ``x`` at which it steps
    up, so ``R[x-1][y] < R[x][y]`` exactly when ``x`` is a threshold. They are built column
    by column (Hunt-Szymanski) with a log of the changes, and the trace-back walks the
    columns backwards undoing the log, so it sees column ``y`` when it is at ``y``. A run of
    dropped ``A`` items is skipped in one step, to the next threshold or match.
    """
    thresholds: list[int] = []
    logs: dict[int, list[tuple[int, int]]] = {}
    for column in sorted(columns):
        log: list[tuple[int, int]] = []
        for row in reversed(columns[column]):
            position = bisect_right(thresholds, row)
            if position == len(thresholds):
                thresholds.append(row + 1)
                log.append((position, -1))
            elif thresholds[position] > row + 1:
                log.append((position, thresholds[position]))
                thresholds[position] = row + 1
        if log:
            logs[column] = log

    def undo(column: int) -> None:
        for position, old in reversed(logs.get(column, ())):
            if old < 0:
                thresholds.pop()
            else:
                thresholds[position] = old

    pairs: list[tuple[int, int]] = []
    x, y = n, m
    while x > 0 and y > 0:
        column = y - 1
        rows = columns.get(column)
        below = -1  # the largest matching row < x in this column
        if rows:
            index = bisect_right(rows, x - 1) - 1
            if index >= 0:
                below = rows[index]
        if below == x - 1:
            pairs.append((x - 1, column))
            x -= 1
            undo(column)
            y -= 1
            continue
        index = bisect_left(thresholds, x)
        if index < len(thresholds) and thresholds[index] == x:
            undo(column)
            y -= 1
            continue
        # Drop A items down to the next threshold, or to the next match in this column.
        x = max(thresholds[index - 1] if index > 0 else 0, below + 1)
    pairs.reverse()
    return pairs


class _Side:
    """The cells of one notebook, with what the alignment needs from each, computed once."""

    def __init__(self, cells: list[Any]) -> None:
        self.cells = cells
        self._nodes: dict[int, Any] = {}
        self._features: dict[int, _Features] = {}
        self._counts: dict[int, Counter[str]] = {}

    def node(self, index: int) -> Any:
        """The cell as nbformat hands it to nbdime (NotebookNode: attribute access)."""
        node = self._nodes.get(index)
        if node is None:
            node = self._nodes[index] = _from_dict(self.cells[index])
        return node

    def features(self, index: int) -> _Features:
        """What nbdime's content predicates look at first, for one cell; computed once.

        The signatures hold what ``compare_cell_moderate`` (resp. ``compare_cell_strict``)
        requires to be equal in a code cell: the number of outputs and, for each, its type,
        its keys, its MIME types (rich outputs) and the values it compares exactly (through
        ``_frozen``, which keeps ``==``: ``1 == 1.0``).
        """
        known = self._features.get(index)
        if known is not None:
            return known
        cell = self.cells[index]
        cell_type = cell.get("cell_type")
        source = cell.get("source")
        if not isinstance(cell_type, str):
            raise _Fallback
        if isinstance(source, str):
            text = source
        elif isinstance(source, list) and all(isinstance(line, str) for line in source):
            text = "".join(source)
        else:
            raise _Fallback
        moderate: Hashable = None
        strict: Hashable = None
        if cell_type == "code":
            if "outputs" not in cell:
                raise _Fallback
            outputs = cell["outputs"] or ()
            if not isinstance(outputs, list | tuple):
                raise _Fallback
            moderate_shapes, strict_shapes = [], []
            for output in outputs:
                if not isinstance(output, dict) or not isinstance(output.get("output_type"), str):
                    raise _Fallback
                kind = output["output_type"]
                mimetypes = None
                if kind in _RICH_OUTPUTS:
                    data = output.get("data")
                    if not isinstance(data, dict):
                        raise _Fallback
                    mimetypes = frozenset(data)
                shape = (kind, frozenset(output), mimetypes)
                loose = _MODERATE_SKIPS.get(kind, _OUTPUT_SKIPS)
                moderate_shapes.append(
                    (*shape, _frozen({k: v for k, v in output.items() if k not in loose}))
                )
                strict_shapes.append(
                    (*shape, _frozen({k: v for k, v in output.items() if k not in _STRICT_SKIPS}))
                )
            moderate, strict = tuple(moderate_shapes), tuple(strict_shapes)
        known = self._features[index] = _Features(cell_type, text, bool(source), moderate, strict)
        return known

    def counts(self, index: int) -> Counter[str]:
        """The characters of the cell's source, with their counts (difflib's quick_ratio)."""
        counts = self._counts.get(index)
        if counts is None:
            counts = self._counts[index] = Counter(self.features(index).text)
        return counts


class _Group:
    """The cells of ``b`` one predicate may pair with a given cell, sorted by source length.

    A large group also keeps the character counts of its sources as a matrix, to apply
    difflib's ``quick_ratio`` cut-off to a whole range of candidates at once (NumPy, when
    it is installed; the same integer and float operations as difflib, so the same answer).
    """

    def __init__(self, side: _Side, members: list[tuple[int, int]]) -> None:
        self.side = side
        self.lengths = [length for length, _ in members]
        self.indices = [index for _, index in members]
        self._matrix: Any = None
        self._alphabet: dict[str, int] | None = None

    def quick_ratio_filter(
        self, counts: Counter[str], length: int, start: int, stop: int, strict: bool
    ) -> list[int] | None:
        """The candidates in ``[start, stop)`` that pass the ``quick_ratio`` cut-off.

        Also kept: those the source comparison accepts before the cut-off (both texts
        shorter than 10 characters, approximate levels) or decides without it (an empty
        text). None: not worth a matrix, the caller applies the cut-off pair by pair.
        """
        if length == 0 or stop - start < _MATRIX_MIN_CANDIDATES or not self._build():
            return None
        import numpy as np

        assert self._alphabet is not None
        row = np.zeros(len(self._alphabet), dtype=np.int64)
        for char, count in counts.items():
            column = self._alphabet.get(char)
            if column is not None:
                row[column] = count
        shared = np.minimum(self._matrix[start:stop], row).sum(axis=1)
        lengths = np.asarray(self.lengths[start:stop], dtype=np.int64)
        threshold = _STRICT_RATIO if strict else _APPROXIMATE_RATIO
        with np.errstate(divide="ignore", invalid="ignore"):
            below = 2.0 * shared / (length + lengths) < threshold
        below &= lengths > 0
        if not strict and length < _SHORT_TEXT:
            below &= lengths >= _SHORT_TEXT
        return [start + int(k) for k in np.flatnonzero(~below)]

    def _build(self) -> bool:
        if self._alphabet is not None:
            return True
        if self._matrix is False:
            return False
        try:
            import numpy as np
        except ImportError:  # pragma: no cover - NumPy comes with MLflow
            self._matrix = False
            return False
        counters = [self.side.counts(index) for index in self.indices]
        alphabet: dict[str, int] = {}
        for counter in counters:
            for char in counter:
                alphabet.setdefault(char, len(alphabet))
        if len(alphabet) * len(counters) > _MATRIX_MAX_ENTRIES:
            self._matrix = False
            return False
        matrix = np.zeros((len(counters), len(alphabet)), dtype=np.int64)
        for row, counter in enumerate(counters):
            for char, count in counter.items():
                matrix[row, alphabet[char]] = count
        self._matrix = matrix
        self._alphabet = alphabet
        return True


class _NotebookDiff:
    """One diff: nbdime's cell alignment and diff, computed from sparse matches."""

    def __init__(self, nbd: Any) -> None:
        from nbdime.diff_format import SequenceDiffBuilder, op_patch
        from nbdime.diffing import generic

        config = nbd.notebook_config
        cell_predicates = list(config.predicates["/cells"])
        output_predicates = list(config.predicates["/cells/*/outputs"])
        if (
            config.differs["/cells"] is not generic.diff_sequence_multilevel
            or config.differs["/cells/*/outputs"] is not generic.diff_sequence_multilevel
            or cell_predicates
            != [
                nbd.compare_cell_approximate,
                nbd.compare_cell_moderate,
                nbd.compare_cell_strict,
                nbd.compare_cell_by_ids,
            ]
            or output_predicates != [nbd.compare_output_approximate, nbd.compare_output_strict]
        ):
            raise _Fallback  # customised by nbdime's ignore options: our filters assume defaults
        self.config = config
        self.predicates = cell_predicates
        self.generic = generic
        self.builder = SequenceDiffBuilder
        self.op_patch = op_patch

    def diff(self, a: Any, b: Any) -> list[Any]:
        if not isinstance(a, dict) or not isinstance(b, dict):
            raise _Fallback
        cells_a, cells_b = a.get("cells"), b.get("cells")
        if type(cells_a) is not list or type(cells_b) is not list:
            raise _Fallback
        if not all(isinstance(cell, dict) for cell in cells_a + cells_b):
            raise _Fallback
        rest_a = _from_dict({key: value for key, value in a.items() if key != "cells"})
        rest_b = _from_dict({key: value for key, value in b.items() if key != "cells"})
        # nbdime diffs a dict key by key and sorts the entries by key.
        result = list(self.generic.diff(rest_a, rest_b, path="", config=self.config))
        cells = self.diff_cells(cells_a, cells_b)
        if cells:
            position = sum(1 for entry in result if entry["key"] < "cells")
            result.insert(position, self.op_patch("cells", cells))
        return result

    def diff_cells(self, cells_a: list[Any], cells_b: list[Any]) -> list[Any]:
        """``compute_diff_from_snakes`` on the alignment, skipping pairs of equal cells."""
        self.a = _Side(cells_a)
        self.b = _Side(cells_b)
        n, m = len(cells_a), len(cells_b)
        differ = self.config.differs["/cells/*"]
        builder = self.builder()
        i0 = j0 = 0
        for i, j in [*self.align(_BY_ID, 0, 0, n, m), (n, m)]:
            if i > i0:
                builder.removerange(i0, i - i0)
            if j > j0:
                builder.addrange(i0, cells_b[j0:j])
            if i < n and not _same(cells_a[i], cells_b[j]):
                cell_diff = differ(
                    self.a.node(i), self.b.node(j), path="/cells/*", config=self.config
                )
                if cell_diff:
                    builder.patch(i, cell_diff)
            i0, j0 = i + 1, j + 1
        return list(builder.validated())

    def align(self, level: int, i0: int, j0: int, i1: int, j1: int) -> list[tuple[int, int]]:
        """``compute_snakes_multilevel`` on ``a[i0:i1]`` and ``b[j0:j1]``, as matched pairs."""
        columns = self.matches_by_id(i0, j0, i1, j1) if level == _BY_ID else None
        if columns is None:
            columns = self.matches_by_content(level, i0, j0, i1, j1)
        pairs = [(i0 + i, j0 + j) for i, j in trace_lcs(i1 - i0, j1 - j0, columns)]
        if level == 0:
            return pairs
        aligned: list[tuple[int, int]] = []
        pi, pj = i0, j0
        for i, j in pairs:
            if i > pi and j > pj:
                aligned += self.align(level - 1, pi, pj, i, j)
            aligned.append((i, j))
            pi, pj = i + 1, j + 1
        if i1 > pi and j1 > pj:
            aligned += self.align(level - 1, pi, pj, i1, j1)
        return aligned

    def matches_by_id(self, i0: int, j0: int, i1: int, j1: int) -> _Columns:
        """``compare_cell_by_ids``: both cells have an id and the ids are equal."""
        by_id: dict[str, list[int]] = {}
        for j in range(j0, j1):
            cell = self.b.cells[j]
            if "id" in cell:
                if not isinstance(cell["id"], str):
                    raise _Fallback
                by_id.setdefault(cell["id"], []).append(j - j0)
        columns: _Columns = {}
        for i in range(i0, i1):
            cell = self.a.cells[i]
            if "id" in cell:
                if not isinstance(cell["id"], str):
                    raise _Fallback
                for column in by_id.get(cell["id"], ()):
                    columns.setdefault(column, []).append(i - i0)
        return columns

    def matches_by_content(self, level: int, i0: int, j0: int, i1: int, j1: int) -> _Columns:
        """The pairs nbdime's predicate of ``level`` accepts, asked only of plausible pairs."""
        strict = level == _STRICT
        threshold = _STRICT_RATIO if strict else _APPROXIMATE_RATIO
        predicate = self.predicates[level]
        members: dict[Hashable, list[tuple[int, int]]] = {}
        for j in range(j0, j1):
            features = self.b.features(j)
            members.setdefault(self.group(level, features), []).append((len(features.text), j))
        groups = {key: _Group(self.b, sorted(pairs)) for key, pairs in members.items()}
        columns: _Columns = {}
        for i in range(i0, i1):
            features = self.a.features(i)
            group = groups.get(self.group(level, features))
            if group is None:
                continue
            la = len(features.text)
            if strict and la == 0:
                low, high = 0, 0
            else:
                low, high = _length_window(la, threshold)
                if not strict and la < _SHORT_TEXT:
                    low, high = 0, max(high, _SHORT_TEXT - 1)
            start = bisect_left(group.lengths, low)
            stop = bisect_right(group.lengths, high)
            if start == stop:
                continue
            quick = group.quick_ratio_filter(self.a.counts(i), la, start, stop, strict)
            for k in range(start, stop) if quick is None else quick:
                j = group.indices[k]
                if not self.text_may_match(strict, i, j, quick_ratio=quick is None):
                    continue
                if _same(self.a.cells[i], self.b.cells[j]) or predicate(
                    self.a.node(i), self.b.node(j)
                ):
                    columns.setdefault(j - j0, []).append(i - i0)
        return columns

    @staticmethod
    def group(level: int, features: _Features) -> Hashable:
        """Cells in different groups never compare equal at ``level``."""
        if level == _APPROXIMATE:
            return features.cell_type
        if level == _MODERATE:
            return (features.cell_type, features.moderate)
        return (features.cell_type, features.strict)

    def text_may_match(self, strict: bool, i: int, j: int, quick_ratio: bool = True) -> bool:
        """False only if nbdime's source comparison is sure to reject the pair.

        ``compare_text_strict``: equal, or both non-empty and similar (ratio > 0.95).
        ``compare_text_approximate``: the stored sources both true or both false, then both
        shorter than 10 characters, or equal, or both non-empty and similar (> 0.7).
        Similar texts pass difflib's ``real_quick_ratio`` and ``quick_ratio`` cut-offs first
        (``quick_ratio=False``: the caller has applied the second one).
        """
        a, b = self.a.features(i), self.b.features(j)
        la, lb = len(a.text), len(b.text)
        if strict:
            threshold = _STRICT_RATIO
        else:
            threshold = _APPROXIMATE_RATIO
            if a.truthy != b.truthy:
                return False
            if la < _SHORT_TEXT and lb < _SHORT_TEXT:
                return True
        if la == 0 or lb == 0:
            return la == lb
        if _ratio_below(la, lb, threshold):
            return False
        if a.text == b.text or not quick_ratio:
            return True
        shared = _shared_characters(self.a.counts(i), self.b.counts(j))
        return not 2.0 * shared / (la + lb) < threshold
