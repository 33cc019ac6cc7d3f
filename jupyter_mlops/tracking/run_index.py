"""A read index of a store's runs: the run browser sorts by a metric as fast as by time.

MLflow's SQL search orders by a metric through a join over every run of the experiment
(about 5 s for a page at 10,000 runs on SQLite, measured in ``benchmarks/bench_api.py``),
while ordering by start time walks an index and costs tens of milliseconds. The run
browser sorts by any column, so it cannot wait on that join. This index holds every
active run once, as MLflow's own ``Run`` entities, and answers a page with MLflow's
in-memory search (``SearchUtils.filter``, ``sort`` and offset page tokens: what MLflow's
file store runs), so filter syntax, ordering, ties and page tokens are MLflow's and a
token from the index and one from MLflow's SQL search are interchangeable.

It works the same on every store, the remote server included, because it only reads
through ``search_runs``:

- the first use loads every run in pages by start time, in a background thread, while
  callers are answered by MLflow's own search (``page()`` returns None until ready);
- before each page a cheap sync reads what changed: runs started or ended since the
  newest time the index has seen (less ``CLOCK_SLACK_MS`` for writers whose clocks lag)
  and every run still active, all of them indexed searches by time or status;
- what moves neither time (a tag added to a finished run, a deleted run) is caught by a
  full reload in the background every ``FULL_RELOAD_S`` (five minutes) while the index is in use.

Run details, metric histories and everything else still read the store directly; only
pages of the runs table come from here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jupyter_mlops.core.errors import MlopsError
from jupyter_mlops.tracking.mlflow_store import MlflowRunStore, offset_page, search_in_memory

log = logging.getLogger(__name__)

#: Runs read per search while loading: well under MLflow's 50,000 per request.
LOAD_PAGE_SIZE = 5000
#: Writers set run times from their own clocks: a sync looks back this far (the full
#: reload catches a writer whose clock lags more).
CLOCK_SLACK_MS = 10_000
#: How often, while pages are asked for, the whole index is reloaded in the background:
#: at 10,000 runs a reload costs seconds of the server's CPU, which requests then share.
FULL_RELOAD_S = 300.0
#: Sorted result lists kept per index version: paging one ordering costs one sort.
CACHED_ORDERINGS = 8
ACTIVE_STATUSES = ("RUNNING", "SCHEDULED")


@dataclass(frozen=True)
class IndexedPage:
    """One page of runs (MLflow ``Run`` entities) and the next page's token, if any."""

    runs: list[Any]
    next_page_token: str | None


@dataclass
class _Snapshot:
    """What the index holds at one moment; replaced, never changed, once published."""

    runs: dict[str, Any] = field(default_factory=dict)
    #: The newest start or end time among ``runs``: where the next sync looks from.
    newest_ms: int = 0
    version: int = 0


def _newest_time(run: Any) -> int:
    return max(run.info.start_time or 0, run.info.end_time or 0)


def _same(old: Any, new: Any) -> bool:
    """Whether a re-read run differs from the indexed one in anything the table shows."""
    return bool(
        old.info.status == new.info.status
        and old.info.end_time == new.info.end_time
        and old.info.run_name == new.info.run_name
        and old.data.metrics == new.data.metrics
        and old.data.params == new.data.params
        and old.data.tags == new.data.tags
    )


