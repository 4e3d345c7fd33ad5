"""The :class:`ProllyTree` facade: one tree kind over a blob store, its node cache and its pending writes.

Owns loading and storing nodes; the operations live by responsibility in
:mod:`~casstore.prolly.read`, :mod:`~casstore.prolly.update` and
:mod:`~casstore.prolly.diff` as functions of the tree, bound here as methods
(class attributes, not wrappers, so a call costs what a method call did).
"""

from __future__ import annotations

from collections.abc import Sequence

from casstore import codec
from casstore.prolly import diff as tree_diff
from casstore.prolly import read as tree_read
from casstore.prolly import update as tree_update
from casstore.prolly.chunking import DEFAULT_VALUE_HINT
from casstore.prolly.node import Node, NodeCache, decode_node, encode_node
from casstore.store.base import BlobStore, PendingWrites

__all__ = ["ProllyTree"]


class ProllyTree:
    """Reads and writes prolly trees of one ``kind`` over a blob store.

    New nodes are kept in :attr:`pending` (children before parents) until the
    caller writes them with :meth:`flush`, so a whole update lands in one batch.
    """

    def __init__(
        self,
        blobs: BlobStore,
        kind: str,
        cache: NodeCache,
        pending: PendingWrites | None = None,
        value_hint: int = DEFAULT_VALUE_HINT,
    ) -> None:
        self.blobs = blobs
        self.kind = kind
        #: The nominal size of one leaf value in the chunking rule; part of the tree's format.
        self.value_hint = value_hint
        self.cache = cache
        #: New objects not yet written, in creation order (children first); may be shared by several trees.
        self.pending = PendingWrites() if pending is None else pending

    # ---------------------------------------------------------------- nodes

    def store_node(self, kind: str, node: Node) -> bytes:
        """Encode ``node`` into :attr:`pending` and the cache; returns its digest."""
        digest = self.pending.add(encode_node(kind, node))
        self.cache.put(digest, node)
        return digest

    def flush(self) -> None:
        """Write pending nodes (children first) in one batch."""
        self.pending.write_to(self.blobs)

    def load(self, digest: bytes) -> Node:
        """The node ``digest``, from the cache, the pending writes or the blob store."""
        node = self.cache.get(digest)
        if node is None:
            data = self.pending.get(digest)
            node = decode_node(data if data is not None else self.blobs.get(digest))
            self.cache.put(digest, node)
        return node

    def load_many(self, digests: Sequence[bytes]) -> list[Node]:
        """The nodes ``digests``, in order; those not cached or pending are read in one batch."""
        found = {d: n for d in digests if (n := self.cache.get(d)) is not None}
        absent = [d for d in dict.fromkeys(digests) if d not in found and d not in self.pending]
        for digest, data in zip(absent, self.blobs.get_many(absent) if absent else [], strict=True):
            found[digest] = node = decode_node(data)
            self.cache.put(digest, node)
        return [found[d] if d in found else self.load(d) for d in digests]

    def empty(self, write: bool = True) -> bytes:
        """The root of an empty tree; with ``write=False`` it is only cached, for a tree about to be filled."""
        if write:
            return self.store_node(self.kind, Node(0, [], []))
        node = Node(0, [], [])
        digest = codec.hash_bytes(encode_node(self.kind, node))
        self.cache.put(digest, node)
        return digest

    # ---------------------------------------------------------------- operations, by module

    build = tree_update.build
    build_levels = tree_update.build_levels
    update = tree_update.update

    get = tree_read.get
    get_many = tree_read.get_many
    items = tree_read.items
    items_with_prefix = tree_read.items_with_prefix
    node_digests = tree_read.node_digests
    prefetch_prefixes = tree_read.prefetch_prefixes

    diff = tree_diff.diff
