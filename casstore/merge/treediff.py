"""The diff a merge reads each side by: changed keys of two prolly trees, by level, in batches."""

from __future__ import annotations

from casstore.prolly import ProllyTree

__all__ = ["Diff", "aligned_diff"]

#: key → (old value, new value); ``None`` where absent.
Diff = dict[str, tuple[bytes | None, bytes | None]]


def aligned_diff(tree: ProllyTree, old: bytes, new: bytes) -> Diff:
    """``key → (old value, new value)`` of every key that differs, descending only where digests differ.

    Level by level, with one batched read per level: node pairs with the same keys (boundaries
    depend on keys only, so a value-only change keeps them) are compared child by child, or entry
    by entry at the leaves; any other pair is handed to the general
    :meth:`~casstore.prolly.ProllyTree.diff` (it covers the same key range).
    """
    out: Diff = {}
    frontier = [(old, new)] if old != new else []
    while frontier:
        nodes = tree.load_many([digest for pair in frontier for digest in pair])
        following = []
        for number, (a, b) in enumerate(frontier):
            na, nb = nodes[2 * number], nodes[2 * number + 1]
            if na.level != nb.level or na.keys != nb.keys:
                out.update((key, (x, y)) for key, x, y in tree.diff(a, b))
            elif na.level == 0:
                out.update((k, (x, y)) for k, x, y in zip(na.keys, na.values, nb.values, strict=True) if x != y)
            else:
                following += [(x, y) for x, y in zip(na.values, nb.values, strict=True) if x != y]
        frontier = following
    return out
