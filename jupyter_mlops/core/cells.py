"""What a cell binds and uses, read from its source, and which values are params or metrics.

The rule a data scientist relies on (docs/magics.md says the same):

* a **param** is a top-level name the cell binds to a *literal*: ``lr = 0.01``,
  ``layers = [64, 32]``, ``name = "rf"``; literals are int, float, str, bool, None and
  short lists, tuples and dicts of those;
* a **metric** is a top-level name the cell binds to a *computed* value that turns out
  to be an int, a float or a NumPy scalar: ``acc = model.score(X, y)``.

Explicit ``--params`` / ``--metrics`` lists replace the guess.

A name MLflow cannot store as a key (over 250 characters, or with characters outside
letters, digits, ``_ - . / : `` and space, such as some non-Latin identifiers) is neither a
param nor a metric: MLflow would refuse the whole write. ``unstorable_bindings`` names the
ones a cell would otherwise have logged, so the adapter can say so.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import math
import numbers
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: A list, tuple or dict param holds at most this many items; longer ones are data, not config.
MAX_COLLECTION_ITEMS = 32
#: A str param longer than this is not a param (MLflow's limit on values is 6000 characters).
MAX_PARAM_TEXT = 500
#: MLflow's limit on param, metric and tag keys (``MAX_ENTITY_KEY_LENGTH``).
MAX_NAME_LENGTH = 250
#: The characters MLflow accepts in param, metric and tag keys (``validate_param_and_metric_name``).
STORABLE_NAME = re.compile(r"[/\w.\- :]+")
#: The expressions that can be param literals (``ast.literal_eval`` refuses the others,
#: and accepts sets, which are not params).
LITERAL_NODES = (ast.Constant, ast.List, ast.Tuple, ast.Dict, ast.UnaryOp, ast.BinOp)
#: An ASCII identifier, or a part of a non-ASCII one.
WORD = re.compile(r"[^\W\d]\w*")


@dataclass(frozen=True)
class CellAnalysis:
    """The names a cell binds at top level, split by how, and the free names it reads.

    ``used_names`` walks the whole tree, which costs as much as parsing it; most tracked
    cells never need it (only the dataset and out-of-order checks do, and only when
    ``mentioned_names`` says a name of interest may be there), so it is computed on first
    use, from ``source`` (parsed again then: keeping every cached tree costs memory).
    """

    literal_bindings: dict[str, Any] = field(default_factory=dict)
    computed_bindings: tuple[str, ...] = ()
    parsed: bool = True
    #: Bound names MLflow cannot store as keys, each with whether it was bound to a literal.
    unstorable: dict[str, bool] = field(default_factory=dict)
    source: str = ""

    @functools.cached_property
    def used_names(self) -> frozenset[str]:
        """Names the cell reads before (or without) binding them itself."""
        if not self.parsed:
            return frozenset()
        return _free_names(ast.parse(_strip_magics(self.source)))

    @functools.cached_property
    def mentioned_names(self) -> frozenset[str]:
        """Every word of the source that may be a name: a cheap superset of ``used_names``
        and of the bound names, to rule names out before computing ``used_names``."""
        words = frozenset(WORD.findall(self.source))
        if not self.source.isascii():  # the parser normalizes (NFKC) and joins marks
            bound = {*self.literal_bindings, *self.computed_bindings}
            return words | self.used_names | bound
        return words


@functools.lru_cache(maxsize=4096)
def storable_name(name: str) -> bool:
    """Whether MLflow accepts ``name`` as a param, metric or tag key (it is also a path there).

    Cached: every tracked cell asks again for the same few names.
    """
    return (
        0 < len(name) <= MAX_NAME_LENGTH
        and STORABLE_NAME.fullmatch(name) is not None
        and posixpath.normpath(name) == name
        and name != "."
        and not name.startswith(("/", ".."))
    )


def source_hash(source: str) -> str:
    """SHA-256 of a cell's source: the identity of a cell version in provenance records."""
    return hashlib.sha256(source.encode()).hexdigest()


def _strip_magics(source: str) -> str:
    """Blank out IPython-only lines (magics, shell escapes) so ``ast`` can parse the rest."""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        lines.append("" if stripped.startswith(("%", "!")) else line)
    return "\n".join(lines)


def _is_param_literal(value: Any, depth: int = 0) -> bool:
    if value is None or isinstance(value, bool | int):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return len(value) <= MAX_PARAM_TEXT
    if depth >= 2:
        return False
    if isinstance(value, list | tuple):
        return len(value) <= MAX_COLLECTION_ITEMS and all(
            _is_param_literal(v, depth + 1) for v in value
        )
    if isinstance(value, dict):
        return len(value) <= MAX_COLLECTION_ITEMS and all(
            isinstance(k, str | int) and _is_param_literal(v, depth + 1) for k, v in value.items()
        )
    return False


