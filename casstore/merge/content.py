"""The content rules of the ``merge`` blend mode: upstream Bassline's ``mergeContent``, made three-way.

Upstream (``packages/core/src/mergeable/merge.ts`` in Bassline-Org/bassline,
Aug 2025) merges two values; casstore merges a contact's two sides against
their common base, so that merging the same change twice changes nothing.
Tagged collections are plain maps of the data model (docs/merge.md):

* ``{"_tag": "GrowSet" | "ShrinkSet", "values": [..]}``
* ``{"_tag": "GrowArray" | "ShrinkArray", "items": [..]}``
* ``{"_tag": "GrowMap" | "ShrinkMap", "entries": {key: value}}``

:func:`merge3` returns the merged value or raises :class:`Contradiction`
(message and both values, upstream's ``lastContradiction`` shape).  Set
results are in canonical order (by encoded bytes), so a merge does not
depend on which side is "ours"; arrays keep the ``first`` side's order and
append the other side's additions.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from casstore import codec

__all__ = ["TAGS", "Contradiction", "merge3", "same"]

TAGS = {
    "GrowSet": "values",
    "ShrinkSet": "values",
    "GrowArray": "items",
    "ShrinkArray": "items",
    "GrowMap": "entries",
    "ShrinkMap": "entries",
}


class Contradiction(Exception):
    """Two values the ``merge`` blend mode cannot combine (not a public error: it becomes a conflict)."""

    def __init__(self, message: str, left: Any, right: Any) -> None:
        super().__init__(message)
        self.message = message
        self.left = left
        self.right = right


def _key(value: Any) -> bytes:
    return codec.encode_value(value)


def same(a: Any, b: Any) -> bool:
    """Structural equality of the data model (``True`` is not ``1``, ``1`` is not ``1.0``)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, str | bytes):
        return bool(a == b)
    return _key(a) == _key(b)


def _tag(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("_tag"), str) and value["_tag"] in TAGS:
        field = TAGS[value["_tag"]]
        body = value.get(field)
        if isinstance(body, dict if field == "entries" else list):
            return str(value["_tag"])
    return None


def _is_tagged(value: Any) -> bool:
    return isinstance(value, dict) and "_tag" in value


def _canonical(items: list[Any]) -> list[Any]:
    """Unique items, sorted by their encoded bytes (a set's canonical order)."""
    unique = {_key(item): item for item in items}
    return [unique[k] for k in sorted(unique)]


def _list_merge(base: list[Any], first: list[Any], second: list[Any]) -> list[Any]:
    """Three-way list merge: ``first``'s order, minus what ``second`` removed from ``base``, plus what it added.

    Items are counted (a multiset), so an item added on both sides appears once per side's addition
    beyond the other's, and merging the same change again adds nothing.
    """
    b, s = Counter(map(_key, base)), Counter(map(_key, second))
    removed, added = b - s, s - b
    f = Counter(map(_key, first))
    added = added - (f - b)  # what first added too is not added twice
    out = []
    for item in first:
        k = _key(item)
        if removed[k] > 0 and b[k] > 0:
            removed[k] -= 1
            continue
        out.append(item)
    for item in second:
        k = _key(item)
        if added[k] > 0:
            added[k] -= 1
            out.append(item)
    return out


def _items(value: Any, field: str) -> Any:
    return value[field] if _tag(value) is not None else value


def _merge_tagged(base: Any, a: Any, b: Any, tag: str) -> Any:
    field = TAGS[tag]
    x, y = _items(a, field), _items(b, field)
    base_items = _items(base, field) if _tag(base) == tag or (base is not None and not _is_tagged(base)) else None
    if tag == "GrowSet":
        return {"_tag": tag, "values": _canonical([*x, *y])}
    if tag == "ShrinkSet":
        keys = {_key(v) for v in y}
        common = _canonical([v for v in x if _key(v) in keys])
        if not common:
            raise Contradiction("Empty set intersection", a, b)
        return {"_tag": tag, "values": common}
    if tag == "GrowArray":
        base_list = base_items if isinstance(base_items, list) else []
        return {"_tag": tag, "items": _list_merge(base_list, x, y)}
    if tag == "ShrinkArray":
        keys = {_key(v) for v in y}
        seen: set[bytes] = set()
        common = []
        for v in x:
            k = _key(v)
            if k in keys and k not in seen:
                seen.add(k)
                common.append(v)
        if not common:
            raise Contradiction("Empty array intersection", a, b)
        return {"_tag": tag, "items": common}
    base_map = base_items if isinstance(base_items, dict) else {}
    if tag == "GrowMap":
        return {"_tag": tag, "entries": _map_merge(base_map, x, y, keep_one_sided=True)}
    result = _map_merge(base_map, x, y, keep_one_sided=False)
    if not result:
        raise Contradiction("Empty map intersection", a, b)
    return {"_tag": tag, "entries": result}


