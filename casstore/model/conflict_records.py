"""What a conflict record shows of a contact's fields, a wire and a group, and how resolve reads it back.

A conflict's ``base`` / ``ours`` / ``theirs`` / ``kept`` (docs/merge.md) are,
for a wire or a group, the record in Bassline's camelCase shape, as ``export``
writes it (``{"id", "groupId", "fromId", "toId", "type", "attributes"?, …}``;
``{"id", "name", "parentId", "contactIds", …}``; extra fields under their own
names), with values left as the data model has them (bytes stay bytes; the CLI
shows them the DAG-JSON way).  A contact's fields other than its content
(:func:`contact_view`) use the same names.  ``--value`` for a wire or a group
is that JSON (:func:`wire_from_json`, :func:`group_from_json`: checked as
``import`` checks a document, bytes the DAG-JSON way).
"""

from __future__ import annotations

from typing import Any

from casstore import codec
from casstore.errors import SerializationError
from casstore.model.bassline_json import NetworkJSONError, group_topology, network_from_json, wire_fields
from casstore.model.types import CONTACT_FIELDS, GROUP_FIELDS, WIRE_FIELDS, Contact, Group, Wire

__all__ = [
    "CONTACT_DEFAULTS",
    "CONTENT",
    "apply_contact_fields",
    "contact_record_fields",
    "contact_view",
    "group_from_json",
    "group_from_view",
    "group_view",
    "wire_from_json",
    "wire_from_view",
    "wire_view",
]

#: The name of a contact's content among its fields.
CONTENT = "content"
#: A contact's modelled fields other than its content (JSON names) and their defaults.
CONTACT_DEFAULTS: dict[str, Any] = {
    "blendMode": "accept-last",
    "isBoundary": False,
    "boundaryDirection": None,
    "name": None,
    "attributes": {},
}
_ATTRIBUTE = {"blendMode": "blend_mode", "isBoundary": "is_boundary", "boundaryDirection": "boundary_direction"}
_MEMBER_DEPTH = codec.MAX_DEPTH + 1  # as records.py: a named value sits one level down in the record


def contact_view(record: dict[str, Any] | None) -> dict[str, Any]:
    """A contact record's fields other than its content: the modelled ones (at their defaults when
    unset; ``None`` record: every default) and its extra fields under their own names."""
    record = record or {}
    view = {
        "blendMode": record.get("b", "accept-last"),
        "isBoundary": record.get("B", False),
        "boundaryDirection": record.get("d"),
        "name": record.get("n"),
        "attributes": codec.decode_value(record["a"]) if "a" in record else {},
    }
    if "x" in record:  # an extra field never reuses a modelled name (check_extra)
        view.update(codec.decode_value(record["x"]))
    return view


def contact_record_fields(view: dict[str, Any]) -> dict[str, Any]:
    """The record fields of a :func:`contact_view` (content aside), exactly as ``encode_contact`` writes them."""
    out: dict[str, Any] = {}
    if view.get("blendMode", "accept-last") != "accept-last":
        out["b"] = view["blendMode"]
    if view.get("isBoundary"):
        out["B"] = True
    if view.get("boundaryDirection") is not None:
        out["d"] = view["boundaryDirection"]
    if view.get("name") is not None:
        out["n"] = view["name"]
    if view.get("attributes"):
        out["a"] = codec.encode_value(view["attributes"], "attributes", _MEMBER_DEPTH)
    extra = {k: v for k, v in view.items() if k not in CONTACT_FIELDS}
    if extra:
        out["x"] = codec.encode_value(extra, "extra", _MEMBER_DEPTH)
    return out


def apply_contact_fields(contact: Contact, fields: list[str], side: dict[str, Any], shown: list[Any]) -> Contact:
    """``contact`` with the recorded ``fields`` set to one side's values (``side``, a field map).

    ``shown`` are the record's field maps (base, ours, theirs, kept): the attribute keys and extra
    fields any of them names are the ones recorded, so one absent from ``side`` is removed.
    """
    attributes, extra = dict(contact.attributes), dict(contact.extra)
    values: dict[str, Any] = {}
    for name in fields:
        if name == "attributes":
            mine = side.get("attributes", {})
            for key in {k for m in shown if isinstance(m, dict) for k in m.get("attributes", {})}:
                if key in mine:
                    attributes[key] = mine[key]
                else:
                    attributes.pop(key, None)
        elif name == CONTENT or name in CONTACT_DEFAULTS:
            values[_ATTRIBUTE.get(name, name)] = side.get(name, CONTACT_DEFAULTS.get(name))
        elif name in side:
            extra[name] = side[name]
        else:
            extra.pop(name, None)
    current = {
        "content": contact.content,
        "blend_mode": contact.blend_mode,
        "is_boundary": contact.is_boundary,
        "boundary_direction": contact.boundary_direction,
        "name": contact.name,
    }
    current.update(values)
    return Contact(contact.id, contact.group_id, **current, attributes=attributes, extra=extra)


