"""Bassline's core types as dataclasses (snake_case), and their validation.

Contents and attribute values may be any value of the object format's data
model; anything else raises :class:`~casstore.errors.SerializationError`
naming the path, before anything is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from casstore.errors import SerializationError

__all__ = [
    "BLEND_MODES",
    "BOUNDARY_DIRECTIONS",
    "WIRE_TYPES",
    "BlendMode",
    "BoundaryDirection",
    "Change",
    "ChangeKind",
    "Contact",
    "Group",
    "GroupState",
    "NetworkState",
    "SnapshotInfo",
    "Wire",
    "WireType",
    "check_attributes",
    "check_id",
    "check_id_list",
    "check_str",
]

BlendMode = Literal["accept-last", "merge"]
BoundaryDirection = Literal["input", "output"] | None
WireType = Literal["bidirectional", "directed"]

BLEND_MODES = ("accept-last", "merge")
BOUNDARY_DIRECTIONS = (None, "input", "output")
WIRE_TYPES = ("bidirectional", "directed")


@dataclass
class Contact:
    """A contact: one cell of a Bassline network, holding a value, owned by one group.

    Fields:
        id: the contact's id, unique within its group.
        group_id: the id of the group it belongs to.
        content: its value (any value of the data model; ``None`` for none yet).
        blend_mode: how the Bassline runtime combines a new value with the old one:
            ``"accept-last"`` (replace) or ``"merge"``.  Stored, not interpreted here.
        is_boundary: whether it is one of its group's boundary contacts (its interface to the parent).
        boundary_direction: for a boundary contact, ``"input"`` or ``"output"``; ``None`` otherwise or if unset.
        name: an optional display name.
        attributes: free-form metadata, name → value.
    """

    id: str
    group_id: str
    content: Any = None
    blend_mode: BlendMode = "accept-last"
    is_boundary: bool = False
    boundary_direction: BoundaryDirection = None
    name: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Wire:
    """A wire: a connection between two contacts, owned by one group.

    Fields:
        id: the wire's id, unique within its group.
        group_id: the id of the group it belongs to.
        from_id: the contact it runs from.
        to_id: the contact it runs to.
        type: ``"bidirectional"`` (values flow both ways) or ``"directed"`` (from ``from_id`` to
            ``to_id``); stored, not interpreted here.
        attributes: free-form metadata, name → value.
    """

    id: str
    group_id: str
    from_id: str
    to_id: str
    type: WireType = "bidirectional"
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Group:
    """A group's own fields: its name, place in the group tree, and the ids of what it holds.

    Fields:
        id: the group's id, unique within its network.
        name: its display name.
        parent_id: the enclosing group's id; ``None`` for a top-level (root) group.
        contact_ids: its contacts' ids, in the group's order (new contacts are appended).
        wire_ids: its wires' ids, in order.
        subgroup_ids: the ids of the groups nested in it.
        boundary_contact_ids: the ids of its boundary contacts (its interface to the parent).
        attributes: free-form metadata, name → value; ``bassline.type``, ``bassline.author``
            and ``bassline.tags`` (or unprefixed ``type``, ``author``, ``tags``) are what
            :meth:`~casstore.model.NetworkStore.query_groups` filters on.
    """

    id: str
    name: str
    parent_id: str | None = None
    contact_ids: list[str] = field(default_factory=list)
    wire_ids: list[str] = field(default_factory=list)
    subgroup_ids: list[str] = field(default_factory=list)
    boundary_contact_ids: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class GroupState:
    """One group with everything it owns.

    Fields:
        group: the group's own fields.
        contacts: its contacts, by contact id.
        wires: its wires, by wire id.
    """

    group: Group
    contacts: dict[str, Contact] = field(default_factory=dict)
    wires: dict[str, Wire] = field(default_factory=dict)


@dataclass
class NetworkState:
    """A whole network: what :meth:`~casstore.model.NetworkStore.save_network_state` stores as one head.

    Fields:
        groups: every group's state, by group id.
        current_group_id: the group Bassline treats as current (where it is working); stored as given.
        root_group_id: the id of the outermost group.
    """

    groups: dict[str, GroupState] = field(default_factory=dict)
    current_group_id: str = "root"
    root_group_id: str = "root"


@dataclass(frozen=True)
class SnapshotInfo:
    """What :meth:`~casstore.model.NetworkStore.list_snapshots` tells about one snapshot.

    Fields:
        id: the snapshot's id (the printable id of its commit object), for ``load_snapshot``, ``diff``…
        network_id: the network it belongs to.
        label: the label given to ``save_snapshot``, or ``None``.
        created_at: when it was taken (timezone-aware, UTC).
        size: the network's logical size then, in bytes (group bodies, member keys and
            records, large contents; see ``docs/format.md``).
        root: the printable id of the network root it names.
    """

    id: str
    network_id: str
    label: str | None
    created_at: datetime
    size: int
    root: str


ChangeKind = Literal[
    "contact-added",
    "contact-removed",
    "contact-updated",
    "wire-added",
    "wire-removed",
    "wire-updated",
    "group-added",
    "group-removed",
    "group-updated",
]


@dataclass(frozen=True)
class Change:
    """One difference between two states, as :meth:`~casstore.model.NetworkStore.diff` reports it.

    Fields:
        kind: what changed: ``"<contact|wire|group>-<added|removed|updated>"``.
        group_id: the group the item belongs to (the group itself for group changes).
        item_id: the contact or wire id (the group id for group changes).
        old: the item before (a :class:`Contact`, :class:`Wire` or :class:`Group`); ``None`` if added.
        new: the item after; ``None`` if removed.
    """

    kind: ChangeKind
    group_id: str
    item_id: str
    old: Any
    new: Any


def check_str(value: object, path: str, optional: bool = False) -> None:
    if type(value) is str and value.isascii():  # the common case, checked cheaply
        return
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise SerializationError(f"{path}: expected a string, got {type(value).__name__}", path)
    try:
        value.encode()
    except UnicodeEncodeError:
        raise SerializationError(f"{path}: string is not valid Unicode", path) from None


def check_id(value: object, path: str) -> None:
    if type(value) is str and value and value.isascii():
        return
    check_str(value, path)
    assert isinstance(value, str)
    if not value:
        raise SerializationError(f"{path}: ids must be non-empty strings", path)


def check_id_list(value: object, path: str) -> None:
    if not isinstance(value, list):
        raise SerializationError(f"{path}: expected a list of ids, got {type(value).__name__}", path)
    for index, item in enumerate(value):
        check_id(item, f"{path}[{index}]")


def check_attributes(value: object, path: str) -> None:
    if type(value) is not dict and not isinstance(value, dict):
        raise SerializationError(f"{path}: expected a dict, got {type(value).__name__}", path)