_ABSENT = object()


def _map_merge(base: dict[str, Any], a: dict[str, Any], b: dict[str, Any], keep_one_sided: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted(set(a) | set(b)):
        if key in a and key in b:
            out[key] = merge3(base.get(key), a[key], b[key])
        elif keep_one_sided:
            out[key] = a[key] if key in a else b[key]
    return out


def _plain_map_merge(base: dict[str, Any] | None, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Plain maps, key by key and three-way: a key one side removed and the other left alone is removed."""
    base = base if isinstance(base, dict) and not _is_tagged(base) else {}
    out: dict[str, Any] = {}
    for key in sorted(set(a) | set(b) | set(base)):
        x, y, z = a.get(key, _ABSENT), b.get(key, _ABSENT), base.get(key, _ABSENT)
        if x is _ABSENT and y is _ABSENT:
            continue
        if x is not _ABSENT and y is not _ABSENT:
            out[key] = merge3(None if z is _ABSENT else z, x, y)
        else:
            present = x if x is not _ABSENT else y
            if z is _ABSENT or not same(z, present):  # an addition, or a change the other side's removal yields to
                out[key] = present
    return out


def merge3(base: Any, ours: Any, theirs: Any, ours_first: bool = True) -> Any:
    """The ``merge`` blend mode's value for two sides changed from ``base`` (raises :class:`Contradiction`).

    ``ours_first`` says whose order an array keeps (the other's additions are appended).
    """
    if same(ours, theirs):
        return ours
    if same(ours, base):
        return theirs
    if same(theirs, base):
        return ours
    if ours is None:
        return theirs
    if theirs is None:
        return ours
    tag_a, tag_b = _tag(ours), _tag(theirs)
    if tag_a is not None and tag_b is not None:
        if tag_a != tag_b:
            raise Contradiction("Cannot merge different collection types", ours, theirs)
        return _merged_tagged(base, ours, theirs, tag_a, ours_first)
    if (tag_a is None) != (tag_b is None):
        tagged, plain = (ours, theirs) if tag_a is not None else (theirs, ours)
        tag = tag_a or tag_b
        assert tag is not None
        kind = dict if TAGS[tag] == "entries" else list
        if isinstance(plain, kind) and not _is_tagged(plain) and tag not in ("GrowSet", "ShrinkSet"):
            return _merged_tagged(base, ours, theirs, tag, ours_first)
        raise Contradiction("Cannot merge tagged collection with incompatible type", tagged, plain)
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if _is_tagged(ours) or _is_tagged(theirs):
            raise Contradiction(f"Unknown collection type: {ours.get('_tag', theirs.get('_tag'))!r}", ours, theirs)
        return _plain_map_merge(base, ours, theirs)
    if isinstance(ours, list) and isinstance(theirs, list):
        base_list = base if isinstance(base, list) else []
        return _list_merge(base_list, ours, theirs) if ours_first else _list_merge(base_list, theirs, ours)
    raise Contradiction("Values cannot be merged", ours, theirs)


def _merged_tagged(base: Any, ours: Any, theirs: Any, tag: str, ours_first: bool) -> Any:
    if ours_first or tag in ("GrowSet", "ShrinkSet"):
        return _merge_tagged(base, ours, theirs, tag)
    try:
        return _merge_tagged(base, theirs, ours, tag)
    except Contradiction as exc:
        raise Contradiction(exc.message, ours, theirs) from None
