"""The diff a merge reads each side by: changed keys of two prolly trees, by level, in batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import compress
from operator import ne

from casstore.prolly import ProllyTree

__all__ = ["Diff", "DiffTrace", "aligned_diff"]

#: key → (old value, new value); ``None`` where absent.
Diff = dict[str, tuple[bytes | None, bytes | None]]


@dataclass
class DiffTrace:
    """Where a diff went in the old tree: what a second diff of the same old tree can be limited to."""

    #: each differing node pair of the same keys, old digest → new digest (an update's ``reuse``)
    pairs: dict[bytes, bytes] = field(default_factory=dict)
    #: every old node the diff descended into
    descended: set[bytes] = field(default_factory=set)
    #: old nodes whose range the general diff covered (everything under them is covered)
    covered: set[bytes] = field(default_factory=set)


def aligned_diff(
    tree: ProllyTree, old: bytes, new: bytes, trace: DiffTrace | None = None, within: DiffTrace | None = None
) -> Diff:
    """``key → (old value, new value)`` of every key that differs, descending only where digests differ.

    Level by level, with one batched read per level: node pairs with the same keys (boundaries
    depend on keys only, so a value-only change keeps them) are compared child by child, or entry
    by entry at the leaves; any other pair is handed to the general
    :meth:`~casstore.prolly.ProllyTree.diff` (it covers the same key range).  ``trace``, if given,
    records where the diff went.  ``within`` (another diff's trace from the same old tree) limits
    this one to the key ranges that diff descended into: every key differing there is reported
    (some others may be), so a merge reads one side only where the other side changed too.
    """
    out: Diff = {}
    # (old, new, limited): a limited pair is descended only where ``within`` descended
    frontier = [(old, new, within is not None)] if old != new else []
    while frontier:
        if within is not None:
            frontier = [
                (a, b, limited and a not in within.covered)
                for a, b, limited in frontier
                if not limited or a in within.descended
            ]
            if not frontier:
                break
        nodes = tree.load_many([digest for a, b, _ in frontier for digest in (a, b)])
        following = []
        for number, (a, b, limited) in enumerate(frontier):
            na, nb = nodes[2 * number], nodes[2 * number + 1]
            if trace is not None:
                trace.descended.add(a)
            if na.level != nb.level or na.keys != nb.keys:
                if trace is not None:
                    trace.covered.add(a)
                out.update((key, (x, y)) for key, x, y in tree.diff(a, b))
            else:  # the positions whose values differ, found at C speed (a rewritten leaf differs in few)
                if trace is not None:
                    trace.pairs[a] = b
                va, vb = na.values, nb.values
                changed = compress(range(len(va)), map(ne, va, vb))
                if na.level == 0:
                    keys = na.keys
                    out.update((keys[i], (va[i], vb[i])) for i in changed)
                else:
                    following += [(va[i], vb[i], limited) for i in changed]
        frontier = following
    return out