def wire_view(wire: Wire) -> dict[str, Any]:
    """A wire as ``export`` writes it (values native)."""
    out = wire_fields(wire)
    out.update((k, v) for k, v in wire.extra.items() if k not in out)
    return out


_SNAKE = {
    "group_id": "groupId",
    "from_id": "fromId",
    "to_id": "toId",
    "parent_id": "parentId",
    "contact_ids": "contactIds",
    "wire_ids": "wireIds",
    "subgroup_ids": "subgroupIds",
    "boundary_contact_ids": "boundaryContactIds",
}


def _camel(view: Any, what: str) -> dict[str, Any]:
    """A recorded view; records of the first merges (fields by their Python names, ``extra`` nested) read too."""
    if not isinstance(view, dict):
        raise SerializationError(f"the conflict records no {what} for that side", "value")
    if not any(name in view for name in _SNAKE):
        return view
    out: dict[str, Any] = {_SNAKE.get(k) or k: v for k, v in view.items() if k != "extra"}
    out.update((k, v) for k, v in (view.get("extra") or {}).items() if k not in out)
    return out


def wire_from_view(view: Any, group_id: str, wire_id: str) -> Wire:
    """The wire a recorded :func:`wire_view` shows."""
    view = _camel(view, "wire")
    if not isinstance(view.get("fromId"), str) or not isinstance(view.get("toId"), str):
        raise SerializationError("the conflict's record of the wire has no endpoints", "value")
    return Wire(
        id=view.get("id", wire_id),
        group_id=view.get("groupId", group_id),
        from_id=view["fromId"],
        to_id=view["toId"],
        type=view.get("type", "bidirectional"),
        attributes=dict(view.get("attributes", {})),
        extra={k: v for k, v in view.items() if k not in WIRE_FIELDS},
    )


def group_view(group: Group) -> dict[str, Any]:
    """A group's own record as ``export`` writes it (values native)."""
    out: dict[str, Any] = {**group_topology(group), "attributes": group.attributes}
    out.update((k, v) for k, v in group.extra.items() if k not in out)
    return out


def group_from_view(view: Any, group_id: str) -> Group:
    """The group a recorded :func:`group_view` shows."""
    view = _camel(view, "group")
    if not isinstance(view.get("name"), str):
        raise SerializationError("the conflict's record of the group has no name", "value")
    return Group(
        id=view.get("id", group_id),
        name=view["name"],
        parent_id=view.get("parentId"),
        contact_ids=list(view.get("contactIds", [])),
        wire_ids=list(view.get("wireIds", [])),
        subgroup_ids=list(view.get("subgroupIds", [])),
        boundary_contact_ids=list(view.get("boundaryContactIds", [])),
        attributes=dict(view.get("attributes", {})),
        extra={k: v for k, v in view.items() if k not in GROUP_FIELDS},
    )


def _parse(entry: dict[str, Any], group_id: str, where: str) -> Any:
    """``network_from_json`` of one group entry; its messages name ``value`` instead of the wrapper's place."""
    inner = f"$.groups[{group_id!r}]"
    try:
        return network_from_json({"groups": {group_id: entry}}).groups[group_id]
    except NetworkJSONError as exc:
        raise NetworkJSONError(str(exc).replace(inner + where, "value").replace(inner, "value")) from None


def wire_from_json(doc: Any, group_id: str, wire_id: str) -> Wire:
    """A wire from Bassline's camelCase JSON (``resolve --value``); :class:`NetworkJSONError` if it is not one."""
    if not isinstance(doc, dict):
        raise NetworkJSONError(f"value: a wire is a JSON object, not {type(doc).__name__}")
    state = _parse({"group": {"name": ""}, "wires": {wire_id: doc}}, group_id, f".wires[{wire_id!r}]")
    return state.wires[wire_id]  # type: ignore[no-any-return]


def group_from_json(doc: Any, group_id: str) -> Group:
    """A group from Bassline's camelCase JSON (``resolve --value``); :class:`NetworkJSONError` if it is not one."""
    if not isinstance(doc, dict):
        raise NetworkJSONError(f"value: a group is a JSON object, not {type(doc).__name__}")
    return _parse({"group": doc}, group_id, ".group").group  # type: ignore[no-any-return]
