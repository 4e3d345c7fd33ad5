"""The background thread of a live image: interval flushes and the snapshot timer.

It wakes every ``period`` seconds, at a fixed rate (a tick starts one period after the
previous one started, or at once if that one took longer) (the mode's ``interval_ms``, or the snapshot
interval when only snapshots are timed), flushes if the mode asks for
background flushes, and lets the snapshot timer look at the durable head.
It never raises: a failure is reported by the image (callback and
``status()``) and tried again at the next tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

__all__ = ["Flusher"]

log = logging.getLogger(__name__)


class Flusher:
    """Calls ``tick()`` every ``period`` seconds on a daemon thread until :meth:`stop`."""

    def __init__(
        self, tick: Callable[[], None], period: float, name: str, prepare: Callable[[], None] | None = None
    ) -> None:
        self._tick = tick
        self._prepare = prepare  # run first, on the thread (e.g. starting a flush process tied to it)
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception:
                log.exception("casstore runtime flusher: prepare failed")
        # fixed rate: each tick starts one period after the previous one started (at once if it ran longer)
        next_at = time.monotonic() + self.period
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            started = time.monotonic()
            try:
                self._tick()
            except Exception:  # the image reports its own failures; this is a bug's last resort
                log.exception("casstore runtime flusher: tick failed")
            next_at = started + self.period

    def stop(self) -> None:
        """Stop the thread and wait for a tick in progress to finish."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
