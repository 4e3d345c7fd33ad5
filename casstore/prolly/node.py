"""The prolly node format: the decoded :class:`Node`, its DAG-CBOR encoding, and the cache of decoded nodes.

Node encoding (DAG-CBOR): ``{"t": kind, "h": height, "k": [keys], "v": [values]}``
for leaves (height 0) and ``{"t": kind, "h": height, "k": [last keys], "c": [links]}``
for internal nodes.  Also owns a node's *actual* size (keys plus values, a link
counted as :data:`LINK_BYTES`), which the chunking rule's ``MAX`` cap measures.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from casstore import codec

__all__ = ["LINK_BYTES", "Node", "NodeCache", "decode_node", "encode_node", "entries_size", "node_kind", "utf8_len"]

#: The size a child link counts for in a node (a CID plus its CBOR framing).
LINK_BYTES = codec.CID_SIZE + 4


@dataclass(slots=True)
class Node:
    """A decoded tree node. ``values`` holds leaf values, or child digests for internal nodes."""

    level: int
    keys: list[str]
    values: list[bytes]
    #: actual bytes (keys + values) for the MAX cap; computed when first needed
    actual: int = -1

    def actual_size(self) -> int:
        if self.actual < 0:
            self.actual = entries_size(self.keys, self.values, self.level)
        return self.actual


def utf8_len(keys: list[str]) -> int:
    """The UTF-8 length of ``keys`` together."""
    joined = "".join(keys)
    return len(joined) if joined.isascii() else len(joined.encode())


def entries_size(keys: list[str], values: list[bytes], level: int) -> int:
    """The actual size of a level-``level`` node's entries: keys plus values (links at a fixed size)."""
    return utf8_len(keys) + (sum(map(len, values)) if level == 0 else LINK_BYTES * len(values))


def encode_node(kind: str, node: Node) -> bytes:
    """The stored bytes of ``node`` in a tree of ``kind``."""
    if node.level == 0:
        obj = {"t": kind, "h": 0, "k": node.keys, "v": node.values}
    else:
        obj = {"t": kind, "h": node.level, "k": node.keys, "c": [codec.link(d) for d in node.values]}
    return codec.encode(obj)


def decode_node(data: bytes) -> Node:
    """The node stored as ``data``."""
    obj = codec.decode(data)
    level = obj["h"]
    if level == 0:
        return Node(0, obj["k"], obj["v"])
    return Node(level, obj["k"], codec.link_digests(obj["c"]))


def node_kind(data: bytes) -> str:
    """The tree kind a stored node belongs to (its ``t`` field)."""
    kind = codec.decode(data)["t"]
    assert isinstance(kind, str)
    return kind


class NodeCache:
    """Decoded nodes by digest, least recently used evicted first (nodes are immutable)."""

    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._nodes: OrderedDict[bytes, Node] = OrderedDict()

    def get(self, digest: bytes) -> Node | None:
        node = self._nodes.get(digest)
        if node is not None:
            # another thread may have evicted it just now (no lock on this hot path); try/except, as
            # contextlib.suppress costs three calls here
            try:  # noqa: SIM105
                self._nodes.move_to_end(digest)
            except KeyError:
                pass
        return node

    def put(self, digest: bytes, node: Node) -> None:
        self._nodes[digest] = node
        if len(self._nodes) > self.capacity:
            for _ in range(len(self._nodes) // 10):
                self._nodes.popitem(last=False)
