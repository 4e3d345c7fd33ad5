"""Transactions with reads: read a network, write to it, commit with one compare-and-swap of its head.

:class:`NetworkTransaction` is the view :meth:`NetworkStore.transaction
<casstore.model.network.NetworkStore.transaction>` yields.  It is pinned to the
head the network had when it opened: its reads see that state plus the view's
own writes (read-your-writes), and its writes are validated and applied when
called, to a :class:`~casstore.model.transaction.Transaction` on that head.
Before a read that follows writes, the writes so far are built into a preview
root whose new objects stay in memory (:class:`PreviewBlobs`); nothing is
written until the commit, which rebuilds every write in one transaction on the
start head and moves the head from the start head to it in one
compare-and-swap — a :class:`~casstore.errors.RefConflict` if any other write
landed meanwhile.  :func:`transact` re-runs a function in a fresh view until
its commit wins (bounded attempts, jittered backoff).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from casstore import codec
from casstore.errors import NetworkNotFound, RefConflict, SerializationError, StorageError
from casstore.model import query
from casstore.model.reads import TREE_KINDS, NetworkReader, make_tree
from casstore.model.refs import head_ref
from casstore.model.transaction import Transaction
from casstore.model.types import GroupState, NetworkState, check_id
from casstore.model.writes import Batch, Block, NetworkWriter
from casstore.store.base import BlobStats, BlobStore, PendingWrites, RefStore, RefUpdate

__all__ = [
    "DEFAULT_ATTEMPTS",
    "MAX_BACKOFF",
    "MIN_BACKOFF",
    "NetworkTransaction",
    "PinnedRefs",
    "PreviewBlobs",
    "PreviewReader",
    "T",
    "transact",
    "transaction",
]

T = TypeVar("T")

#: How many times :func:`transact` runs its function before giving up with ``RefConflict``.
DEFAULT_ATTEMPTS = 64
#: Bounds of the pause between two attempts of :func:`transact`, in seconds (before jitter).
MIN_BACKOFF = 0.001
MAX_BACKOFF = 1.0


class PreviewBlobs(BlobStore):
    """A store's objects plus those a transaction's previews built and has not written (read-only)."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.pending = PendingWrites()

    def get_many(self, digests: Sequence[bytes]) -> list[bytes]:
        pending = self.pending
        if not len(pending):
            return self.inner.get_many(digests)
        stored = [digest for digest in digests if digest not in pending]
        found = dict(zip(stored, self.inner.get_many(stored), strict=True)) if stored else {}
        return [data if (data := pending.get(digest)) is not None else found[digest] for digest in digests]

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        stored = iter(self.inner.get_frames([digest for digest in digests if digest not in self.pending]))
        return [
            codec.frame_hashed([(digest, data)])[0][1]
            if (data := self.pending.get(digest)) is not None
            else next(stored)
            for digest in digests
        ]

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        return self.inner.missing(digest for digest in digests if digest not in self.pending)

    def iter_hashes(self) -> Iterator[bytes]:
        return self.inner.iter_hashes()

    def written_since(self, timestamp: float) -> set[bytes]:
        return self.inner.written_since(timestamp)

    def stats(self) -> BlobStats:
        return self.inner.stats()

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        raise StorageError("a transaction writes only when it commits")

    def delete_many(self, digests: Iterable[bytes]) -> int:
        raise StorageError("a transaction writes only when it commits")


class PinnedRefs(RefStore):
    """A store's refs with one network's head pinned to the state a transaction reads (read-only)."""

    def __init__(self, inner: RefStore, name: str, head: bytes | None) -> None:
        self.inner = inner
        self.name = name
        self.head = head

    def _get(self, name: str) -> bytes | None:
        return self.head if name == self.name else self.inner.get(name)

    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        raise StorageError("a transaction moves its network's head only when it commits")

    def _list(self, prefix: str) -> dict[str, bytes]:
        refs = self.inner.list(prefix)
        if self.name.startswith(prefix):
            refs.pop(self.name, None)
            if self.head is not None:
                refs[self.name] = self.head
        return refs


