"""The conflicts a merge recorded in a network's state: their records, listing them, and resolving one.

A network root may link (``"k"``) to a prolly tree of kind ``conflicts``; the
link is omitted when there are none, so roots from before merges are
unchanged.  Each entry's key is a kind letter and the item's place:
``"c" + member key`` (a contact), ``"w" + member key`` (a wire), ``"g" +
group id`` (a group's own fields).  Its value is a :class:`Conflict` encoded
with ``encode_value`` (user data, never a link).  Ordinary writes keep the tree
as it is (:class:`~casstore.model.transaction.Transaction` carries it over);
:func:`resolve_conflict` puts the version chosen back (a side's recorded one,
or a value; :mod:`casstore.model.conflict_records` reads the records) and
removes the entry, in one head compare-and-swap.  See docs/merge.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from casstore import codec
from casstore.errors import ConflictNotFound, GroupNotFound, SerializationError
from casstore.model import records
from casstore.model.conflict_records import (
    CONTENT,
    apply_contact_fields,
    group_from_json,
    group_from_view,
    wire_from_json,
    wire_from_view,
)
from casstore.model.reads import NetworkReader
from casstore.model.transaction import Transaction, prepare_group
from casstore.model.types import Contact, Group, GroupState, Wire, check_id
from casstore.prolly import Edit, ProllyTree
from casstore.store.base import PendingWrites

__all__ = [
    "CONFLICTS_VALUE_HINT",
    "Conflict",
    "ConflictKind",
    "ConflictReason",
    "conflict_key",
    "conflicts_tree",
    "decode_conflict",
    "encode_conflict",
    "list_conflicts",
    "resolve_conflict",
]

ConflictKind = Literal["contact", "wire", "group"]
ConflictReason = Literal["both-changed", "contradiction", "delete-modify"]
#: The nominal value size of the conflicts tree in the chunking rule (part of the format).
CONFLICTS_VALUE_HINT = 256
_LETTER = {"contact": "c", "wire": "w", "group": "g"}
_KIND = {letter: kind for kind, letter in _LETTER.items()}


@dataclass(frozen=True)
class Conflict:
    """One thing a merge could not combine, as ``casstore conflicts --json`` lists it.

    Fields:
        group: the group of the item (the group itself for a group conflict).
        item: the contact or wire id (the group id for a group conflict).
        kind: ``"contact"``, ``"wire"`` or ``"group"``.
        reason: ``"both-changed"`` (accept-last, or a field both sides set differently),
            ``"contradiction"`` (the ``merge`` blend mode found values it cannot combine) or
            ``"delete-modify"`` (one side removed what the other changed).
        base, ours, theirs: the values at the merge base and on each side (a contact's content;
            a wire's or group's fields as a dict; ``None`` where absent).
        kept: the value the merged state holds.
        kept_side: ``"ours"`` or ``"theirs"``: whose value was kept.
        message: for a contradiction, upstream Bassline's ``lastContradiction`` message.
        superseded: values of earlier conflicts on the same item (recorded by earlier merges)
            that are none of ``ours``, ``theirs`` or ``kept``: a later merge never forgets them.
        fields: for a contact, ``None`` when ``base`` / ``ours`` / ``theirs`` / ``kept`` are
            contents; else the fields they show (JSON names, ``"content"`` among them when the
            contents conflicted too), each value then a map of those fields (``None``: absent).
    """

    group: str
    item: str
    kind: ConflictKind
    reason: ConflictReason
    base: Any
    ours: Any
    theirs: Any
    kept: Any
    kept_side: Literal["ours", "theirs"] = "ours"
    message: str | None = None
    superseded: list[Any] = field(default_factory=list)
    fields: list[str] | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON shape of the listing; a contradiction adds ``message`` and ``values`` (``lastContradiction``)."""
        out: dict[str, Any] = {
            "group": self.group,
            "item": self.item,
            "kind": self.kind,
            "reason": self.reason,
            "base": self.base,
            "ours": self.ours,
            "theirs": self.theirs,
            "kept": self.kept,
            "kept_side": self.kept_side,
        }
        if self.fields is not None:
            out["fields"] = self.fields
        if self.message is not None:
            out["message"] = self.message
            out["values"] = [self.contents(self.ours), self.contents(self.theirs)]
        if self.superseded:
            out["superseded"] = self.superseded
        return out

    def contents(self, value: Any) -> Any:
        """The content one of this record's values shows (``None`` if it shows none)."""
        if self.fields is None:
            return value
        return value.get(CONTENT) if isinstance(value, dict) else None


