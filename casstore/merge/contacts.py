"""A contact both sides changed: its fields three-way, its content by the merged blend mode, its conflict.

The fields other than the content (blend mode, boundary flag and direction,
name, attributes key by key, extra fields one by one) merge three-way; a field
both sides set differently takes the later side's value.  The content is
combined by the merged record's blend mode (docs/merge.md, "Contents").  What
both sides set differently is recorded as one conflict: its values are the
contents when only the contents conflicted (the shape of a plain accept-last
or contradiction record), else maps of the fields that conflicted
(:func:`casstore.model.conflict_records.contact_view` names, ``"content"``
among them when the contents conflicted too) with ``fields`` naming them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from casstore import codec
from casstore.merge.content import Contradiction, merge3, same
from casstore.merge.rules import ABSENT, key_merge, three_way
from casstore.model import records
from casstore.model.conflict_records import CONTENT, contact_record_fields, contact_view
from casstore.model.conflicts import Conflict
from casstore.store.base import PendingWrites

__all__ = ["ContactMerge", "covers"]

_CONTENT_FIELDS = ("c", "C", "z")
_LEGACY = ("i", "g")  # an id or group id differing from the key (records before the shape checks)


def _content_id(record: dict[str, Any]) -> Any:
    return record.get("c", record.get("C"))


def _shown(view: dict[str, Any] | None, names: list[str], keys: set[str], content: Any = ABSENT) -> Any:
    """A field map of ``view`` for a conflict: ``names`` (attributes: only ``keys``), and the content if given."""
    if view is None:
        return None
    out: dict[str, Any] = {} if content is ABSENT else {CONTENT: content}
    for name in names:
        if name == "attributes":
            out[name] = {k: v for k, v in view["attributes"].items() if k in keys}
        elif name in view:
            out[name] = view[name]
    return out


class ContactMerge:
    """Merge one contact's three versions; ``record(**fields)`` is called with the conflict, if any."""

    def __init__(
        self,
        theirs_later: bool,
        fetch: Callable[[bytes], bytes],
        pending: PendingWrites,
        record: Callable[..., None],
    ) -> None:
        self.theirs_later = theirs_later
        self.fetch = fetch
        self.pending = pending
        self.record = record

    def content(self, record: dict[str, Any] | None) -> Any:
        return None if record is None else records.record_content(record, self.fetch)

    def removed(
        self, gid: str, cid: str, rb: dict[str, Any] | None, ro: dict[str, Any] | None, rt: dict[str, Any] | None
    ) -> None:
        """One side removed the contact, the other changed it: the change is kept (delete-modify)."""
        kept, side = (rt, "theirs") if ro is None else (ro, "ours")
        assert kept is not None
        vb, vk = contact_view(rb), contact_view(kept)
        keys = {k for k in vb["attributes"].keys() | vk["attributes"].keys() if not _equal(vb, vk, k)}
        names = [n for n in sorted(vb.keys() | vk.keys()) if n != "attributes" and not _field_equal(vb, vk, n)]
        if keys:
            names = sorted([*names, "attributes"])
        cb, ck = self.content(rb), self.content(kept)
        if not names:  # only the content changed: the record shows contents
            base, ours, theirs, kept_value, fields = cb, self.content(ro), self.content(rt), ck, None
        else:
            base, kept_value = _shown(vb, names, keys, cb), _shown(vk, names, keys, ck)
            ours, theirs = (None, kept_value) if ro is None else (kept_value, None)
            fields = [CONTENT, *names]
        self.record(
            "contact", gid, cid, base=base, ours=ours, theirs=theirs, kept=kept_value, kept_side=side,
            fields=fields, reason="delete-modify",
        )  # fmt: skip

    def merge(self, gid: str, cid: str, rb: dict[str, Any] | None, ro: dict[str, Any], rt: dict[str, Any]) -> bytes:
        """Both sides hold the contact, changed: the merged record."""
        later = self.theirs_later
        vb, vo, vt = contact_view(rb), contact_view(ro), contact_view(rt)
        view: dict[str, Any] = {}
        collided: list[str] = []
        keys: list[str] = []
        for name in sorted(vb.keys() | vo.keys() | vt.keys()):
            if name == "attributes":
                view[name] = key_merge(vb[name], vo[name], vt[name], later, keys)
                if keys:
                    collided.append(name)
                continue
            value = three_way(vb.get(name, ABSENT), vo.get(name, ABSENT), vt.get(name, ABSENT), later, collided, name)
            if value is not ABSENT:
                view[name] = value
        merged = contact_record_fields(view)
        base_record = rb or {}
        for name in _LEGACY:
            value = three_way(base_record.get(name, ABSENT), ro.get(name, ABSENT), rt.get(name, ABSENT), later, [])
            if value is not ABSENT:
                merged[name] = value
        conflict: dict[str, Any] | None = None
        if _content_id(ro) == _content_id(rt) or (rb is not None and _content_id(rb) == _content_id(ro)):
            content_from: dict[str, Any] | None = rt
        elif rb is not None and _content_id(rb) == _content_id(rt):
            content_from = ro
        else:
            content_from = None
        if content_from is not None:
            merged.update({k: content_from[k] for k in _CONTENT_FIELDS if k in content_from})
        else:
            cb, co, ct = self.content(rb), self.content(ro), self.content(rt)
            if view["blendMode"] == "merge":
                try:
                    value = merge3(cb, co, ct, ours_first=later)
                except Contradiction as exc:
                    value = co
                    conflict = {"reason": "contradiction", "kept_side": "ours", "message": exc.message}
            else:
                value, side = (ct, "theirs") if later else (co, "ours")
                conflict = {"reason": "both-changed", "kept_side": side}
            if conflict is not None:
                conflict.update(base=cb, ours=co, theirs=ct, kept=value)
            merged.update(records.content_record(records.content_bytes(value), self.pending))
        if collided:
            attribute_keys = set(keys)
            if conflict is None:
                conflict = {"reason": "both-changed", "kept_side": "theirs" if later else "ours"}
                shown = [_shown(v, collided, attribute_keys) for v in (vb if rb is not None else None, vo, vt, view)]
                conflict["fields"] = collided
            else:
                contents = [conflict["base"], conflict["ours"], conflict["theirs"], conflict["kept"]]
                views = (vb if rb is not None else None, vo, vt, view)
                shown = [_shown(v, collided, attribute_keys, c) for v, c in zip(views, contents, strict=True)]
                conflict["fields"] = [CONTENT, *collided]
            conflict.update(zip(("base", "ours", "theirs", "kept"), shown, strict=True))
        if conflict is not None:
            self.record("contact", gid, cid, **conflict)
        return codec.encode(merged)


