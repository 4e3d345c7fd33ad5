"""The background thread of a live image: interval flushes, journal folds and the snapshot timer.

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
    """Calls ``tick()`` every ``period`` seconds (``None``: only when woken) on a daemon thread until
    :meth:`stop`; :meth:`wake` runs a tick at once (a journal entry to fold)."""

    def __init__(
        self, tick: Callable[[], None], period: float | None, name: str, prepare: Callable[[], None] | None = None
    ) -> None:
        self._tick = tick
        self._prepare = prepare  # run first, on the thread (e.g. starting a flush process tied to it)
        self.period = period
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Run a tick as soon as the one in progress (if any) ends."""
        self._wake.set()

    def _run(self) -> None:
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception:
                log.exception("casstore runtime flusher: prepare failed")
        # fixed rate: each timed tick starts one period after the previous one started (at once if it ran longer)
        next_at = None if self.period is None else time.monotonic() + self.period
        while True:
            woken = self._wake.wait(None if next_at is None else max(0.0, next_at - time.monotonic()))
            self._wake.clear()
            if self._stopped:
                return
            started = time.monotonic()
            try:
                self._tick()
            except Exception:  # the image reports its own failures; this is a bug's last resort
                log.exception("casstore runtime flusher: tick failed")
            if self.period is not None and (not woken or next_at is None or started >= next_at):
                next_at = started + self.period

    def stop(self) -> None:
        """Stop the thread and wait for a tick in progress to finish."""
        self._stopped = True
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join()
