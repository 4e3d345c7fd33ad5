"""Bassline's core types as dataclasses (snake_case), and their validation.

Contents and attribute values may be any value of the object format's data
model; anything else raises :class:`~casstore.errors.SerializationError`
naming the path, before anything is stored.  Ids are non-empty strings of at
most :data:`MAX_ID_BYTES` UTF-8 bytes (longer ones raise
:class:`~casstore.errors.InvalidId`).  ``extra`` on a contact, wire or group
holds the fields of a Bassline document that casstore does not model (by their
JSON name): they are stored and exported unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from casstore.errors import InvalidId, SerializationError

__all__ = [
    "BLEND_MODES",
    "BOUNDARY_DIRECTIONS",
    "CONTACT_FIELDS",
    "GROUP_FIELDS",
    "MAX_ID_BYTES",
    "WIRE_FIELDS",
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
    "check_callable",
    "check_extra",
    "check_group_state",
    "check_id",
    "check_id_list",
    "check_metadata",
    "check_network_state",
    "check_str",
    "check_time",
]

BlendMode = Literal["accept-last", "merge"]
BoundaryDirection = Literal["input", "output"] | None
WireType = Literal["bidirectional", "directed"]

BLEND_MODES = ("accept-last", "merge")
BOUNDARY_DIRECTIONS = (None, "input", "output")
WIRE_TYPES = ("bidirectional", "directed")

#: The JSON names of the fields each record models; any other field of a document goes to ``extra``.
CONTACT_FIELDS = frozenset(
    {"id", "groupId", "content", "blendMode", "isBoundary", "boundaryDirection", "name", "attributes"}
)
WIRE_FIELDS = frozenset({"id", "groupId", "fromId", "toId", "type", "attributes"})
NETWORK_FIELDS = frozenset({"groups", "currentGroupId", "rootGroupId", "network"})
GROUP_STATE_FIELDS = frozenset({"group", "contacts", "wires"})
GROUP_FIELDS = frozenset(
    {"id", "name", "parentId", "contactIds", "wireIds", "subgroupIds", "boundaryContactIds", "attributes"}
)

#: The longest id (network, group, contact, wire), in UTF-8 bytes: every backend stores it and
#: every transfer carries it (a network id %-escaped into a ref name stays under MAX_REF_NAME).
MAX_ID_BYTES = 1024


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
        extra: fields of an imported document casstore does not model, by JSON name → value
            (kept and exported unchanged).
    """

    id: str
    group_id: str
    content: Any = None
    blend_mode: BlendMode = "accept-last"
    is_boundary: bool = False
    boundary_direction: BoundaryDirection = None
    name: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


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
        extra: fields casstore does not model, by JSON name → value (kept and exported unchanged).
    """

    id: str
    group_id: str
    from_id: str
    to_id: str
    type: WireType = "bidirectional"
    attributes: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


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
        extra: fields casstore does not model, by JSON name → value (kept and exported unchanged).
    """

    id: str
    name: str
    parent_id: str | None = None
    contact_ids: list[str] = field(default_factory=list)
    wire_ids: list[str] = field(default_factory=list)
    subgroup_ids: list[str] = field(default_factory=list)
    boundary_contact_ids: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class GroupState:
    """One group with everything it owns.

    Fields:
        group: the group's own fields.
        contacts: its contacts, by contact id.
        wires: its wires, by wire id.
        extra: fields of the group's Bassline document beside ``group``, ``contacts`` and ``wires``
            that casstore does not model, kept and exported unchanged.
    """

    group: Group
    contacts: dict[str, Contact] = field(default_factory=dict)
    wires: dict[str, Wire] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class NetworkState:
    """A whole network: what :meth:`~casstore.model.NetworkStore.save_network_state` stores as one head.

    Fields:
        groups: every group's state, by group id.
        current_group_id: the group Bassline treats as current (where it is working); stored as given.
        root_group_id: the id of the outermost group.
        extra: top-level fields of a Bassline document that casstore does not model, kept and
            exported unchanged (JSON names as keys).
        metadata: the network's own metadata (the seed's ``networks.metadata``), a JSON object.
        created_at: when the network was first written (timezone-aware; ``None`` until stored).
            Kept by every later write; not part of equality.
        updated_at: when it was last written (timezone-aware; ``None`` until stored); not part of equality.
    """

    groups: dict[str, GroupState] = field(default_factory=dict)
    current_group_id: str = "root"
    root_group_id: str = "root"
    extra: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)


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
        automatic: whether a live image's snapshot timer took it (``"auto": true`` in the snapshot
            object; see :mod:`casstore.runtime`), so retention may prune it.
        parents: the snapshots it follows, by id: one for an ordinary snapshot (none for the
            first), two or more for a merge's (ours first); weak references, as in docs/format.md.
    """

    id: str
    network_id: str
    label: str | None
    created_at: datetime
    size: int
    root: str
    automatic: bool = False
    parents: tuple[str, ...] = ()


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
    """A non-empty valid-Unicode string of at most :data:`MAX_ID_BYTES` UTF-8 bytes, else an error naming ``path``."""
    if type(value) is str and value and value.isascii() and len(value) <= MAX_ID_BYTES:
        return
    check_str(value, path)
    assert isinstance(value, str)
    if not value:
        raise SerializationError(f"{path}: ids must be non-empty strings", path)
    size = len(value.encode())
    if size > MAX_ID_BYTES:
        raise InvalidId(f"{path}: id of {size:,} UTF-8 bytes is over the limit of {MAX_ID_BYTES:,}")


def check_id_list(value: object, path: str) -> None:
    if not isinstance(value, list):
        raise SerializationError(f"{path}: expected a list of ids, got {type(value).__name__}", path)
    for index, item in enumerate(value):
        check_id(item, f"{path}[{index}]")


def check_attributes(value: object, path: str) -> None:
    if type(value) is not dict and not isinstance(value, dict):
        raise SerializationError(f"{path}: expected a dict, got {type(value).__name__}", path)


def check_callable(value: object, path: str) -> None:
    if not callable(value):
        raise SerializationError(f"{path}: expected a function, got {type(value).__name__}", path)


def check_extra(value: object, path: str, modelled: frozenset[str]) -> None:
    """``extra`` fields: a dict of str keys, none of them a field casstore models (``modelled``, JSON names)."""
    check_attributes(value, path)
    assert isinstance(value, dict)
    for key in value:
        check_str(key, f"{path} key")
        if key in modelled:
            raise SerializationError(f"{path}[{key!r}]: {key!r} is a modelled field, not an extra one", path)


def _check_map(value: object, path: str, kind: type) -> None:
    """A dict of ids to ``kind`` instances (the keys checked as ids, before anything sorts them)."""
    if not isinstance(value, dict):
        raise SerializationError(f"{path}: expected a dict of {kind.__name__}s, got {type(value).__name__}", path)
    for key, item in value.items():
        check_id(key, f"{path} key {key!r}")
        if not isinstance(item, kind):
            raise SerializationError(f"{path}[{key!r}] is a {type(item).__name__}, not a {kind.__name__}", path)


def check_group_state(state: object, path: str, members: bool = True) -> None:
    """``state`` is a :class:`GroupState` of a :class:`Group` and (if ``members``) dicts of contacts and
    wires keyed by ids."""
    if not isinstance(state, GroupState):
        raise SerializationError(f"{path}: expected a GroupState, got {type(state).__name__}", path)
    if not isinstance(state.group, Group):
        raise SerializationError(f"{path}.group: expected a Group, got {type(state.group).__name__}", path)
    if members:
        _check_map(state.contacts, f"{path}.contacts", Contact)
        _check_map(state.wires, f"{path}.wires", Wire)


def check_network_state(state: object) -> None:
    """``state`` is a :class:`NetworkState` whose groups are :class:`GroupState` values keyed by ids
    (their members are checked as each group is encoded)."""
    if not isinstance(state, NetworkState):
        raise SerializationError(f"state: expected a NetworkState, got {type(state).__name__}", "state")
    if not isinstance(state.groups, dict):
        raise SerializationError(f"state.groups: expected a dict, got {type(state.groups).__name__}", "groups")
    for gid, group_state in state.groups.items():
        check_id(gid, f"groups key {gid!r}")
        check_group_state(group_state, f"groups[{gid!r}]", members=False)
    check_str(state.current_group_id, "current_group_id")
    check_str(state.root_group_id, "root_group_id")
    check_extra(state.extra, "extra", NETWORK_FIELDS)
    check_metadata(state.metadata)
    for name in ("created_at", "updated_at"):
        check_time(getattr(state, name), name)


def check_metadata(value: object, path: str = "metadata") -> None:
    """Network metadata: a dict with string keys (its values are checked as they are encoded)."""
    check_attributes(value, path)
    assert isinstance(value, dict)
    for key in value:
        check_str(key, f"{path} key")


def check_time(value: object, path: str) -> None:
    """``None`` or a timezone-aware :class:`~datetime.datetime`."""
    if value is None:
        return
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise SerializationError(f"{path}: expected a timezone-aware datetime, got {value!r}", path)
