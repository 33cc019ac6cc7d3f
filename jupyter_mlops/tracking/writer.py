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
store that fails. With a spool (``spool.py``) the writer goes offline instead: what is
queued and what comes next is written to the spool's journal on disk, in order, so a
flush (at kernel exit too) ends in seconds; the thread tries the store again with backoff
(at once when someone flushes), replays the journal in order once it answers, and then
writes to the store again. What cannot be spooled waits in memory: everything after an
operation that must create a run first (its id comes from the store), and on its own an
operation that needs the store's client (dataset inputs). A spool that cannot be written
(a full disk) keeps what is left in memory, retried, and says so in ``last_error``.

What the store refuses for good (a ``UsageError``: a value it will never
accept) and our own bugs are given up, one operation each, and reported through
``take_dropped()`` so the adapter says so instead of the queue blocking forever.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from jupyter_mlops.core.errors import MlopsError, UsageError
from jupyter_mlops.tracking.spool import Journal, NotSpoolable, Spool, SpoolError, SpoolingStore
from jupyter_mlops.tracking.store import Batch, RunHandle, RunStore

#: How long the thread waits after the first record for more to coalesce with it; while
#: records keep coming (cells run back to back, a loop logs every step) it waits again,
#: up to MAX_LINGER_S or MAX_PENDING records: one write of everything is much cheaper
#: than many small ones, and the cells do not compete with the writes for the GIL.
LINGER_S = 0.02
MAX_LINGER_S = 0.5
MAX_PENDING = 2000
MAX_BACKOFF_S = 30.0
#: Offline, the store is tried again at most this long after the last try.
MAX_OFFLINE_BACKOFF_S = 10.0


@dataclass
class Operation:
    """One unit of work: ``action(store)``; ``key`` lets a newer pending one replace it."""

    action: Callable[[RunStore], None]
    key: str | None = None
    batch: Batch | None = None
    run_ref: Callable[[], str] | None = None


