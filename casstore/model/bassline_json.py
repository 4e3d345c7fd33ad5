"""Bassline's JSON shape for a network state (camelCase fields, maps keyed by id).

``{"groups": {"<gid>": {"group": {...}, "contacts": {"<cid>": {...}}, "wires": {...}}},
"currentGroupId": "root", "rootGroupId": "root"}``.  Bytes inside contents are
written the DAG-JSON way, ``{"/": {"bytes": "<base64>"}}``, and read back as
bytes.  A malformed document raises :class:`NetworkJSONError` naming the place.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from casstore.errors import StorageError
from casstore.model.types import Contact, Group, GroupState, NetworkState, Wire

__all__ = [
    "NetworkJSONError",
    "contact_to_json",
    "group_state_to_json",
    "network_from_json",
    "network_to_json",
]


class NetworkJSONError(StorageError, ValueError):
    """A JSON document that is not a Bassline network state; the message names the offending place."""

    code = "INVALID_NETWORK_JSON"


def _to_json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"/": {"bytes": base64.b64encode(value).decode("ascii").rstrip("=")}}
    if isinstance(value, list):
        return [_to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json_value(v) for k, v in value.items()}
    return value


def _from_json_value(value: Any, path: str) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("/"), dict) and set(value["/"]) == {"bytes"}:
            text = value["/"]["bytes"]
            try:
                return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except (binascii.Error, TypeError):
                raise NetworkJSONError(f"{path}: bad base64 in a bytes value") from None
        return {k: _from_json_value(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def network_to_json(state: NetworkState) -> dict[str, Any]:
    return {
        "groups": {gid: group_state_to_json(gs) for gid, gs in state.groups.items()},
        "currentGroupId": state.current_group_id,
        "rootGroupId": state.root_group_id,
    }


def group_state_to_json(state: GroupState) -> dict[str, Any]:
    g = state.group
    return {
        "group": {
            "id": g.id,
            "name": g.name,
            "parentId": g.parent_id,
            "contactIds": g.contact_ids,
            "wireIds": g.wire_ids,
            "subgroupIds": g.subgroup_ids,
            "boundaryContactIds": g.boundary_contact_ids,
            "attributes": _to_json_value(g.attributes),
        },
        "contacts": {cid: contact_to_json(c) for cid, c in state.contacts.items()},
        "wires": {
            wid: {
                "id": w.id,
                "groupId": w.group_id,
                "fromId": w.from_id,
                "toId": w.to_id,
                "type": w.type,
                **({"attributes": _to_json_value(w.attributes)} if w.attributes else {}),
            }
            for wid, w in state.wires.items()
        },
    }


def contact_to_json(c: Contact) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "groupId": c.group_id,
        "content": _to_json_value(c.content),
        "blendMode": c.blend_mode,
    }
    if c.is_boundary:
        out["isBoundary"] = True
    if c.boundary_direction is not None:
        out["boundaryDirection"] = c.boundary_direction
    if c.name is not None:
        out["name"] = c.name
    if c.attributes:
        out["attributes"] = _to_json_value(c.attributes)
    return out


def _obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NetworkJSONError(f"{path}: expected an object, got {type(value).__name__}")
    return value


def _field(obj: dict[str, Any], name: str, path: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if name not in obj:
        if default is ...:
            raise NetworkJSONError(f"{path}: missing {name!r}")
        return default
    value = obj[name]
    if value is None and default is None:
        return None
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise NetworkJSONError(f"{path}.{name}: expected {expected}, got {type(value).__name__}")
    return value


def _ids(obj: dict[str, Any], name: str, path: str) -> list[str]:
    ids = _field(obj, name, path, list, [])
    for i, item in enumerate(ids):
        if not isinstance(item, str):
            raise NetworkJSONError(f"{path}.{name}[{i}]: expected a string id, got {type(item).__name__}")
    return list(ids)


def network_from_json(doc: Any) -> NetworkState:
    root = _obj(doc, "$")
    groups_doc = _obj(_field(root, "groups", "$", dict), "$.groups")
    groups = {}
    for gid, gs_doc in groups_doc.items():
        path = f"$.groups[{gid!r}]"
        gs = _obj(gs_doc, path)
        gdoc = _obj(_field(gs, "group", path, dict), f"{path}.group")
        gpath = f"{path}.group"
        group = Group(
            id=_field(gdoc, "id", gpath, str, gid),
            name=_field(gdoc, "name", gpath, str),
            parent_id=_field(gdoc, "parentId", gpath, str, None),
            contact_ids=_ids(gdoc, "contactIds", gpath),
            wire_ids=_ids(gdoc, "wireIds", gpath),
            subgroup_ids=_ids(gdoc, "subgroupIds", gpath),
            boundary_contact_ids=_ids(gdoc, "boundaryContactIds", gpath),
            attributes=_from_json_value(_field(gdoc, "attributes", gpath, dict, {}), f"{gpath}.attributes"),
        )
        contacts = {}
        for cid, c_doc in _obj(_field(gs, "contacts", path, dict, {}), f"{path}.contacts").items():
            cpath = f"{path}.contacts[{cid!r}]"
            c = _obj(c_doc, cpath)
            contacts[cid] = Contact(
                id=_field(c, "id", cpath, str, cid),
                group_id=_field(c, "groupId", cpath, str, gid),
                content=_from_json_value(c.get("content"), f"{cpath}.content"),
                blend_mode=_field(c, "blendMode", cpath, str, "accept-last"),
                is_boundary=_field(c, "isBoundary", cpath, bool, False),
                boundary_direction=_field(c, "boundaryDirection", cpath, str, None),
                name=_field(c, "name", cpath, str, None),
                attributes=_from_json_value(_field(c, "attributes", cpath, dict, {}), f"{cpath}.attributes"),
            )
        wires = {}
        for wid, w_doc in _obj(_field(gs, "wires", path, dict, {}), f"{path}.wires").items():
            wpath = f"{path}.wires[{wid!r}]"
            w = _obj(w_doc, wpath)
            wires[wid] = Wire(
                id=_field(w, "id", wpath, str, wid),
                group_id=_field(w, "groupId", wpath, str, gid),
                from_id=_field(w, "fromId", wpath, str),
                to_id=_field(w, "toId", wpath, str),
                type=_field(w, "type", wpath, str, "bidirectional"),
                attributes=_from_json_value(_field(w, "attributes", wpath, dict, {}), f"{wpath}.attributes"),
            )
        groups[gid] = GroupState(group, contacts, wires)
    return NetworkState(
        groups,
        current_group_id=_field(root, "currentGroupId", "$", str, "root"),
        root_group_id=_field(root, "rootGroupId", "$", str, "root"),
    )
