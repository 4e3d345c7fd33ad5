"""The three-way merge of two network roots against their base, tree by tree, by diff.

Each tree (groups, contacts, wires, conflicts) is diffed base→ours and
base→theirs (:meth:`casstore.prolly.ProllyTree.diff`, descending only where
hashes differ), so the cost follows what changed on either side.  The result
is ours with edits applied: a key only theirs changed takes theirs; a key
both changed is combined by the rules of docs/merge.md (contents by blend
mode, fields and attributes key by key, id lists by :func:`_ids`), and what
cannot be combined is recorded as a :class:`~casstore.model.conflicts.Conflict`.
Groups are then made consistent with their members (``contact_ids``,
``wire_ids``, ``boundary_contact_ids`` name exactly the members kept) and the
index and size follow the groups and records written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from casstore import codec
from casstore.merge.contacts import ContactMerge, covers
from casstore.merge.content import same
from casstore.merge.rules import merge_body, merge_fields, three_way
from casstore.merge.treediff import Diff, DiffTrace, aligned_diff
from casstore.model import records
from casstore.model.conflict_records import group_view, wire_view
from casstore.model.conflicts import (
    Conflict,
    ConflictKind,
    conflict_key,
    conflicts_tree,
    decode_conflict,
    encode_conflict,
)
from casstore.model.reads import NetworkReader, make_tree
from casstore.prolly import Edit, ProllyTree
from casstore.store.base import PendingWrites

__all__ = ["MergedRoot", "merge_roots"]

_MEMBERS = ("contacts", "wires")


@dataclass
class MergedRoot:
    """A merge's new network root (``digest``; ours when nothing changed) and what it wrote and recorded."""

    digest: bytes
    pending: PendingWrites
    conflicts: list[Conflict] = field(default_factory=list)
    #: keys whose value differs from ours, per tree
    edited: dict[str, int] = field(default_factory=dict)


