"""Which RUNNING runs are stale, and the durations users write."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from jupyter_mlops.core.errors import UsageError
from jupyter_mlops.core.heartbeat import heartbeat_interval, parse_duration, stale_runs


def run(run_id: str, status: str, start: int | None, beat: str | None = None) -> SimpleNamespace:
    tags = {"mlops.heartbeat": beat} if beat is not None else {}
    return SimpleNamespace(
        run_id=run_id, run_name=run_id, status=status, start_time_ms=start, tags=tags
    )


def test_stale_is_judged_on_the_last_heartbeat_else_the_start() -> None:
    now = 1_000_000
    runs = [
        run("alive", "RUNNING", 0, str(now - 5_000)),
        run("dead", "RUNNING", 0, str(now - 700_000)),
        run("never-beat-old", "RUNNING", now - 700_000),
        run("never-beat-new", "RUNNING", now - 1_000),
        run("finished", "FINISHED", 0, "1"),
        run("garbage-beat", "RUNNING", now - 700_000, "soon"),
    ]
    found = stale_runs(runs, now, 600)
    assert [r.run_id for r in found] == ["dead", "never-beat-old", "garbage-beat"]
    assert found[0].from_heartbeat and not found[1].from_heartbeat
    assert found[0].reason(now) == "no heartbeat for 700 s; ended KILLED by sweep"


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("30s", 30), ("10m", 600), ("2h", 7200), ("0.5s", 0.5)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_bad_durations_and_intervals_are_refused() -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration("soon")
    with pytest.raises(UsageError, match="must be positive"):
        heartbeat_interval({"X": "0s"}, "X")
    assert heartbeat_interval({}, "X") == 60
