"""Reads of a prolly tree: point lookups (batched by level), range and prefix scans, node walks, level cursors,
and the batched prefetch of many prefix scans.

Each function takes the :class:`~casstore.prolly.tree.ProllyTree` first; the
class binds them as its methods, so a call costs no more than a method did.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from casstore.prolly.node import Node, decode_node

if TYPE_CHECKING:
    from casstore.prolly.tree import ProllyTree

__all__ = [
    "LevelCursor",
    "get",
    "get_many",
    "items",
    "items_with_prefix",
    "node_digests",
    "prefetch_prefixes",
    "prefetch_together",
]


def get_many(tree: ProllyTree, root: bytes, keys: Iterable[str]) -> dict[str, bytes]:
    """Values of those ``keys`` present in the tree."""
    wanted = sorted(set(keys))
    out: dict[str, bytes] = {}
    frontier: list[tuple[bytes, list[str]]] = [(root, wanted)] if wanted else []
    while frontier:
        nodes = tree.load_many([d for d, _ in frontier])
        nxt: list[tuple[bytes, list[str]]] = []
        for node, (_, ks) in zip(nodes, frontier, strict=True):
            if node.level == 0:
                for k in ks:
                    i = bisect_left(node.keys, k)
                    if i < len(node.keys) and node.keys[i] == k:
                        out[k] = node.values[i]
                continue
            groups: dict[int, list[str]] = {}
            for k in ks:
                i = bisect_left(node.keys, k)
                if i < len(node.keys):
                    groups.setdefault(i, []).append(k)
            nxt.extend((node.values[i], group) for i, group in groups.items())
        frontier = nxt
    return out


def get(tree: ProllyTree, root: bytes, key: str) -> bytes | None:
    """The value of ``key``, or ``None`` if the tree does not hold it."""
    return get_many(tree, root, [key]).get(key)


def items(tree: ProllyTree, root: bytes, start: str = "", stop: str | None = None) -> Iterator[tuple[str, bytes]]:
    """Entries with ``start <= key < stop`` in key order, reading one path and then leaf by leaf."""
    path: list[tuple[Node, int]] = []  # internal nodes and the index of the next child to visit
    node = tree.load(root)
    while node.level > 0:
        i = bisect_left(node.keys, start)
        if i >= len(node.keys):
            return
        path.append((node, i + 1))
        node = tree.load(node.values[i])
    position = bisect_left(node.keys, start)
    while True:
        for j in range(position, len(node.keys)):
            key = node.keys[j]
            if stop is not None and key >= stop:
                return
            yield key, node.values[j]
        leaf = _next_leaf(tree, path, stop)
        if leaf is None:
            return
        node, position = leaf, 0


def items_with_prefix(tree: ProllyTree, root: bytes, prefix: str) -> Iterator[tuple[str, bytes]]:
    """Entries whose key starts with ``prefix``, in key order."""
    for key, value in items(tree, root, prefix):
        if not key.startswith(prefix):
            return
        yield key, value


def prefetch_prefixes(tree: ProllyTree, root: bytes, prefixes: Iterable[str]) -> None:
    """Load into the tree's cache every node a scan of each of ``prefixes`` needs: one batched read per level.

    For a reader about to scan many prefixes (the members of many groups, one
    scan each): one read per level instead of one per node, which on a server
    is one round trip per level.  Prefixes of one another (``g1`` and ``g10``)
    only read a node or two more than needed.
    """
    prefetch_together([(tree, root, prefixes)])


def prefetch_together(scans: Sequence[tuple[ProllyTree, bytes, Iterable[str]]]) -> None:
    """:func:`prefetch_prefixes` for several trees at once: each level of all of them in one batched read
    per blob store (the trees of a network share one), so three trees cost the round trips of the deepest."""
    Frontier = list[tuple[bytes, str | None]]  # (node, the last key before it, if known)
    levels: list[tuple[ProllyTree, list[str], list[str], Frontier]] = []
    for tree, root, prefixes in scans:
        wanted = sorted(prefixes)
        if wanted:
            levels.append((tree, wanted, [p + "\U0010ffff" for p in wanted], [(root, None)]))
    while levels:
        _load_together([(tree, [digest for digest, _ in frontier]) for tree, _, _, frontier in levels])
        below_all: list[tuple[ProllyTree, list[str], list[str], Frontier]] = []
        for tree, wanted, ends, frontier in levels:
            below: Frontier = []
            for node, (_, lower) in zip(tree.load_many([d for d, _ in frontier]), frontier, strict=True):
                if node.level == 0:
                    continue
                lo = lower
                for child, hi in zip(node.values, node.keys, strict=True):
                    at = bisect_right(wanted, hi)  # the prefixes <= this child's last key
                    if at and (lo is None or ends[at - 1] > lo):
                        below.append((child, lo))
                    lo = hi
            if below:
                below_all.append((tree, wanted, ends, below))
        levels = below_all


def _load_together(requests: Sequence[tuple[ProllyTree, Sequence[bytes]]]) -> None:
    """Cache the nodes of each ``(tree, digests)`` not cached or pending, read in one batch per blob store."""
    by_store: dict[int, tuple[Any, dict[bytes, list[ProllyTree]]]] = {}
    for tree, digests in requests:
        for digest in digests:
            if tree.cache.get(digest) is None and digest not in tree.pending:
                by_store.setdefault(id(tree.blobs), (tree.blobs, {}))[1].setdefault(digest, []).append(tree)
    for blobs, wanted in by_store.values():
        order = list(wanted)
        for digest, data in zip(order, blobs.get_many(order), strict=True):
            node = decode_node(data)
            for tree in wanted[digest]:
                tree.cache.put(digest, node)


def _next_leaf(tree: ProllyTree, path: list[tuple[Node, int]], stop: str | None) -> Node | None:
    while path:
        parent, k = path.pop()
        if k < len(parent.keys):
            if stop is not None and parent.keys[k - 1] >= stop:
                return None  # every later key is past the stop
            path.append((parent, k + 1))
            node = tree.load(parent.values[k])
            while node.level > 0:
                path.append((node, 1))
                node = tree.load(node.values[0])
            return node
    return None


def node_digests(tree: ProllyTree, root: bytes) -> Iterator[tuple[bytes, Node]]:
    """Every node of the tree, level by level, with batched reads."""
    frontier = [root]
    while frontier:
        nodes = tree.load_many(frontier)
        yield from zip(frontier, nodes, strict=True)
        frontier = [child for node in nodes if node.level > 0 for child in node.values]


class LevelCursor:
    """Walks the level-``level`` nodes of a tree in order, starting at the one covering ``key``."""

    def __init__(self, tree: ProllyTree, root_node: Node, level: int, key: str) -> None:
        self.tree = tree
        self.stack: list[list[object]] = []
        node = root_node
        while node.level > level:
            i = min(bisect_left(node.keys, key), len(node.keys) - 1)
            self.stack.append([node, i])
            if node.level - 1 == level:
                break
            node = tree.load(node.values[i])

    def current(self) -> tuple[str, bytes]:
        node, i = self.stack[-1]
        assert isinstance(node, Node) and isinstance(i, int)
        return node.keys[i], node.values[i]

    def has_next(self) -> bool:
        return any(i + 1 < len(node.keys) for node, i in self.stack)  # type: ignore[attr-defined,operator]

    def advance(self) -> None:
        depth = len(self.stack) - 1
        while depth >= 0:
            node, i = self.stack[depth]
            assert isinstance(node, Node) and isinstance(i, int)
            if i + 1 < len(node.keys):
                self.stack[depth][1] = i + 1
                for d in range(depth + 1, len(self.stack)):
                    parent, pi = self.stack[d - 1]
                    assert isinstance(parent, Node) and isinstance(pi, int)
                    self.stack[d] = [self.tree.load(parent.values[pi]), 0]
                return
            depth -= 1
        raise IndexError("no next node at this level")
