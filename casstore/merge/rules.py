"""The structure rules of a merge: one field three-way, maps key by key, record fields, id lists.

Shared by contacts, wires, group bodies and the network root's own fields
(docs/merge.md, "Removals, additions and structure").  A field both sides set
differently takes the later side's value and is noted in ``collided``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from casstore import codec
from casstore.merge.content import same

__all__ = ["ABSENT", "key_merge", "merge_body", "merge_fields", "merge_ids", "plain", "three_way"]

ABSENT = object()


def three_way(base: Any, ours: Any, theirs: Any, theirs_later: bool, collided: list[str], name: str = "") -> Any:
    """One field, three-way: the side that changed it; both (differently): the later side's, noted in ``collided``."""
    if same(ours, theirs) or same(theirs, base):
        return ours
    if same(ours, base):
        return theirs
    collided.append(name)
    return theirs if theirs_later else ours


def key_merge(
    base: dict[str, Any], ours: dict[str, Any], theirs: dict[str, Any], theirs_later: bool, collided: list[str]
) -> dict[str, Any]:
    """A map of fields or attributes key by key, three-way; a key one side removed unchanged is removed."""
    out: dict[str, Any] = {}
    for key in sorted(set(base) | set(ours) | set(theirs)):
        value = three_way(
            base.get(key, ABSENT), ours.get(key, ABSENT), theirs.get(key, ABSENT), theirs_later, collided, key
        )
        if value is not ABSENT:
            out[key] = value
    return out


def merge_fields(
    base: dict[str, Any] | None,
    ours: dict[str, Any],
    theirs: dict[str, Any],
    theirs_later: bool,
    skip: tuple[str, ...] = (),
    collided: list[str] | None = None,
) -> dict[str, Any]:
    """A contact or wire record's fields, three-way; attributes (``"a"``) and extra (``"x"``) key by key."""
    base = base or {}
    seen = collided if collided is not None else []
    out: dict[str, Any] = {}
    for name in sorted(set(base) | set(ours) | set(theirs)):
        if name in skip:
            continue
        x, y, z = ours.get(name, ABSENT), theirs.get(name, ABSENT), base.get(name, ABSENT)
        if name in ("a", "x") and not (x is ABSENT and y is ABSENT):
            maps = [codec.decode_value(v) if isinstance(v, bytes) else {} for v in (z, x, y)]
            merged = key_merge(maps[0], maps[1], maps[2], theirs_later, seen)
            if merged:
                out[name] = codec.encode_value(merged, name, codec.MAX_DEPTH + 1)
            continue
        value = three_way(z, x, y, theirs_later, seen, name)
        if value is not ABSENT:
            out[name] = value
    return out


def merge_ids(
    base: list[str], first: list[str], second: list[str], holds: Callable[[str], bool] | None = None
) -> list[str]:
    """An id list: ``first``'s order without what ``second`` removed from ``base``, then ``second``'s additions.

    ``holds(id)``: the merged state holds that member (a removal the other side's change undid, a
    delete-modify), so it keeps its place rather than being appended when the lists are reconciled.
    """
    removed = set(base) - set(second)
    if holds is not None:
        removed = {i for i in removed if not holds(i)}
    have = set(first)
    out = [i for i in first if i not in removed]
    out += [i for i in second if i not in have and i not in base]
    return list(dict.fromkeys(out))


def plain(value: Any) -> Any:
    """A dataclass dict with tuples as lists (for a conflict record)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def merge_body(
    base: dict[str, Any],
    ours: dict[str, Any],
    theirs: dict[str, Any],
    theirs_later: bool,
    collided: list[str],
    holds: Callable[[str, str], bool] | None = None,
) -> dict[str, Any]:
    """A group body: id lists by :func:`merge_ids` (the earlier side's order), attributes and extra
    fields key by key, the other fields one by one.  ``holds(list, id)``: the merged state holds
    that member of ``contact_ids`` (``"c"``) or ``wire_ids`` (``"w"``)."""
    first, second = (ours, theirs) if theirs_later else (theirs, ours)  # the earlier side first
    out: dict[str, Any] = {}
    for name in sorted(set(ours) | set(theirs) | set(base)):
        x, y, z = ours.get(name), theirs.get(name), base.get(name)
        if name in ("c", "w", "s", "b"):
            if same(y, z) or same(x, z):  # one side left the list as it was: the other's (then reconciled)
                ids = list((x if same(y, z) else y) or [])
            else:
                member = None if holds is None or name not in ("c", "w") else functools.partial(holds, name)
                ids = merge_ids(z or [], first.get(name) or [], second.get(name) or [], member)
            if ids:
                out[name] = ids
        elif name in ("a", "x", "X"):
            merged = key_merge(z or {}, x or {}, y or {}, theirs_later, collided)
            if merged:
                out[name] = merged
        else:
            value = three_way(z, x, y, theirs_later, collided, name)
            if value is not None:
                out[name] = value
    return out