def _field_equal(a: dict[str, Any], b: dict[str, Any], name: str) -> bool:
    if (name in a) != (name in b):
        return False
    return name not in a or same(a[name], b[name])


def _equal(a: dict[str, Any], b: dict[str, Any], key: str) -> bool:
    return _field_equal(a["attributes"], b["attributes"], key)


def _pick(value: Any, name: str) -> Any:
    return value.get(name, ABSENT) if isinstance(value, dict) else ABSENT


def _at(value: Any, path: tuple[str, ...]) -> Any:
    for name in path:
        value = _pick(value, name)
    return value


def _same(a: Any, b: Any) -> bool:
    return a is b if ABSENT in (a, b) else same(a, b)


def _as_fields(conflict: Conflict, value: Any) -> Any:
    return {CONTENT: value} if conflict.fields is None else value


def covers(old: Conflict, new: Conflict) -> bool:
    """``new`` tells nothing ``old`` does not: the same kept value, and only values ``old`` shows
    (a contact's field by field, attribute by attribute): merging the same change again."""
    if old.kind != "contact" or (old.fields is None and new.fields is None):
        if not same(old.kept, new.kept):
            return False
        known = (old.ours, old.theirs, old.kept, *old.superseded)
        return all(any(same(value, k) for k in known) for value in (new.ours, new.theirs, new.kept))
    olds = [_as_fields(old, v) for v in (old.ours, old.theirs, old.kept)]
    news = [_as_fields(new, v) for v in (new.ours, new.theirs, new.kept)]
    for name in new.fields or [CONTENT]:
        if name == "attributes":
            keys = {k for v in news if isinstance(v, dict) for k in v.get(name, {})}
            paths: list[tuple[str, ...]] = [(name, k) for k in sorted(keys)]
        else:
            paths = [(name,)]
        for path in paths:
            if not _same(_at(olds[2], path), _at(news[2], path)):
                return False
            if not all(any(_same(_at(n, path), _at(o, path)) for o in olds) for n in news[:2]):
                return False
    return True
