"""Heartbeats of running runs, and which RUNNING runs are stale (their process died).

A kernel killed with SIGKILL, or a ``jupyter mlops run`` killed the same way, cannot end
its run: MLflow shows it RUNNING forever. While a run is alive, the process tracking it
tags ``mlops.heartbeat`` (epoch milliseconds) every interval (a batch or a pipeline for its
own run and the points or steps it runs); ``jupyter mlops sweep`` ends
the RUNNING runs whose last heartbeat (or, without one, whose start) is older than a
limit, as KILLED, and says why in a tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jupyter_mlops.core.errors import UsageError

TAG_HEARTBEAT = "mlops.heartbeat"
TAG_SWEPT = "mlops.swept"
DEFAULT_INTERVAL_S = 60.0
#: Ten missed heartbeats: a busy machine delays one, never ten.
DEFAULT_STALE_AFTER_S = 10 * DEFAULT_INTERVAL_S
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``10m``, ``2h``, ``1d`` in seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise UsageError(f"{text!r} is not a duration", hint="for example 30s, 10m, 2h")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def heartbeat_interval(environ: Mapping[str, str], name: str) -> float:
    """The interval from the environment variable ``name``, else the default."""
    text = environ.get(name, "").strip()
    if not text:
        return DEFAULT_INTERVAL_S
    seconds = parse_duration(text)
    if seconds <= 0:
        raise UsageError(f"{name} must be positive, not {text!r}")
    return seconds


@dataclass(frozen=True)
class StaleRun:
    run_id: str
    run_name: str
    last_sign_ms: int
    from_heartbeat: bool

    def reason(self, now_ms: int) -> str:
        what = "no heartbeat" if self.from_heartbeat else "no heartbeat recorded; started"
        return f"{what} for {(now_ms - self.last_sign_ms) / 1000:.0f} s; ended KILLED by sweep"


def stale_runs(runs: Iterable[Any], now_ms: int, stale_after_s: float) -> list[StaleRun]:
    """The RUNNING runs among ``runs`` whose last sign of life is older than the limit."""
    stale = []
    for run in runs:
        if run.status != "RUNNING":
            continue
        beat = run.tags.get(TAG_HEARTBEAT, "")
        last = int(beat) if beat.isdigit() else run.start_time_ms
        if last is None:
            continue
        if now_ms - last > stale_after_s * 1000:
            stale.append(StaleRun(run.run_id, run.run_name, last, beat.isdigit()))
    return stale
