"""A table of runs and a side-by-side comparison, as plain data: what ``%mlops_runs`` shows.

Runs come in as mappings with ``run_id``, ``run_name``, ``status``, ``start_time_ms``,
``params`` and ``metrics`` (a ``RunRecord`` turned into a dict), so the widget, the plain
fallback and the tests share one set of rules: which columns, which order, which values
differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from jupyter_mlops.core.errors import UsageError

Run = Mapping[str, Any]
MAX_PARAM_COLUMNS = 6
MAX_METRIC_COLUMNS = 6
START = "start_time"


def columns(runs: Sequence[Run]) -> tuple[list[str], list[str]]:
    """Param and metric names to show: those that vary across the runs first, then the rest."""

    def ordered(kind: str, limit: int) -> list[str]:
        names: list[str] = []
        for run in runs:
            names += [n for n in run[kind] if n not in names]
        varying = [n for n in names if len({str(r[kind].get(n)) for r in runs}) > 1]
        rest = [n for n in names if n not in varying]
        return (varying + rest)[:limit]

    return ordered("params", MAX_PARAM_COLUMNS), ordered("metrics", MAX_METRIC_COLUMNS)


def sort_keys(runs: Sequence[Run]) -> list[str]:
    """What a table can be sorted by: start time, then ``metrics.X``, then ``params.X``."""
    params, metrics = columns(runs)
    return [START, *(f"metrics.{m}" for m in metrics), *(f"params.{p}" for p in params)]


def _value(run: Run, key: str) -> Any:
    if key == START:
        return run.get("start_time_ms")
    kind, _, name = key.partition(".")
    if kind not in ("metrics", "params") or not name:
        raise UsageError(f"cannot sort by {key!r}", hint="start_time, metrics.NAME or params.NAME")
    value = run[kind].get(name)
    if kind == "params" and value is not None:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def sort_runs(runs: Sequence[Run], key: str, descending: bool = True) -> list[Run]:
    """Runs ordered by ``key``: numbers, then texts, then runs without the value (or NaN)."""
    numbers: list[tuple[float, Run]] = []
    texts: list[tuple[str, Run]] = []
    missing: list[Run] = []
    for run in runs:
        value = _value(run, key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            missing.append(run)
        elif isinstance(value, str):
            texts.append((value, run))
        else:
            numbers.append((float(value), run))
    numbers.sort(key=lambda item: item[0], reverse=descending)
    texts.sort(key=lambda item: item[0], reverse=descending)
    return [r for _, r in numbers] + [r for _, r in texts] + missing


def when(time_ms: int | None) -> str:
    if time_ms is None:
        return "-"
    return datetime.fromtimestamp(time_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M")


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table_rows(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the runs table (strings, ready for text or HTML)."""
    params, metrics = columns(runs)
    headers = ["run", "status", "started", *params, *metrics]
    rows = [
        [
            str(run.get("run_name") or run["run_id"][:8]),
            str(run.get("status", "")),
            when(run.get("start_time_ms")),
            *(cell_text(run["params"].get(p)) for p in params),
            *(cell_text(run["metrics"].get(m)) for m in metrics),
        ]
        for run in runs
    ]
    return headers, rows


@dataclass(frozen=True)
class ComparisonRow:
    kind: str  # param | metric
    name: str
    values: tuple[str, ...]
    differs: bool


def compare(runs: Sequence[Run]) -> list[ComparisonRow]:
    """Params and metrics of two or more runs side by side; ``differs`` marks disagreement."""
    if len(runs) < 2:
        raise UsageError("select two runs or more to compare")
    rows = []
    for kind, label in (("params", "param"), ("metrics", "metric")):
        names: list[str] = []
        for run in runs:
            names += [n for n in sorted(run[kind]) if n not in names]
        for name in names:
            values = tuple(cell_text(run[kind].get(name)) for run in runs)
            rows.append(ComparisonRow(label, name, values, len(set(values)) > 1))
    return rows
