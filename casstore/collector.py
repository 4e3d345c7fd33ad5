"""The cyclic garbage collector paused for the length of a large write, flush or whole-state read.

A write allocates tens of thousands of short-lived container objects (records,
tree nodes, edit closures, pending frames) while the process holds many
long-lived ones (the node cache; a live image keeps a whole network in
memory).  That sets off full collections that traverse everything held: measured,
a third to a half of a large flush or a 1% step of a 100,000-contact network was
spent in them, and a third of an import.  Almost everything a write allocates
is freed by reference counting when it ends, so the collections find nothing;
pausing the collector for the write avoids them rather than moving them later.
A read of a whole state (or of many groups) is paused too: it allocates what it
returns, which collections meanwhile would only traverse (a cold load of the
100,000-contact network, in a process holding two more: 1.95-2.28 s → 1.35-1.67 s).
The pause is process-wide (the collector is): other threads go on running, and
any cyclic garbage they make meanwhile is collected once the last pause in
progress ends.  Pauses nest across threads; a collector that was disabled
before the first pause stays disabled.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

__all__ = ["collector_paused", "with_collector_paused"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

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


def with_collector_paused(fn: Callable[_P, _T]) -> Callable[_P, _T]:
    """``fn`` run inside :func:`collector_paused`."""

    @functools.wraps(fn)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        with collector_paused():
            return fn(*args, **kwargs)

    return run
