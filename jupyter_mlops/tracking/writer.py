"""A background thread that writes to the store so that a tracked cell never waits for it.

Cells enqueue operations in microseconds. The thread drains the queue in order,
coalescing what is pending: consecutive batches for one run become one ``log_batch``
(one SQL transaction or HTTP request), and a newer upload of the same artifact
replaces an older one that was not written yet (taking its place at the end of the
queue, after what was enqueued before it). ``flush()`` waits until everything enqueued
so far is written, without the linger: it is called on ``stop``, at kernel exit, and by
tests.

When the store fails, the pending operations stay queued and are tried again with
backoff; the error is kept for the adapter to show in one line. Nothing is dropped for a
store that fails. What the store refuses for good (a ``UsageError``: a value it will never
accept) and our own bugs are given up, one operation each, and reported through
``take_dropped()`` so the adapter says so instead of the queue blocking forever.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from jupyter_mlops.core.errors import MlopsError, UsageError
from jupyter_mlops.tracking.store import Batch, RunStore

#: How long the thread waits after the first record for more to coalesce with it; while
#: records keep coming (cells run back to back, a loop logs every step) it waits again,
#: up to MAX_LINGER_S or MAX_PENDING records: one write of everything is much cheaper
#: than many small ones, and the cells do not compete with the writes for the GIL.
LINGER_S = 0.02
MAX_LINGER_S = 0.5
MAX_PENDING = 2000
MAX_BACKOFF_S = 30.0


@dataclass
class Operation:
    """One unit of work: ``action(store)``; ``key`` lets a newer pending one replace it."""

    action: Callable[[RunStore], None]
    key: str | None = None
    batch: Batch | None = None
    run_ref: Callable[[], str] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    #: ``done`` of the operations coalesced into this one, set when this one is written.
    merged: list[threading.Event] = field(default_factory=list)


class AsyncWriter:
    """Owns the store (built lazily in the thread: importing MLflow takes seconds)."""

    def __init__(
        self, store_factory: Callable[[], RunStore], linger_s: float = LINGER_S, name: str = "mlops"
    ) -> None:
        self._store_factory = store_factory
        self._store: RunStore | None = None
        self._linger_s = linger_s
        self._pending: deque[Operation] = deque()
        self._lock = threading.Condition()
        self._closed = False
        self._busy = False
        # Set while someone waits in flush() or close(): the thread then skips the linger.
        self._hurry = threading.Event()
        self._waiters = 0
        self.last_error: MlopsError | None = None
        self._dropped: list[str] = []
        self.errors_seen = 0
        self._thread = threading.Thread(target=self._loop, name=f"{name}-writer", daemon=True)
        self._thread.start()

    # -- producer side ----------------------------------------------------------
    def submit(self, operation: Operation) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the tracking writer is closed")
            if operation.key is not None:
                for index, queued in enumerate(self._pending):
                    if queued.key == operation.key:
                        # The newest content goes after everything enqueued before it (a
                        # record it lists may still wait for an earlier operation).
                        del self._pending[index]
                        operation.merged += [queued.done, *queued.merged]
                        break
            self._pending.append(operation)
            self._lock.notify_all()

    def call(self, action: Callable[[RunStore], None], key: str | None = None) -> None:
        self.submit(Operation(action, key))

    def log(self, run_ref: Callable[[], str], batch: Batch) -> None:
        """Queue params, metrics and tags for a run whose id may not be known yet."""
        if batch:
            self.submit(Operation(lambda _store: None, batch=batch, run_ref=run_ref))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; False if ``timeout`` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._waiters += 1
            self._hurry.set()
            try:
                while self._pending or self._busy:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._lock.wait(remaining if remaining is not None else 0.5)
            finally:
                self._waiters -= 1
                if not self._waiters and not self._closed:
                    self._hurry.clear()
        return True

    def _drop(self, message: str) -> None:
        """Give up on one operation, and keep saying so until an adapter takes the message."""
        self.errors_seen += 1
        with self._lock:
            self._dropped.append(message[:500])

    def take_dropped(self) -> list[str]:
        """Messages about operations given up since the last call (each reported once)."""
        with self._lock:
            dropped, self._dropped = self._dropped, []
        return dropped

    def pending_count(self) -> int:
        with self._lock:
            return len(self._pending) + (1 if self._busy else 0)

    def close(self, timeout: float | None = 30.0) -> bool:
        flushed = self.flush(timeout)
        with self._lock:
            self._closed = True
            self._hurry.set()
            self._lock.notify_all()
        self._thread.join(timeout=5)
        return flushed

    # -- consumer side ----------------------------------------------------------
    def _take(self) -> list[Operation] | None:
        with self._lock:
            while not self._pending and not self._closed:
                self._lock.wait()
            if not self._pending:
                return None
            self._busy = True
        if self._linger_s:
            self._linger()
        with self._lock:
            taken = list(self._pending)
            self._pending.clear()
            return taken

    def _linger(self) -> None:
        """Wait for more records while they keep coming; at once when someone flushes."""
        deadline = time.monotonic() + max(MAX_LINGER_S, self._linger_s)
        seen = -1
        while True:
            with self._lock:
                count = len(self._pending)
            remaining = deadline - time.monotonic()
            if count == seen or count >= MAX_PENDING or remaining <= 0:
                return
            seen = count
            if self._hurry.wait(min(self._linger_s, remaining)):
                return

    @staticmethod
    def _coalesce(operations: list[Operation]) -> list[Operation]:
        """Merge runs of consecutive batches for the same run into one."""
        merged: list[Operation] = []
        combined: Operation | None = None  # the last of ``merged`` when this built it
        batch = Batch()  # the batch of ``combined``
        for operation in operations:
            previous = merged[-1] if merged else None
            if (
                operation.batch is not None
                and previous is not None
                and previous.batch is not None
                and previous.run_ref == operation.run_ref
            ):
                if previous is not combined:
                    # A new batch, so that merging never changes an enqueued one.
                    batch = Batch()
                    batch.merge(previous.batch)
                    combined = Operation(previous.action, batch=batch, run_ref=previous.run_ref)
                    combined.merged = [previous.done, *previous.merged]
                    merged[-1] = combined
                batch.merge(operation.batch)
                merged[-1].merged += [operation.done, *operation.merged]
            else:
                merged.append(operation)
        return merged

    def _run(self, operation: Operation) -> None:
        if self._store is None:
            self._store = self._store_factory()
        if operation.batch is not None and operation.run_ref is not None:
            self._store.log_batch(operation.run_ref(), operation.batch)
        else:
            operation.action(self._store)

    def _loop(self) -> None:
        backoff = 0.5
        while True:
            taken = self._take()
            if taken is None:
                return
            queue = deque(self._coalesce(taken))
            while queue:
                operation = queue[0]
                try:
                    self._run(operation)
                except UsageError as error:  # the store refuses this for good: retrying is futile
                    self._drop(f"not written, the store refused it: {error}")
                except MlopsError as error:
                    self.last_error = error
                    self.errors_seen += 1
                    with self._lock:
                        # Put what is left back at the head, in order, and wait before retrying.
                        self._pending.extendleft(reversed(queue))
                        self._busy = False
                        self._lock.notify_all()
                        if self._closed:
                            return
                        self._lock.wait(backoff)
                        self._busy = True
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    queue.clear()
                    with self._lock:
                        queue.extend(self._pending)
                        self._pending.clear()
                    continue
                except Exception as error:  # a bug of ours must not kill the thread silently
                    self._drop(f"not written, internal error while tracking: {error!r}")
                else:
                    self.last_error = None
                queue.popleft()
                operation.done.set()
                for done in operation.merged:
                    done.set()
                backoff = 0.5
            with self._lock:
                self._busy = False
                self._lock.notify_all()
