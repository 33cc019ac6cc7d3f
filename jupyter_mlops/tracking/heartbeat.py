"""A daemon thread that calls ``beat()`` every interval until stopped.

The kernel's tracking session and the runner each keep one while their run is alive
(see :mod:`jupyter_mlops.core.heartbeat` for why). A failing beat is ignored: the writer
or the next beat tries again, and a heartbeat must never disturb what it watches.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable


def now_ms() -> int:
    return int(time.time() * 1000)


class Heartbeat:
    def __init__(self, interval_s: float, beat: Callable[[], None], name: str = "mlops") -> None:
        self.interval_s = interval_s
        self._beat = beat
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{name}-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self._beat()
            if self._stopped.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._stopped.set()