def conflict_key(kind: ConflictKind, group: str, item: str) -> str:
    """The conflicts-tree key of one item."""
    return _LETTER[kind] + (group if kind == "group" else records.member_key(group, item))


def encode_conflict(conflict: Conflict) -> bytes:
    record = {k: v for k, v in conflict.as_json().items() if k not in ("group", "item", "kind", "values")}
    return codec.encode_value(record, "conflict")


def decode_conflict(key: str, data: bytes) -> Conflict:
    record = codec.decode_value(data)
    kind = _KIND[key[0]]
    group, item = (key[1:], key[1:]) if kind == "group" else records.split_member_key(key[1:])
    return Conflict(
        group,
        item,
        kind,  # type: ignore[arg-type]
        record["reason"],
        record.get("base"),
        record.get("ours"),
        record.get("theirs"),
        record.get("kept"),
        record.get("kept_side", "ours"),
        record.get("message"),
        record.get("superseded", []),
        record.get("fields"),
    )


def conflicts_tree(reader: NetworkReader, pending: PendingWrites | None = None) -> ProllyTree:
    """A conflicts tree over the reader's blobs and node cache (writing into ``pending`` if given)."""
    return ProllyTree(reader.blobs, records.CONFLICTS_TREE, reader.cache, pending, value_hint=CONFLICTS_VALUE_HINT)


def list_conflicts(reader: NetworkReader, root: dict[str, Any] | None) -> list[Conflict]:
    """Every conflict of a decoded network root, in key order (``[]`` for none or no network)."""
    if root is None or records.CONFLICTS_FIELD not in root:
        return []
    tree = conflicts_tree(reader)
    return [decode_conflict(key, value) for key, value in tree.items(root[records.CONFLICTS_FIELD])]


def _find(reader: NetworkReader, root: bytes, group: str, item: str) -> tuple[str, Conflict]:
    tree = conflicts_tree(reader)
    kinds: tuple[ConflictKind, ...] = ("contact", "wire") + (("group",) if group == item else ())
    for kind in kinds:
        key = conflict_key(kind, group, item)
        value = tree.get(root, key)
        if value is not None:
            return key, decode_conflict(key, value)
    raise ConflictNotFound(f"no conflict recorded for {item!r} in group {group!r}")


_NO_VALUE = object()


def resolve_conflict(tx: Transaction, group: str, item: str, choice: str, value: Any = _NO_VALUE) -> Conflict:
    """In ``tx``: settle one conflict (``choice``: ``"ours"``, ``"theirs"`` or ``"value"``) and remove it.

    ``"ours"`` / ``"theirs"`` put that side's recorded version back: for a delete-modify, the side
    that had removed the item removes it, the other restores it (re-created if gone since).  A
    contact's recorded fields are set to that side's values (every other field stays as it is);
    a wire is written as recorded; a group's own fields are set as recorded, its members staying
    as the state holds them.  ``"value"``: a contact's content; for a wire or a group, its record
    (a :class:`~casstore.model.types.Wire` / :class:`~casstore.model.types.Group`, or Bassline's
    camelCase JSON of it), checked before anything is written.  ``"fields"`` (a contact conflict
    recorded by field): a map of some of the recorded fields to the values wanted, the others
    keeping the values kept.
    """
    check_id(group, "group")
    check_id(item, "item")
    if tx.conflicts is None:
        raise ConflictNotFound(f"network {tx.network_id!r} has no conflicts")
    key, conflict = _find(tx.reader, tx.conflicts, group, item)
    removes = choice in ("ours", "theirs") and conflict.reason == "delete-modify" and conflict.kept_side != choice
    if choice == "fields":
        given = _chosen_fields(conflict, value)
    else:
        given = value if choice == "value" else (conflict.ours if choice == "ours" else conflict.theirs)
    resolve = {"contact": _resolve_contact, "wire": _resolve_wire, "group": _resolve_group}[conflict.kind]
    resolve(tx, conflict, choice, given, removes)
    tree = conflicts_tree(tx.reader, tx.pending)
    edits: dict[str, Edit] = {key: None}
    new_root, _ = tree.update(tx.conflicts, edits)
    tx.conflicts = None if not tree.load(new_root).keys else new_root
    return conflict


def _no_value(value: Any) -> None:
    if value is _NO_VALUE:
        raise SerializationError("choice 'value' needs a value", "value")