class _Merge:
    def __init__(
        self, reader: NetworkReader, base: bytes | None, ours: bytes, theirs: bytes, theirs_later: bool
    ) -> None:
        self.reader = reader
        self.pending = PendingWrites()
        self.trees: dict[str, ProllyTree] = {k: make_tree(reader, k, self.pending) for k in records.NETWORK_TREES}
        self.base = reader.network_root(base) if base is not None else None
        self.ours = reader.network_root(ours)
        self.theirs = reader.network_root(theirs)
        self.ours_digest = ours
        self.theirs_later = theirs_later
        self.fetch = reader.blobs.get
        self.conflicts: dict[str, Conflict] = {}
        self.edits: dict[str, dict[str, bytes | None]] = {k: {} for k in ("groups", *_MEMBERS)}
        self.diffs: dict[str, tuple[Diff, Diff]] = {}
        #: per tree, where the diff base → theirs went (the update reuses theirs' nodes it would rewrite alike)
        self.theirs_trace: dict[str, DiffTrace] = {}
        self.new_bodies: dict[bytes, dict[str, Any]] = {}  # bodies this merge wrote (not yet stored)
        #: conflict key → the records ours' and theirs' states hold for it, read in one batch per side
        self.earlier_records: dict[str, tuple[bytes | None, bytes | None]] = {}
        self.group_collisions: dict[str, dict[str, Any]] = {}  # group id → its both-changed record, but kept
        self.contacts = ContactMerge(theirs_later, self.fetch, self.pending, self.record)

    # ---------------------------------------------------------------- helpers

    def root_of(self, side: dict[str, Any] | None, kind: str) -> bytes:
        return side[kind] if side is not None else self.trees[kind].empty(write=False)

    def diffs_of(self, kind: str) -> tuple[Diff, Diff]:
        """base → ours and base → theirs.  Ours is read only where theirs changed: elsewhere the merge
        keeps ours as it is, and a key ours changed in a group theirs removed is one theirs changed."""
        tree, base = self.reader.trees[kind], self.root_of(self.base, kind)
        trace = self.theirs_trace[kind] = DiffTrace()
        d_theirs = aligned_diff(tree, base, self.theirs[kind], trace)
        within = trace if kind in _MEMBERS else None  # group records: all of ours' changes are read
        return aligned_diff(tree, base, self.ours[kind], within=within), d_theirs

    def ours_value(self, kind: str, key: str) -> bytes | None:
        d_ours, d_theirs = self.diffs[kind]
        if key in d_ours:
            return d_ours[key][1]
        if key in d_theirs:
            return d_theirs[key][0]
        return self.reader.trees[kind].get(self.ours[kind], key)

    def result_value(self, kind: str, key: str) -> bytes | None:
        edits = self.edits[kind]
        return edits[key] if key in edits else self.ours_value(kind, key)

    def later(self, ours: Any, theirs: Any) -> tuple[Any, str]:
        return (theirs, "theirs") if self.theirs_later else (ours, "ours")

    def record(self, kind: ConflictKind, group: str, item: str, **fields: Any) -> None:
        """Record a conflict; one that tells nothing ours' record of the item does not (the same kept
        value, every value already in it: merging the same change again) leaves that record as it is."""
        key = conflict_key(kind, group, item)
        conflict = Conflict(group, item, kind, **fields)
        records_here = self.earlier(key)
        ours_record = records_here[0]
        if ours_record is not None and covers(ours_record, conflict):
            self.conflicts[key] = ours_record
            return
        now = [conflict.ours, conflict.theirs, conflict.kept]
        found: dict[bytes, Any] = {}
        for old in records_here:
            if old is not None:
                for value in (old.ours, old.theirs, old.kept, *old.superseded):
                    found.setdefault(codec.encode_value(value), value)
        conflict.superseded.extend(value for value in found.values() if not any(same(value, v) for v in now))
        self.conflicts[key] = conflict

    def earlier(self, key: str) -> list[Conflict | None]:
        """The records ours' and theirs' states hold for ``key`` (``None`` where none)."""
        if key not in self.earlier_records:
            self.prefetch_earlier([key])
        return [None if data is None else decode_conflict(key, data) for data in self.earlier_records[key]]

    def prefetch_earlier(self, keys: list[str]) -> None:
        """Read the records both sides' states hold for ``keys``: one batched lookup per side."""
        tree = conflicts_tree(self.reader)
        found = [
            tree.get_many(side[records.CONFLICTS_FIELD], keys) if records.CONFLICTS_FIELD in side else {}
            for side in (self.ours, self.theirs)
        ]
        for key in keys:
            self.earlier_records[key] = (found[0].get(key), found[1].get(key))

    # ---------------------------------------------------------------- members

    def merge_contact(self, key: str, b: bytes | None, o: bytes | None, t: bytes | None) -> bytes | None:
        gid, cid = records.split_member_key(key)
        rb, ro, rt = _decoded(b), _decoded(o), _decoded(t)
        if ro is None or rt is None:  # a removal against a change: the change is kept
            self.contacts.removed(gid, cid, rb, ro, rt)
            return t if ro is None else o
        return self.contacts.merge(gid, cid, rb, ro, rt)

    def merge_wire(self, key: str, b: bytes | None, o: bytes | None, t: bytes | None) -> bytes | None:
        gid, wid = records.split_member_key(key)

        def shown(x: bytes | None) -> Any:
            return None if x is None else wire_view(records.decode_wire(x, wid, gid))

        if o is None or t is None:
            self.record(
                "wire", gid, wid, reason="delete-modify", base=shown(b), ours=shown(o), theirs=shown(t),
                kept=shown(t if o is None else o), kept_side="theirs" if o is None else "ours",
            )  # fmt: skip
            return t if o is None else o
        collided: list[str] = []
        merged = merge_fields(_decoded(b), codec.decode(o), codec.decode(t), self.theirs_later, collided=collided)
        data = codec.encode(merged)
        if collided:
            side = "theirs" if self.theirs_later else "ours"
            self.record(
                "wire", gid, wid, reason="both-changed", base=shown(b), ours=shown(o), theirs=shown(t),
                kept=shown(data), kept_side=side,
            )  # fmt: skip
        return data

    def members(self, kind: str) -> None:
        d_ours, d_theirs = self.diffs[kind]
        edits = self.edits[kind]
        merge = self.merge_contact if kind == "contacts" else self.merge_wire
        item_kind: ConflictKind = "contact" if kind == "contacts" else "wire"
        both = [
            conflict_key(item_kind, *records.split_member_key(key))
            for key, (_, t) in d_theirs.items()
            if key in d_ours and d_ours[key][1] != t
        ]
        if both:  # any of them may record a conflict, which reads what each side recorded before
            self.prefetch_earlier(both)
        for key, (b, t) in d_theirs.items():
            if key not in d_ours:
                edits[key] = t
                continue
            o = d_ours[key][1]
            if o == t:
                continue
            new = merge(key, b, o, t)
            if new != o:
                edits[key] = new

    # ---------------------------------------------------------------- groups

    def group_members(self, side: dict[str, Any], gid: str) -> dict[str, list[tuple[str, bytes]]]:
        prefix = records.member_prefix(gid)
        return {kind: list(self.reader.trees[kind].items_with_prefix(side[kind], prefix)) for kind in _MEMBERS}

    def touched(self) -> dict[str, set[str]]:
        """Group id → every member key either side changed in it."""
        out: dict[str, set[str]] = {}
        for kind in _MEMBERS:
            for d in self.diffs[kind]:
                for key in d:
                    out.setdefault(records.split_member_key(key)[0], set()).add(key)
        return out

    def presence_changed(self) -> bool:
        """Whether either side added or removed a contact or wire (else no group's lists can change)."""
        return any(
            (old is None) != (new is None) for kind in _MEMBERS for d in self.diffs[kind] for old, new in d.values()
        )

    def body(self, record: bytes | None) -> dict[str, Any] | None:
        if record is None:
            return None
        digest = records.decode_group_record(record)
        written = self.new_bodies.get(digest)
        return written if written is not None else self.reader.body(digest)

    def groups(self) -> None:
        d_ours, d_theirs = self.diffs["groups"]
        if not d_ours and not d_theirs and not self.presence_changed():
            return  # no group record changed and no member came or went: every group is consistent
        touched = self.touched()
        edits = self.edits["groups"]
        bodies: dict[str, dict[str, Any]] = {}
        for gid, (b, t) in d_theirs.items():
            o = d_ours[gid][1] if gid in d_ours else b
            in_ours = gid in d_ours
            if in_ours and o == t:
                continue
            ours_changed_members = any(key in self.diffs[k][0] for k in _MEMBERS for key in touched.get(gid, ()))
            if t is None and o is not None and (in_ours or ours_changed_members):
                self.keep_group(gid, b, o, t, kept="ours")
                for kind in _MEMBERS:  # their removal of its members yields too
                    prefix = records.member_prefix(gid)
                    for key in [k for k in self.edits[kind] if k.startswith(prefix)]:
                        if key not in self.diffs[kind][0]:
                            del self.edits[kind][key]
                continue
            if not in_ours:
                edits[gid] = t
                continue
            if o is None and t is not None:
                self.keep_group(gid, b, o, t, kept="theirs")
                edits[gid] = t
                self.restore_theirs(gid)
                continue
            body_o, body_t = self.body(o), self.body(t)
            assert body_o is not None and body_t is not None
            bodies[gid] = self.merge_body(gid, self.body(b), body_o, body_t)
        for gid, (b, o) in d_ours.items():  # ours removed a group theirs changed members of
            if o is None and gid not in d_theirs and b is not None:
                theirs_changed = any(key in self.diffs[k][1] for k in _MEMBERS for key in touched.get(gid, ()))
                if theirs_changed:
                    t = self.reader.trees["groups"].get(self.theirs["groups"], gid)
                    self.keep_group(gid, b, o, t, kept="theirs")
                    edits[gid] = t
                    self.restore_theirs(gid)
        self.reconcile(touched, bodies)

    def restore_theirs(self, gid: str) -> None:
        """Ours removed a group theirs changed: the group comes back whole, as theirs has it."""
        for kind, items in self.group_members(self.theirs, gid).items():
            for key, value in items:
                self.edits[kind][key] = value

    def keep_group(self, gid: str, b: bytes | None, o: bytes | None, t: bytes | None, kept: str) -> None:
        def shown(x: bytes | None) -> Any:
            body = self.body(x)
            return None if body is None else group_view(records.decode_group(body, gid))

        self.record(
            "group", gid, gid, reason="delete-modify", base=shown(b), ours=shown(o), theirs=shown(t),
            kept=shown(o if kept == "ours" else t), kept_side=kept,
        )  # fmt: skip

    def merge_body(self, gid: str, b: dict[str, Any] | None, o: dict[str, Any], t: dict[str, Any]) -> dict[str, Any]:
        collided: list[str] = []

        def holds(name: str, item: str) -> bool:
            return self.result_value("contacts" if name == "c" else "wires", records.member_key(gid, item)) is not None

        out = merge_body(b or {}, o, t, self.theirs_later, collided, holds)
        if collided:  # recorded once reconcile has the body the merge keeps (its lists final)

            def shown(body: dict[str, Any] | None) -> Any:
                return None if not body else group_view(records.decode_group(body, gid))

            self.group_collisions[gid] = {
                "reason": "both-changed", "base": shown(b), "ours": shown(o), "theirs": shown(t),
                "kept_side": "theirs" if self.theirs_later else "ours",
            }  # fmt: skip
        return out

    def reconcile(self, touched: dict[str, set[str]], bodies: dict[str, dict[str, Any]]) -> None:
        """Make each kept group's id lists name exactly its kept members, and write the changed bodies.

        A group whose body is ours' and whose members are present exactly where ours has them is
        already consistent (the common case: contents changed), so it costs no read.
        """
        group_edits = self.edits["groups"]

        def moved(gid: str) -> bool:
            for key in touched.get(gid, ()):
                for kind in _MEMBERS:
                    d_ours, d_theirs = self.diffs[kind]
                    if key not in d_ours and key not in d_theirs:
                        continue
                    if (self.result_value(kind, key) is None) != (self.ours_value(kind, key) is None):
                        return True
            return False

        for gid in sorted(set(touched) | set(bodies)):
            if gid not in bodies and gid not in group_edits and not moved(gid):
                continue
            record = self.result_value("groups", gid)
            if record is None:
                continue
            body = bodies.get(gid) or self.body(record)
            assert body is not None
            new = dict(body)
            prefix_len = len(records.member_prefix(gid))
            for kind, name in (("contacts", "c"), ("wires", "w")):
                ids = list(new.get(name, []))
                listed = set(ids)
                for key in sorted(touched.get(gid, ())):
                    if key not in self.diffs[kind][0] and key not in self.diffs[kind][1]:
                        continue
                    item = key[prefix_len:]
                    present = self.result_value(kind, key) is not None
                    if present and item not in listed:
                        ids.append(item)
                        listed.add(item)
                    elif not present and item in listed:
                        ids = [i for i in ids if i != item]
                        listed.discard(item)
                        if name == "c" and "b" in new:
                            new["b"] = [i for i in new["b"] if i != item]
                if ids:
                    new[name] = ids
                else:
                    new.pop(name, None)
            if "b" in new and not new["b"]:
                del new["b"]
            if gid in self.group_collisions:
                kept = group_view(records.decode_group(new, gid))
                self.record("group", gid, gid, kept=kept, **self.group_collisions[gid])
            if gid in bodies or new != body:
                data = records.encode_body(new, gid)
                digest = self.pending.add(data)
                self.new_bodies[digest] = new
                new_record = records.encode_group_record(digest)
                if new_record != self.ours_value("groups", gid):
                    self.edits["groups"][gid] = new_record
                else:
                    self.edits["groups"].pop(gid, None)

    # ---------------------------------------------------------------- the whole root

    def run(self) -> MergedRoot:
        for kind in ("groups", *_MEMBERS):
            self.diffs[kind] = self.diffs_of(kind)
        for kind in _MEMBERS:
            self.members(kind)
        self.groups()
        roots = {kind: self.ours[kind] for kind in records.NETWORK_TREES}
        size = self.ours["size"]
        edited = {}
        for kind in _MEMBERS:
            edits: dict[str, Edit] = dict(self.edits[kind])
            roots[kind], old_values = self.trees[kind].update(roots[kind], edits, self.theirs_trace[kind].pairs)
            entry_size = records.contact_entry_size if kind == "contacts" else records.wire_entry_size
            size += sum(entry_size(k, v) for k, v in self.edits[kind].items() if v is not None)
            size -= sum(entry_size(k, v) for k, v in old_values.items())
            edited[kind] = len(edits)
        index_edits: dict[str, Edit] = {}
        for gid, new in self.edits["groups"].items():
            old_body, new_body = self.body(self.ours_value("groups", gid)), self.body(new)
            old_keys = records.index_keys(gid, old_body.get("a", {})) if old_body else set()
            new_keys = records.index_keys(gid, new_body.get("a", {})) if new_body else set()
            index_edits.update(dict.fromkeys(old_keys - new_keys))
            index_edits.update(dict.fromkeys(new_keys - old_keys, records.NULL))
            size -= len(records.encode_body(old_body, gid)) if old_body else 0
            size += len(records.encode_body(new_body, gid)) if new_body else 0
        group_edits: dict[str, Edit] = dict(self.edits["groups"])
        roots["groups"], _ = self.trees["groups"].update(
            roots["groups"], group_edits, self.theirs_trace["groups"].pairs
        )
        roots["index"], _ = self.trees["index"].update(roots["index"], index_edits)
        edited["groups"] = len(group_edits)
        conflicts = self.merge_conflicts()
        collided: list[str] = []
        later = self.theirs_later
        base = self.base or {}
        current = three_way(base.get("current"), self.ours["current"], self.theirs["current"], later, collided)
        root_group = three_way(base.get("rootGroup"), self.ours["rootGroup"], self.theirs["rootGroup"], later, collided)
        extra = three_way(base.get("x"), self.ours.get("x"), self.theirs.get("x"), later, collided)
        for kind, root in roots.items():
            if root == self.trees[kind].empty(write=False):
                self.trees[kind].empty()
        metadata = three_way(base.get("m"), self.ours.get("m"), self.theirs.get("m"), later, collided)
        # times: the earlier creation and the later update of the two sides (the same whichever is ours)
        created = min((t for t in (self.ours.get("ct"), self.theirs.get("ct")) if t is not None), default=None)
        updated = max((t for t in (self.ours.get("ut"), self.theirs.get("ut")) if t is not None), default=None)
        data = records.encode_network_root(
            roots, current, root_group, size, extra, metadata, created, updated, conflicts=conflicts
        )
        digest = codec.hash_bytes(data)
        if digest == self.ours_digest:
            return MergedRoot(digest, PendingWrites(), list(self.conflicts.values()), edited)
        self.pending.add(data)
        self.reader.remember_root(digest, data)
        return MergedRoot(digest, self.pending, list(self.conflicts.values()), edited)

    def merge_conflicts(self) -> bytes | None:
        """The merged conflicts tree: both sides' records three-way (later wins a key both changed), plus ours."""
        tree = conflicts_tree(self.reader, self.pending)
        field_name = records.CONFLICTS_FIELD
        empty = tree.empty(write=False)

        def root(side: dict[str, Any] | None) -> bytes:
            return side[field_name] if side is not None and field_name in side else empty

        edits: dict[str, Edit] = {}
        d_ours = {k: n for k, _, n in tree.diff(root(self.base), root(self.ours))}
        for key, _, t in tree.diff(root(self.base), root(self.theirs)):
            if key not in d_ours or self.theirs_later:
                edits[key] = t
        for key, conflict in self.conflicts.items():
            edits[key] = encode_conflict(conflict)
        new_root, _ = tree.update(root(self.ours), edits)
        if not tree.load(new_root).keys:
            return None
        return new_root


def _decoded(record: bytes | None) -> dict[str, Any] | None:
    return None if record is None else codec.decode(record)


def merge_roots(
    reader: NetworkReader, base: bytes | None, ours: bytes, theirs: bytes, *, theirs_later: bool
) -> MergedRoot:
    """Merge network root ``theirs`` into ``ours`` against ``base`` (``None``: the empty network).

    ``theirs_later`` is the accept-last order (docs/merge.md, "Which change is later"): it decides a
    content both sides set under ``accept-last``, a field both set differently, and whose order an id
    list keeps (the earlier side's, the later side's additions appended).  Nothing is written: the
    new objects are in ``MergedRoot.pending``, children first, the root last.
    """
    return _Merge(reader, base, ours, theirs, theirs_later).run()
