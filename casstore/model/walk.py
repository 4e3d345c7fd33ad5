"""Which objects an object links to, found by casstore's own schema (never by guessing).

The kind of an object is known from where it was reached: refs under
``networks/<id>/head`` name network roots, refs under
``networks/<id>/snapshots/`` and ``snapshot-tip`` name snapshots, any other ref
names an opaque object.  From there each kind says what its links point to.

:func:`walk` is the one descent over the DAG, level by level with batched
reads and hooks (prune, visit, on-missing, on-corrupt): gc marks with it,
verify checks with it and sync transfers along it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import NamedTuple

from casstore import codec
from casstore.errors import CorruptObject, ObjectNotFound, SerializationError
from casstore.model import records
from casstore.prolly import Node, decode_node

__all__ = [
    "DECODE_ERRORS",
    "Fetch",
    "Kind",
    "Link",
    "Reached",
    "ReadBases",
    "children",
    "paired_children",
    "paired_links",
    "walk",
]

#: Kinds: "net", "snap", "tree:<kind>", and "data" / "opaque" (no links).
Kind = str
#: A link: the child's digest, its kind, and the older version paired with it (``None`` when unpaired).
Link = tuple[bytes, Kind, bytes | None]
#: Reads a batch of objects: their frames in order, ``None`` where absent (as ``BlobStore.get_frames``).
Fetch = Callable[[list[bytes]], Sequence[bytes | None]]
#: Reads a batch of pairing bases: the canonical bytes of those found, re-hashed (or known by their hash).
ReadBases = Callable[[list[bytes]], Mapping[bytes, bytes]]
#: What decoding a damaged object by its schema raises (beyond :class:`~casstore.errors.CorruptObject`).
DECODE_ERRORS = (SerializationError, KeyError, TypeError, ValueError)
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
        if records.CONFLICTS_FIELD in root:
            yield root[records.CONFLICTS_FIELD], f"tree:{records.CONFLICTS_TREE}"
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
        if records.CONFLICTS_FIELD in root:
            yield root[records.CONFLICTS_FIELD], f"tree:{records.CONFLICTS_TREE}", old.get(records.CONFLICTS_FIELD)
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


def paired_links(kind: Kind, data: bytes, base_data: bytes) -> tuple[list[Link], set[bytes]]:
    """:func:`paired_children`, less the links to objects the older version links to as well.

    Those are returned apart, as a set: an incremental transfer's destination
    holds the older version with its subtree, so only the rest need a walk.
    A tree node holds hundreds of links, nearly all of them unchanged: they are
    found by set intersection rather than one by one.
    """
    if kind.startswith("tree:") and not data.startswith(LEAF_PREFIX) and not base_data.startswith(LEAF_PREFIX):
        node, old = decode_node(data), decode_node(base_data)
        if node.level == old.level and old.keys:
            same = set(node.values).intersection(old.values)
            keys, olds, last = old.keys, old.values, len(old.keys) - 1
            return [  # children keyed by their last key, as in paired_children
                (child, kind, olds[min(bisect_left(keys, key), last)])
                for key, child in zip(node.keys, node.values, strict=True)
                if child not in same
            ], same
    links: list[Link] = []
    same = set()
    for link in paired_children(kind, data, base_data):
        if link[0] == link[2]:
            same.add(link[0])
        else:
            links.append(link)
    return links, same


class Reached(NamedTuple):
    """An object :func:`walk` read, re-hashed and decoded, as the ``visit`` hook receives it."""

    digest: bytes
    kind: Kind
    #: its canonical bytes (re-hashed)
    data: bytes
    #: its frame, as stored
    frame: bytes
    #: every object it links to: ``(digest, kind, paired base or None)``
    links: list[Link]
    #: the older version it was paired with, and that version's canonical bytes (``None`` if unpaired or not held)
    base: bytes | None
    base_data: bytes | None
    #: with pairing, how many of its links were left out of ``links`` (and not followed): objects its
    #: base links to as well (see :func:`paired_links`)
    unchanged: int = 0


def walk(
    fetch: Fetch,
    roots: Iterable[tuple[bytes, Kind]],
    *,
    batch: int = 2048,
    prune: Callable[[list[bytes]], Collection[bytes]] | None = None,
    visit: Callable[[list[Reached]], None] | None = None,
    on_missing: Callable[[bytes, Kind], None] | None = None,
    on_corrupt: Callable[[bytes, Kind, Exception], None] | None = None,
    bases: Mapping[bytes, bytes] | None = None,
    fetch_bases: Fetch | None = None,
    read_bases: ReadBases | None = None,
) -> None:
    """Breadth-first, one DAG level at a time, over everything reachable from ``roots`` by schema.

    Each object is reached once, the first time something links to it.  Per level:

    1. ``prune`` gets the level's digests in one call and returns those to skip,
       with their subtrees (sync: what the destination already holds);
    2. the rest are read with ``fetch`` (``BlobStore.get_frames``, or a wrapper
       that counts calls) in chunks of ``batch``, one call per chunk;
    3. in each chunk, an absent object goes to ``on_missing(digest, kind)``, and
       one that does not re-hash, or whose links do not decode by its schema,
       to ``on_corrupt(digest, kind, exc)``; neither is descended into.  Without
       these hooks the walk raises (:class:`~casstore.errors.ObjectNotFound`,
       or the error itself).  ``visit`` then gets every other object of the
       chunk as a :class:`Reached` (it is called for every chunk, even when
       that list is empty), before their links are followed.

    Pairing, for sync's deltas: ``bases`` maps roots to an older version of
    them, and ``fetch_bases`` reads from the store that holds those versions.
    Each chunk's bases are then read in one call and re-hashed, and a paired
    object's links are paired too (:func:`paired_links`); a base that store
    lacks pairs nothing below it.  A paired object's links to objects its base
    links to as well are not followed (the store holding the bases holds them).
    ``read_bases`` may stand in for ``fetch_bases``: it returns the bases' canonical
    bytes itself, each re-hashed or known by its hash.
    """
    if read_bases is None and fetch_bases is not None:
        read_bases = partial(_read_bases, fetch_bases)
    pairs = bases if bases is not None and read_bases is not None else {}
    seen: set[bytes] = set()
    frontier: list[tuple[bytes, Kind, bytes | None]] = []
    for digest, kind in roots:
        if digest not in seen:
            seen.add(digest)
            frontier.append((digest, kind, pairs.get(digest)))
    while frontier:
        if prune is not None:
            skip = prune([digest for digest, _, _ in frontier])
            if skip:
                frontier = [entry for entry in frontier if entry[0] not in skip]
        following: list[tuple[bytes, Kind, bytes | None]] = []
        for start in range(0, len(frontier), batch):
            chunk = frontier[start : start + batch]
            frames = fetch([digest for digest, _, _ in chunk])
            base_data: Mapping[bytes, bytes] = {}
            if read_bases is not None:
                paired = [base for _, _, base in chunk if base is not None]
                base_data = read_bases(paired) if paired else {}
            reached: list[Reached] = []
            for (digest, kind, base), frame in zip(chunk, frames, strict=True):
                if frame is None:
                    if on_missing is None:
                        raise ObjectNotFound(codec.format_id(digest))
                    on_missing(digest, kind)
                    continue
                try:
                    data = codec.unframe(frame, digest)
                    old = base_data.get(base) if base is not None else None
                    unchanged = 0
                    if kind in ("data", "opaque"):
                        links: list[Link] = []
                    elif old is not None:
                        links, same = paired_links(kind, data, old)
                        if same:
                            same.difference_update(seen)
                            seen.update(same)
                            unchanged = len(same)
                    else:
                        links = [(child, child_kind, None) for child, child_kind in children(kind, data)]
                except (CorruptObject, *DECODE_ERRORS) as exc:
                    if on_corrupt is None:
                        raise
                    on_corrupt(digest, kind, exc)
                    continue
                reached.append(Reached(digest, kind, data, frame, links, base, old, unchanged))
            if visit is not None:
                visit(reached)
            for item in reached:
                for child, child_kind, child_base in item.links:
                    if child not in seen:
                        seen.add(child)
                        following.append((child, child_kind, child_base))
        frontier = following


def _read_bases(fetch: Fetch, digests: list[bytes]) -> dict[bytes, bytes]:
    """Canonical bytes of the bases ``fetch`` finds (re-hashed); absent ones are left out."""
    if not digests:
        return {}
    wanted = list(dict.fromkeys(digests))
    return {
        digest: codec.unframe(frame, digest)
        for digest, frame in zip(wanted, fetch(wanted), strict=True)
        if frame is not None
    }