def _chosen_fields(conflict: Conflict, value: Any) -> dict[str, Any]:
    """The kept field map with ``value``'s fields (some of the recorded ones) set instead."""
    if conflict.kind != "contact" or conflict.fields is None:
        what = "contact's content" if conflict.kind == "contact" else f"{conflict.kind}'s record"
        raise SerializationError(f"this conflict is not recorded by field: choose 'value' (the {what})", "fields")
    if value is _NO_VALUE or not isinstance(value, dict) or not value:
        raise SerializationError(f"fields: expected a map of some of the recorded fields {conflict.fields}", "fields")
    for name in value:
        if name not in conflict.fields:
            where = f"fields.{name}"
            raise SerializationError(f"{where}: not a field this conflict recorded {conflict.fields}", where)
    kept = conflict.kept if isinstance(conflict.kept, dict) else {}
    return {**kept, **value}


def _resolve_contact(tx: Transaction, conflict: Conflict, choice: str, value: Any, removes: bool) -> None:
    gid, cid = conflict.group, conflict.item
    if removes:
        tx.delete_contact(gid, cid)
    elif choice == "value":
        _no_value(value)
        tx.set_content(gid, cid, records.content_bytes(value))
    elif conflict.fields is None:
        tx.set_content(gid, cid, records.content_bytes(value))
    else:
        if tx.group(gid) is None:
            raise GroupNotFound(f"group {gid!r} not found in network {tx.network_id!r}")
        old = tx.reader.trees["contacts"].get(tx.roots["contacts"], records.member_key(gid, cid))
        current = Contact(cid, gid) if old is None else records.decode_contact(old, cid, gid, tx.reader.blobs.get)
        shown = [conflict.base, conflict.ours, conflict.theirs, conflict.kept]
        contact = apply_contact_fields(current, conflict.fields, value or {}, shown)
        tx.put_contact(gid, cid, records.encode_contact(contact, cid, gid, tx.pending))


def _group_state(tx: Transaction, gid: str) -> GroupState | None:
    """The group as ``tx``'s head holds it (a resolve is the transaction's only edit)."""
    record = tx.trees["groups"].get(tx.roots["groups"], gid)
    return None if record is None else tx.reader.group_states(tx.roots, [(gid, record)])[gid]


def _resolve_wire(tx: Transaction, conflict: Conflict, choice: str, value: Any, removes: bool) -> None:
    gid, wid = conflict.group, conflict.item
    if choice == "value":
        _no_value(value)
        wire = value if isinstance(value, Wire) else wire_from_json(value, gid, wid)
    elif not removes:
        wire = wire_from_view(value, gid, wid)
    state = _group_state(tx, gid)
    if state is None:
        if removes:
            return
        raise GroupNotFound(f"group {gid!r} not found in network {tx.network_id!r}: the wire cannot be restored")
    if removes:
        state.wires.pop(wid, None)
        state.group.wire_ids = [w for w in state.group.wire_ids if w != wid]
    else:
        state.wires[wid] = wire
        if wid not in state.group.wire_ids:
            state.group.wire_ids = [*state.group.wire_ids, wid]
    tx.put_group(gid, prepare_group(gid, state))


def _members_first(order: list[str], listed: list[str], present: dict[str, Any]) -> list[str]:
    """The ids of the ``present`` members: in ``order`` first, then as ``listed``, then the rest."""
    return [i for i in dict.fromkeys([*order, *listed, *present]) if i in present]


def _resolve_group(tx: Transaction, conflict: Conflict, choice: str, value: Any, removes: bool) -> None:
    gid = conflict.group
    if removes:
        tx.delete_group(gid)
        return
    state = _group_state(tx, gid) or GroupState(Group(gid, ""), {}, {})
    if choice == "value":
        _no_value(value)
        group = value if isinstance(value, Group) else group_from_json(value, gid)
        given = value if isinstance(value, dict) else {}
        for name, lists, members in (
            ("contactIds", "contact_ids", state.contacts),
            ("wireIds", "wire_ids", state.wires),
            ("boundaryContactIds", "boundary_contact_ids", state.contacts),
        ):
            if given and name not in given:  # left out: as the group lists them now
                setattr(group, lists, list(getattr(state.group, lists)))
            for index, member in enumerate(getattr(group, lists)):
                if member not in members:
                    where = f"value.{name}[{index}]"
                    raise SerializationError(f"{where}: {member!r} is listed but the group has no such member", where)
    else:  # the side's own fields, its boundary contacts among those the state holds
        group = group_from_view(value, gid)
        group.boundary_contact_ids = [c for c in group.boundary_contact_ids if c in state.contacts]
    # the lists name exactly the members the state holds: in the order given, then as listed now
    group.contact_ids = _members_first(group.contact_ids, state.group.contact_ids, state.contacts)
    group.wire_ids = _members_first(group.wire_ids, state.group.wire_ids, state.wires)
    state.group = group
    tx.put_group(gid, prepare_group(gid, state))
