"""Writes of a prolly tree: bulk build, and batched updates that rewrite only the nodes on the edited paths.

An update first tries the same-shape fast path (every edited key exists and
keeps a value: plan the touched paths, rewrite them in place when no leaf meets
the ``MAX`` cap); otherwise it rewrites level by level, re-chunking only the
nodes the edits touch (and a neighbour where a boundary moved), so the result is
the tree :func:`build` would give for the same entries.  Each function takes the
:class:`~casstore.prolly.tree.ProllyTree` first; the class binds the public ones
as its methods.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from casstore.prolly.chunking import MAX, Chunker
from casstore.prolly.node import Node, encode_node, entries_size
from casstore.prolly.read import LevelCursor

if TYPE_CHECKING:
    from casstore.prolly.tree import ProllyTree

__all__ = ["Edit", "build", "build_levels", "update"]

#: An edit of one key: the new value, ``None`` to delete, or a function of the old value returning either.
Edit = bytes | None | Callable[[bytes | None], bytes | None]


def build(tree: ProllyTree, items: Iterable[tuple[str, bytes]]) -> bytes:
    """The root of a tree holding ``items`` (strictly increasing keys), streamed.

    Memory holds one leaf at a time plus one ``(last key, digest)`` per leaf.
    """
    chunker = Chunker(tree, tree.kind, 0)
    previous: str | None = None
    for key, value in items:
        if previous is not None and key <= previous:
            raise ValueError(f"prolly build needs strictly increasing keys ({key!r} after {previous!r})")
        previous = key
        chunker.add(key, value)
    chunker.cut()
    if not chunker.emitted:
        return tree.empty()
    return build_levels(tree, 1, chunker.emitted)


def build_levels(tree: ProllyTree, level: int, entries: list[tuple[str, bytes]]) -> bytes:
    """Chunk a complete level of ``(last key, child)`` entries upwards until one node remains."""
    while len(entries) > 1:
        chunker = Chunker(tree, tree.kind, level)
        for key, child in entries:
            chunker.add(key, child)
        chunker.cut()
        entries = chunker.emitted
        level += 1
    return entries[0][1]


def update(
    tree: ProllyTree, root: bytes, edits: Mapping[str, Edit], reuse: Mapping[bytes, bytes] | None = None
) -> tuple[bytes, dict[str, bytes]]:
    """Apply ``edits`` in one pass: key → new value, ``None`` to delete, or a function of the
    old value (``None`` if absent) returning one of those, called once as the update meets the key.

    Returns the new root and the old values of edited keys that existed.
    Only the nodes on edited paths (and a neighbour where a boundary moved)
    are rewritten; the result is the tree :meth:`build` would give for the
    same entries.  ``reuse`` maps a node's digest to a stored node that may be
    its rewrite (a merge's other side): a same-shape rewrite whose entries come
    out exactly as that node's is that node, neither encoded nor written again.
    """
    old_values: dict[str, bytes] = {}
    if not edits:
        return root, old_values
    root_node = tree.load(root)
    plan = _plan(tree, root, root_node, sorted(edits))
    if plan is not None:  # every key exists: resolve each edit once, then try a same-shape rewrite
        resolved = _resolve_plan(plan, edits, old_values)
        if all(resolved[key] is not None for key in resolved) and _fits(plan, resolved):
            return _rebuild(tree, plan, resolved, reuse or {}), old_values
        edits = resolved
    level_edits: list[tuple[str, Edit]] = sorted(edits.items(), key=lambda item: item[0])
    level = 0
    while level < root_node.level:
        replaced, new = _rewrite_level(tree, root, root_node, level, level_edits, old_values)
        parent: dict[str, bytes | None] = dict.fromkeys(replaced)
        parent.update(new)
        level_edits = sorted(((k, v) for k, v in parent.items() if replaced.get(k, b"") != v), key=lambda kv: kv[0])
        if not level_edits:
            return root, old_values
        level += 1
    # the root's own level: only one node, the root itself
    chunker = Chunker(tree, tree.kind, level)
    for key, value in _merge(root_node, _resolve(root_node, level_edits, old_values if level == 0 else None)):
        chunker.add(key, value)
    chunker.cut()
    tops = chunker.emitted
    if not tops:
        return tree.empty(), old_values
    if len(tops) > 1:
        return build_levels(tree, level + 1, tops), old_values
    new_root = tops[0][1]
    node = tree.load(new_root)
    while node.level > 0 and len(node.keys) == 1:  # a level of one node is the root
        new_root = node.values[0]
        node = tree.load(new_root)
    if node.level > 0 and not node.keys:
        return tree.empty(), old_values
    return new_root, old_values


# ---- the same-shape fast path: only values of existing keys change


@dataclass(slots=True)
class _Plan:
    """The touched part of a tree: a node, its touched leaf positions (leaf) or touched children (internal)."""

    digest: bytes
    node: Node
    positions: list[tuple[int, str]]
    children: list[tuple[int, _Plan]]
    actual: int = -1  # a leaf's new actual size, once checked against the cap

    def leaves(self) -> list[_Plan]:
        """The touched leaves, in key order (a loop, not recursive generators: this runs per update)."""
        level = [self]
        while level and level[0].node.level > 0:
            level = [child for plan in level for _, child in plan.children]
        return level


def _plan(tree: ProllyTree, digest: bytes, node: Node, keys: list[str]) -> _Plan | None:
    """Where each (sorted) key sits, down to leaf positions; ``None`` if any key is absent."""
    if node.level == 0:
        positions = []
        for key in keys:
            i = bisect_left(node.keys, key)
            if i >= len(node.keys) or node.keys[i] != key:
                return None
            positions.append((i, key))
        return _Plan(digest, node, positions, [])
    by_child: dict[int, list[str]] = {}
    for key in keys:
        i = bisect_left(node.keys, key)
        if i >= len(node.keys):
            return None
        by_child.setdefault(i, []).append(key)
    children = []
    touched = list(by_child)
    loaded = tree.load_many([node.values[i] for i in touched])  # one batched read of the touched children
    for i, child in zip(touched, loaded, strict=True):
        sub = _plan(tree, node.values[i], child, by_child[i])
        if sub is None:
            return None
        children.append((i, sub))
    return _Plan(digest, node, [], children)


def _resolve_plan(plan: _Plan, edits: Mapping[str, Edit], old_values: dict[str, bytes]) -> dict[str, bytes | None]:
    resolved: dict[str, bytes | None] = {}
    for leaf in plan.leaves():
        for position, key in leaf.positions:
            old = leaf.node.values[position]
            old_values[key] = old
            edit = edits[key]
            resolved[key] = edit(old) if callable(edit) else edit
    return resolved


def _fits(plan: _Plan, resolved: Mapping[str, bytes | None]) -> bool:
    """No leaf ends, or would end, by the MAX cap (then boundaries are the rule's alone: unchanged)."""
    for leaf in plan.leaves():
        node = leaf.node
        old = node.actual_size()
        new = old + sum(len(resolved[key] or b"") - len(node.values[pos]) for pos, key in leaf.positions)
        if old >= MAX or new >= MAX:
            return False
        leaf.actual = new
    return True


def _rebuild(
    tree: ProllyTree, plan: _Plan, resolved: Mapping[str, bytes | None], reuse: Mapping[bytes, bytes]
) -> bytes:
    node = plan.node
    values = list(node.values)
    for position, key in plan.positions:
        value = resolved[key]
        assert value is not None
        values[position] = value
    for position, child in plan.children:
        values[position] = _rebuild(tree, child, resolved, reuse)
    candidate = reuse.get(plan.digest)
    if candidate is not None:  # the same level, keys and values encode to the same bytes: that node
        other = tree.load(candidate)
        if other.level == node.level and other.keys == node.keys and other.values == values:
            return candidate
    # an internal node's size does not change: its links have a fixed size
    actual = plan.actual if node.level == 0 else node.actual
    new = tree.store_node(tree.kind, Node(node.level, node.keys, values, actual))
    # the node it replaces is its delta base at rest, and its bytes are at hand (re-encoded only if used)
    tree.pending.replaces(new, plan.digest, partial(encode_node, tree.kind, node))
    return new


# ---- the general path: re-chunk the touched nodes of each level, bottom up


def _rewrite_level(
    tree: ProllyTree,
    root: bytes,
    root_node: Node,
    level: int,
    edits: list[tuple[str, Edit]],
    old_values: dict[str, bytes],
) -> tuple[dict[str, bytes], list[tuple[str, bytes]]]:
    """Rewrite the level-``level`` nodes that ``edits`` touch.

    Returns the replaced old nodes (last key → digest) and the new nodes, in order.
    """
    replaced: dict[str, bytes] = {}
    new_nodes: list[tuple[str, bytes]] = []
    i = 0
    while i < len(edits):
        cursor = LevelCursor(tree, root_node, level, edits[i][0])
        chunker = Chunker(tree, tree.kind, level)
        while True:
            last_key, digest = cursor.current()
            replaced[last_key] = digest
            is_last = not cursor.has_next()
            j = i
            while j < len(edits) and (is_last or edits[j][0] <= last_key):
                j += 1
            node = tree.load(digest)
            here = _resolve(node, edits[i:j], old_values if level == 0 else None)
            if not (chunker.at_boundary and _rewrite_in_place(chunker, node, here)):
                start = 0
                if chunker.at_boundary and here:
                    # This node starts a chunk, so its entries before the first edit (all but the last
                    # entry, which may be a boundary) are known not to end one: append them unchecked.
                    start = max(0, min(bisect_left(node.keys, here[0][0]), len(node.keys) - 1))
                    chunker.extend_known(node.keys[:start], node.values[:start])
                for key, value in _merge(node, here, start):
                    chunker.add(key, value)
            i = j
            if is_last:
                chunker.cut()
                break
            if chunker.at_boundary:
                break
            cursor.advance()
        new_nodes.extend(chunker.emitted)
    return replaced, new_nodes


def _rewrite_in_place(chunker: Chunker, node: Node, edits: list[tuple[str, bytes | None]]) -> bool:
    """Rewrite a node whose edits only replace values of keys it holds, if that cannot move a boundary.

    Boundaries depend on keys alone (and the MAX cap), so such a node keeps its shape: every entry
    but the last is appended unchecked and only the last is judged again.  Returns False (having
    done nothing) when the fast path does not apply.
    """
    keys = node.keys
    if not keys or not edits:
        return False
    values = list(node.values)
    for key, value in edits:
        position = bisect_left(keys, key)
        if value is None or position >= len(keys) or keys[position] != key:
            return False
        values[position] = value
    if entries_size(keys[:-1], values[:-1], node.level) + 1 >= MAX:
        return False
    chunker.extend_known(keys[:-1], values[:-1])
    chunker.add(keys[-1], values[-1])
    return True


def _resolve(
    node: Node, edits: Sequence[tuple[str, Edit]], old_values: dict[str, bytes] | None
) -> list[tuple[str, bytes | None]]:
    """Edits for one node with functions of the old value called (once each); records old values."""
    keys, values = node.keys, node.values
    out: list[tuple[str, bytes | None]] = []
    for key, value in edits:
        position = bisect_left(keys, key)
        old = values[position] if position < len(keys) and keys[position] == key else None
        if old is not None and old_values is not None:
            old_values[key] = old
        out.append((key, value(old) if callable(value) else value))
    return out


def _merge(node: Node, edits: Sequence[tuple[str, bytes | None]], start: int = 0) -> Iterator[tuple[str, bytes]]:
    """A node's entries from index ``start`` with resolved ``edits`` applied, in key order."""
    keys, values = node.keys, node.values
    i = start
    for key, value in edits:
        while i < len(keys) and keys[i] < key:
            yield keys[i], values[i]
            i += 1
        if i < len(keys) and keys[i] == key:
            i += 1
        if value is not None:
            yield key, value
    while i < len(keys):
        yield keys[i], values[i]
        i += 1
