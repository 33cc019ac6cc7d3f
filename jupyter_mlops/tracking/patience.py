"""A store that waits out a short outage: the store of ``run``, ``batch`` and ``pipeline``.

``jupyter mlops run``, ``batch`` and ``pipeline`` open and close runs themselves: the run
id comes from the store (MLflow makes it), so creating a run cannot be spooled, and the
run's result table is read back from the store. Their calls are therefore retried with backoff while
the store does not answer, for up to ``STORE_PATIENCE_S`` (a server restarted or moved
in a minute or two is survived; a store down for longer fails the command with the one
line of ``StoreUnavailableError``). A store that has not answered once yet, and what the
store refuses (``UsageError``), fail at once.

A retried ``start_run`` creates its run once: the run carries a creation key
(``mlops.creation_key``, as every run a session creates), and a try after the first looks
the run up by it before creating one, so a first try whose answer was lost (the server
created the run, the reply never came) does not leave a second run.

Before a run is closed, the journals kernels left in the offline spool when they ended
while the store was down are replayed (:meth:`PatientStore.replay_spool`), so the run's
metrics are in before its final status and result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from jupyter_mlops.core.errors import StoreUnavailableError
from jupyter_mlops.tracking.store import TAG_CREATION_KEY, RunHandle, with_creation_key

T = TypeVar("T")
#: How long a run's own store calls wait for a store that does not answer.
STORE_PATIENCE_S = 120.0
MAX_DELAY_S = 5.0


def patiently(
    action: Callable[[], T],
    patience_s: float = STORE_PATIENCE_S,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``action()``, tried again with backoff while the store does not answer."""
    deadline = time.monotonic() + patience_s
    delay = 0.5
    while True:
        try:
            return action()
        except StoreUnavailableError:
            if time.monotonic() + delay > deadline:
                raise
            sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)


class PatientStore:
    """Every call of ``inner`` (an ``MlflowRunStore``), retried through a short outage."""

    def __init__(self, inner: Any, patience_s: float = STORE_PATIENCE_S) -> None:
        self.inner = inner
        self.patience_s = patience_s
        #: Whether the store answered once: only then is an outage waited for.
        self.answered = False

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: self._patiently(lambda: attribute(*args, **kwargs))

    def _patiently(self, action: Callable[[], T]) -> T:
        # Not named ``_call``: that is the inner store's, which the registry calls
        # (``store._call(what, action)``) and which must reach it through __getattr__.
        # A store down from the start (never answered): say so at once.
        result = patiently(action, self.patience_s) if self.answered else action()
        self.answered = True
        return result

    def start_run(
        self,
        experiment: str,
        run_name: str | None,
        tags: dict[str, str],
        parent_run_id: str | None = None,
        start_time_ms: int | None = None,
    ) -> RunHandle:
        """The inner store's ``start_run``, creating one run however often it is tried."""
        keyed = with_creation_key(tags)
        key = keyed[TAG_CREATION_KEY]
        tries = 0

        def create_once() -> RunHandle:
            nonlocal tries
            tries += 1
            if tries > 1:  # the first try may have created the run before it failed
                existing = self.inner.run_with_tag(TAG_CREATION_KEY, key)
                if existing is not None:
                    handle: RunHandle = self.inner.resume_run(existing)
                    return handle
            created: RunHandle = self.inner.start_run(
                experiment,
                run_name,
                keyed,
                parent_run_id=parent_run_id,
                start_time_ms=start_time_ms,
            )
            return created

        return self._patiently(create_once)

    def replay_spool(self) -> int:
        """Replay the journals of processes that ended offline; records replayed."""
        from jupyter_mlops.core.settings import spool_folder
        from jupyter_mlops.tracking.spool import Spool

        location = getattr(self.inner, "location", None)
        if location is None:
            return 0
        spool = Spool(spool_folder(location), location.uri)
        if not spool.journal_paths():
            return 0
        report = patiently(lambda: spool.replay(self.inner, include_live=False), self.patience_s)
        return report.replayed
