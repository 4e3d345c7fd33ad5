"""Bassline's JSON shape for a network state (camelCase fields, maps keyed by id).

``{"groups": {"<gid>": {"group": {...}, "contacts": {"<cid>": {...}}, "wires": {...}}},
"currentGroupId": "root", "rootGroupId": "root"}``.  Bytes inside contents are
written the DAG-JSON way, ``{"/": {"bytes": "<base64>"}}``, and read back as
bytes.  A malformed document raises :class:`NetworkJSONError` naming the place;
a value nested deeper than :data:`casstore.codec.MAX_DEPTH` levels raises
:class:`~casstore.errors.SerializationError` (neither direction recurses
further than that).  Fields of a contact, wire or group that casstore does not
model are kept in its ``extra`` and written back unchanged.

The network's own metadata and times are under one top-level key, ``"network"``:
``{"metadata": {...}, "createdAt": ISO-8601, "updatedAt": ISO-8601}`` (each part
left out when empty or unset, the key itself when all are).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from casstore.codec import MAX_DEPTH
from casstore.errors import SerializationError, StorageError
from casstore.model.types import (
    CONTACT_FIELDS,
    GROUP_FIELDS,
    GROUP_STATE_FIELDS,
    NETWORK_FIELDS,
    WIRE_FIELDS,
    Contact,
    Group,
    GroupState,
    NetworkState,
    Wire,
    check_group_state,
    check_network_state,
)

__all__ = [
    "NetworkJSONError",
    "contact_optional_fields",
    "contact_to_json",
    "group_state_to_json",
    "group_topology",
    "network_from_json",
    "network_info_from_json",
    "network_info_to_json",
    "network_to_json",
    "value_from_json",
    "value_to_json",
    "wire_fields",
    "wire_to_json",
]


class NetworkJSONError(StorageError, ValueError):
    """A JSON document that is not a Bassline network state; the message names the offending place."""

    code = "INVALID_NETWORK_JSON"


def _too_deep(path: str) -> SerializationError:
    shown = path if len(path) <= 120 else path[:120] + "…"
    return SerializationError(f"{shown}: nested more than {MAX_DEPTH} levels deep (the limit)", shown)


def _to_json_value(value: Any, depth: int = MAX_DEPTH + 1) -> Any:
    """``value`` with bytes written the DAG-JSON way (``depth``: as in :func:`_from_json_value`)."""
    if isinstance(value, bytes):
        return {"/": {"bytes": base64.b64encode(value).decode("ascii").rstrip("=")}}
    if isinstance(value, (list, dict)) and depth <= 0:
        raise _too_deep("value")
    if isinstance(value, list):
        return [_to_json_value(v, depth - 1) for v in value]
    if isinstance(value, dict):
        return {k: _to_json_value(v, depth - 1) for k, v in value.items()}
    return value


def _from_json_value(value: Any, path: str, depth: int = MAX_DEPTH) -> Any:
    """``value`` with DAG-JSON bytes decoded; ``depth`` is how many more levels of lists and maps it may nest."""
    if isinstance(value, (dict, list)) and depth <= 0:
        raise _too_deep(path)
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("/"), dict) and set(value["/"]) == {"bytes"}:
            text = value["/"]["bytes"]
            try:
                return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except (binascii.Error, TypeError):
                raise NetworkJSONError(f"{path}: bad base64 in a bytes value") from None
        return {k: _from_json_value(v, f"{path}.{k}", depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json_value(v, f"{path}[{i}]", depth - 1) for i, v in enumerate(value)]
    return value


def _from_json_map(value: dict[str, Any], path: str) -> dict[str, Any]:
    """A map of named values (attributes, extra fields): each value may nest :data:`MAX_DEPTH` levels."""
    return _from_json_value(value, path, MAX_DEPTH + 1)  # type: ignore[no-any-return]


def _extra(doc: dict[str, Any], modelled: frozenset[str], path: str) -> dict[str, Any]:
    """The fields of ``doc`` casstore does not model, kept as they are."""
    if modelled.issuperset(doc):
        return {}
    return _from_json_map({k: v for k, v in doc.items() if k not in modelled}, path)


def _with_extra(out: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    if extra:
        out.update((k, v) for k, v in _to_json_value(extra).items() if k not in out)
    return out


def value_to_json(value: Any, named: bool = False) -> Any:
    """A content (or, ``named``, a map of named values: attributes, extra fields) as JSON, bytes the DAG-JSON way."""
    return _to_json_value(value, MAX_DEPTH + 1 if named else MAX_DEPTH)


def value_from_json(value: Any, path: str, named: bool = False) -> Any:
    """A JSON value read back as a content (or a map of named values); DAG-JSON bytes decoded; errors name ``path``."""
    return _from_json_map(value, path) if named else _from_json_value(value, path)


def network_info_to_json(state: NetworkState) -> dict[str, Any]:
    """The ``"network"`` object: metadata and times (parts left out when empty or unset)."""
    out: dict[str, Any] = {}
    if state.metadata:
        out["metadata"] = _to_json_value(state.metadata)
    for name, when in (("createdAt", state.created_at), ("updatedAt", state.updated_at)):
        if when is not None:
            out[name] = when.isoformat(timespec="microseconds")
    return out


def _time(obj: dict[str, Any], name: str, path: str) -> datetime | None:
    text = _field(obj, name, path, str, None)
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise NetworkJSONError(f"{path}.{name}: {text!r} is not an ISO-8601 time") from None
    if when.tzinfo is None:
        raise NetworkJSONError(f"{path}.{name}: {text!r} has no time zone")
    return when


def network_info_from_json(doc: Any, path: str) -> tuple[dict[str, Any], datetime | None, datetime | None]:
    """Metadata, created and updated times from a ``"network"`` object."""
    info = _obj(doc, path)
    metadata = _from_json_map(_field(info, "metadata", path, dict, {}), f"{path}.metadata")
    return metadata, _time(info, "createdAt", path), _time(info, "updatedAt", path)


def network_to_json(state: NetworkState) -> dict[str, Any]:
    check_network_state(state)  # a wrong type is a SerializationError naming it, not an AttributeError
    for gid, group_state in state.groups.items():
        check_group_state(group_state, f"groups[{gid!r}]")
    out = {
        "groups": {gid: group_state_to_json(gs) for gid, gs in state.groups.items()},
        "currentGroupId": state.current_group_id,
        "rootGroupId": state.root_group_id,
    }
    info = network_info_to_json(state)
    if info:
        out["network"] = info
    return _with_extra(out, state.extra)


def group_topology(g: Group) -> dict[str, Any]:
    """A group's own fields but attributes and extra ones, by Bassline's names (id lists copied)."""
    return {
        "id": g.id,
        "name": g.name,
        "parentId": g.parent_id,
        "contactIds": list(g.contact_ids),
        "wireIds": list(g.wire_ids),
        "subgroupIds": list(g.subgroup_ids),
        "boundaryContactIds": list(g.boundary_contact_ids),
    }


def group_state_to_json(state: GroupState) -> dict[str, Any]:
    g = state.group
    group = {**group_topology(g), "attributes": _to_json_value(g.attributes)}
    out = {
        "group": _with_extra(group, g.extra),
        "contacts": {cid: contact_to_json(c) for cid, c in state.contacts.items()},
        "wires": {wid: wire_to_json(w) for wid, w in state.wires.items()},
    }
    return _with_extra(out, state.extra)


def wire_fields(w: Wire) -> dict[str, Any]:
    """A wire's fields by Bassline's names, attributes only when set (values as they are, not yet JSON)."""
    out: dict[str, Any] = {"id": w.id, "groupId": w.group_id, "fromId": w.from_id, "toId": w.to_id, "type": w.type}
    if w.attributes:
        out["attributes"] = w.attributes
    return out


def wire_to_json(w: Wire) -> dict[str, Any]:
    out = wire_fields(w)
    if "attributes" in out:
        out["attributes"] = _to_json_value(out["attributes"])
    return _with_extra(out, w.extra)


def contact_optional_fields(c: Contact) -> dict[str, Any]:
    """A contact's optional fields that are set, by Bassline's names (values as they are, not yet JSON)."""
    out: dict[str, Any] = {}
    if c.is_boundary:
        out["isBoundary"] = True
    if c.boundary_direction is not None:
        out["boundaryDirection"] = c.boundary_direction
    if c.name is not None:
        out["name"] = c.name
    if c.attributes:
        out["attributes"] = c.attributes
    return out


def contact_to_json(c: Contact) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": c.id,
        "groupId": c.group_id,
        "content": _to_json_value(c.content, MAX_DEPTH),
        "blendMode": c.blend_mode,
        **contact_optional_fields(c),
    }
    if "attributes" in out:
        out["attributes"] = _to_json_value(out["attributes"])
    return _with_extra(out, c.extra)


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
            attributes=_from_json_map(_field(gdoc, "attributes", gpath, dict, {}), f"{gpath}.attributes"),
            extra=_extra(gdoc, GROUP_FIELDS, gpath),
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
                attributes=_from_json_map(_field(c, "attributes", cpath, dict, {}), f"{cpath}.attributes"),
                extra=_extra(c, CONTACT_FIELDS, cpath),
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
                attributes=_from_json_map(_field(w, "attributes", wpath, dict, {}), f"{wpath}.attributes"),
                extra=_extra(w, WIRE_FIELDS, wpath),
            )
        groups[gid] = GroupState(group, contacts, wires, _extra(gs, GROUP_STATE_FIELDS, path))
    metadata, created, updated = network_info_from_json(root.get("network", {}), "$.network")
    return NetworkState(
        groups,
        current_group_id=_field(root, "currentGroupId", "$", str, "root"),
        root_group_id=_field(root, "rootGroupId", "$", str, "root"),
        extra=_extra(root, NETWORK_FIELDS, "$"),
        metadata=metadata,
        created_at=created,
        updated_at=updated,
    )
