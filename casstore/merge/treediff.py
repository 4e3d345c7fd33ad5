"""The diff a merge reads each side by: changed keys of two prolly trees, by level, in batches."""

from __future__ import annotations

from itertools import compress
from operator import ne

from casstore.prolly import ProllyTree

__all__ = ["Diff", "aligned_diff"]

#: key → (old value, new value); ``None`` where absent.
Diff = dict[str, tuple[bytes | None, bytes | None]]


def aligned_diff(tree: ProllyTree, old: bytes, new: bytes, pairs: dict[bytes, bytes] | None = None) -> Diff:
    """``key → (old value, new value)`` of every key that differs, descending only where digests differ.

    Level by level, with one batched read per level: node pairs with the same keys (boundaries
    depend on keys only, so a value-only change keeps them) are compared child by child, or entry
    by entry at the leaves; any other pair is handed to the general
    :meth:`~casstore.prolly.ProllyTree.diff` (it covers the same key range).  ``pairs``, if given,
    receives each such differing pair, old digest → new digest (an update's ``reuse``).
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
            else:  # the positions whose values differ, found at C speed (a rewritten leaf differs in few)
                if pairs is not None:
                    pairs[a] = b
                va, vb = na.values, nb.values
                changed = compress(range(len(va)), map(ne, va, vb))
                if na.level == 0:
                    keys = na.keys
                    out.update((keys[i], (va[i], vb[i])) for i in changed)
                else:
                    following += [(va[i], vb[i]) for i in changed]
        frontier = following
    return out
