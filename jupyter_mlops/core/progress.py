"""How a batch shows its progress and its results: plain strings, no terminal handling."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Progress:
    total: int
    done: int
    failed: int
    running: int
    elapsed_s: float

    @property
    def finished(self) -> int:
        return self.done + self.failed

    def eta_s(self) -> float | None:
        """Remaining time from the mean time per finished point; None before the first."""
        if self.finished == 0 or self.finished >= self.total:
            return None if self.finished == 0 else 0.0
        return self.elapsed_s / self.finished * (self.total - self.finished)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def progress_line(progress: Progress, width: int = 24) -> str:
    """``[#####.....] 5/16 done 4 failed 1 running 2 elapsed 00:12 eta 00:25``."""
    filled = 0 if progress.total == 0 else math.floor(width * progress.finished / progress.total)
    bar = "#" * filled + "." * (width - filled)
    return (
        f"[{bar}] {progress.finished}/{progress.total} "
        f"done {progress.done} failed {progress.failed} running {progress.running} "
        f"elapsed {_duration(progress.elapsed_s)} eta {_duration(progress.eta_s())}"
    )


def parse_sort(spec: str | None) -> tuple[str | None, bool]:
    """``--sort METRIC`` (largest first) or ``--sort METRIC:asc`` (smallest first)."""
    if not spec:
        return None, True
    name, _, order = spec.partition(":")
    order = order.lower()
    if order not in ("", "asc", "desc"):
        from jupyter_mlops.core.errors import UsageError

        raise UsageError(f"--sort {spec!r}: the order after ':' must be asc or desc")
    return name, order != "asc"


def sort_rows(
    rows: Sequence[Mapping[str, Any]], metric: str | None, descending: bool
) -> list[Mapping[str, Any]]:
    """Rows ordered by ``metric``; points that did not finish, or lack it, go last.

    A failed point may have logged the metric before failing: a partial result that must
    not rank above finished points.
    """
    if metric is None:
        return list(rows)

    def key(row: Mapping[str, Any]) -> tuple[int, float]:
        value = (row.get("metrics") or {}).get(metric)
        if row.get("status") not in (None, "FINISHED", "SKIPPED"):
            return (2, 0.0)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return (1, 0.0)
        return (0, -float(value) if descending else float(value))

    return sorted(rows, key=key)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A left-aligned text table with a rule under the header."""
    text_rows = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in text_rows
    ]
    return "\n".join(lines)
