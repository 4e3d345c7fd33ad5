"""Prolly trees: sorted maps cut into content-defined nodes, so a map is a Merkle root.

Owns the node format, the chunking rule, bulk build, point reads, range scans,
batched updates that rewrite only the nodes on the edited paths, and diff that
descends only where hashes differ.  Keys are ``str``; values are opaque
``bytes``, which callers guarantee to be the canonical encoding of one item
(such bytes never parse as a CID, so they are never mistaken for a link).

**Chunking rule** (after Dolt's key splitter, see docs/format.md): entries
are appended to the current node; after each entry the node ends there if its
actual bytes reach ``MAX``, or if its *nominal* bytes ``size`` (keys plus a fixed
``value_hint`` per value) are at least ``MIN`` and ``h < (F(size) - F(size -
this)) / (1 - F(size - this))``, where ``h`` is the entry's key hash as a
fraction in [0, 1) (BLAKE3 of a level byte and the key), ``this`` the entry's
nominal size and ``F`` the Weibull CDF with shape 4 and scale ``TARGET``.
Boundaries therefore depend only on the keys (a value change moves none, unless
a node would pass the ``MAX`` cap), never on the order of the operations that
produced them (history independence).  Each level above the leaves is chunked
the same way over ``(last key, child link)`` entries, until a level has one
node: the root.

Node encoding (DAG-CBOR): ``{"t": kind, "h": height, "k": [keys], "v": [values]}``
for leaves (height 0) and ``{"t": kind, "h": height, "k": [last keys], "c": [links]}``
for internal nodes.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass

import blake3

from casstore import codec
from casstore.store.base import BlobStore, PendingWrites

TARGET = 4096
MIN = 512
MAX = 16384
_WEIBULL_K = 4.0
_LINK_BYTES = codec.CID_SIZE + 4
DEFAULT_VALUE_HINT = 64
_SALTS = [bytes([level]) for level in range(64)]


#: The Weibull CDF at every chunk size below MAX (a table lookup instead of pow + expm1 per entry).
_CDF = [-math.expm1(-((x / TARGET) ** _WEIBULL_K)) for x in range(MAX)]
#: Per-level key hashes (as fractions of 2**32) and UTF-8 lengths; keys recur on every rewrite of their node.
_KEY_CACHE: list[dict[str, tuple[int, float]]] = [{} for _ in range(64)]
_KEY_CACHE_LIMIT = 1 << 20


def _key_info(key: str, level: int) -> tuple[int, float]:
    cache = _KEY_CACHE[level]
    info = cache.get(key)
    if info is None:
        raw = key.encode()
        fraction = int.from_bytes(blake3.blake3(_SALTS[level] + raw).digest(4), "big") / 4294967296.0
        if len(cache) >= _KEY_CACHE_LIMIT:
            cache.clear()
        info = cache[key] = (len(raw), fraction)
    return info


def _crosses(fraction: float, size: int, this: int) -> bool:
    if size < MIN:
        return False
    if size >= MAX:
        return True
    start = _CDF[size - this]
    return fraction < (_CDF[size] - start) / (1.0 - start)


#: An edit of one key: the new value, ``None`` to delete, or a function of the old value returning either.
Edit = bytes | None | Callable[[bytes | None], bytes | None]


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
            self.actual = _actual_size(self.keys, self.values, self.level)
        return self.actual


class Chunker:
    """Cuts a stream of sorted entries of one level into nodes by the chunking rule."""

    __slots__ = ("actual", "emitted", "keys", "kind", "level", "nominal", "size", "tree", "values")

    def __init__(self, tree: ProllyTree, kind: str, level: int) -> None:
        self.tree, self.kind, self.level = tree, kind, level
        self.nominal = tree.value_hint if level == 0 else _LINK_BYTES
        self.keys: list[str] = []
        self.values: list[bytes] = []
        self.size = 0  # nominal bytes: keys plus a fixed size per value; what the rule sees
        self.actual = 0  # real bytes, for the MAX cap only
        self.emitted: list[tuple[str, bytes]] = []

    def add(self, key: str, value: bytes) -> None:
        key_len, fraction = _key_info(key, self.level)
        this = key_len + self.nominal
        self.keys.append(key)
        self.values.append(value)
        self.size += this
        self.actual += key_len + (len(value) if self.level == 0 else _LINK_BYTES)
        if self.actual >= MAX or (self.size >= MIN and _crosses(fraction, self.size, this)):
            self.cut()

    def extend_known(self, keys: list[str], values: list[bytes]) -> None:
        """Append entries already known not to end a node (the caller checked the MAX cap)."""
        if not keys:
            return
        self.keys.extend(keys)
        self.values.extend(values)
        key_bytes = _utf8_len(keys)
        self.size += key_bytes + self.nominal * len(keys)
        self.actual += key_bytes + (sum(map(len, values)) if self.level == 0 else _LINK_BYTES * len(values))

    @property
    def at_boundary(self) -> bool:
        return not self.keys

    def cut(self) -> None:
        """End the current node here (also used at the end of a level)."""
        if not self.keys:
            return
        digest = self.tree.store_node(self.kind, Node(self.level, self.keys, self.values, self.actual))
        self.emitted.append((self.keys[-1], digest))
        self.keys, self.values, self.size, self.actual = [], [], 0, 0


def _utf8_len(keys: list[str]) -> int:
    joined = "".join(keys)
    return len(joined) if joined.isascii() else len(joined.encode())


def _actual_size(keys: list[str], values: list[bytes], level: int) -> int:
    return _utf8_len(keys) + (sum(map(len, values)) if level == 0 else _LINK_BYTES * len(values))


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
        if node.level == 0:
            obj = {"t": kind, "h": 0, "k": node.keys, "v": node.values}
        else:
            obj = {"t": kind, "h": node.level, "k": node.keys, "c": [codec.link(d) for d in node.values]}
        digest = self.pending.add(codec.encode(obj))
        self.cache.put(digest, node)
        return digest

    def flush(self) -> None:
        """Write pending nodes (children first) in one batch."""
        self.pending.write_to(self.blobs)

    def load(self, digest: bytes) -> Node:
        node = self.cache.get(digest)
        if node is None:
            data = self.pending.get(digest)
            node = decode_node(data if data is not None else self.blobs.get(digest))
            self.cache.put(digest, node)
        return node

    def load_many(self, digests: Sequence[bytes]) -> list[Node]:
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
        data = codec.encode({"t": self.kind, "h": 0, "k": [], "v": []})
        digest = codec.hash_bytes(data)
        self.cache.put(digest, Node(0, [], []))
        return digest

    # ---------------------------------------------------------------- build and read

    def build(self, items: Iterable[tuple[str, bytes]]) -> bytes:
        """The root of a tree holding ``items`` (strictly increasing keys), streamed.

        Memory holds one leaf at a time plus one ``(last key, digest)`` per leaf.
        """
        chunker = Chunker(self, self.kind, 0)
        previous: str | None = None
        for key, value in items:
            if previous is not None and key <= previous:
                raise ValueError(f"prolly build needs strictly increasing keys ({key!r} after {previous!r})")
            previous = key
            chunker.add(key, value)
        chunker.cut()
        if not chunker.emitted:
            return self.empty()
        return self.build_levels(1, chunker.emitted)

    def get_many(self, root: bytes, keys: Iterable[str]) -> dict[str, bytes]:
        """Values of those ``keys`` present in the tree."""
        wanted = sorted(set(keys))
        out: dict[str, bytes] = {}
        frontier: list[tuple[bytes, list[str]]] = [(root, wanted)] if wanted else []
        while frontier:
            nodes = self.load_many([d for d, _ in frontier])
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

    def get(self, root: bytes, key: str) -> bytes | None:
        return self.get_many(root, [key]).get(key)

    def items(self, root: bytes, start: str = "", stop: str | None = None) -> Iterator[tuple[str, bytes]]:
        """Entries with ``start <= key < stop`` in key order, reading one path and then leaf by leaf."""
        path: list[tuple[Node, int]] = []  # internal nodes and the index of the next child to visit
        node = self.load(root)
        while node.level > 0:
            i = bisect_left(node.keys, start)
            if i >= len(node.keys):
                return
            path.append((node, i + 1))
            node = self.load(node.values[i])
        position = bisect_left(node.keys, start)
        while True:
            for j in range(position, len(node.keys)):
                key = node.keys[j]
                if stop is not None and key >= stop:
                    return
                yield key, node.values[j]
            leaf = self._next_leaf(path, stop)
            if leaf is None:
                return
            node, position = leaf, 0

    def items_with_prefix(self, root: bytes, prefix: str) -> Iterator[tuple[str, bytes]]:
        """Entries whose key starts with ``prefix``, in key order."""
        for key, value in self.items(root, prefix):
            if not key.startswith(prefix):
                return
            yield key, value

    def _next_leaf(self, path: list[tuple[Node, int]], stop: str | None) -> Node | None:
        while path:
            parent, k = path.pop()
            if k < len(parent.keys):
                if stop is not None and parent.keys[k - 1] >= stop:
                    return None  # every later key is past the stop
                path.append((parent, k + 1))
                node = self.load(parent.values[k])
                while node.level > 0:
                    path.append((node, 1))
                    node = self.load(node.values[0])
                return node
        return None

    def node_digests(self, root: bytes) -> Iterator[tuple[bytes, Node]]:
        """Every node of the tree, level by level, with batched reads."""
        frontier = [root]
        while frontier:
            nodes = self.load_many(frontier)
            yield from zip(frontier, nodes, strict=True)
            frontier = [child for node in nodes if node.level > 0 for child in node.values]

    # ---------------------------------------------------------------- update

    def update(self, root: bytes, edits: Mapping[str, Edit]) -> tuple[bytes, dict[str, bytes]]:
        """Apply ``edits`` in one pass: key → new value, ``None`` to delete, or a function of the
        old value (``None`` if absent) returning one of those, called once as the update meets the key.

        Returns the new root and the old values of edited keys that existed.
        Only the nodes on edited paths (and a neighbour where a boundary moved)
        are rewritten; the result is the tree :meth:`build` would give for the
        same entries.
        """
        old_values: dict[str, bytes] = {}
        if not edits:
            return root, old_values
        root_node = self.load(root)
        plan = self._plan(root_node, sorted(edits))
        if plan is not None:  # every key exists: resolve each edit once, then try a same-shape rewrite
            resolved = self._resolve_plan(plan, edits, old_values)
            if all(resolved[key] is not None for key in resolved) and self._fits(plan, resolved):
                return self._rebuild(plan, resolved), old_values
            edits = resolved
        level_edits: list[tuple[str, Edit]] = sorted(edits.items(), key=lambda item: item[0])
        level = 0
        while level < root_node.level:
            replaced, new = self._rewrite_level(root, root_node, level, level_edits, old_values)
            parent: dict[str, bytes | None] = dict.fromkeys(replaced)
            parent.update(new)
            level_edits = sorted(((k, v) for k, v in parent.items() if replaced.get(k, b"") != v), key=lambda kv: kv[0])
            if not level_edits:
                return root, old_values
            level += 1
        # the root's own level: only one node, the root itself
        chunker = Chunker(self, self.kind, level)
        for key, value in _merge(root_node, _resolve(root_node, level_edits, old_values if level == 0 else None)):
            chunker.add(key, value)
        chunker.cut()
        tops = chunker.emitted
        if not tops:
            return self.empty(), old_values
        if len(tops) > 1:
            return self.build_levels(level + 1, tops), old_values
        new_root = tops[0][1]
        node = self.load(new_root)
        while node.level > 0 and len(node.keys) == 1:  # a level of one node is the root
            new_root = node.values[0]
            node = self.load(new_root)
        if node.level > 0 and not node.keys:
            return self.empty(), old_values
        return new_root, old_values

    # ---- the same-shape fast path: only values of existing keys change

    def _plan(self, node: Node, keys: list[str]) -> _Plan | None:
        """Where each (sorted) key sits, down to leaf positions; ``None`` if any key is absent."""
        if node.level == 0:
            positions = []
            for key in keys:
                i = bisect_left(node.keys, key)
                if i >= len(node.keys) or node.keys[i] != key:
                    return None
                positions.append((i, key))
            return _Plan(node, positions, [])
        by_child: dict[int, list[str]] = {}
        for key in keys:
            i = bisect_left(node.keys, key)
            if i >= len(node.keys):
                return None
            by_child.setdefault(i, []).append(key)
        children = []
        for i, child_keys in by_child.items():
            sub = self._plan(self.load(node.values[i]), child_keys)
            if sub is None:
                return None
            children.append((i, sub))
        return _Plan(node, [], children)

    def _resolve_plan(
        self, plan: _Plan, edits: Mapping[str, Edit], old_values: dict[str, bytes]
    ) -> dict[str, bytes | None]:
        resolved: dict[str, bytes | None] = {}
        for leaf in plan.leaves():
            for position, key in leaf.positions:
                old = leaf.node.values[position]
                old_values[key] = old
                edit = edits[key]
                resolved[key] = edit(old) if callable(edit) else edit
        return resolved

    @staticmethod
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

    def _rebuild(self, plan: _Plan, resolved: Mapping[str, bytes | None]) -> bytes:
        node = plan.node
        values = list(node.values)
        for position, key in plan.positions:
            value = resolved[key]
            assert value is not None
            values[position] = value
        for position, child in plan.children:
            values[position] = self._rebuild(child, resolved)
        # an internal node's size does not change: its links have a fixed size
        actual = plan.actual if node.level == 0 else node.actual
        return self.store_node(self.kind, Node(node.level, node.keys, values, actual))

    def build_levels(self, level: int, entries: list[tuple[str, bytes]]) -> bytes:
        """Chunk a complete level of ``(last key, child)`` entries upwards until one node remains."""
        while len(entries) > 1:
            chunker = Chunker(self, self.kind, level)
            for key, child in entries:
                chunker.add(key, child)
            chunker.cut()
            entries = chunker.emitted
            level += 1
        return entries[0][1]

    def _rewrite_level(
        self,
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
            cursor = _LevelCursor(self, root_node, level, edits[i][0])
            chunker = Chunker(self, self.kind, level)
            while True:
                last_key, digest = cursor.current()
                replaced[last_key] = digest
                is_last = not cursor.has_next()
                j = i
                while j < len(edits) and (is_last or edits[j][0] <= last_key):
                    j += 1
                node = self.load(digest)
                here = _resolve(node, edits[i:j], old_values if level == 0 else None)
                if not (chunker.at_boundary and self._rewrite_in_place(chunker, node, here)):
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

    @staticmethod
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
        if _actual_size(keys[:-1], values[:-1], node.level) + 1 >= MAX:
            return False
        chunker.extend_known(keys[:-1], values[:-1])
        chunker.add(keys[-1], values[-1])
        return True

    # ---------------------------------------------------------------- diff

    def diff(self, old: bytes, new: bytes) -> Iterator[tuple[str, bytes | None, bytes | None]]:
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
            if x.digest is not None and x.digest == y.digest:
                a.popleft()
                b.popleft()
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
            hx = -1 if x.digest is None else self.load(x.digest).level
            hy = -1 if y.digest is None else self.load(y.digest).level
            if hx >= hy:
                self._expand(a)
            if hy >= hx:
                self._expand(b)
        for item in self._drain(a):
            yield item[0], item[1], None
        for item in self._drain(b):
            yield item[0], None, item[1]

    def _expand(self, queue: deque[_Item]) -> None:
        item = queue.popleft()
        assert item.digest is not None
        node = self.load(item.digest)
        if node.level == 0:
            parts = [_Item(k, v, None) for k, v in zip(node.keys, node.values, strict=True)]
        else:
            lowers = [item.lower, *node.keys[:-1]]
            parts = [_Item(None, None, c, lower) for c, lower in zip(node.values, lowers, strict=True)]
        queue.extendleft(reversed(parts))

    def _drain(self, queue: deque[_Item]) -> Iterator[tuple[str, bytes]]:
        while queue:
            item = queue[0]
            if item.digest is not None:
                self._expand(queue)
                continue
            queue.popleft()
            assert item.key is not None and item.value is not None
            yield item.key, item.value


@dataclass(slots=True)
class _Plan:
    """The touched part of a tree: a node, its touched leaf positions (leaf) or touched children (internal)."""

    node: Node
    positions: list[tuple[int, str]]
    children: list[tuple[int, _Plan]]
    actual: int = -1  # a leaf's new actual size, once checked against the cap

    def leaves(self) -> Iterator[_Plan]:
        if self.node.level == 0:
            yield self
        for _, child in self.children:
            yield from child.leaves()


@dataclass(slots=True)
class _Item:
    """A diff queue element: an entry (key, value) or an unread subtree (digest, exclusive lower key)."""

    key: str | None
    value: bytes | None
    digest: bytes | None
    lower: str | None = None


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


class _LevelCursor:
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


def decode_node(data: bytes) -> Node:
    obj = codec.decode(data)
    level = obj["h"]
    if level == 0:
        return Node(0, obj["k"], obj["v"])
    return Node(level, obj["k"], [codec.link_digest(c) for c in obj["c"]])


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
            with suppress(KeyError):  # another thread may have evicted it just now; no lock on this hot path
                self._nodes.move_to_end(digest)
        return node

    def put(self, digest: bytes, node: Node) -> None:
        self._nodes[digest] = node
        if len(self._nodes) > self.capacity:
            for _ in range(len(self._nodes) // 10):
                self._nodes.popitem(last=False)
