"""The conflicts a merge recorded in a network's state: their records, listing them, and resolving one.

A network root may link (``"k"``) to a prolly tree of kind ``conflicts``; the
link is omitted when there are none, so roots from before merges are
unchanged.  Each entry's key is a kind letter and the item's place:
``"c" + member key`` (a contact), ``"w" + member key`` (a wire), ``"g" +
group id`` (a group's own fields).  Its value is a :class:`Conflict` encoded
with ``encode_value`` (user data, never a link).  Ordinary writes keep the tree
as it is (:class:`~casstore.model.transaction.Transaction` carries it over);
:func:`resolve_conflict` sets the value chosen and removes the entry in one
head compare-and-swap.  See docs/merge.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from casstore import codec
from casstore.errors import ConflictNotFound, SerializationError
from casstore.model import records
from casstore.model.reads import NetworkReader
from casstore.model.transaction import Transaction
from casstore.model.types import check_id
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
        if self.message is not None:
            out["message"] = self.message
            out["values"] = [self.ours, self.theirs]
        if self.superseded:
            out["superseded"] = self.superseded
        return out


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

    For a contact, ``"ours"`` / ``"theirs"`` set that side's recorded content (a side that had
    removed the contact removes it) and ``"value"`` sets ``value``.  For a wire or a group
    conflict the kept version stays as it is (``"value"`` is refused) and the record is removed.
    """
    check_id(group, "group")
    check_id(item, "item")
    if tx.conflicts is None:
        raise ConflictNotFound(f"network {tx.network_id!r} has no conflicts")
    key, conflict = _find(tx.reader, tx.conflicts, group, item)
    if conflict.kind == "contact":
        if choice == "value":
            tx.set_content(group, item, records.content_bytes(value))
        else:
            side_value = conflict.ours if choice == "ours" else conflict.theirs
            if conflict.reason == "delete-modify" and conflict.kept_side != choice:
                tx.delete_contact(group, item)
            elif tx.reader.trees["contacts"].get(tx.roots["contacts"], records.member_key(group, item)) is None:
                raise ConflictNotFound(f"contact {item!r} of group {group!r} is gone: resolve by writing it")
            else:
                tx.set_content(group, item, records.content_bytes(side_value))
    elif choice == "value":
        raise SerializationError(f"a {conflict.kind} conflict is resolved with --ours or --theirs, not a value")
    tree = conflicts_tree(tx.reader, tx.pending)
    edits: dict[str, Edit] = {key: None}
    new_root, _ = tree.update(tx.conflicts, edits)
    tx.conflicts = None if not tree.load(new_root).keys else new_root
    return conflict
