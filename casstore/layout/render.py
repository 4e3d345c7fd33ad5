"""What each file of the seed's layout holds, as canonical bytes; and the paths they live at.

Every file is pretty JSON (two-space indent), keys sorted, UTF-8, ending in a
newline (:func:`canonical`), so a one-value change is a one-line diff.  The
documents hold user values as they are (bytes included); :func:`canonical`
writes bytes the DAG-JSON way as it prints.  Field
names are Bassline's camelCase, as in casstore's JSON import/export
(:mod:`casstore.model.bassline_json`); contents and attribute values carry bytes
the DAG-JSON way.  Paths are relative to the directory that holds
``networks/`` (the seed's ``storage/``), ids mapped by :mod:`casstore.layout.names`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from casstore.layout.names import encode_name, slug
from casstore.model.bassline_json import (
    contact_optional_fields,
    group_topology,
    network_info_to_json,
    value_to_json,
    wire_fields,
)
from casstore.model.types import Contact, GroupState, NetworkState, Wire

__all__ = [
    "SHORT_ID",
    "attributes_doc",
    "canonical",
    "contact_doc",
    "contact_path",
    "group_dir",
    "metadata_doc",
    "network_dir",
    "render_group",
    "snapshot_doc",
    "snapshot_name",
    "structure_doc",
    "wire_doc",
]

#: How many characters of a snapshot's printable id stand for it in a file name (a unique prefix).
SHORT_ID = 16

_string = json.encoder.encode_basestring  # the C one where there is one
_float = json.JSONEncoder(ensure_ascii=False).encode


def _pretty(value: Any, indent: str) -> str:
    """``json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)`` at ``indent``; bytes the DAG-JSON way."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = indent + "  "
        parts = [f"{inner}{_string(k)}: {_pretty(v, inner)}" for k, v in sorted(value.items())]
        return "{\n" + ",\n".join(parts) + "\n" + indent + "}"
    if kind is list:
        if not value:
            return "[]"
        inner = indent + "  "
        return "[\n" + ",\n".join([inner + _pretty(v, inner) for v in value]) + "\n" + indent + "]"
    if kind is int:
        return int.__repr__(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return float.__repr__(value) if value - value == 0 else _float(value)
    if kind is bytes:
        return _pretty(value_to_json(value), indent)
    return _pretty(value_to_json(value), indent) if isinstance(value, bytes) else _general(value, indent)


def _general(value: Any, indent: str) -> str:
    """Subclasses of dict, list, str, int: the slow, general way."""
    return json.dumps(value_to_json(value), indent=2, sort_keys=True, ensure_ascii=False).replace("\n", "\n" + indent)


def canonical(doc: Any) -> bytes:
    """``json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\\n"`` as UTF-8, faster."""
    return (_pretty(doc, "") + "\n").encode()


# ---------------------------------------------------------------- paths


def network_dir(network_id: str) -> str:
    return "networks/" + encode_name(network_id)


def group_dir(group_id: str) -> str:
    """A group's directory, relative to its network's."""
    return "groups/" + encode_name(group_id)


def contact_path(group_id: str, contact_id: str) -> str:
    """A contact's file, relative to its network's directory."""
    return f"groups/{encode_name(group_id)}/contacts/{encode_name(contact_id)}.json"


def snapshot_name(snapshot_id: str, label: str | None, time: datetime) -> str:
    """``{YYYYMMDDTHHMMSSZ}-{label slug, or the short id}`` (without ``.json``)."""
    stamp = time.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{slug(label or '') or snapshot_id[:SHORT_ID]}"


# ---------------------------------------------------------------- documents


def contact_doc(contact: Contact) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": contact.id,
        "groupId": contact.group_id,
        "content": contact.content,
        "blendMode": contact.blend_mode,
        **contact_optional_fields(contact),
    }
    if contact.extra:
        doc["extra"] = contact.extra
    return doc


def wire_doc(wire: Wire) -> dict[str, Any]:
    doc = wire_fields(wire)
    if wire.extra:
        doc["extra"] = wire.extra
    return doc


def structure_doc(state: GroupState) -> dict[str, Any]:
    """A group's topology: its own fields but attributes, and its wires."""
    group = state.group
    doc: dict[str, Any] = {
        **group_topology(group),
        "wires": {wid: wire_doc(wire) for wid, wire in state.wires.items()},
    }
    if group.extra:
        doc["extra"] = group.extra
    if state.extra:
        doc["stateExtra"] = state.extra
    return doc


def attributes_doc(state: GroupState) -> dict[str, Any]:
    return state.group.attributes


def render_group(state: GroupState, contacts: bool = True) -> dict[str, bytes]:
    """A group's files (paths relative to its network's directory)."""
    gid = state.group.id
    base = group_dir(gid)
    files = {
        f"{base}/structure.json": canonical(structure_doc(state)),
        f"{base}/attributes.json": canonical(attributes_doc(state)),
    }
    if contacts:
        for cid, contact in state.contacts.items():
            files[contact_path(gid, cid)] = canonical(contact_doc(contact))
    return files


def metadata_doc(network_id: str, state: NetworkState, root: str) -> dict[str, Any]:
    """``metadata.json``: the network's id, metadata and times, its top-level fields, the root it reflects."""
    info = network_info_to_json(state)
    doc: dict[str, Any] = {
        "id": network_id,
        "metadata": info.get("metadata", {}),
        "createdAt": info.get("createdAt"),
        "updatedAt": info.get("updatedAt"),
        "root": root,
        "currentGroupId": state.current_group_id,
        "rootGroupId": state.root_group_id,
    }
    if state.extra:
        doc["extra"] = state.extra
    return doc


def snapshot_doc(
    snapshot_id: str,
    root: str,
    parent: str | None,
    label: str | None,
    time: datetime,
    size: int,
    automatic: bool = False,
    parents: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A snapshot file: every field of the snapshot object (``automatic``, a merge's ``parents`` when set),
    so that a store holding its root can restore it exactly (the same id)."""
    doc: dict[str, Any] = {
        "id": snapshot_id,
        "root": root,
        "parent": parent,
        "label": label,
        "time": time.astimezone(UTC).isoformat(timespec="microseconds"),
        "size": size,
    }
    if automatic:
        doc["auto"] = True
    if len(parents) > 1:
        doc["parents"] = list(parents)
    return doc
