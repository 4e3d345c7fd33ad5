"""The live image of one running network: memory-speed reads and writes, a dirty map, coalesced flushes.

A :class:`NetworkImage` loads a network once (groups, contacts, wires, one
consistent head) and then serves every read from memory.  A write changes the
image and puts the value in the dirty map (contact → its newest value: two dict
stores under a lock, no encoding, no validation beyond the group existing); a
contact changed 100 times between flushes is written once.  A flush
(:mod:`casstore.runtime.flush`) takes the dirty map under the lock (a swap, not
a copy: the lock is held for no work per dirty contact) and
writes it as one head compare-and-swap, validating each value then: a bad
value is reported (``status().rejected``, the ``on_error`` callback) and the
rest is written.  *When* it flushes is the mode's business
(:mod:`casstore.runtime.modes`).

Where the store's commit is one transaction, the flushes ``immediate``,
``batch`` and ``transactional`` make by themselves (:meth:`NetworkImage.persist`)
are journal entries instead, durable at once and folded into the head by the
background thread (:mod:`casstore.runtime.journal`, :mod:`casstore.runtime.flushing`).

In ``interval`` mode on a bare ``lmdb://`` or ``file://`` store the background
flushes (and the journal's folds) commit in a flush process (:mod:`casstore.runtime.worker`); every flush
runs with the cyclic collector paused (:mod:`casstore.collector`).

A flush that fails (the backend is down) keeps its changes dirty: they are
retried at the next flush, the failure is reported through ``on_error`` and
:meth:`NetworkImage.status`, and reads and writes go on.

Concurrent writers: when another process moved the head, the flush's writes
are applied to the new head (blind writes, contact by contact), and the image
takes in the other writer's changes (the groups that differ between the head
it knew and the new one, re-read), except where it has unflushed changes of
its own.

Values are stored by reference: treat a value given to :meth:`set` as
immutable afterwards (the flush encodes it later, on another thread in
``interval`` mode).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from casstore.errors import GroupNotFound, InvalidConfig, SerializationError, StorageError
from casstore.model import Contact, GroupState, NetworkState, NetworkStore
from casstore.model.types import check_group_state, check_id
from casstore.runtime.flush import copy_group
from casstore.runtime.flusher import Flusher
from casstore.runtime.flushing import ErrorCallback, ImageLock, Persisting
from casstore.runtime.journal import Journal, JournalEntry, journal_supported, recover_journal
from casstore.runtime.modes import Mode, mode_for
from casstore.runtime.retention import AutoSnapshots
from casstore.runtime.status import ImageStatus
from casstore.runtime.undo import UndoLog
from casstore.runtime.worker import flush_process_for
from casstore.store.config import SchedulerStorageConfig

__all__ = ["NetworkImage"]

#: Seconds between the background thread's ticks when only the journal needs it: a fold runs as soon
#: as an entry is written, and a tick retries one that failed (or that found nothing new).
FOLD_RETRY = 1.0


class NetworkImage(Persisting):
    """One network held in memory and persisted by a mode (see the module docstring).

    ``NetworkImage(store, network_id, config)`` loads the network (an absent one starts
    empty and is created by the first flush).  ``on_error`` is called with each flush failure
    and each rejected value (a :class:`~casstore.errors.StorageError`), from the thread that
    flushed.  ``flush_process``: whether the background flusher commits in a child process
    (:mod:`casstore.runtime.worker`, off the runtime's GIL); by default it does in ``interval`` mode on a
    bare (unwrapped) ``lmdb://`` or ``file://`` store, the stores a second process opens by URL, and
    so do the journal's folds.  ``journal``: whether the mode's own flushes write journal entries
    (:mod:`casstore.runtime.journal`); by default they do in ``immediate``, ``batch`` and
    ``transactional`` mode wherever the store's commit is one transaction.  Before loading, the
    image folds any entries a crashed image left.  Thread-safe; use as a context manager to
    :meth:`close` it.
    """

    def __init__(
        self,
        store: NetworkStore,
        network_id: str,
        config: SchedulerStorageConfig | None = None,
        *,
        on_error: ErrorCallback | None = None,
        flush_process: bool | None = None,
        journal: bool | None = None,
    ) -> None:
        check_id(network_id, "network_id")
        if not isinstance(store, NetworkStore):
            raise SerializationError(f"store: expected a NetworkStore (casstore.open_store(url)), not {store!r:.80}")
        if config is not None and not isinstance(config, SchedulerStorageConfig):
            raise InvalidConfig(f"config: expected a SchedulerStorageConfig, not {config!r}")
        if on_error is not None and not callable(on_error):
            raise SerializationError(f"on_error: expected a callable, not {on_error!r:.80}")
        self.store = store
        self.network_id = network_id
        self.config = config or SchedulerStorageConfig()
        self.mode: Mode = mode_for(self.config)
        self.on_error = on_error
        supported = journal_supported(store)
        if journal and not supported:
            raise StorageError(f"journal: {store.url} cannot hold one (its commit is not one transaction)")
        self._journal = Journal(store, network_id) if (self.mode.journals and supported) or journal else None
        self._unfolded: list[JournalEntry] = []  # entries committed and not yet folded into the head, oldest first
        self._worker = flush_process_for(store, self.mode.background_flush or self._journal is not None, flush_process)
        self._lock = threading.Lock()  # the image's state and dirty map
        self._flush_lock = ImageLock("a flush")  # one taking of the dirty map at a time (a flush, a journal entry)
        self._fold_lock = ImageLock("a head move")  # one head move at a time (a flush, a fold, a refresh, a snapshot)
        self._reports: deque[StorageError] = deque()  # failures for on_error, told once no lock is held
        #: (group, contact) -> the newest value set since the last flush (what the flush writes)
        self._dirty: dict[tuple[str, str], Any] = {}
        self._group_ops: set[str] = set()  # groups put or deleted whole since the last flush
        self._changes = 0
        self._in_flight = False  # a flush has taken the dirty map and not yet committed it
        self._appending: dict[tuple[str, str], Any] = {}  # a dirty map taken for a journal entry being written
        self._retry_at = 0.0  # after a failed flush, automatic flushes wait until then (monotonic)
        self._limit = self.mode.batch_limit
        self._undo = UndoLog()
        self._status = ImageStatus(network_id=network_id, mode=self.mode.name)
        self._closed = False
        if supported:
            recover_journal(store, network_id)
        with store.transaction(network_id) as view:  # one consistent head for the whole load
            state = view.load_network_state(network_id)
            self._head = view.start_head
        self._state = state or NetworkState()
        self._members = {gid: gs.contacts for gid, gs in self._state.groups.items()}
        self.snapshots = AutoSnapshots(store, network_id, self.config.snapshot_interval, self.config.max_snapshots)
        self.snapshots.start(self._head)
        self._flusher: Flusher | None = None
        periods = [self.config.interval_ms / 1000] if self.mode.background_flush else []
        if self.config.snapshot_interval is not None:
            periods.append(self.config.snapshot_interval / 1000)
        if periods or self._journal is not None:
            prepare = None if self._worker is None else self._worker.start
            period = min(periods) if periods else FOLD_RETRY  # with a journal only: a failed fold's retry
            self._flusher = Flusher(self._tick, period, f"casstore-image-{network_id}", prepare)
            self._flusher.start()

    # ---------------------------------------------------------------- reads (memory only)

    def get(self, group_id: str, contact_id: str) -> Any:
        """A contact's content (``None`` for an absent contact or group)."""
        try:
            return self._members[group_id][contact_id].content
        except KeyError:
            return None
        except TypeError:  # an unhashable id: the usual error, off the hot path
            _check_ids(group_id, contact_id)
            raise

    def contact(self, group_id: str, contact_id: str) -> Contact | None:
        """A contact's whole record (the image's own object: do not change it), or ``None``."""
        try:
            contacts = self._members.get(group_id)
            return None if contacts is None else contacts.get(contact_id)
        except TypeError:
            _check_ids(group_id, contact_id)
            raise

    def group(self, group_id: str) -> GroupState | None:
        """A group with its contacts and wires (the image's own objects: change them through the image)."""
        try:
            return self._state.groups.get(group_id)
        except TypeError:
            _check_ids(group_id)
            raise

    @property
    def state(self) -> NetworkState:
        """The whole network as the image has it (its own objects: change them through the image)."""
        return self._state

    @property
    def head(self) -> str | None:
        """The printable id of the head the image last read or flushed (``None``: not stored yet)."""
        return self._head

    # ---------------------------------------------------------------- writes (memory only)

    def set(self, group_id: str, contact_id: str, value: Any) -> None:
        """Set one contact's content (creating the contact in its group if absent); flushed later.

        :class:`~casstore.errors.GroupNotFound` if the image has no such group.  The value is
        validated at the flush (a bad one is reported then, see :meth:`status`).
        """
        # the hot path of a running network: an existing contact outside a transaction is one
        # attribute store and one dict store under the lock; everything else takes _set_other
        with self._lock:
            if self._closed:
                raise self._closed_error()
            try:
                contacts = self._members.get(group_id)
                contact = None if contacts is None else contacts.get(contact_id)
            except TypeError:
                _check_ids(group_id, contact_id)
                raise
            if contact is None or self._undo.active:
                self._set_other(contacts, group_id, contact_id, contact, value)
            else:
                contact.content = value
                self._dirty[group_id, contact_id] = value
            self._changes += 1
            if self._changes < self._limit or self._undo.active:
                return
        self._auto_flush()

    def _set_other(
        self, contacts: dict[str, Contact] | None, group_id: str, contact_id: str, contact: Contact | None, value: Any
    ) -> None:
        """:meth:`set` of a new contact, or inside a transaction; under the lock."""
        if contacts is None:
            raise GroupNotFound(f"group {group_id!r} not found in network {self.network_id!r}")
        key = (group_id, contact_id)
        if self._undo.active:
            # a flush in flight may fail and put the value back: a rollback must then keep it dirty
            self._undo.contact(key, contact, key in self._dirty or self._in_flight)
        if contact is None:
            check_id(contact_id, "contact_id")
            contacts[contact_id] = Contact(contact_id, group_id, value)
            self._state.groups[group_id].group.contact_ids.append(contact_id)
        else:
            contact.content = value
        self._dirty[key] = value

    def put_group(self, group_id: str, state: GroupState) -> None:
        """Add or replace a whole group (its fields, contacts and wires); flushed later."""
        check_id(group_id, "group_id")
        check_group_state(state, "state")
        with self._lock:
            if self._closed:
                raise self._closed_error()
            self._record_group(group_id)
            self._state.groups[group_id] = state
            self._members[group_id] = state.contacts
            self._changes += 1
            full = self._changes >= self._limit and not self._undo.active
        if full:
            self._auto_flush()

    def delete_group(self, group_id: str) -> None:
        """Remove a group with its contacts and wires; its subgroups move up to its parent (as the store does)."""
        check_id(group_id, "group_id")
        with self._lock:
            if self._closed:
                raise self._closed_error()
            state = self._state.groups.get(group_id)
            if state is None:
                return
            parent_id, children = state.group.parent_id, list(state.group.subgroup_ids)
            parent = None if parent_id in (None, group_id) else self._state.groups.get(parent_id)
            if parent is not None:
                self._record_group(parent.group.id)
                siblings = parent.group.subgroup_ids
                moved = [c for c in children if c != parent.group.id and c not in siblings]
                at = siblings.index(group_id) if group_id in siblings else len(siblings)
                parent.group.subgroup_ids = [*siblings[:at], *moved, *siblings[at + 1 :]]
            for child_id in children:
                child = self._state.groups.get(child_id)
                if child is not None and child_id not in (group_id, parent_id):
                    self._record_group(child_id)
                    child.group.parent_id = None if parent is None else parent.group.id
            self._record_group(group_id)
            del self._state.groups[group_id]
            del self._members[group_id]
            self._changes += 1

    def _record_group(self, group_id: str) -> None:
        """Mark a group to be written whole (its dirty contacts with it); under the lock."""
        dirty_here = {key for key in self._dirty if key[0] == group_id}
        if self._undo.active:
            old = self._state.groups.get(group_id)
            self._undo.group(
                group_id,
                None if old is None else copy_group(old),
                group_id in self._group_ops or self._in_flight,
                dirty_here,
            )
        for key in dirty_here:
            del self._dirty[key]
        self._group_ops.add(group_id)

    # ---------------------------------------------------------------- transactions

    @contextmanager
    def transaction(self) -> Iterator[NetworkImage]:
        """Changes inside are seen at once by the runtime; nothing is flushed until the outermost block ends.

        Leaving the outermost block hands its changes to the mode (``transactional``: flushed as
        one commit).  An exception rolls the image back to the block's start (a nested block: to
        its own start) and propagates; nothing of the rolled-back changes is ever written.
        A transaction covers every write to the image while it is open, from any thread.
        """
        with self._lock:
            self._undo.begin()
        try:
            yield self
        except BaseException:
            with self._lock:
                self._undo.rollback(self)
            raise
        with self._lock:
            outermost = self._undo.commit()
        if outermost:
            self.mode.transaction_done(self)

    # ---------------------------------------------------------------- persistence

    def cycle_done(self) -> bool:
        """End of a propagation cycle.  ``immediate``: flush, and ``True`` once the cycle is durable;
        other modes: whether everything written so far is durable (nothing is flushed)."""
        return self.mode.cycle_done(self)

    def save(self) -> bool:
        """Flush now (the only flush in ``manual`` mode); ``True`` once every change so far is durable."""
        return self.flush()

    # ---------------------------------------------------------------- state of persistence

    def pending_changes(self) -> int:
        """Changes made since the last flush (every write counted, before coalescing)."""
        return self._changes

    def durable(self) -> bool:
        """Whether every change made so far has been flushed (a flush in progress has not)."""
        return not self._dirty and not self._group_ops and not self._in_flight

    def status(self) -> ImageStatus:
        """A copy of the persistence figures: dirty count, flushes, writes, the last error, rejected values."""
        with self._lock:
            return self._status.copy(
                dirty=len(self._dirty) + len(self._group_ops), head=self._head, journal_entries=len(self._unfolded)
            )

    def close(self, flush: bool | None = None) -> bool:
        """Stop the background thread, then flush (by default unless the mode is ``manual``); idempotent.

        Returns whether the image was durable when closed.  The store stays open (it is the caller's).
        After it, reads still answer from memory and writes raise :class:`~casstore.errors.StorageError`;
        ``close(flush=True)`` again flushes what a ``close(flush=False)`` left.
        """
        if self._closed:
            return self.flush() if flush else self.durable()
        with self._lock:
            self._closed = True  # from now on writes are refused: nothing set after close is left unwritten
        if self._flusher is not None:
            self._flusher.stop()
        if self._worker is not None:
            self._worker.close()
        if self.mode.flush_on_close if flush is None else flush:
            return self.flush()
        return self.durable()

    def _closed_error(self) -> StorageError:
        return StorageError(f"the image of network {self.network_id!r} is closed: open a new one to write")

    def __enter__(self) -> NetworkImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_ids(group_id: object, *contact_id: object) -> None:
    """The ``StorageError`` a wrong-typed id deserves (raised where a lookup tripped over it)."""
    check_id(group_id, "group_id")
    for cid in contact_id:
        check_id(cid, "contact_id")
