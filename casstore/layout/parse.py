"""Reading the layout's files back: each file into the record it renders, and a whole network's directory.

Every error is an :class:`~casstore.layout.errors.InvalidLayout` naming the file
and line (``groups/g/contacts/c.json:3: ...``).  Ids may be left out of a file:
a contact's id is then its file name's, its group id its directory's; given,
they must agree with the names (a file is where its id says it is).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from casstore.errors import StorageError
from casstore.layout.errors import InvalidLayout
from casstore.layout.names import decode_name, encode_name
from casstore.model.bassline_json import value_from_json
from casstore.model.types import Contact, Group, GroupState, NetworkState, Wire

__all__ = ["NetworkFields", "parse_json", "read_contact", "read_group", "read_metadata", "read_network"]


def parse_json(display: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except UnicodeDecodeError as exc:
        raise InvalidLayout(f"{display}:1: not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise InvalidLayout(f"{display}:{exc.lineno}: malformed JSON: {exc.msg} (column {exc.colno})") from None


class _Doc:
    """One parsed file, for field reads whose errors name the file and the field's line."""

    def __init__(self, display: str, data: bytes, doc: Any | None = None) -> None:
        self.display, self.data = display, data
        self.doc = parse_json(display, data) if doc is None else doc
        if not isinstance(self.doc, dict):
            raise InvalidLayout(f"{display}:1: expected a JSON object, got {type(self.doc).__name__}")

    def line(self, name: str) -> int:
        match = re.search(rb'"' + re.escape(json.dumps(name).strip('"').encode()) + rb'"\s*:', self.data)
        return 1 if match is None else self.data.count(b"\n", 0, match.start()) + 1

    def error(self, name: str, problem: str) -> InvalidLayout:
        return InvalidLayout(f"{self.display}:{self.line(name)}: {name!r}: {problem}")

    def get(self, name: str, kind: type | tuple[type, ...], default: Any = ..., nullable: bool = False) -> Any:
        if name not in self.doc:
            if default is ...:
                raise InvalidLayout(f"{self.display}:1: missing {name!r}")
            return default
        value = self.doc[name]
        if value is None and nullable:
            return None
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise self.error(name, f"expected {_kind_name(kind)}, got {type(value).__name__}")
        return value

    def ids(self, name: str) -> list[str]:
        value = self.get(name, list, [])
        if not all(isinstance(item, str) for item in value):
            raise self.error(name, "expected a list of string ids")
        return list(value)

    def value(self, name: str, named: bool = False, default: Any = None) -> Any:
        if name not in self.doc:
            return default
        if named and not isinstance(self.doc[name], dict):
            raise self.error(name, f"expected an object, got {type(self.doc[name]).__name__}")
        try:
            return value_from_json(self.doc[name], name, named)
        except StorageError as exc:
            raise self.error(name, str(exc)) from None

    def same(self, name: str, value: str, where: str) -> str:
        given = self.get(name, str, value)
        if given != value:
            raise self.error(name, f"{given!r} does not match {where} ({value!r})")
        return given  # type: ignore[no-any-return]


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)


def _id_of_name(display: str, name: str, doc: _Doc, field: str) -> str:
    """The id a file or directory name stands for (a hashed long name: the id the file gives)."""
    decoded = decode_name(name)
    if decoded is not None:
        return decoded
    given = doc.get(field, str, None)
    if given is None or encode_name(given) != name:
        raise InvalidLayout(f"{display}:1: {name!r} is not a name this layout gives an id, and {field!r} does not fit")
    return given  # type: ignore[no-any-return]


def read_contact(display: str, data: bytes, file_name: str, group_id: str) -> Contact:
    """A contact file (``file_name`` without ``.json``) of the group ``group_id``."""
    doc = _Doc(display, data)
    cid = _id_of_name(display, file_name, doc, "id")
    doc.same("id", cid, "its file name")
    doc.same("groupId", group_id, "its group")
    return Contact(
        id=cid,
        group_id=group_id,
        content=doc.value("content"),
        blend_mode=doc.get("blendMode", str, "accept-last"),
        is_boundary=doc.get("isBoundary", bool, False),
        boundary_direction=doc.get("boundaryDirection", str, None, nullable=True),
        name=doc.get("name", str, None, nullable=True),
        attributes=doc.value("attributes", named=True, default={}),
        extra=doc.value("extra", named=True, default={}),
    )


def group_id_of(display: str, dir_name: str, structure: bytes | None) -> str:
    """A group directory's group id (its name's, or for a hashed long name the id its structure gives)."""
    decoded = decode_name(dir_name)
    if decoded is not None:
        return decoded
    if structure is None:
        raise InvalidLayout(f"{display}:1: a group directory with a shortened name needs its structure.json")
    return _id_of_name(display, dir_name, _Doc(display, structure), "id")


