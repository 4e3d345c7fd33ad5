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

BlendMode = Literal["accept-last", "merge"]
BoundaryDirection = Literal["input", "output"] | None
WireType = Literal["bidirectional", "directed"]

BLEND_MODES = ("accept-last", "merge")
BOUNDARY_DIRECTIONS = (None, "input", "output")
WIRE_TYPES = ("bidirectional", "directed")


@dataclass
class Contact:
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
    id: str
    group_id: str
    from_id: str
    to_id: str
    type: WireType = "bidirectional"
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Group:
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
    group: Group
    contacts: dict[str, Contact] = field(default_factory=dict)
    wires: dict[str, Wire] = field(default_factory=dict)


@dataclass
class NetworkState:
    groups: dict[str, GroupState] = field(default_factory=dict)
    current_group_id: str = "root"
    root_group_id: str = "root"


@dataclass(frozen=True)
class SnapshotInfo:
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
    """One difference between two states. ``item_id`` is the contact/wire id (the group id for groups)."""

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