class RunIndex:
    """Every active run of one store, kept in step by syncs before each page."""

    def __init__(
        self,
        store_factory: Callable[[], MlflowRunStore],
        full_reload_s: float = FULL_RELOAD_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store_factory = store_factory
        self._store: MlflowRunStore | None = None
        self._full_reload_s = full_reload_s
        self._clock = clock
        self._snapshot: _Snapshot | None = None
        self._loaded_at = 0.0
        self._loading: threading.Thread | None = None
        self._sync_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._sorted: dict[tuple[Any, ...], list[Any]] = {}
        self.last_error: MlopsError | None = None

    # -- the store ------------------------------------------------------------------
    def store(self) -> MlflowRunStore:
        """One store object for the index's life (a remote one keeps its connection)."""
        if self._store is None:
            self._store = self._store_factory()
        return self._store

    def _search(self, what: str, experiment_ids: list[str], filter_string: str = "") -> list[Any]:
        """Every active run of ``experiment_ids`` matching ``filter_string``."""
        store = self.store()
        if not experiment_ids:
            return []
        found: list[Any] = []
        token: str | None = None
        while True:
            page = store._call(
                what,
                lambda token=token: store.client.search_runs(  # type: ignore[misc]
                    experiment_ids,
                    filter_string=filter_string,
                    max_results=LOAD_PAGE_SIZE,
                    order_by=["attributes.start_time DESC"],
                    page_token=token,
                ),
            )
            found.extend(page)
            token = page.token
            if not token:
                return found

    # -- loading ----------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._snapshot is not None

    def load(self) -> None:
        """Read every run now (in the caller's thread) and publish the result."""
        started = self._clock()
        experiment_ids = self.store().experiment_ids()
        runs = {run.info.run_id: run for run in self._search("indexing runs", experiment_ids)}
        snapshot = _Snapshot(
            runs=runs,
            newest_ms=max((_newest_time(r) for r in runs.values()), default=0),
        )
        with self._state_lock:
            previous = self._snapshot
            snapshot.version = previous.version + 1 if previous else 1
            self._snapshot = snapshot
            self._sorted.clear()
            self._loaded_at = started
        log.debug("jupyter-mlops: indexed %d runs in %.2f s", len(runs), self._clock() - started)

    def _load_in_background(self) -> None:
        try:
            self.load()
            self.last_error = None
        except MlopsError as error:
            self.last_error = error
            log.warning("jupyter-mlops: cannot index runs: %s", error)
        except Exception:  # a bug of ours must not leave the index loading forever
            log.exception("jupyter-mlops: cannot index runs")
        finally:
            with self._state_lock:
                self._loading = None

    def start_loading(self) -> None:
        """Load (or reload) in a background thread unless a load is already running."""
        with self._state_lock:
            if self._loading is not None:
                return
            self._loading = threading.Thread(
                target=self._load_in_background, name="mlops-run-index", daemon=True
            )
            self._loading.start()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Start loading if needed and wait until the index answers (tests, benchmarks)."""
        self.start_loading()
        deadline = self._clock() + timeout
        while not self.ready and self._clock() < deadline:
            thread = self._loading
            if thread is not None:
                thread.join(0.05)
            elif not self.ready:
                self.start_loading()
                time.sleep(0.05)
        return self.ready

    # -- keeping in step ----------------------------------------------------------------
    def sync(self) -> None:
        """Read runs started, ended or still active since the last look; publish changes."""
        with self._sync_lock:
            snapshot = self._snapshot
            if snapshot is None:
                return
            since = max(snapshot.newest_ms - CLOCK_SLACK_MS, 0)
            experiment_ids = self.store().experiment_ids()
            changed: dict[str, Any] = {}
            for what, filter_string in (
                ("reading new runs", f"attributes.start_time >= {since}"),
                ("reading ended runs", f"attributes.end_time >= {since}"),
                *(
                    ("reading active runs", f"attributes.status = '{status}'")
                    for status in ACTIVE_STATUSES
                ),
            ):
                for run in self._search(what, experiment_ids, filter_string):
                    changed[run.info.run_id] = run
            fresh = {
                run_id: run
                for run_id, run in changed.items()
                if run_id not in snapshot.runs or not _same(snapshot.runs[run_id], run)
            }
            if not fresh:
                return
            runs = {**snapshot.runs, **fresh}
            published = _Snapshot(
                runs=runs,
                newest_ms=max(snapshot.newest_ms, *(_newest_time(r) for r in fresh.values())),
                version=snapshot.version + 1,
            )
            with self._state_lock:
                if self._snapshot is snapshot:
                    self._snapshot = published
                    self._sorted.clear()

    # -- answering ------------------------------------------------------------------------
    def page(
        self,
        experiment_ids: Sequence[str],
        filter_string: str,
        order_by: str,
        page_token: str | None,
        max_results: int,
    ) -> IndexedPage | None:
        """One page of runs, or None while the index is loading (ask MLflow instead)."""
        if self._snapshot is None:
            self.start_loading()
            return None
        if self._clock() - self._loaded_at > self._full_reload_s:
            self.start_loading()
        self.sync()
        snapshot = self._snapshot
        assert snapshot is not None
        wanted = frozenset(experiment_ids)
        key = (snapshot.version, wanted, filter_string, order_by)
        with self._state_lock:
            ordered = self._sorted.get(key)
        if ordered is None:
            candidates = [r for r in snapshot.runs.values() if r.info.experiment_id in wanted]
            ordered = search_in_memory(candidates, filter_string, order_by)
            with self._state_lock:
                if len(self._sorted) >= CACHED_ORDERINGS:
                    self._sorted.pop(next(iter(self._sorted)))
                self._sorted[key] = ordered
        runs, token = offset_page(ordered, page_token, max_results)
        return IndexedPage(runs=runs, next_page_token=token)
