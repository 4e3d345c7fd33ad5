"""The facade: :class:`NetworkStore`, Bassline's ``NetworkStorage`` interface in Python names.

A network's state is one root object (see :mod:`casstore.model.records`) named
by the ref ``networks/<id>/head`` (the ref layout is :mod:`casstore.model.refs`).
The store owns no logic of its own; it wires together, over one
:class:`~casstore.store.base.ObjectStore`:

* :mod:`~casstore.model.reads` — heads, roots, states, and the caches of decoded objects;
* :mod:`~casstore.model.writes` — the compare-and-swap write loop and batches
  (on :mod:`~casstore.model.transaction`, which builds each new root);
* :mod:`~casstore.model.transactions` — transactions with reads, for read-modify-write;
* :mod:`~casstore.model.query` — queries through the attribute index;
* :mod:`~casstore.model.snapshots` — named past states;
* :mod:`~casstore.model.diff` — changes between two states;
* :mod:`~casstore.model.events` — subscribers told of each committed change;
* :mod:`~casstore.model.history` — one contact whole, now and across snapshots;
* :mod:`~casstore.model.stats` — per-network figures.

It is itself an :class:`~casstore.store.base.ObjectStore`: ``blobs``, ``refs``,
``url``, :meth:`commit`, :meth:`receive_pack`, :meth:`is_transient`, :meth:`close`
and the capability flags are the wrapped store's, so code below the model
(sync, gc, verify) can be handed either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from casstore.errors import SerializationError, StorageError
from casstore.model import conflicts as merge_conflicts
from casstore.model import diff as diffs
from casstore.model import history, query, snapshots, stats, transactions
from casstore.model.events import Subscribers
from casstore.model.reads import NetworkReader
from casstore.model.transaction import Transaction
from casstore.model.types import (
    Change,
    Contact,
    GroupState,
    NetworkState,
    SnapshotInfo,
    check_id,
    check_network_state,
)
from casstore.model.writes import Batch, NetworkWriter
from casstore.store.base import ObjectStore, RefUpdate
from casstore.store.watch import RefChanges

if TYPE_CHECKING:
    from casstore.model.transactions import NetworkTransaction, T
    from casstore.sync import SyncReport

__all__ = ["Batch", "NetworkStore", "install_replication"]

#: ``NetworkStore.sync``'s implementation. Replication is a layer above this one, so it is not imported
#: here: :mod:`casstore.sync` installs itself when loaded, and importing any casstore module loads it
#: (``casstore/__init__.py`` does).
_replicate: Callable[..., SyncReport] | None = None


def install_replication(replicate: Callable[..., SyncReport]) -> None:
    """Called by :mod:`casstore.sync` on import: ``NetworkStore.sync`` delegates to ``replicate``."""
    global _replicate
    _replicate = replicate


class NetworkStore(ObjectStore):
    """Bassline's ``NetworkStorage`` over a blob+ref store; what :func:`casstore.open_store` returns.

    Thread-safe; several processes may share a persistent store.  ``objects`` is
    the wrapped store, ``blobs`` and ``refs`` its protocols.  Ids (network,
    group, contact, wire) are non-empty strings of at most 1,024 UTF-8 bytes;
    contents and attribute values are any value of the object format's data
    model.  An argument of the wrong type raises a
    :class:`~casstore.errors.StorageError` subclass naming it.
    """

    def __init__(self, objects: ObjectStore, cache_nodes: int = 200_000) -> None:
        self.objects = objects
        self.blobs = objects.blobs
        self.refs = objects.refs
        self.url = objects.url
        self.atomic_commit = objects.atomic_commit
        self.passive_remote = objects.passive_remote
        self._reader = NetworkReader(objects.blobs, objects.refs, cache_nodes)
        self.cache = self._reader.cache
        self.watch_interval = objects.watch_interval
        self.deltas_at_rest = objects.deltas_at_rest
        self._subscribers = Subscribers(self._reader, objects)
        self._writer = NetworkWriter(objects, self._reader, self._subscribers)

    # ---------------------------------------------------------------- the wrapped store

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        """The wrapped store's :meth:`~casstore.store.base.ObjectStore.commit` (one transaction where it has them)."""
        self.objects.commit(frames, updates)

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        """The wrapped store's :meth:`~casstore.store.base.ObjectStore.receive_pack`."""
        return self.objects.receive_pack(pack, updates)

    def fetch_packs(
        self,
        want: Sequence[tuple[bytes, str]],
        have: Sequence[tuple[bytes, str]],
        bases: Mapping[bytes, bytes] | None = None,
    ) -> Iterator[bytes] | None:
        """The wrapped store's :meth:`~casstore.store.base.ObjectStore.fetch_packs`."""
        return self.objects.fetch_packs(want, have, bases)

    def watch_refs(self, prefix: str, callback: Callable[[RefChanges], None]) -> Callable[[], None]:
        """The wrapped store's :meth:`~casstore.store.base.ObjectStore.watch_refs`."""
        return self.objects.watch_refs(prefix, callback)

    def is_transient(self, exc: BaseException) -> bool:
        """The wrapped store's :meth:`~casstore.store.base.ObjectStore.is_transient`."""
        return self.objects.is_transient(exc)

    def close(self) -> None:
        """Stop watching for other writers, close the wrapped store (files, handles, connections). Idempotent."""
        self._subscribers.close()
        self.objects.close()

    # ---------------------------------------------------------------- decoded objects

    @property
    def reader(self) -> NetworkReader:
        """The store's :class:`~casstore.model.reads.NetworkReader` (its trees and caches), for layers above."""
        return self._reader

    def body(self, digest: bytes) -> dict[str, Any]:
        """A group body (decoded; cached, bodies are immutable)."""
        return self._reader.body(digest)

    def network_root(self, digest: bytes) -> dict[str, Any]:
        """A network root by digest, decoded: its tree roots, ``current``, ``rootGroup`` and ``size`` (cached)."""
        return self._reader.network_root(digest)

    def remember_root(self, digest: bytes, data: bytes) -> dict[str, Any]:
        """Decode and cache a network root (immutable, so the cache is always right)."""
        return self._reader.remember_root(digest, data)

    # ---------------------------------------------------------------- writes

    def save_contact_content(self, network_id: str, group_id: str, contact_id: str, content: Any) -> None:
        """Set one contact's content; a contact not yet in the group is created (appended to its contact ids).

        Raises :class:`~casstore.errors.NetworkNotFound` or
        :class:`~casstore.errors.GroupNotFound` if the network or group does not exist.
        """
        self._writer.save_contact_content(network_id, group_id, contact_id, content)

    def save_group_state(self, network_id: str, group_id: str, state: GroupState) -> None:
        """Replace one group (its fields, contacts and wires) with ``state``; creates the network if absent."""
        self._writer.save_group_state(network_id, group_id, state)

    def delete_group(self, network_id: str, group_id: str) -> None:
        """Remove a group with its contacts and wires; a no-op if the network or group does not exist.

        Its subgroups move up: the parent lists them in its place in ``subgroup_ids`` and each gets
        the deleted group's ``parent_id`` (see docs/format.md, "A network's shape").
        """
        self._writer.delete_group(network_id, group_id)

    def save_network_state(self, network_id: str, state: NetworkState, *, keep_times: bool = False) -> None:
        """Replace a whole network with ``state`` (creating it if absent), as one new head.

        Its metadata replaces the network's; its created time is the stored network's (``now`` for a
        new one) and its updated time ``now``.  With ``keep_times`` (an import restoring a state
        exactly) ``state.created_at`` / ``updated_at`` are stored as they are where they are set.
        """
        check_network_state(state)
        self._writer.save_network_state(network_id, state, keep_times)

    def save_network_states(self, states: Mapping[str, NetworkState], *, keep_times: bool = False) -> None:
        """:meth:`save_network_state` for several networks (an import of many): every state is checked
        and encoded before any head moves, so one invalid state saves none.  Each network then gets its
        own new head, one after another (a store failure part-way leaves the first ones saved)."""
        if not isinstance(states, Mapping):
            raise SerializationError(f"states: expected a mapping of network id to state, got {type(states).__name__}")
        for network_id, state in states.items():
            check_id(network_id, "network_id")
            check_network_state(state)
        self._writer.save_network_states(list(states.items()), keep_times)

    def save_network_metadata(self, network_id: str, metadata: dict[str, Any]) -> None:
        """Replace a network's metadata (a JSON object: string keys, any values of the data model).

        One new head (its updated time moves); :class:`~casstore.errors.NetworkNotFound` if absent.
        """
        self._writer.save_network_metadata(network_id, metadata)

    def load_network_metadata(self, network_id: str) -> dict[str, Any] | None:
        """A network's metadata (``{}`` if it has none), or ``None`` if the network does not exist."""
        return self._reader.load_network_metadata(network_id)

    def batch(self, network_id: str) -> AbstractContextManager[Batch]:
        """Collect blind writes to one network and apply them atomically (one new head) at exit.

        The :class:`Batch` offers ``save_contact_content``, ``save_group_state``,
        ``delete_group``, ``delete_contact`` and ``save_network_state`` with the
        same signatures; each is validated when called, writes apply in the order
        they were made (a write after ``save_network_state`` applies on top of the
        state it saved), and nothing is written if the block raises.  A batch
        serves one ``with`` block; once applied or abandoned it refuses writes.
        A batch cannot read: on a conflicting concurrent write its writes are
        re-applied as recorded to the new head, so a value computed from an
        earlier read overwrites the other write (a lost update).  For
        read-modify-write use :meth:`transact` (or :meth:`transaction`).
        """
        check_id(network_id, "network_id")
        return self._writer.batch(network_id)

    def transaction(self, network_id: str) -> AbstractContextManager[NetworkTransaction]:
        """A transaction on one network: reads of the state it started from plus its own writes.

        The :class:`~casstore.model.transactions.NetworkTransaction` offers the
        read calls (``exists``, ``load_contact_content``, ``load_group_state``,
        ``load_network_state``, ``query_groups``) and the write calls of
        :meth:`batch`, with the store's signatures.  Leaving the block commits
        every write as one new head by one compare-and-swap from the head the
        transaction started from; if any other write landed meanwhile it raises
        :class:`~casstore.errors.RefConflict` and writes nothing.  A with-block
        cannot be re-run for you: to retry on a conflict use :meth:`transact`.
        Nothing is written if the block raises, or if it wrote nothing.
        """
        return transactions.transaction(self._writer, network_id)

    def transact(
        self,
        network_id: str,
        fn: Callable[[NetworkTransaction], T],
        *,
        attempts: int = transactions.DEFAULT_ATTEMPTS,
    ) -> T:
        """Run ``fn(tx)`` in a :meth:`transaction` and commit it; on a conflict, run ``fn`` again on the new head.

        Safe for read-modify-write across threads and processes: each attempt reads
        the head it commits over.  ``fn`` may run several times, so it should have
        no effects outside ``tx``.  Returns ``fn``'s result from the attempt that
        committed; after ``attempts`` conflicts (with jittered, growing pauses
        between them) raises :class:`~casstore.errors.RefConflict`.  An exception
        from ``fn`` propagates at once, nothing written.
        """
        return transactions.transact(self._writer, network_id, fn, attempts)

    def delete_network(self, network_id: str) -> None:
        """Remove a network's head, snapshots, snapshot tip and journal entries in one commit (objects
        stay until gc); a no-op if absent."""
        self._writer.delete_network(network_id)

    # ---------------------------------------------------------------- reads

    def list_networks(self) -> list[str]:
        """Every network id in the store, sorted."""
        return self._reader.list_networks()

    def exists(self, network_id: str) -> bool:
        """Whether the network has a head."""
        return self._reader.exists(network_id)

    def load_contact_content(self, network_id: str, group_id: str, contact_id: str) -> Any:
        """One contact's content, or ``None`` if the network, group or contact does not exist."""
        check_id(group_id, "group_id")
        check_id(contact_id, "contact_id")
        return self._reader.load_contact_content(network_id, group_id, contact_id)

    def load_group_state(self, network_id: str, group_id: str) -> GroupState | None:
        """One group with its contacts and wires, or ``None`` if the network or group does not exist."""
        check_id(group_id, "group_id")
        return self._reader.load_group_state(network_id, group_id)

    def load_network_state(self, network_id: str) -> NetworkState | None:
        """The whole current state of a network, or ``None`` if it does not exist."""
        return self._reader.load_network_state(network_id)

    def query_groups(
        self,
        network_id: str,
        filters: Mapping[str, Any] | None = None,
        *,
        attributes: dict[str, Any] | None = None,
        author: str | None = None,
        tags: list[str] | None = None,
        type: str | None = None,
    ) -> list[GroupState]:
        """Groups matching every given filter, in group-id order, found through the attribute index.

        ``attributes``: each name must hold an equal value; ``author`` / ``type``:
        the ``bassline.author`` / ``bassline.type`` attribute (or the unprefixed
        one); ``tags``: all of them in ``bassline.tags`` or ``tags``.  The filters
        may also come as one mapping with those keys, Bassline's filter object
        (``query_groups("main", {"author": "bob"})``), with keywords for other
        keys.  No filter gives every group; an absent network gives ``[]``.  A
        filter of the wrong type (``tags=["a", 1]``, an unknown key) or text that
        is not valid Unicode raises :class:`~casstore.errors.SerializationError`.
        """
        return query.query_groups(
            self._reader, network_id, filters, attributes=attributes, author=author, tags=tags, type=type
        )

    # ---------------------------------------------------------------- replication

    def sync(
        self, remote: ObjectStore, *, name: str | None = None, force: bool = False, merge: bool = False
    ) -> SyncReport:
        """Pull every network of ``remote``, then push every network of this store (see :mod:`casstore.sync`).

        With ``merge``, a network both sides changed is merged by blend mode (docs/merge.md) and the
        merged head pushed, instead of being reported as diverged.
        """
        if _replicate is None:  # never: importing casstore (the parent package of this one) installs it
            raise StorageError("casstore.sync is not loaded")
        if merge:
            return _replicate(self, remote, name=name, force=force, merge=True)
        return _replicate(self, remote, name=name, force=force)

    # ---------------------------------------------------------------- snapshots

    def save_snapshot(self, network_id: str, label: str | None = None, *, automatic: bool = False) -> str:
        """Record the current state as a snapshot and return its id (O(1): one object, one ref).

        ``automatic`` marks it as a timer's (``SnapshotInfo.automatic``; retention may prune it).
        Raises :class:`~casstore.errors.NetworkNotFound` if the network does not exist.
        """
        return snapshots.save_snapshot(self._reader, self.objects, network_id, label, automatic=automatic)

    def find_snapshot(self, network_id: str, snapshot_id: str) -> tuple[bytes, dict[str, Any]]:
        """A snapshot's digest and decoded record; :class:`SnapshotNotFound` if ``network_id`` has no such snapshot.

        Here and in every call taking a snapshot id, ``snapshot_id`` may be a unique prefix of 8 or
        more characters (printable or hex); an ambiguous one raises :class:`~casstore.errors.InvalidId`
        naming the candidates.
        """
        return snapshots.find_snapshot(self._reader, network_id, snapshot_id)

    def load_snapshot(self, network_id: str, snapshot_id: str) -> NetworkState:
        """The network state a snapshot recorded (an id or a unique prefix of 8+ characters);
        :class:`~casstore.errors.SnapshotNotFound` if there is none."""
        return snapshots.load_snapshot(self._reader, network_id, snapshot_id)

    def list_snapshots(self, network_id: str) -> list[SnapshotInfo]:
        """The network's snapshots, newest first (``[]`` for an absent network)."""
        return snapshots.list_snapshots(self._reader, network_id)

    def delete_snapshot(self, network_id: str, snapshot_id: str) -> None:
        """Forget a snapshot (its objects stay until gc); a no-op for an unknown id, as in Bassline.

        A unique prefix of 8+ characters is accepted; an ambiguous one raises
        :class:`~casstore.errors.InvalidId` and deletes nothing.
        """
        snapshots.delete_snapshot(self._reader, network_id, snapshot_id)

    # ---------------------------------------------------------------- diff

    def diff(self, network_id: str, a: str | None, b: str | None = None) -> list[Change]:
        """Changes from state ``a`` to state ``b``: snapshot ids (or unique prefixes of 8+ characters),
        ``None`` for the current state; ``b`` defaults to the current state, as at the CLI.

        Each tree is compared by descending only where hashes differ: groups for
        group-level changes, then contacts and wires (a group's members joining
        or leaving are reported as their own added/removed changes).
        """
        old_root = snapshots.state_root(self._reader, network_id, a)
        new_root = snapshots.state_root(self._reader, network_id, b)
        return diffs.diff_roots(self._reader, old_root, new_root)

    def changed_groups(self, old_head: bytes | None, new_head: bytes) -> list[str]:
        """Ids of the groups whose own fields, contacts or wires differ between two network roots."""
        return diffs.changed_groups(self._reader, old_head, new_head)

    # ---------------------------------------------------------------- one contact, snapshot ids, figures

    def load_contact(self, network_id: str, group_id: str, contact_id: str) -> Contact | None:
        """One contact's whole record, or ``None`` if the network, group or contact does not exist.

        Unlike :meth:`load_contact_content` it tells a missing contact (``None``) from one whose
        content is ``None`` (a :class:`Contact` with ``content=None``).
        """
        return history.load_contact(self._reader, network_id, group_id, contact_id)

    def delete_contact(self, network_id: str, group_id: str, contact_id: str) -> None:
        """Remove one contact in one write: its record, its id from the group's ``contact_ids`` and
        ``boundary_contact_ids``, and the group's wires from or to it (with their ids in ``wire_ids``).

        Wires of other groups are not touched (a wire names a contact by id only).  A no-op if the
        network, group or contact does not exist, as :meth:`delete_group` is.  Also on :class:`Batch`.
        """
        self._writer.delete_contact(network_id, group_id, contact_id)

    def contact_history(
        self, network_id: str, group_id: str, contact_id: str, limit: int | None = None
    ) -> list[history.HistoryEntry]:
        """The values one contact had across the snapshot chain, newest first (Bassline's audit trail).

        One :class:`~casstore.model.history.HistoryEntry` (snapshot id, time, label, the whole
        contact or ``None`` where it did not exist) per snapshot where the contact changed:
        consecutive snapshots holding the same record collapse into one entry, attributed to the
        oldest of them.  The current state comes first (``snapshot_id=None``) when it differs from
        the newest snapshot.  ``limit`` keeps the newest entries.  Each snapshot costs one lookup of
        the contact's key, O(log n), sharing the reads of unchanged subtrees; ``[]`` for an absent network.
        """
        return history.contact_history(self._reader, network_id, group_id, contact_id, limit)

    def resolve_snapshot(self, network_id: str, snapshot_id: str) -> str:
        """The full id of the snapshot an id or a unique prefix (8+ characters) names.

        :class:`~casstore.errors.SnapshotNotFound` if none; :class:`~casstore.errors.InvalidId` if
        the prefix matches several (the message names them).
        """
        return snapshots.full_snapshot_id(self._reader, network_id, snapshot_id)

    def network_stats(self, network_id: str) -> stats.NetworkStats:
        """Groups, contacts, wires, logical bytes, snapshots and times of one network (see
        :class:`~casstore.model.stats.NetworkStats`); :class:`~casstore.errors.NetworkNotFound` if absent.
        """
        return stats.network_stats(self._reader, network_id)

    # ---------------------------------------------------------------- merge conflicts

    def conflicts(self, network_id: str) -> list[merge_conflicts.Conflict]:
        """The conflicts merges recorded in the network's current state, in key order (``[]`` for none).

        See docs/merge.md; ``[c.as_json() for c in ...]`` is what ``casstore conflicts --json`` prints.
        """
        return merge_conflicts.list_conflicts(self._reader, self._reader.head_root(network_id))

    def resolve_conflict(
        self,
        network_id: str,
        group_id: str,
        item_id: str,
        choice: str = "value",
        value: Any = None,
    ) -> merge_conflicts.Conflict:
        """Settle one recorded conflict and remove its record, in one write (one head compare-and-swap).

        ``choice``: ``"ours"`` / ``"theirs"`` (that side's recorded value), ``"value"`` (``value``:
        a contact's content, or a wire's or group's record) or ``"fields"`` (``value``: a map of
        some of the fields a contact conflict recorded).  Returns the conflict settled;
        :class:`~casstore.errors.ConflictNotFound` if none is recorded for the item.  Resolving the
        last one leaves an ordinary state.  See docs/merge.md.
        """
        check_id(network_id, "network_id")
        if choice not in ("ours", "theirs", "value", "fields"):
            raise SerializationError(f"choice: {choice!r} is not 'ours', 'theirs', 'value' or 'fields'", "choice")
        settled: list[merge_conflicts.Conflict] = []

        def apply(tx: Transaction) -> None:
            settled[:] = [merge_conflicts.resolve_conflict(tx, group_id, item_id, choice, value)]

        self._writer.write(network_id, apply, create=False)
        return settled[0]

    # ---------------------------------------------------------------- subscribe

    def subscribe(self, path: str, callback: Callable[[GroupState], None]) -> Callable[[], None]:
        """Call ``callback(GroupState)`` after each committed change to ``"net/group"`` (or any group of ``"net"``).

        Returns a function that unsubscribes.  Callbacks run in the committing
        thread after the head moved, before the writes it committed return
        (threads writing one network at once share a commit: it runs in one of
        theirs); one that raises is logged and ignored.
        Changes made by other processes or machines (or another object over
        the same store) are reported too, on a thread of the store's
        :meth:`watch_refs` (within :attr:`watch_interval` on a polled backend);
        each move is reported once, and moves seen late are diffed from the
        last state reported, so no change is missed.
        """
        return self._subscribers.subscribe(path, callback)

    def head_moved(self, network_id: str, old_head: bytes | None, new_head: bytes) -> None:
        """Tell subscribers about a head moved from outside this object (a pull); free when nobody listens."""
        self._subscribers.head_moved(network_id, old_head, new_head)