class PreviewReader(NetworkReader):
    """Reads over :class:`PreviewBlobs` and :class:`PinnedRefs`, sharing the store reader's caches.

    Stored objects are decoded by (and cached in) the store's reader; only a
    preview's own roots and bodies are decoded here.
    """

    def __init__(self, base: NetworkReader, blobs: PreviewBlobs, refs: PinnedRefs) -> None:
        super().__init__(blobs, refs, cache_nodes=1)
        self.base = base
        self.preview_blobs = blobs
        self.cache = base.cache  # nodes are immutable: a preview's nodes may share the cache
        self.trees = {kind: make_tree(self, kind) for kind in TREE_KINDS}

    def body(self, digest: bytes) -> dict[str, Any]:
        return super().body(digest) if digest in self.preview_blobs.pending else self.base.body(digest)

    def network_root(self, digest: bytes) -> dict[str, Any]:
        if digest in self.preview_blobs.pending:
            return super().network_root(digest)
        return self.base.network_root(digest)


class NetworkTransaction(Batch):
    """Reads and writes of one network, committed together by one compare-and-swap of its head.

    The reads (``exists``, ``load_contact_content``, ``load_group_state``,
    ``load_network_state``, ``query_groups``) see the state the transaction
    started from plus its own writes; the writes (``save_contact_content``,
    ``save_group_state``, ``delete_group``, ``save_network_state``) take the
    store's signatures, are validated when called and raise then (a write that
    raises records nothing).  ``start_head`` is the printable id of the head it
    started from (``None``: the network did not exist); once it committed,
    ``end_head`` is the printable id of the head it moved to (``start_head`` when it
    wrote nothing).  Every call names the transaction's network.
    """

    kind = "transaction"
    ends = "committed or abandoned"

    def __init__(self, writer: NetworkWriter, network_id: str) -> None:
        super().__init__(writer, network_id)
        self._ref = head_ref(network_id)
        self._start = writer.refs.get(self._ref)
        self.start_head = None if self._start is None else codec.format_id(self._start)
        self.end_head: str | None = None
        self._blobs = PreviewBlobs(writer.blobs)
        self._refs = PinnedRefs(writer.refs, self._ref, self._start)
        self._reader = PreviewReader(writer.reader, self._blobs, self._refs)
        self._live = Transaction(self._reader, network_id, self._start)
        self._live_dirty = False  # writes in _live not yet built into a preview root
        self._previews = 0
        self._exists = self._start is not None
        self._also: list[RefUpdate] = []

    # ---------------------------------------------------------------- reads

    def exists(self, network_id: str) -> bool:
        return self._read(network_id).exists(network_id)

    def load_contact_content(self, network_id: str, group_id: str, contact_id: str) -> Any:
        check_id(group_id, "group_id")
        check_id(contact_id, "contact_id")
        return self._read(network_id).load_contact_content(network_id, group_id, contact_id)

    def load_group_state(self, network_id: str, group_id: str) -> GroupState | None:
        check_id(group_id, "group_id")
        return self._read(network_id).load_group_state(network_id, group_id)

    def load_network_state(self, network_id: str) -> NetworkState | None:
        return self._read(network_id).load_network_state(network_id)

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
        reader = self._read(network_id)
        return query.query_groups(
            reader, network_id, filters, attributes=attributes, author=author, tags=tags, type=type
        )

    def _read(self, network_id: str) -> NetworkReader:
        """The reader of the state so far: the start head, or a preview root with the writes built in."""
        self._check_open()
        self._same_network(network_id)
        if self._live_dirty:
            root = self._live.commit()
            self._blobs.pending.absorb(self._live.pending)
            self._refs.head = root
            self._live = Transaction(self._reader, self.network_id, root)
            self._live_dirty = False
            self._previews += 1
        return self._reader

    # ---------------------------------------------------------------- writes

    def _record(
        self,
        op: Callable[[Transaction], None],
        *,
        group_id: str | None = None,
        create: bool = False,
        deletes: bool = False,
    ) -> None:
        self._check_open()
        if not (self._exists or create):
            if deletes:
                return  # deleting from a network that does not exist: nothing to do, as outside
            raise NetworkNotFound(f"network {self.network_id!r} not found")
        op(self._live)  # raises now (a group not found…), before it is recorded
        self._live_dirty = True
        self._exists = True
        super()._record(op, group_id=group_id, create=create, deletes=deletes)

    def prefetch_groups(self, network_id: str, group_ids: Iterable[str]) -> None:
        """Look up many groups in one pass before writing to them (a batch of writes then costs no lookup
        each); reads and writes behave the same with or without it."""
        self._check_open()
        self._same_network(network_id)
        self._live.prefetch_groups(group_ids)

    def apply(self) -> None:
        raise StorageError("a transaction is committed by leaving its with-block (or by transact)")

    def also_update(self, updates: Iterable[RefUpdate]) -> None:
        """Make ``updates`` (other refs' moves) in the same backend commit as the head, even if no write
        changes the head; one that finds its ref moved fails the commit with ``RefConflict``, as the head does.
        All or nothing only where the backend's commit is one transaction (``atomic_commit``)."""
        self._check_open()
        self._also.extend(updates)

    # ---------------------------------------------------------------- commit

    def commit(self) -> None:
        """Move the head from the start head to the state with every write: one compare-and-swap.

        Raises :class:`~casstore.errors.RefConflict` if the head moved since the
        transaction opened (nothing is written); with no writes, commits nothing.
        The view is closed either way.
        """
        self._check_open()
        self._open = False
        if not self._ops:
            self.end_head = self.start_head
            if self._also:
                guard = [] if self._start is None else [RefUpdate(self._ref, self._start, self._start)]
                self.writer.objects.commit([], [*guard, *self._also])
            return
        if self._previews:  # rebuild in one transaction on the start head: no preview-only object is written
            tx = Transaction(self._reader, self.network_id, self._start)
            tx.prefetch_groups(self._groups)
            for op in self._ops:
                op(tx)
        else:
            tx = self._live
        self.end_head = codec.format_id(self.writer.commit_transaction(tx, self._ref, self._start, self._also))


