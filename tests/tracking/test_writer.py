"""The background writer: coalescing, ordering, and keeping records through store failures."""

from __future__ import annotations

import threading

from jupyter_mlops.core.errors import StoreUnavailableError, UsageError
from jupyter_mlops.tracking.store import Batch, MetricPoint
from jupyter_mlops.tracking.writer import AsyncWriter


class FakeStore:
    tracking_uri = "fake://"

    def __init__(self, failures: int = 0) -> None:
        self.batches: list[Batch] = []
        self.failures = failures
        self.lock = threading.Lock()

    def log_batch(self, run_id: str, batch: Batch) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("store is down")
        with self.lock:
            self.batches.append(batch)


def run_ref() -> str:
    return "run-1"


def test_batches_for_one_run_are_coalesced_into_one_write() -> None:
    store = FakeStore()
    writer = AsyncWriter(lambda: store, linger_s=0.05)  # type: ignore[arg-type,return-value]
    for step in range(50):
        writer.log(run_ref, Batch(metrics=[MetricPoint("m", float(step), step, 0)]))
    assert writer.flush(10)
    assert sum(len(b.metrics) for b in store.batches) == 50
    assert len(store.batches) < 5
    steps = [m.step for b in store.batches for m in b.metrics]
    assert steps == list(range(50))


def test_first_param_value_survives_coalescing() -> None:
    store = FakeStore()
    writer = AsyncWriter(lambda: store, linger_s=0.05)  # type: ignore[arg-type,return-value]
    writer.log(run_ref, Batch(params={"lr": "0.1"}))
    writer.log(run_ref, Batch(params={"lr": "0.2"}))
    writer.flush(10)
    assert store.batches[0].params == {"lr": "0.1"}


def test_records_are_kept_and_retried_when_the_store_fails() -> None:
    store = FakeStore(failures=2)
    writer = AsyncWriter(lambda: store, linger_s=0)  # type: ignore[arg-type,return-value]
    writer.log(run_ref, Batch(metrics=[MetricPoint("m", 1.0, 1, 0)]))
    assert writer.flush(15)
    assert [m.value for b in store.batches for m in b.metrics] == [1.0]
    assert writer.last_error is None
    assert writer.errors_seen == 2


def test_keyed_operations_replace_older_pending_ones() -> None:
    seen: list[str] = []
    gate = threading.Event()
    writer = AsyncWriter(lambda: FakeStore(), linger_s=0)  # type: ignore[arg-type,return-value]
    writer.call(lambda _s: gate.wait(5))
    writer.call(lambda _s: seen.append("v1"), key="cells.jsonl")
    writer.call(lambda _s: seen.append("v2"), key="cells.jsonl")
    gate.set()
    writer.flush(10)
    assert seen == ["v2"]


def test_what_the_store_refuses_for_good_is_dropped_reported_and_does_not_block() -> None:
    seen: list[str] = []
    writer = AsyncWriter(lambda: FakeStore(), linger_s=0)  # type: ignore[arg-type,return-value]

    def refused(_store: object) -> None:
        raise UsageError("param lr already logged with another value")

    def bug(_store: object) -> None:
        raise KeyError("oops")

    writer.call(refused)
    writer.call(bug)
    writer.call(lambda _s: seen.append("after"))
    assert writer.flush(10), "a refused operation must not block the queue"
    assert seen == ["after"]
    dropped = writer.take_dropped()
    assert len(dropped) == 2
    assert "refused" in dropped[0] and "already logged" in dropped[0]
    assert "internal error" in dropped[1] and "KeyError" in dropped[1]
    assert writer.take_dropped() == [], "each is reported once"
    assert writer.last_error is None


def test_a_newer_keyed_operation_runs_after_what_was_queued_before_it() -> None:
    """cells.jsonl rewritten after a snapshot op must see the snapshot that op set."""
    order: list[str] = []
    gate = threading.Event()
    writer = AsyncWriter(lambda: FakeStore(), linger_s=0)  # type: ignore[arg-type,return-value]
    writer.call(lambda _s: gate.wait(5))
    writer.call(lambda _s: order.append("cells v1"), key="cells.jsonl")
    writer.call(lambda _s: order.append("snapshot"))
    writer.call(lambda _s: order.append("cells v2"), key="cells.jsonl")
    gate.set()
    assert writer.flush(10)
    assert order == ["snapshot", "cells v2"]