def _target_names(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, ast.Tuple | ast.List):
        return [name for element in target.elts for name in _target_names(element)]
    if isinstance(target, ast.Starred):
        return _target_names(target.value)
    return []


def _bound_at_top_level(tree: ast.Module) -> Iterable[tuple[list[str], ast.expr | None]]:
    """(names, value) for each top-level binding; value is None when it is not one expression."""
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                single = isinstance(target, ast.Name)
                yield _target_names(target), node.value if single else None
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            yield _target_names(node.target), node.value
        elif isinstance(node, ast.AugAssign):
            yield _target_names(node.target), None
        elif isinstance(node, ast.For | ast.AsyncFor | ast.With | ast.AsyncWith):
            targets = (
                [node.target]
                if isinstance(node, ast.For | ast.AsyncFor)
                else [item.optional_vars for item in node.items if item.optional_vars]
            )
            for target in targets:
                yield _target_names(target), None
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield [node.name], None
        elif isinstance(node, ast.Import | ast.ImportFrom):
            yield [(alias.asname or alias.name).split(".")[0] for alias in node.names], None


def _free_names(tree: ast.Module) -> frozenset[str]:
    """Names the cell reads before (or without) binding them itself."""
    loaded = {
        n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    bound: set[str] = set()
    for names, _value in _bound_at_top_level(tree):
        bound.update(names)
    return frozenset(loaded - bound)


@functools.lru_cache(maxsize=256)
def analyze_source(source: str) -> CellAnalysis:
    """Split the cell's top-level bindings into literal ones (params) and computed ones.

    Cached: a tracked cell is analysed by the magic, the session and the dataset logging,
    and re-executed cells come back with the same source. Callers must not mutate the
    result.
    """
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return CellAnalysis(parsed=False)
    literals: dict[str, Any] = {}
    computed: list[str] = []
    unstorable: dict[str, bool] = {}
    for names, value in _bound_at_top_level(tree):
        literal_value: Any = None
        is_literal = False
        if isinstance(value, LITERAL_NODES):  # literal_eval of anything else raises, slowly
            try:
                literal_value = ast.literal_eval(value)
                is_literal = _is_param_literal(literal_value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                is_literal = False
        for name in names:
            if not storable_name(name):
                unstorable[name] = is_literal and len(names) == 1
                continue
            if is_literal and len(names) == 1:
                literals[name] = literal_value
                if name in computed:
                    computed.remove(name)
            else:
                literals.pop(name, None)
                if name not in computed:
                    computed.append(name)
    return CellAnalysis(literals, tuple(computed), unstorable=unstorable, source=source)


def is_metric_value(value: Any) -> bool:
    """int, float or a NumPy scalar, finite or not; never a bool (a flag is not a metric).

    An int too large for a float (``10**400``) is not one either: MLflow stores doubles.
    """
    if type(value) is float:  # the common case, and always storable
        return True
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):
        return False
    if isinstance(value, numbers.Real):
        return _fits_a_float(value)
    # NumPy scalars register as numbers.Real; 0-d arrays do not but have .item()
    return (
        type(value).__module__ == "numpy"
        and getattr(value, "shape", None) == ()
        and isinstance(getattr(value, "item", lambda: None)(), int | float)
        and _fits_a_float(value)
    )


def _fits_a_float(value: Any) -> bool:
    try:
        metric_float(value)
    except (OverflowError, ValueError, TypeError):
        return False
    return True


def metric_float(value: Any) -> float:
    """The float MLflow stores for a metric value accepted by :func:`is_metric_value`."""
    return float(value.item() if hasattr(value, "item") else value)


def pick_metrics(names: Iterable[str], namespace: Mapping[str, Any]) -> dict[str, float]:
    """The metric values among ``names`` that the namespace holds after the cell ran."""
    return {
        name: metric_float(namespace[name])
        for name in names
        if name in namespace
        and not name.startswith("_")
        and storable_name(name)
        and is_metric_value(namespace[name])
    }


def unstorable_bindings(
    analysis: CellAnalysis,
    namespace: Mapping[str, Any],
    *,
    params: bool = True,
    metrics: bool = True,
) -> list[str]:
    """Names the cell bound to a param literal or a metric number that MLflow cannot store."""
    return [
        name
        for name, literal in analysis.unstorable.items()
        if not name.startswith("_")
        and (
            (params and literal)
            or (metrics and not literal and name in namespace and is_metric_value(namespace[name]))
        )
    ]