def transaction(writer: NetworkWriter, network_id: str) -> Block[NetworkTransaction]:
    """A :class:`NetworkTransaction`, committed when the block ends, abandoned if it raises."""
    return Block(lambda: NetworkTransaction(writer, network_id), NetworkTransaction.commit)


def transact(writer: NetworkWriter, network_id: str, fn: Callable[[NetworkTransaction], T], attempts: int) -> T:
    """Run ``fn`` in a fresh transaction and commit it; on a conflict run it again on the new head.

    Returns ``fn``'s result from the attempt that committed.  Between attempts it
    waits a random time up to a bound that starts at the failed attempt's
    duration and doubles each attempt (at most :data:`MAX_BACKOFF`); after ``attempts`` conflicts raises the last
    :class:`~casstore.errors.RefConflict`.  An exception from ``fn`` ends it at
    once, nothing written.
    """
    if not callable(fn):
        raise SerializationError(f"fn: expected a function, got {type(fn).__name__}", "fn")
    if type(attempts) is not int or attempts < 1:
        raise SerializationError(f"attempts must be a whole number of at least 1, not {attempts!r}", "attempts")
    conflict: RefConflict | None = None
    took = 0.0
    for attempt in range(attempts):
        if attempt:  # a pause of up to a few attempts' time: contenders spread out instead of colliding again
            bound = max(took, MIN_BACKOFF) * 2 ** min(attempt - 1, 6)
            time.sleep(random.uniform(0, min(bound, MAX_BACKOFF)))
        started = time.monotonic()
        view = NetworkTransaction(writer, network_id)
        try:
            result = fn(view)
        except BaseException:
            view.close()
            raise
        try:
            view.commit()
        except RefConflict as exc:
            conflict = exc
            took = time.monotonic() - started
            continue
        return result
    assert conflict is not None
    conflict.add_note(f"transact on network {network_id!r}: {attempts} attempts, each beaten by another write")
    raise conflict
