"""Notebook parameters: parsing them from the command line and files, and checking them.

Values are typed the way Papermill's CLI types ``-p NAME VALUE`` (``True``/``False``/``None``,
int, float, else the string), so a run of ours and a run of ``papermill`` see the same
values. Where Papermill only warns, we refuse: a parameter the notebook's ``parameters``
cell does not define is almost always a typo, and a typo silently ignored is a sweep of
identical runs. ``allow_unknown`` relaxes that rule.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import keyword
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jupyter_mlops.core.errors import ConfigError, UsageError

PARAMETERS_TAG = "parameters"
Params = dict[str, Any]


def typed_value(text: str) -> Any:
    """``-p NAME VALUE`` typing, as Papermill's CLI does it."""
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def check_name(name: str) -> None:
    """A parameter becomes a Python variable: refuse what cannot be one."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"parameter name {name!r} is not a Python identifier")


def params_from_pairs(pairs: Iterable[Sequence[str]]) -> Params:
    """``[(name, text), ...]`` from repeated ``-p NAME VALUE``."""
    params: Params = {}
    for name, text in pairs:
        check_name(name)
        params[name] = typed_value(text)
    return params


def load_yaml(text: str, source: str) -> Any:
    """YAML parsed safely; a syntax error is a ``ConfigError`` naming the source and line."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{source}{line}: invalid YAML: {problem}") from None


def params_from_yaml(text: str, source: str) -> Params:
    """A YAML mapping of parameters (``-y`` text or ``-f`` file contents)."""
    loaded = load_yaml(text, source)
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"{source}: expected a mapping of NAME: VALUE, got {type(loaded).__name__}"
        )
    for name in loaded:
        check_name(name if isinstance(name, str) else repr(name))
    return {str(k): v for k, v in loaded.items()}


@dataclass(frozen=True)
class DeclaredParameters:
    """What a notebook's ``parameters`` cell defines."""

    has_cell: bool
    names: tuple[str, ...]
    defaults: Mapping[str, str]


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def declared_parameters(notebook: Mapping[str, Any]) -> DeclaredParameters:
    """The names bound at top level by the cell tagged ``parameters`` (Papermill's rule)."""
    for cell in notebook.get("cells", []):
        tags = (cell.get("metadata") or {}).get("tags") or []
        if cell.get("cell_type") == "code" and PARAMETERS_TAG in tags:
            source = _source(cell)
            try:
                tree = ast.parse(source)
            except SyntaxError:
                # IPython syntax (magics) in the parameters cell: fall back to NAME = lines.
                simple = [
                    line.split("=", 1)[0].strip()
                    for line in source.splitlines()
                    if "=" in line and line.split("=", 1)[0].strip().isidentifier()
                ]
                return DeclaredParameters(True, tuple(dict.fromkeys(simple)), {})
            names: list[str] = []
            defaults: dict[str, str] = {}
            for node in tree.body:
                targets: list[ast.expr] = []
                value: ast.expr | None = None
                if isinstance(node, ast.Assign):
                    targets, value = node.targets, node.value
                elif isinstance(node, ast.AnnAssign):
                    targets, value = [node.target], node.value
                for target in targets:
                    if isinstance(target, ast.Name):
                        names.append(target.id)
                        if value is not None:
                            defaults[target.id] = ast.unparse(value)
            return DeclaredParameters(True, tuple(dict.fromkeys(names)), defaults)
    return DeclaredParameters(False, (), {})


def check_against_notebook(
    params: Mapping[str, Any], declared: DeclaredParameters, notebook: str, allow_unknown: bool
) -> None:
    """Refuse parameters the notebook does not declare, unless ``allow_unknown``."""
    if not params or allow_unknown:
        return
    if not declared.has_cell:
        raise UsageError(
            f"{notebook} has no cell tagged 'parameters', so {', '.join(sorted(params))} "
            "would be injected without a default to override",
            hint="tag the cell that sets the defaults 'parameters', or pass --allow-unknown-params",
        )
    unknown = sorted(set(params) - set(declared.names))
    if unknown:
        known = ", ".join(declared.names) or "none"
        raise UsageError(
            f"{notebook}: unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (the parameters cell defines: {known})",
            hint="pass --allow-unknown-params to inject it anyway",
        )


# -- sweeps ------------------------------------------------------------------------------
def parse_grid(spec: str) -> tuple[str, list[Any]]:
    """``NAME=V1,V2,...`` into ``(NAME, [typed values])``."""
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or not name:
        raise UsageError(f"--grid {spec!r} does not parse: expected NAME=V1,V2,...")
    check_name(name)
    items = [v.strip() for v in values.split(",")]
    if not values.strip() or any(v == "" for v in items):
        raise UsageError(f"--grid {spec!r} has an empty value: expected NAME=V1,V2,...")
    return name, [typed_value(v) for v in items]


def expand_grid(grids: Sequence[tuple[str, list[Any]]], base: Mapping[str, Any]) -> list[Params]:
    """The cartesian product of the grids, each point on top of ``base``."""
    names = [name for name, _ in grids]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise UsageError(f"--grid given twice for {', '.join(sorted(duplicates))}")
    if not grids:
        return [dict(base)]
    return [
        {**base, **dict(zip(names, combo, strict=True))}
        for combo in itertools.product(*(values for _, values in grids))
    ]


def points_from_sweep(text: str, source: str) -> tuple[list[tuple[str, list[Any]]], list[Params]]:
    """A ``sweep.yaml``: ``grid: {name: [values]}`` and/or ``points: [{name: value}, ...]``."""
    loaded = load_yaml(text, source)
    if not isinstance(loaded, dict) or not ({"grid", "points"} & set(loaded)):
        raise ConfigError(f"{source}: expected a mapping with 'grid:' and/or 'points:'")
    unknown = set(loaded) - {"grid", "points", "params"}
    if unknown:
        raise ConfigError(
            f"{source}: unknown key{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))}"
        )
    grids: list[tuple[str, list[Any]]] = []
    grid = loaded.get("grid") or {}
    if not isinstance(grid, dict):
        raise ConfigError(f"{source}: 'grid' must map names to lists of values")
    for name, values in grid.items():
        check_name(str(name))
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: grid value of {name!r} must be a non-empty list")
        grids.append((str(name), values))
    points = loaded.get("points") or []
    if not isinstance(points, list) or not all(isinstance(p, dict) for p in points):
        raise ConfigError(f"{source}: 'points' must be a list of mappings")
    for point in points:
        for name in point:
            check_name(str(name))
    return grids, [dict(p) for p in points]


def canonical_params(params: Mapping[str, Any]) -> str:
    """Stable JSON of params: the identity of a point, whatever order it was given in."""
    return json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))


def point_key(batch_id: str, params: Mapping[str, Any]) -> str:
    """The idempotency key of a batch point: the same point of the same batch, the same key."""
    return hashlib.sha256(f"{batch_id}\n{canonical_params(params)}".encode()).hexdigest()[:32]


def describe(params: Mapping[str, Any]) -> str:
    """``a=1 b=x``: a point in one short line for progress and tables."""
    return " ".join(f"{k}={v}" for k, v in params.items()) or "(defaults)"
