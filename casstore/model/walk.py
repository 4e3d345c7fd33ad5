"""Which objects an object links to, found by casstore's own schema (never by guessing).

The kind of an object is known from where it was reached: refs under
``networks/<id>/head`` name network roots, refs under
``networks/<id>/snapshots/`` and ``snapshot-tip`` name snapshots, any other ref
names an opaque object.  From there each kind says what its links point to.
gc marks with this walk and sync transfers along it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from casstore import codec
from casstore.model import records
from casstore.prolly import Node, decode_node
from casstore.store.base import BlobStore

#: Kinds: "net", "snap", "tree:<kind>", and "data" / "opaque" (no links).
Kind = str
#: Every leaf node starts with these bytes: a 4-entry map whose first key (canonical order) is "h", value 0.
LEAF_PREFIX = b"\xa4\x61h\x00"
#: A contact record's large-content link as encoded: key "C" then tag 42. User data never encodes a tag 42
#: (see codec.encode_value), so a contacts leaf without these bytes links to nothing.
LARGE_CONTENT_KEY = b"\x61C\xd8\x2a"


def _may_link(tree_kind: str, leaf: bytes) -> bool:
    """Whether a leaf can link to anything (by the node format, without decoding it)."""
    if tree_kind == "contacts":
        return LARGE_CONTENT_KEY in leaf
    return tree_kind == "groups"


def _leaf_links(tree_kind: str, node: Node) -> Iterator[tuple[str, bytes]]:
    """``(key, digest)`` of each entry of a groups or contacts leaf that links to an object."""
    if tree_kind == "groups":
        for key, value in zip(node.keys, node.values, strict=True):
            yield key, records.decode_group_record(value)
    elif tree_kind == "contacts":
        for key, value in zip(node.keys, node.values, strict=True):
            if LARGE_CONTENT_KEY in value:  # cheap pre-check before decoding for a large-content link
                link = codec.decode(value).get("C")
                if link is not None:
                    yield key, codec.link_digest(link)


def children(kind: Kind, data: bytes) -> Iterator[tuple[bytes, Kind]]:
    """The ``(digest, kind)`` of every object ``data`` (of ``kind``) links to."""
    if kind == "net":
        root = records.decode_network_root(data)
        for name in records.NETWORK_TREES:
            yield root[name], f"tree:{name}"
    elif kind == "snap":
        yield records.decode_snapshot(data)["root"], "net"
    elif kind.startswith("tree:"):
        tree_kind = kind[5:]
        if data.startswith(LEAF_PREFIX) and not _may_link(tree_kind, data):
            return
        node = decode_node(data)
        if node.level > 0:
            for child in node.values:
                yield child, kind
        else:
            for _, child in _leaf_links(tree_kind, node):
                yield child, "data"


def paired_children(kind: Kind, data: bytes, base_data: bytes) -> Iterator[tuple[bytes, Kind, bytes | None]]:
    """:func:`children`, each with the child at the same place in ``base_data`` (or ``None``).

    ``base_data`` is an older version of the same object (a network root, or
    a tree node of the same tree).  The paired child covers the same keys (a
    tree node) or belongs to the same key (a group body, a large content), so
    it is a good delta base: sync sends a rewritten leaf as its difference from
    the leaf it replaced.
    """
    if kind == "net":
        root, old = records.decode_network_root(data), records.decode_network_root(base_data)
        for name in records.NETWORK_TREES:
            yield root[name], f"tree:{name}", old[name]
        return
    if kind.startswith("tree:"):
        tree_kind, leaf, old_leaf = kind[5:], data.startswith(LEAF_PREFIX), base_data.startswith(LEAF_PREFIX)
        if not leaf and not old_leaf:
            node, old_node = decode_node(data), decode_node(base_data)
            if node.level == old_node.level and old_node.keys:
                last = len(old_node.keys) - 1
                for key, child in zip(node.keys, node.values, strict=True):  # children keyed by their last key
                    yield child, kind, old_node.values[min(bisect_left(old_node.keys, key), last)]
                return
        elif leaf and old_leaf and _may_link(tree_kind, data):
            old_links = dict(_leaf_links(tree_kind, decode_node(base_data)))
            for key, child in _leaf_links(tree_kind, decode_node(data)):
                yield child, "data", old_links.get(key)
            return
    for child, child_kind in children(kind, data):
        yield child, child_kind, None


def walk(
    blobs: BlobStore, roots: list[tuple[bytes, Kind]], skip: set[bytes] | None = None, batch: int = 2048
) -> Iterator[tuple[bytes, Kind, bytes | None]]:
    """Breadth-first over everything reachable from ``roots``: ``(digest, kind, canonical bytes or None if absent)``.

    Objects in ``skip`` are not visited (nor their subtrees).  Reads are batched
    and re-hashed; a corrupt object raises :class:`~casstore.errors.CorruptObject`.
    """
    seen: set[bytes] = set(skip or ())
    frontier = []
    for digest, kind in roots:
        if digest not in seen:
            seen.add(digest)
            frontier.append((digest, kind))
    while frontier:
        following: list[tuple[bytes, Kind]] = []
        for start in range(0, len(frontier), batch):
            chunk = frontier[start : start + batch]
            frames = blobs.get_frames([d for d, _ in chunk])
            for (digest, kind), stored in zip(chunk, frames, strict=True):
                if stored is None:
                    yield digest, kind, None
                    continue
                data = codec.unframe(stored, digest)
                yield digest, kind, data
                if kind in ("data", "opaque"):
                    continue
                for child, child_kind in children(kind, data):
                    if child not in seen:
                        seen.add(child)
                        following.append((child, child_kind))
        frontier = following
