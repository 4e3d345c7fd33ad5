"""How a live image persists: flushes to the head, journal entries, folds, and taking in other writers' changes.

:class:`Persisting` is the part of :class:`~casstore.runtime.image.NetworkImage`
that moves the head (its state and locks are the image's; the module
docstring of :mod:`casstore.runtime.image` says what a flush does).  Three
locks, always taken in this order: ``_flush_lock`` (one taking of the dirty
map at a time: a flush or a journal entry), ``_fold_lock`` (one head move at
a time: a flush, a fold, a refresh, a snapshot) and ``_lock`` (the image's
state, held only for bookkeeping).  A fold holds only the fold lock, so
journal entries keep being written while the background thread folds the
earlier ones; it folds a prefix of the entries, and new ones are only ever
added at the end.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from casstore.collector import collector_paused
from casstore.errors import StorageError
from casstore.model import Contact, GroupState, NetworkState, NetworkStore
from casstore.runtime.flush import CommitResult, Rejected, copy_group, read_changes
from casstore.runtime.flusher import Flusher
from casstore.runtime.journal import Journal, JournalEntry, fold
from casstore.runtime.modes import Mode
from casstore.runtime.retention import AutoSnapshots
from casstore.runtime.status import ImageStatus
from casstore.runtime.undo import UndoLog
from casstore.runtime.worker import FlushProcess, Unpicklable
from casstore.store.config import SchedulerStorageConfig

__all__ = ["MAX_RETRY_PAUSE", "RETRY_PAUSE", "ErrorCallback", "ImageLock", "Persisting"]

ErrorCallback = Callable[[StorageError], None]
#: After a failed flush, a full batch waits this long (seconds, doubling per failure up to the maximum)
#: before the next automatic flush, so a down backend does not slow every write; explicit flushes
#: (``flush``, ``save``, ``cycle_done``, the interval flusher) always try.
RETRY_PAUSE = 0.1
MAX_RETRY_PAUSE = 5.0


class ImageLock:
    """One of an image's flush locks: a thread that already holds it (a callback run by the image's
    own commit, such as a store subscriber, calling back into the image) gets a ``StorageError``
    instead of waiting for itself forever."""

    def __init__(self, what: str) -> None:
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._what = what

    def __enter__(self) -> ImageLock:
        if self._owner == threading.get_ident():
            raise StorageError(
                f"the image is in the middle of {self._what} in this thread (a callback of its own commit "
                "called back into it): call it once the callback has returned"
            )
        self._lock.acquire()
        self._owner = threading.get_ident()
        return self

    def __exit__(self, *exc: object) -> None:
        self._owner = None
        self._lock.release()


class Persisting:
    """The flushing half of a live image (see the module docstring); its attributes are set by the image."""

    store: NetworkStore
    network_id: str
    config: SchedulerStorageConfig
    mode: Mode
    on_error: ErrorCallback | None
    snapshots: AutoSnapshots
    _journal: Journal | None
    _unfolded: list[JournalEntry]
    _worker: FlushProcess | None
    _flusher: Flusher | None
    _lock: threading.Lock
    _flush_lock: ImageLock
    _fold_lock: ImageLock
    _reports: deque[StorageError]
    _dirty: dict[tuple[str, str], Any]
    _group_ops: set[str]
    _changes: int
    _in_flight: bool
    _appending: dict[tuple[str, str], Any]
    _retry_at: float
    _undo: UndoLog
    _status: ImageStatus
    _state: NetworkState
    _members: dict[str, dict[str, Contact]]
    _head: str | None

    def flush(self) -> bool:
        """Write the dirty map, and every journal entry not yet folded, as one new head; ``True`` if the
        image is then durable.

        A backend failure keeps every change dirty (and every entry in the journal) and returns
        ``False`` (reported by ``on_error`` and :meth:`status`).  Refused (``StorageError``) inside a
        transaction.
        """
        try:
            return self._flush(automatic=False)
        finally:
            self._deliver()

    def persist(self) -> bool:
        """Make every change so far durable; ``True`` once it is.  With a journal: one journal entry
        (folded into the head soon after, by the background thread); without: :meth:`flush`.

        What the modes call (``cycle_done``, a full batch, a transaction's end).  Whole groups put
        or deleted are flushed to the head.  Refused (``StorageError``) inside a transaction.
        """
        if self._journal is None:
            return self.flush()
        try:
            return self._persist_entry()
        finally:
            self._deliver()

    def _persist_entry(self) -> bool:
        """:meth:`persist` with a journal: one entry of the dirty map (whole groups: a flush)."""
        assert self._journal is not None
        with self._flush_lock:
            with self._lock:
                self._refuse_in_transaction()
                if not self._dirty and not self._group_ops:
                    return True
                whole = bool(self._group_ops)
                if not whole:
                    contents, self._dirty = self._dirty, {}
                    self._appending = contents  # the image's own until the entry holds them (_own_changes)
                    self._changes = 0
                    self._in_flight = True
            if whole:
                with self._fold_lock:
                    return self._flush_held(automatic=False, take_dirty=True)
            started = time.monotonic()
            try:
                entry, rejected = self._journal.append(contents)
            except BaseException as exc:  # nothing of the dirty map may be lost, whatever failed (Ctrl-C too)
                try:
                    return self._restore(contents, set(), exc)
                finally:
                    self._appending = {}  # back in the dirty map by now
            with self._lock:
                if entry is not None:
                    self._unfolded.append(entry)
                self._appending = {}
                self._in_flight = False
                self._retry_at = 0.0
                self._status.journalled(len(contents), time.monotonic() - started, rejected)
                durable = not self._dirty and not self._group_ops
        for item in rejected:
            self._report(StorageError(f"not persisted: {_describe(item)}"))
        if entry is not None and self._flusher is not None:
            self._flusher.wake()
        return durable and not rejected

    def _refuse_in_transaction(self) -> None:
        if self._undo.active:
            raise StorageError("flush inside an image transaction: leave the transaction to persist it")

    def _flush(self, automatic: bool) -> bool:
        """:meth:`flush`; an ``automatic`` one (the background thread's) skips while a transaction is open."""
        with self._flush_lock, self._fold_lock:
            return self._flush_held(automatic, take_dirty=True)

    def _fold(self) -> bool:
        """The background thread's fold: the journal entries alone (not the dirty map) into the head."""
        with self._fold_lock:
            return self._flush_held(automatic=True, take_dirty=False)

    def _flush_held(self, automatic: bool, take_dirty: bool) -> bool:
        """One head move (the fold lock held; with ``take_dirty``, the flush lock too).

        Returns, for a flush, whether the image is then durable; for a fold (not ``take_dirty``),
        whether the fold committed (with nothing rejected)."""
        with self._lock:
            if self._undo.active and take_dirty:
                if automatic:
                    return False
                self._refuse_in_transaction()
            entries = list(self._unfolded)
            contents: dict[tuple[str, str], Any] = {}
            group_ids: set[str] = set()
            if take_dirty:
                contents, self._dirty = self._dirty, {}
                group_ids, self._group_ops = self._group_ops, set()
                self._changes = 0
                self._in_flight = bool(contents or group_ids)
            if not (contents or group_ids or entries):
                return True
            groups = {
                gid: (None if gid not in self._state.groups else copy_group(self._state.groups[gid]))
                for gid in group_ids
            }
            known = self._head
        started = time.monotonic()
        try:
            with collector_paused():  # see casstore.collector: a third to a half of a large flush
                result = self._commit(groups, contents, entries, automatic)
                if result.start_head != known:  # another writer moved the head: take in its changes
                    head, changed = read_changes(self.store, self.network_id, known)
                else:
                    head, changed = result.end_head, {}
        except BaseException as exc:  # nothing of the dirty map may be lost, whatever failed (Ctrl-C too)
            return self._restore(contents, group_ids, exc)
        with self._lock:
            del self._unfolded[: len(entries)]  # entries are only ever added at the end
            self._take_in(changed)
            self._head = head
            self._in_flight = False
            self._retry_at = 0.0
            seconds = time.monotonic() - started
            self._status.flushed(len(contents), len(groups), seconds, head, result.rejected, bool(entries))
            durable = not self._dirty and not self._group_ops
        for rejected in result.rejected:
            self._report(StorageError(f"not persisted: {_describe(rejected)}"))
        self._take_snapshot()
        return (durable or not take_dirty) and not result.rejected  # a fold: whether it committed

    def _restore(self, contents: dict[tuple[str, str], Any], group_ids: set[str], exc: BaseException) -> bool:
        """A failed flush's changes back in the dirty map (under newer values); reports and returns
        ``False`` for a ``StorageError``, re-raises anything else."""
        with self._lock:
            # back under the newer values set meanwhile; not into groups now written whole
            self._dirty = {
                **{key: value for key, value in contents.items() if key[0] not in self._group_ops},
                **self._dirty,
            }
            self._group_ops |= group_ids
            self._changes += len(contents) + len(group_ids)
            self._in_flight = False
            if isinstance(exc, StorageError):
                self._status.failed(exc)
                pause = min(RETRY_PAUSE * 2 ** (self._status.failures - 1), MAX_RETRY_PAUSE)
                self._retry_at = time.monotonic() + pause
        if not isinstance(exc, StorageError):
            raise exc
        self._report(exc)
        return False

    def _commit(
        self,
        groups: dict[str, GroupState | None],
        contents: dict[tuple[str, str], Any],
        entries: list[JournalEntry],
        automatic: bool,
    ) -> CommitResult:
        """One flush's commit (with the journal entries it folds): the background thread's in the
        flush process if there is one."""
        if automatic and self._worker is not None:
            with contextlib.suppress(Unpicklable):  # a value pickle cannot take: flushed here, rejected here
                return self._worker.commit(self.network_id, groups, contents, entries)
        return fold(self.store, self.network_id, entries, groups, contents)

    def _auto_flush(self) -> None:
        """A flush the mode asked for (a full batch): after a failure, not before the retry pause."""
        if time.monotonic() >= self._retry_at:
            self.persist()

    def refresh(self) -> None:
        """Take in what other writers committed since the image last read or flushed (its own unflushed
        changes win)."""
        with self._flush_lock, self._fold_lock:
            if self._undo.active:
                raise StorageError("refresh inside an image transaction: leave the transaction first")
            head, changed = read_changes(self.store, self.network_id, self._head)
            with self._lock:
                self._take_in(changed)
                self._head = head

    def _take_in(self, changed: dict[str, GroupState | None]) -> None:
        """Another writer's groups, except where the image has unflushed changes; under the lock."""
        own = self._own_changes() if changed else set()
        for gid, stored in changed.items():
            if gid in self._group_ops:
                continue
            if stored is None:
                self._state.groups.pop(gid, None)
                self._members.pop(gid, None)
                self._dirty = {key: value for key, value in self._dirty.items() if key[0] != gid}
                continue
            local = self._members.get(gid, {})
            for cid in [cid for g, cid in own if g == gid]:
                mine = local.get(cid)
                if mine is not None:
                    if cid not in stored.contacts:
                        stored.group.contact_ids.append(cid)
                    stored.contacts[cid] = mine
            self._state.groups[gid] = stored
            self._members[gid] = stored.contacts

    def _own_changes(self) -> set[tuple[str, str]]:
        """The contacts the image changed that the head does not hold yet (dirty, being journalled — a
        fold may run meanwhile — or journalled); under the lock."""
        own = set(self._dirty)
        own.update(self._appending)
        for entry in self._unfolded:
            own.update(entry.contents or ())
        return own

    def _take_snapshot(self) -> None:
        try:
            self.snapshots.maybe_take(self._head)
        except StorageError as exc:
            with self._lock:
                self._status.failed(exc)
            self._report(exc)
        with self._lock:
            self._status.auto_snapshots = self.snapshots.taken

    def _tick(self) -> None:
        """The background thread's work: an interval flush (interval mode), then the snapshot timer."""
        try:
            if self.mode.background_flush:
                self._flush(automatic=True)
            elif self._unfolded:
                self._fold()
            if self.snapshots.due(self._head):
                with self._fold_lock:
                    self._take_snapshot()
        finally:
            self._deliver()

    def _report(self, exc: StorageError) -> None:
        """Queue ``exc`` for ``on_error``: it is called once the locks are let go (:meth:`_deliver`), so a
        callback may call back into the image (flush, close) without deadlocking it."""
        if self.on_error is not None:
            self._reports.append(exc)

    def _deliver(self) -> None:
        """Call ``on_error`` with the queued failures; at the end of every entry point, no lock held."""
        while self._reports and self.on_error is not None:
            try:
                exc = self._reports.popleft()
            except IndexError:  # another thread delivered it
                return
            with contextlib.suppress(Exception):  # a callback's failure must not stop the runtime
                self.on_error(exc)


def _describe(rejected: Rejected) -> str:
    where = rejected.group_id if rejected.contact_id is None else f"{rejected.group_id}/{rejected.contact_id}"
    return f"{where}: {rejected.reason}"
