"""The write loop: each Bassline write is one compare-and-swap of a network's head; and batches.

Every write reads the network's head, opens a
:class:`~casstore.model.transaction.Transaction` on it, applies its edits, and
hands the new objects (children first) and the head move to
:meth:`ObjectStore.commit <casstore.store.base.ObjectStore.commit>` together,
one transaction where the backend has them.  On a conflict the write is
re-applied to the new head, so concurrent writers never lose an update; whole
groups and networks are prepared once, before the loop, and reused by every
attempt.  Concurrent writes from one process's threads share one commit
(:mod:`casstore.model.groupcommit`).  A :class:`Batch` collects several writes
to one network into one new head.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

from casstore.collector import collector_paused
from casstore.errors import NetworkNotFound, RefConflict, SerializationError, StorageError
from casstore.model import records
from casstore.model.events import Subscribers
from casstore.model.groupcommit import GroupCommit, QueuedWrite
from casstore.model.pairing import pair_replacements
from casstore.model.reads import NetworkReader
from casstore.model.refs import head_ref, journal_prefix, snapshots_prefix, tip_ref
from casstore.model.transaction import KeptWrites, PreparedGroup, Transaction, large_contents, prepare_group
from casstore.model.types import Contact, GroupState, NetworkState, check_id, check_str, check_time
from casstore.store.base import ObjectStore, PendingWrites, RefStore, RefUpdate

__all__ = ["FLUSH_BYTES", "MAX_ATTEMPTS", "Batch", "NetworkWriter", "delete_ref"]

MAX_ATTEMPTS = 64
#: On import, large contents (leaves: nothing they link to) are written early once they pass this many bytes;
#: the tree nodes follow in the commit.
FLUSH_BYTES = 32 << 20


class NetworkWriter:
    """Writes to the networks of one store: the Bassline write calls, each one compare-and-swap of a head.

    It shares the facade's :class:`~casstore.model.reads.NetworkReader` (so a root it builds is
    cached for the next read) and tells its :class:`~casstore.model.events.Subscribers` of every commit.
    """

    def __init__(self, objects: ObjectStore, reader: NetworkReader, subscribers: Subscribers) -> None:
        self.objects = objects
        self.blobs = objects.blobs
        self.refs = objects.refs
        self.reader = reader
        self.subscribers = subscribers
        self._groups = GroupCommit(self.commit_group)

    def write(self, network_id: str, apply: Callable[[Transaction], None], create: bool) -> None:
        """Apply ``apply`` to a transaction on the network's head and move the head to the result.

        Concurrent calls for one network from this process's threads share one
        commit (:mod:`casstore.model.groupcommit`); each returns once its write is
        durable, or raises what its own ``apply`` raised.  On a conflicting write
        from elsewhere the transaction is rebuilt on the new head and ``apply`` runs
        again (after a short random pause), up to :data:`MAX_ATTEMPTS` times.  The
        cyclic collector is paused meanwhile (:mod:`casstore.collector`).
        """
        check_id(network_id, "network_id")  # before it keys the queue
        with collector_paused():
            self._groups.run(network_id, apply, create)

    def commit_group(self, network_id: str, group: list[QueuedWrite]) -> None:
        """Apply ``group``'s writes in order to one transaction and commit it; marks each done or failed."""
        ref = head_ref(network_id)
        for attempt in range(MAX_ATTEMPTS):
            started = time.perf_counter()
            head = self.refs.recent(ref)  # a stale head only loses the compare-and-swap below
            tx, applied = self._apply_group(network_id, head, group)
            if not applied:
                return
            try:
                self.commit_transaction(tx, ref, head)
            except RefConflict:
                # the pause scales with what an attempt costs here (a remote store's round trips), so
                # writers over a slow link spread out instead of colliding again
                took = time.perf_counter() - started
                time.sleep(random.uniform(0, max(0.002, took) * min(attempt + 1, 20)))
                continue
            except Exception as exc:  # nothing was committed
                if len(applied) == 1 or _backend_failure(exc):  # every write of the group fails with it
                    for number, write in enumerate(applied):
                        write.fail(exc if number == 0 else _copied(exc))  # an exception per raising thread
                else:  # possibly one write's fault: each write alone, so the one that caused it reports it
                    for write in applied:
                        self.commit_group(network_id, [write])
                return
            for write in applied:
                write.done = True
            return
        for write in group:
            if not write.done:
                write.fail(
                    StorageError(f"network {network_id!r}: gave up after {MAX_ATTEMPTS} conflicting concurrent writes")
                )

    def _apply_group(
        self, network_id: str, head: bytes | None, group: list[QueuedWrite]
    ) -> tuple[Transaction, list[QueuedWrite]]:
        """A transaction on ``head`` with every write of ``group`` applied that does not fail.

        A write that raises is marked failed and the transaction is built again
        without it (it may have changed part of the transaction before raising).
        """
        while True:
            tx = Transaction(self.reader, network_id, head)
            exists, applied = head is not None, []
            for write in group:
                if write.done:
                    continue
                if not exists and not write.create:
                    write.fail(NetworkNotFound(f"network {network_id!r} not found"))
                    continue
                try:
                    write.apply(tx)
                except Exception as exc:
                    write.fail(exc)
                    break
                applied.append(write)
                exists = True
            else:
                return tx, applied

    def commit_transaction(
        self, tx: Transaction, ref: str, head: bytes | None, also: Sequence[RefUpdate] = ()
    ) -> bytes:
        """Build ``tx``'s new root and move the head ``ref`` from ``head`` to it: one compare-and-swap.

        Returns the new head (``head`` itself when nothing changed).  Raises
        :class:`~casstore.errors.RefConflict` if the head has moved (nothing is
        then written on a backend whose commit is one transaction); subscribers are
        told of the changed groups once the head moved.  ``also``: more ref moves
        in the same backend commit, made even when the head does not change (then
        guarded by the head staying where it is).
        """
        new_head = tx.commit()
        if new_head == head:
            if also and head is not None:
                self.objects.commit([], [RefUpdate(ref, head, head), *also])
            return new_head
        # the new objects (rewritten ones as deltas against what they replace), then the head: one
        # transaction where the backend has them
        deltas = self.objects.deltas_at_rest
        if deltas:
            pair_replacements(self.blobs, tx.pending, head, new_head, self.reader.held_bytes)
        self.objects.commit(tx.pending.frames(self.blobs if deltas else None), [RefUpdate(ref, head, new_head), *also])
        self.subscribers.committed(tx.network_id, head, new_head, tx.changed_groups())
        return new_head

    def save_contact_content(self, network_id: str, group_id: str, contact_id: str, content: Any) -> None:
        check_id(group_id, "group_id")
        check_id(contact_id, "contact_id")
        data = records.content_bytes(content)
        self.write(network_id, lambda tx: tx.set_content(group_id, contact_id, data), create=False)

    def save_group_state(self, network_id: str, group_id: str, state: GroupState) -> None:
        prepared = prepare_group(group_id, state)
        self.write(network_id, lambda tx: tx.put_group(group_id, prepared), create=True)

    def delete_group(self, network_id: str, group_id: str) -> None:
        check_id(group_id, "group_id")
        if self.reader.head_root(network_id) is not None:
            self.write(network_id, lambda tx: tx.delete_group(group_id), create=False)

    def delete_contact(self, network_id: str, group_id: str, contact_id: str) -> None:
        check_id(group_id, "group_id")
        check_id(contact_id, "contact_id")
        if self.reader.head_root(network_id) is not None:
            self.write(network_id, lambda tx: tx.delete_contact(group_id, contact_id), create=False)

    def save_network_state(self, network_id: str, state: NetworkState, keep_times: bool = False) -> None:
        self.save_network_states([(network_id, state)], keep_times)

    def save_network_states(self, states: Sequence[tuple[str, NetworkState]], keep_times: bool = False) -> None:
        """Every state validated and prepared before any head moves or any object is written.

        One state flushes its large contents early (bounded memory for a big import); several keep
        theirs for their commits, so an invalid last state leaves nothing of the first ones behind.
        """
        for network_id, _ in states:
            head_ref(network_id)  # a bad id is refused before prepare_network writes anything
        flush = len(states) == 1
        with collector_paused():
            ready = [(nid, network_fields(s, keep_times), self.prepare_network(s, flush)) for nid, s in states]
            for network_id, (extra, metadata, times), (prepared, current, root_group) in ready:
                self.write(network_id, _replacing(prepared, current, root_group, extra, metadata, times), create=True)

    def save_network_metadata(self, network_id: str, metadata: dict[str, Any]) -> None:
        data = records.encode_network_metadata(metadata)
        self.write(network_id, lambda tx: tx.set_metadata(data), create=False)

    def prepare_network(
        self, state: NetworkState, flush: bool = False
    ) -> tuple[list[tuple[str, PreparedGroup]], str, str]:
        """Every group validated and prepared, before anything is written.

        With ``flush``, the large contents are then written at once, in batches
        of :data:`FLUSH_BYTES`, so a big import stays bounded: those of the first
        groups are held until every group has proved valid, and those of the rest
        are let go and encoded again for the writing.  Without it they stay with
        the prepared groups and are written by the commit (a batch, which writes
        nothing if its block raises).
        """
        if not isinstance(state, NetworkState):
            raise SerializationError(f"expected a NetworkState, got {type(state).__name__}")
        check_str(state.current_group_id, "current_group_id")
        check_str(state.root_group_id, "root_group_id")
        prepared: list[tuple[str, PreparedGroup]] = []
        held = PendingWrites()
        let_go: list[GroupState] = []  # groups whose large contents are encoded again once all are valid
        for gid, group_state in state.groups.items():
            group = prepare_group(gid, group_state)
            prepared.append((gid, group))
            if not flush or not group.objects:
                continue
            if held.nbytes > FLUSH_BYTES:
                group.objects = KeptWrites()
                let_go.append(group_state)
            else:
                held.absorb(group.objects)  # whole groups only: children stay ahead of parents
        if flush:
            held.write_to(self.blobs)
            for group_state in let_go:
                held.absorb(large_contents(group_state))
                if held.nbytes > FLUSH_BYTES:
                    held.write_to(self.blobs)
            held.write_to(self.blobs)
        return prepared, state.current_group_id, state.root_group_id

    def batch(self, network_id: str) -> Block[Batch]:
        """Collect writes to one network and apply them atomically (one new head) at exit."""
        return Block(lambda: Batch(self, network_id), Batch.apply)

    def delete_network(self, network_id: str) -> None:
        """Remove the head, the snapshot tip, every snapshot ref and every journal entry (a live image's
        changes not yet folded, :mod:`casstore.runtime.journal`) in one commit (a no-op if none exists).

        Where commit is one transaction (LMDB) or journalled (``file://``), the
        network is gone whole or not at all.  Elsewhere (S3) the moves land in
        order, head first: a crash part-way leaves at worst snapshots of a network
        without a head (not listed; deleting it again removes them), never a head
        without its snapshots.  A ref moved meanwhile makes it read them again.
        """
        head_name, tip_name = head_ref(network_id), tip_ref(network_id)
        for attempt in range(MAX_ATTEMPTS):
            updates = [
                RefUpdate(name, value, None)
                for name, value in ((head_name, self.refs.get(head_name)), (tip_name, self.refs.get(tip_name)))
                if value is not None
            ]
            snapshot_refs = self.refs.list(snapshots_prefix(network_id))
            updates += [RefUpdate(name, snapshot_refs[name], None) for name in sorted(snapshot_refs)]
            # required=False: an entry a live image folds meanwhile is gone already, not a conflict
            entries = self.refs.list(journal_prefix(network_id))
            updates += [RefUpdate(name, entries[name], None, required=False) for name in sorted(entries)]
            if not updates:
                return
            try:
                self.objects.commit([], updates)
            except RefConflict:
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
                continue
            return
        raise StorageError(f"network {network_id!r}: gave up deleting after {MAX_ATTEMPTS} concurrent changes")