class AsyncWriter:
    """Owns the store, opened lazily in the thread (opening it may wait for a server).

    The caller imports MLflow before it builds the writer (``import_client_modules``): an
    import here could meet the same import in the caller's thread and break both.
    """

    def __init__(
        self,
        store_factory: Callable[[], RunStore],
        linger_s: float = LINGER_S,
        name: str = "mlops",
        spool: Spool | None = None,
        on_created: Callable[[dict[str, RunHandle]], None] | None = None,
    ) -> None:
        """``on_created``: told (in the writer thread) which runs started offline the
        store has now created, ``{provisional id: handle of the run}``, before the
        operations that waited meanwhile run."""
        self._store_factory = store_factory
        self._on_created = on_created
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
        # Offline state: the store failed; operations go to the spool (or wait, without one).
        self.spool = spool
        self._journal: Journal | None = spool.journal() if spool is not None else None
        self._offline = False
        self._blocked = False  # offline: the head of _pending cannot be spooled (yet)
        self._retry_at = 0.0
        self._retry_wanted = False  # a flush asks for one try of the store now
        self._backoff = 0.5
        self._uncertain = False  # the next spooled operation may be in the store already
        self._unpublished: MlopsError | None = None
        self._deferred: list[Operation] = []
        self._spooled = 0
        self._orphans_checked = spool is None
        self._thread = threading.Thread(target=self._loop, name=f"{name}-writer", daemon=True)
        self._thread.start()

    # -- producer side ----------------------------------------------------------
    def submit(self, operation: Operation) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the tracking writer is closed")
            if operation.key is not None:
                self._drop_pending(operation.key)
            self._pending.append(operation)
            self._lock.notify_all()

    def _drop_pending(self, key: str) -> None:
        """Called with the lock held: remove the pending operation with ``key``, which the
        caller replaces by queueing the newer one last.

        The newest content goes after everything enqueued before it (a record it lists
        may still wait for an earlier operation). Searched from the end, where the one to
        replace nearly always is (``cells.jsonl`` is queued again by every tracked cell),
        so a long queue of back-to-back cells does not make each cell slower.
        """
        for index in range(len(self._pending) - 1, -1, -1):
            if self._pending[index].key == key:
                del self._pending[index]
                return

    def call(self, action: Callable[[RunStore], None], key: str | None = None) -> None:
        self.submit(Operation(action, key))

    def log(self, run_ref: Callable[[], str], batch: Batch) -> None:
        """Queue params, metrics and tags for a run whose id may not be known yet."""
        if batch:
            self.submit(Operation(lambda _store: None, batch=batch, run_ref=run_ref))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is written; False if ``timeout`` ran out.

        Offline, "written" includes "in the spool": the flush asks for one more try of the
        store and returns once it was made and nothing is left in memory but what cannot be
        spooled on its own; ``spooled_count()`` and ``last_error`` then say what is left.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            self._waiters += 1
            self._hurry.set()
            if self._offline:
                self._retry_wanted = True
                self._lock.notify_all()
            try:
                while self._pending or self._busy or (self._retry_wanted and self._offline):
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
        """Operations in memory: queued, being written, or waiting for the store itself."""
        with self._lock:
            return len(self._pending) + len(self._deferred) + (1 if self._busy else 0)

    def spooled_count(self) -> int:
        """Records this writer put in the spool that are not in the store yet."""
        with self._lock:
            return self._spooled

    @property
    def offline(self) -> bool:
        return self._offline

    def close(self, timeout: float | None = 30.0) -> bool:
        flushed = self.flush(timeout)
        with self._lock:
            self._closed = True
            self._hurry.set()
            self._lock.notify_all()
        self._thread.join(timeout=5)
        if self._journal is not None:
            self._journal.close()
        return flushed

    # -- consumer side ----------------------------------------------------------
    def _next(self) -> str:
        """What the thread does next: ``work`` on the queue, ``recover``, or ``stop``."""
        with self._lock:
            while True:
                if self._offline and self._retry_wanted:
                    break
                if self._pending and not (self._offline and self._blocked):
                    self._busy = True
                    return "work"
                if self._closed:
                    return "stop"
                if self._offline:
                    remaining = self._retry_at - time.monotonic()
                    if remaining <= 0:
                        break
                    self._lock.wait(remaining)
                else:
                    self._lock.wait()
            self._busy = True
            return "recover"

    def _take(self) -> list[Operation]:
        if self._linger_s and not self._offline:
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
                    merged[-1] = combined
                batch.merge(operation.batch)
            else:
                merged.append(operation)
        return merged

    def _real_store(self) -> RunStore:
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    @staticmethod
    def _run(operation: Operation, store: RunStore) -> None:
        if operation.batch is not None and operation.run_ref is not None:
            store.log_batch(operation.run_ref(), operation.batch)
        else:
            operation.action(store)

    def _loop(self) -> None:
        while True:
            step = self._next()
            if step == "stop":
                return
            if step == "recover":
                self._recover()
            else:
                self._work(self._take())
            with self._lock:
                self._busy = False
                self._lock.notify_all()

    def _go_offline(self, error: MlopsError, blocked: bool, publish: bool = True) -> None:
        """Called with the lock held: try the store again after the backoff."""
        if publish:
            self.last_error = error
        else:  # said once what is queued is in the spool (or why it is not)
            self._unpublished = error
        self.errors_seen += 1
        self._offline = True
        self._blocked = blocked
        self._retry_at = time.monotonic() + self._backoff
        limit = MAX_OFFLINE_BACKOFF_S if self.spool is not None else MAX_BACKOFF_S
        self._backoff = min(self._backoff * 2, limit)

    def _recover(self) -> None:
        """Offline: try the store; replay the spool in order; then back to the store."""
        with self._lock:
            self._retry_wanted = False
        try:
            store = self._real_store()
            if self.spool is not None:
                report = self.spool.replay(
                    store,
                    own=self._journal,
                    include_live=False,
                    on_skipped=self._drop,
                )
                if report.created and self._on_created is not None:
                    self._on_created(_created_handles(store, report.created))
        except UsageError as error:  # not the store's fault: say so, try later
            with self._lock:
                self._go_offline(error, blocked=self.spool is None)
            return
        except MlopsError as error:
            with self._lock:
                self._go_offline(error, blocked=self.spool is None)
            return
        except Exception as error:  # a bug of ours: keep the spool, say so once
            self._drop(f"cannot replay the spool, internal error: {error!r}")
            with self._lock:
                failure = SpoolError(f"cannot replay the spool: {error!r}")
                self._go_offline(failure, blocked=self.spool is None)
            return
        with self._lock:
            self._offline = False
            self._retry_wanted = False  # what a flush asked for while this try ran: done
            self._blocked = False
            self._spooled = 0
            self._orphans_checked = True
            self.last_error = None
            self._backoff = 0.5
            # Operations that waited for the store itself go first: they are older.
            self._pending.extendleft(reversed(self._deferred))
            self._deferred = []

    def _work(self, taken: list[Operation]) -> None:
        queue = deque(self._coalesce(taken))
        while queue:
            operation = queue[0]
            if self._offline:
                outcome = self._spool_one(operation, queue)
                if outcome == "stop":
                    return
                if outcome == "deferred":  # waits in memory, not done yet
                    queue.popleft()
                    continue
            else:
                try:
                    self._run(operation, self._real_store())
                except UsageError as error:  # the store refuses this for good
                    self._drop(f"not written, the store refused it: {error}")
                except MlopsError as error:
                    with self._lock:
                        if self.spool is not None:
                            # It may be written in part: its records are checked on replay.
                            self._go_offline(error, blocked=False, publish=False)
                            self._uncertain = True
                            continue
                        self._go_offline(error, blocked=True)
                        self._pending.extendleft(reversed(queue))
                    return
                except Exception as error:  # a bug of ours must not kill the thread silently
                    self._drop(f"not written, internal error while tracking: {error!r}")
                else:
                    self.last_error = None
                    self._backoff = 0.5
                    if not self._orphans_checked:
                        self._adopt_orphans()
            queue.popleft()

    def _spool_one(self, operation: Operation, queue: deque[Operation]) -> str:
        """Write ``operation`` to the journal: ``done``; ``deferred`` when it waits in memory
        on its own; ``stop`` when it and the rest of ``queue`` wait in memory."""
        assert self._journal is not None
        spooling = SpoolingStore(self._journal, uncertain=self._uncertain)
        unpublished, self._unpublished = self._unpublished, None
        try:
            self._run(operation, spooling)
        except NotSpoolable as signal:
            if not signal.blocking:
                with self._lock:
                    self._deferred.append(operation)
                return "deferred"
            with self._lock:
                self._blocked = True
                self._pending.extendleft(reversed(queue))
            return "stop"
        except SpoolError as error:
            with self._lock:
                self.last_error = error
                self._blocked = True
                self._pending.extendleft(reversed(queue))
            return "stop"
        except UsageError as error:
            self._drop(f"not written, refused: {error}")
        except MlopsError as error:  # an operation that asked the store something itself
            with self._lock:
                self.last_error = error
                self._blocked = True
                self._pending.extendleft(reversed(queue))
            return "stop"
        except Exception as error:
            self._drop(f"not written, internal error while tracking: {error!r}")
        finally:
            with self._lock:
                self._spooled += spooling.records
                # The store's error is published once its records are in the spool.
                if unpublished is not None and not isinstance(self.last_error, SpoolError):
                    self.last_error = unpublished
        self._uncertain = False
        return "done"

    def _adopt_orphans(self) -> None:
        """Once the store answers: replay journals left by processes that ended offline."""
        self._orphans_checked = True
        assert self.spool is not None
        try:
            if self.spool.journal_paths():
                self.spool.replay(self._real_store(), include_live=False, on_skipped=self._drop)
        except MlopsError:
            self._orphans_checked = False  # tried again after the next write that works
        except OSError:
            pass


def _created_handles(store: RunStore, created: dict[str, str]) -> dict[str, RunHandle]:
    """Handles of the runs replay created, read back once (the id alone if that fails)."""
    handles = {}
    for provisional, run_id in created.items():
        try:
            record = store.get_run(run_id)  # type: ignore[attr-defined]
        except (MlopsError, AttributeError):
            handles[provisional] = RunHandle(run_id, "", "", "", "")
            continue
        handles[provisional] = RunHandle(
            run_id, record.experiment_id, "", record.run_name, record.artifact_uri
        )
    return handles
