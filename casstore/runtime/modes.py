"""The persistence modes of a live image (the seed's ``persistOn``), each with its loss bound.

A mode decides only *when* the image flushes; every flush is the same (one
head compare-and-swap of the coalesced dirty map, :mod:`casstore.runtime.flush`),
except that the flushes ``immediate``, ``batch`` and ``transactional`` make by
themselves go through :meth:`NetworkImage.persist`: on a store with a journal
(:mod:`casstore.runtime.journal`) they commit a journal entry, durable at once
and folded into the head by the image's background thread.  An explicit
``flush()``/``save()`` (and ``close()``) folds everything into the head before
it returns.
"Lost" below means: absent from the store after the process is killed at any
instant (SIGKILL; the crash tests in ``tests/test_runtime_crash.py`` check
each bound on LMDB and ``file://``).  A flush that fails keeps its changes
dirty, so a failure widens no bound beyond "not yet durable": the changes are
retried at the mode's next flush.  While a transaction is open no mode
flushes (a flush never shows part of a transaction).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from casstore.store.config import SchedulerStorageConfig

if TYPE_CHECKING:
    from casstore.runtime.image import NetworkImage

__all__ = ["BatchMode", "ImmediateMode", "IntervalMode", "ManualMode", "Mode", "TransactionalMode", "mode_for"]


class Mode:
    """When to flush.  ``batch_limit``: changes after which a write flushes at once (``inf``: never)."""

    name = "mode"
    batch_limit: float = math.inf
    #: Whether the image runs the background flusher (interval mode) — every mode runs the snapshot timer.
    background_flush = False
    #: Whether ``close()`` flushes by default.
    flush_on_close = True
    #: Whether the mode's own flushes go to the image's journal where the store has one.
    journals = False

    def cycle_done(self, image: NetworkImage) -> bool:
        """End of a propagation cycle: whether everything written so far is durable."""
        return image.durable()

    def transaction_done(self, image: NetworkImage) -> None:
        """The outermost transaction ended (its changes are in the dirty map)."""
        if image.pending_changes() >= self.batch_limit:
            image.persist()


class ImmediateMode(Mode):
    """``immediate``: ``cycle_done()`` flushes and returns ``True`` once the cycle is durable.

    Loss bound: nothing acknowledged — every change made before a ``cycle_done()``
    that returned ``True`` survives a crash; changes since the last such call may be lost.
    """

    name = "immediate"
    journals = True

    def cycle_done(self, image: NetworkImage) -> bool:
        return image.persist()

    def transaction_done(self, image: NetworkImage) -> None:
        image.persist()


class BatchMode(Mode):
    """``batch``: a flush after every ``batch_size`` changes (inside the write that makes the batch
    full) and at the end of a batch, whichever comes first.  End a batch with ``persist()`` (durable:
    a journal entry where the store has a journal) or ``flush()`` (durable and in the head).

    Loss bound: the unflushed batch — at most the changes since the last flush, fewer
    than ``batch_size`` of them; what the store holds is always the image as it was at a flush.
    """

    name = "batch"
    journals = True

    def __init__(self, batch_size: int) -> None:
        self.batch_limit = batch_size


class IntervalMode(Mode):
    """``interval``: a background flusher flushes every ``interval_ms`` (when something is dirty).

    Loss bound: at most the changes of the last ``interval_ms`` plus those of one flush in
    flight.  The flusher takes the dirty map at a fixed rate (every ``interval_ms``, or back to
    back when a flush takes longer), so with ``F`` the longest flush a change made more than
    ``max(interval_ms, F) + F`` before the crash is durable (``interval_ms + F`` while flushes are
    quicker than the interval), and the store always holds the image as it was at one taking.
    The flusher holds the image's lock only while it takes the dirty map (and, after another
    writer moved the head, while it swaps in the groups that writer changed), so the runtime is
    blocked for no longer than that; encoding and writing run beside it — on a bare ``lmdb://`` or
    ``file://`` store in a flush process (:mod:`casstore.runtime.worker`), off the runtime's GIL, with
    the same bound (``F`` is then the flush as the flusher thread waits for it).
    """

    name = "interval"
    background_flush = True

    def __init__(self, interval_ms: int) -> None:
        self.interval_ms = interval_ms


class ManualMode(Mode):
    """``manual``: only ``save()`` flushes (``close()`` does not).

    Loss bound: everything since the last ``save()`` that returned ``True``; after a crash the
    store holds exactly the image as of the last ``save()`` (or as of the one in progress).
    """

    name = "manual"
    flush_on_close = False


class TransactionalMode(Mode):
    """``transactional``: each outermost ``with image.transaction():`` is flushed as one commit on exit;
    an exception inside rolls the image back to the transaction's start and writes nothing.

    Loss bound: the transactions whose exit had not finished its flush; a crash never leaves
    part of a transaction in the store.  Nested transactions are savepoints: an exception in an
    inner one rolls back only the inner one's changes; nothing is written before the outermost
    exit.  Writes outside a transaction are persisted with the next transaction's commit.
    """

    name = "transactional"
    journals = True

    def transaction_done(self, image: NetworkImage) -> None:
        image.persist()


def mode_for(config: SchedulerStorageConfig) -> Mode:
    """The :class:`Mode` a scheduler config's ``persist_on`` names."""
    if config.persist_on == "immediate":
        return ImmediateMode()
    if config.persist_on == "batch":
        return BatchMode(config.batch_size)
    if config.persist_on == "interval":
        return IntervalMode(config.interval_ms)
    if config.persist_on == "manual":
        return ManualMode()
    return TransactionalMode()