def _backend_failure(exc: Exception) -> bool:
    """Whether a failed commit failed for the backend's reasons (connection, permission, a read-only
    store), not for something one write holds (a value or id refused when the root was built)."""
    return isinstance(exc, StorageError) and not isinstance(exc, ValueError)


def _copied(exc: Exception) -> Exception:
    try:
        return copy.copy(exc)
    except Exception:  # an exception whose arguments do not rebuild it: shared (only its traceback mixes)
        return exc


def network_fields(
    state: NetworkState, keep_times: bool
) -> tuple[bytes | None, bytes | None, tuple[str | None, str | None] | None]:
    """A state's encoded extra fields and metadata, and (with ``keep_times``) its times to store as they are."""
    if not isinstance(state, NetworkState):
        raise SerializationError(f"expected a NetworkState, got {type(state).__name__}")
    extra = records.encode_network_extra(state.extra)
    metadata = records.encode_network_metadata(state.metadata)
    if not keep_times:
        return extra, metadata, None
    for name in ("created_at", "updated_at"):
        check_time(getattr(state, name), name)
    created, updated = (None if t is None else records.encode_time(t) for t in (state.created_at, state.updated_at))
    return extra, metadata, (created, updated)


def delete_ref(refs: RefStore, name: str, value: bytes) -> None:
    """Delete ref ``name`` whatever it has moved to meanwhile (done once it is absent)."""
    while True:
        try:
            refs.delete(name, value)
            return
        except RefConflict:
            current = refs.get(name)
            if current is None:
                return
            value = current