def read_group(display: str, dir_name: str, structure: bytes, attributes: bytes | None) -> GroupState:
    """A group's own fields and wires, from its ``structure.json`` and ``attributes.json`` (absent: ``{}``)."""
    doc = _Doc(f"{display}/structure.json", structure)
    gid = _id_of_name(doc.display, dir_name, doc, "id")
    doc.same("id", gid, "its directory name")
    wires_doc = doc.get("wires", dict, {})
    wires = {}
    for wid, wire_json in wires_doc.items():
        if not isinstance(wire_json, dict):
            raise doc.error(wid, "a wire must be a JSON object")
        wdoc = _Doc(doc.display, doc.data, wire_json)
        wires[wid] = Wire(
            id=wdoc.same("id", wid, "its key in wires"),
            group_id=wdoc.same("groupId", gid, "its group"),
            from_id=wdoc.get("fromId", str),
            to_id=wdoc.get("toId", str),
            type=wdoc.get("type", str, "bidirectional"),
            attributes=wdoc.value("attributes", named=True, default={}),
            extra=wdoc.value("extra", named=True, default={}),
        )
    attrs: dict[str, Any] = {}
    if attributes is not None:
        adoc = _Doc(f"{display}/attributes.json", attributes)
        try:
            attrs = value_from_json(adoc.doc, "attributes", named=True)
        except StorageError as exc:
            raise InvalidLayout(f"{adoc.display}:1: {exc}") from None
    group = Group(
        id=gid,
        name=doc.get("name", str),
        parent_id=doc.get("parentId", str, None, nullable=True),
        contact_ids=doc.ids("contactIds"),
        wire_ids=doc.ids("wireIds"),
        subgroup_ids=doc.ids("subgroupIds"),
        boundary_contact_ids=doc.ids("boundaryContactIds"),
        attributes=attrs,
        extra=doc.value("extra", named=True, default={}),
    )
    return GroupState(group, {}, wires, doc.value("stateExtra", named=True, default={}))


class NetworkFields:
    """What ``metadata.json`` holds: the network's id, top-level fields, metadata, times and root."""

    def __init__(self, display: str, data: bytes) -> None:
        doc = _Doc(display, data)
        self.id: str = doc.get("id", str)
        self.metadata: dict[str, Any] = doc.value("metadata", named=True, default={})
        self.created_at = _time(doc, "createdAt")
        self.updated_at = _time(doc, "updatedAt")
        self.root: str | None = doc.get("root", str, None, nullable=True)
        self.current_group_id: str = doc.get("currentGroupId", str, "root")
        self.root_group_id: str = doc.get("rootGroupId", str, "root")
        self.extra: dict[str, Any] = doc.value("extra", named=True, default={})

    def state(self, groups: dict[str, GroupState]) -> NetworkState:
        return NetworkState(
            groups,
            self.current_group_id,
            self.root_group_id,
            self.extra,
            self.metadata,
            self.created_at,
            self.updated_at,
        )


def _time(doc: _Doc, name: str) -> datetime | None:
    text = doc.get(name, str, None, nullable=True)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise doc.error(name, f"{text!r} is not an ISO-8601 time") from None
    if when.tzinfo is None:
        raise doc.error(name, f"{text!r} has no time zone")
    return when


def read_metadata(root: Path, display: str) -> NetworkFields:
    return NetworkFields(f"{display}/metadata.json", _read(root / "metadata.json", f"{display}/metadata.json"))


def _read(path: Path, display: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidLayout(f"{display}:1: missing") from None
    except OSError as exc:
        raise InvalidLayout(f"{display}:1: cannot be read: {exc.strerror}") from None


def read_group_dir(directory: Path, display: str) -> GroupState:
    """A whole group directory: structure, attributes, every contact file."""
    structure = _read(directory / "structure.json", f"{display}/structure.json")
    attributes_path = directory / "attributes.json"
    attributes = _read(attributes_path, f"{display}/attributes.json") if attributes_path.exists() else None
    state = read_group(display, directory.name, structure, attributes)
    gid = state.group.id
    contacts_dir = directory / "contacts"
    if contacts_dir.is_dir():
        for path in sorted(contacts_dir.iterdir()):
            if path.name.startswith(".") or not path.name.endswith(".json") or not path.is_file():
                continue
            shown = f"{display}/contacts/{path.name}"
            contact = read_contact(shown, _read(path, shown), path.name[: -len(".json")], gid)
            state.contacts[contact.id] = contact
    return state


def read_network(root: Path, display: str) -> NetworkState:
    """A whole network directory (``.../networks/{id}``) as a state (its times as the files give them)."""
    fields = read_metadata(root, display)
    groups: dict[str, GroupState] = {}
    groups_dir = root / "groups"
    if groups_dir.is_dir():
        for directory in sorted(groups_dir.iterdir()):
            if directory.name.startswith(".") or not directory.is_dir():
                continue
            state = read_group_dir(directory, f"{display}/groups/{directory.name}")
            groups[state.group.id] = state
    return fields.state(groups)
