"""The cyclic garbage collector paused for the length of a flush.

A live image keeps the whole network in memory (hundreds of thousands of
objects for a 100,000-contact network), and a flush allocates tens of
thousands of short-lived objects (records, tree nodes, closures), enough to
set off full collections that traverse the whole image: measured, a third to a
half of a large flush was spent in them.  Almost everything a flush allocates
is freed by reference counting when the flush ends, so the collections find
nothing; pausing the collector for the flush avoids them rather than moving
them later.  The pause is process-wide (the collector is): the runtime's own
threads go on running, and any cyclic garbage they make meanwhile is collected
once the last flush in progress ends.  Pauses nest across threads and images;
a collector that was disabled before the first pause stays disabled.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]

_lock = threading.Lock()
_pauses = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector inside the block (nested and concurrent blocks share one pause)."""
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
