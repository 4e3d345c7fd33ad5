"""Diff of two prolly trees: the changed keys in key order, descending only where digests differ.

Two queues of entries and unread subtrees are merged; equal digests are skipped
without being read, and the taller unread subtree is expanded first, so the
cost follows the size of the change rather than the size of the trees.  Two
unread nodes at the queues' heads with the same level and keys (boundaries
depend on keys only, so a change of values keeps a node's shape) cover the same
entries: they are compared child by child, or value by value, without queueing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from casstore.prolly.node import Node
    from casstore.prolly.tree import ProllyTree

__all__ = ["diff"]


@dataclass(slots=True)
class _Item:
    """A diff queue element: an entry (key, value) or an unread subtree (digest, exclusive lower key)."""

    key: str | None
    value: bytes | None
    digest: bytes | None
    lower: str | None = None


def diff(tree: ProllyTree, old: bytes, new: bytes) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    """``(key, old value, new value)`` for every key whose value differs, in key order.

    Subtrees with equal digests are skipped without being read, so the cost
    follows the size of the change.
    """
    if old == new:
        return
    a: deque[_Item] = deque([_Item(None, None, old)])
    b: deque[_Item] = deque([_Item(None, None, new)])
    while a and b:
        x, y = a[0], b[0]
        if x.digest is not None and y.digest is not None:
            if x.digest == y.digest:
                a.popleft()
                b.popleft()
                continue
            # every entry consumed so far is below both: same level and keys mean the same entries
            nx, ny = tree.load(x.digest), tree.load(y.digest)
            if nx.level == ny.level and nx.keys == ny.keys:
                a.popleft()
                b.popleft()
                yield from _aligned(tree, nx, ny)
                continue
        if x.digest is None and y.digest is None:
            assert x.key is not None and y.key is not None
            if x.key == y.key:
                a.popleft()
                b.popleft()
                if x.value != y.value:
                    yield x.key, x.value, y.value
            elif x.key < y.key:
                a.popleft()
                yield x.key, x.value, None
            else:
                b.popleft()
                yield y.key, None, y.value
            continue
        if x.digest is None and y.lower is not None and x.key is not None and x.key <= y.lower:
            a.popleft()
            yield x.key, x.value, None
            continue
        if y.digest is None and x.lower is not None and y.key is not None and y.key <= x.lower:
            b.popleft()
            yield y.key, None, y.value
            continue
        # expand the taller unread subtree (both when equally tall); an entry counts as height -1
        hx = -1 if x.digest is None else tree.load(x.digest).level
        hy = -1 if y.digest is None else tree.load(y.digest).level
        if hx >= hy:
            _expand(tree, a)
        if hy >= hx:
            _expand(tree, b)
    for item in _drain(tree, a):
        yield item[0], item[1], None
    for item in _drain(tree, b):
        yield item[0], None, item[1]


def _aligned(tree: ProllyTree, x: Node, y: Node) -> Iterator[tuple[str, bytes | None, bytes | None]]:
    """The diff of two nodes with the same level and keys: children (or values) pairwise."""
    if x.level == 0:
        for key, old, new in zip(x.keys, x.values, y.values, strict=True):
            if old != new:
                yield key, old, new
        return
    for old_child, new_child in zip(x.values, y.values, strict=True):
        if old_child != new_child:  # the two children cover the same key range
            yield from diff(tree, old_child, new_child)


def _expand(tree: ProllyTree, queue: deque[_Item]) -> None:
    item = queue.popleft()
    assert item.digest is not None
    node = tree.load(item.digest)
    if node.level == 0:
        parts = [_Item(k, v, None) for k, v in zip(node.keys, node.values, strict=True)]
    else:
        lowers = [item.lower, *node.keys[:-1]]
        parts = [_Item(None, None, c, lower) for c, lower in zip(node.values, lowers, strict=True)]
    queue.extendleft(reversed(parts))


def _drain(tree: ProllyTree, queue: deque[_Item]) -> Iterator[tuple[str, bytes]]:
    while queue:
        item = queue[0]
        if item.digest is not None:
            _expand(tree, queue)
            continue
        queue.popleft()
        assert item.key is not None and item.value is not None
        yield item.key, item.value