class Batch:
    """Writes collected by :meth:`NetworkStore.batch`; each is validated and encoded when called.

    Blind writes: a batch cannot read, and on a conflicting concurrent write its
    recorded writes are re-applied to the new head (a value computed from an
    earlier read is written as it was).  For read-modify-write use
    :class:`~casstore.model.transactions.NetworkTransaction`.
    """

    #: What this object is called in its errors, and how it ends.
    kind = "batch"
    ends = "applied or abandoned"

    def __init__(self, writer: NetworkWriter, network_id: str) -> None:
        self.writer = writer
        self.network_id = network_id
        self._ops: list[Callable[[Transaction], None]] = []
        self._groups: list[str] = []  # groups whose contents are set, looked up together at apply
        self._create = False
        self._only_deletes = True  # a batch of deletes alone, on a network that does not exist, does nothing
        self._open = True

    def save_contact_content(self, network_id: str, group_id: str, contact_id: str, content: Any) -> None:
        self._same_network(network_id)
        check_id(group_id, "group_id")
        check_id(contact_id, "contact_id")
        data = records.content_bytes(content)
        self._record(lambda tx: tx.set_content(group_id, contact_id, data), group_id=group_id)

    def save_group_state(self, network_id: str, group_id: str, state: GroupState) -> None:
        self._same_network(network_id)
        prepared = prepare_group(group_id, state)
        self._record(lambda tx: tx.put_group(group_id, prepared), create=True)

    def save_contact(self, network_id: str, group_id: str, contact: Contact) -> None:
        """Replace (or create) one contact whole: content, blend mode and every other field."""
        self._same_network(network_id)
        check_id(group_id, "group_id")
        if not isinstance(contact, Contact):
            raise SerializationError(f"contact: expected a Contact, got {type(contact).__name__}", "contact")
        check_id(contact.id, "contact.id")
        objects = PendingWrites()
        record = records.encode_contact(contact, contact.id, group_id, objects)
        kept = KeptWrites.taking(objects)
        cid = contact.id

        def op(tx: Transaction) -> None:
            kept.copy_into(tx.pending)
            tx.put_contact(group_id, cid, record)

        self._record(op, group_id=group_id)

    def delete_group(self, network_id: str, group_id: str) -> None:
        self._same_network(network_id)
        check_id(group_id, "group_id")
        self._record(lambda tx: tx.delete_group(group_id), deletes=True)

    def delete_contact(self, network_id: str, group_id: str, contact_id: str) -> None:
        self._same_network(network_id)
        check_id(group_id, "group_id")
        check_id(contact_id, "contact_id")
        self._record(lambda tx: tx.delete_contact(group_id, contact_id), group_id=group_id, deletes=True)

    def save_network_state(self, network_id: str, state: NetworkState, keep_times: bool = False) -> None:
        self._same_network(network_id)
        extra, metadata, times = network_fields(state, keep_times)
        prepared, current, root_group = self.writer.prepare_network(state)
        self._record(lambda tx: tx.replace_network(prepared, current, root_group, extra, metadata, times), create=True)

    def save_network_metadata(self, network_id: str, metadata: dict[str, Any]) -> None:
        self._same_network(network_id)
        data = records.encode_network_metadata(metadata)
        self._record(lambda tx: tx.set_metadata(data))

    def _record(
        self,
        op: Callable[[Transaction], None],
        *,
        group_id: str | None = None,
        create: bool = False,
        deletes: bool = False,
    ) -> None:
        """Keep one validated write; ``group_id``: a group it looks up, ``create``: it may create the network,
        ``deletes``: it only deletes (a no-op on a network that does not exist)."""
        self._ops.append(op)
        if group_id is not None:
            self._groups.append(group_id)
        self._create = self._create or create
        self._only_deletes = self._only_deletes and deletes

    def _same_network(self, network_id: str) -> None:
        self._check_open()
        if network_id != self.network_id:
            raise SerializationError(f"this {self.kind} writes network {self.network_id!r}, not {network_id!r}")

    def apply(self) -> None:
        """Apply every recorded write as one new head; the batch is over after it (later calls raise)."""
        self._check_open()
        self._open = False
        if not self._ops:
            return
        ops = list(self._ops)
        groups = list(self._groups)

        def run(tx: Transaction) -> None:
            tx.prefetch_groups(groups)
            for op in ops:
                op(tx)

        try:
            self.writer.write(self.network_id, run, create=self._create)
        except NetworkNotFound:
            if not self._only_deletes:
                raise  # deletes alone from a network that does not exist: nothing to do, as outside a batch

    def close(self) -> None:
        """Forget the recorded writes without applying them; the batch is over."""
        self._open = False

    def _check_open(self) -> None:
        if not self._open:
            raise StorageError(f"the {self.kind} on network {self.network_id!r} is over ({self.ends})")


_View = TypeVar("_View", bound=Batch)


class Block(Generic[_View]):
    """The with-block of a batch or a transaction: the view is made as the block is entered, finished
    (applied, committed) when it ends and abandoned if it raises; entered once (a second ``with`` on it is
    refused: ask the store for a new one)."""

    def __init__(self, make: Callable[[], _View], finish: Callable[[_View], None]) -> None:
        self._make = make
        self._finish = finish
        self._view: _View | None = None

    def __enter__(self) -> _View:
        if self._view is not None:
            raise StorageError(f"this {self._view.kind} block was used already: open a new one from the store")
        self._view = self._make()
        return self._view

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        assert self._view is not None
        if kind is None:
            self._finish(self._view)
        else:
            self._view.close()


def _replacing(*replacement: Any) -> Callable[[Transaction], None]:
    """The write that replaces a network by a prepared state (bound now, for a loop over several)."""
    return lambda tx: tx.replace_network(*replacement)
