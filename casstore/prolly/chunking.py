"""The chunking rule: where a stream of sorted entries is cut into nodes.  Part of the on-disk format.

After Dolt's key splitter (see docs/format.md): entries are appended to the
current node; after each entry the node ends there if its actual bytes reach
``MAX``, or if its *nominal* bytes ``size`` (keys plus a fixed ``value_hint``
per value) are at least ``MIN`` and ``h < (F(size) - F(size - this)) / (1 -
F(size - this))``, where ``h`` is the entry's key hash as a fraction in [0, 1)
(BLAKE3 of a level byte and the key), ``this`` the entry's nominal size and
``F`` the Weibull CDF with shape 4 and scale ``TARGET``.  Boundaries therefore
depend only on the keys (a value change moves none, unless a node would pass
the ``MAX`` cap), never on the order of the operations that produced them
(history independence).  Each level above the leaves is chunked the same way
over ``(last key, child link)`` entries, until a level has one node: the root.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import blake3

from casstore.prolly.node import LINK_BYTES, Node, utf8_len

if TYPE_CHECKING:
    from casstore.prolly.tree import ProllyTree

__all__ = ["DEFAULT_VALUE_HINT", "MAX", "MIN", "TARGET", "Chunker"]

TARGET = 4096
MIN = 512
MAX = 16384
_WEIBULL_K = 4.0
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


class Chunker:
    """Cuts a stream of sorted entries of one level into nodes by the chunking rule."""

    __slots__ = ("actual", "emitted", "keys", "kind", "level", "nominal", "size", "tree", "values")

    def __init__(self, tree: ProllyTree, kind: str, level: int) -> None:
        self.tree, self.kind, self.level = tree, kind, level
        self.nominal = tree.value_hint if level == 0 else LINK_BYTES
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
        self.actual += key_len + (len(value) if self.level == 0 else LINK_BYTES)
        if self.actual >= MAX or (self.size >= MIN and _crosses(fraction, self.size, this)):
            self.cut()

    def extend_known(self, keys: list[str], values: list[bytes]) -> None:
        """Append entries already known not to end a node (the caller checked the MAX cap)."""
        if not keys:
            return
        self.keys.extend(keys)
        self.values.extend(values)
        key_bytes = utf8_len(keys)
        self.size += key_bytes + self.nominal * len(keys)
        self.actual += key_bytes + (sum(map(len, values)) if self.level == 0 else LINK_BYTES * len(values))

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
