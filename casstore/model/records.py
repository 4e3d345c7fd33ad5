"""How the network model is laid out in objects (see docs/format.md, "Networks").

The network root and the snapshot are encoded by :mod:`casstore.model.rootrecords`
(re-exported here); the records below them here.

* **Network root** ``{"t": "net", "v": 1, "groups": link, "contacts": link, "wires": link,
  "index": link, "current": str, "rootGroup": str, "size": int}`` — the Merkle root of a network's state;
  optional ``"x"`` (unmodelled top-level fields), ``"m"`` (the network's metadata, ``encode_value``
  bytes), ``"ct"`` / ``"ut"`` (created / updated, ISO-8601 UTC strings).
* **Groups tree** (prolly, kind ``groups``): group id → *group record* ``{"b": link(body)}``.
  The **body** is a separate object holding the group's own fields (user data,
  encoded with ``encode_value``; ``"x"``: its extra, unmodelled fields).  Records
  written before the shape checks may carry ``"i"``/``"g"`` (an id or group id
  differing from the key); they are still read.
* **Contacts tree** (kind ``contacts``): *member key* ``"<len(group id)>:<group id><contact id>"``
  → *contact record*, so each group's contacts are one key range and a content
  change rewrites only its leaf's path.  The content is inline (``"c"``: its
  canonical bytes) up to :data:`LARGE_CONTENT` bytes, else a separate object
  (``"C"``: link, ``"z"``: its size), deduplicated across contacts, networks and
  stores.  Fields at their default are omitted; ``"x"`` holds the contact's
  extra (unmodelled) fields, encoded with ``encode_value``.
* **Wires tree** (kind ``wires``): member key → *wire record*.
* **Index tree** (kind ``index``): ``"a" + H(name, value) + group id`` for every
  attribute and ``"t" + H(tag) + group id`` for every tag; values are CBOR null.
* **Snapshot** ``{"t": "snap", "network": str, "root": link, "parent": str | None,
  "label": str | None, "time": ISO-8601 UTC, "size": int}``; ``parent`` is the
  printable id of the previous snapshot, a weak reference gc does not follow.
  A merge's snapshot also has ``"parents"`` (every parent, ``parent`` being the first).
* **Conflicts** (optional ``"k"`` of a network root): a prolly tree of kind
  ``conflicts`` recording what a merge could not combine (casstore.model.conflicts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import blake3

from casstore import codec
from casstore.errors import SerializationError
from casstore.model.rootrecords import (  # re-exported: records is where callers look for every record
    CONFLICTS_FIELD,
    CONFLICTS_TREE,
    NETWORK_TREES,
    NETWORK_VERSION,
    decode_network_root,
    decode_snapshot,
    encode_network_extra,
    encode_network_metadata,
    encode_network_root,
    encode_snapshot,
    encode_time,
    now_text,
    root_metadata,
    root_times,
    snapshot_parents,
)
from casstore.model.types import (
    BLEND_MODES,
    BOUNDARY_DIRECTIONS,
    CONTACT_FIELDS,
    GROUP_FIELDS,
    GROUP_STATE_FIELDS,
    WIRE_FIELDS,
    WIRE_TYPES,
    Contact,
    Group,
    GroupState,
    Wire,
    check_attributes,
    check_extra,
    check_group_state,
    check_id,
    check_id_list,
    check_str,
)
from casstore.store.base import PendingWrites

__all__ = [
    "CONFLICTS_FIELD",
    "CONFLICTS_TREE",
    "LARGE_CONTENT",
    "NETWORK_TREES",
    "NETWORK_VERSION",
    "NULL",
    "TAG_ATTRIBUTES",
    "attribute_prefix",
    "contact_entry_size",
    "content_bytes",
    "content_record",
    "decode_contact",
    "decode_group",
    "decode_group_record",
    "decode_network_root",
    "decode_snapshot",
    "decode_wire",
    "encode_body",
    "encode_contact",
    "encode_group_record",
    "encode_network_extra",
    "encode_network_metadata",
    "encode_network_root",
    "encode_snapshot",
    "encode_time",
    "encode_wire",
    "group_fields",
    "group_state_fields",
    "index_keys",
    "member_key",
    "member_prefix",
    "now_text",
    "own_fields",
    "record_content",
    "root_metadata",
    "root_times",
    "snapshot_parents",
    "split_member_key",
    "tag_prefix",
    "wire_entry_size",
    "with_content",
]

#: Encoded contents larger than this are stored as their own object. A leaf
#: targets ~4 KB, so an inline content of at most a quarter of it keeps leaves
#: from being rewritten for one large value, and small values (the common
#: 50-200 bytes) cost no extra object or read.
LARGE_CONTENT = 1024
NULL = codec.encode(None)
#: How deep a record holds the user values it embeds: an attribute's value sits one level down in a
#: contact's or wire's attributes map, two in a group body (``{"a": {name: value}}``); each value
#: may nest :data:`codec.MAX_DEPTH` levels itself.
_MEMBER_DEPTH = codec.MAX_DEPTH + 1
_BODY_DEPTH = codec.MAX_DEPTH + 2


def _choice(value: object, choices: tuple[object, ...], path: str) -> None:
    if isinstance(value, bool) or value not in choices:
        raise SerializationError(f"{path}: {value!r} is not one of {', '.join(map(repr, choices))}", path)


def _has_extra(extra: object, path: str, modelled: frozenset[str]) -> bool:
    """Whether ``extra`` holds fields, after checking it (an empty value of the wrong type, ``None`` or
    ``""``, is refused like any other wrong type)."""
    if type(extra) is dict and not extra:  # the common case
        return False
    check_extra(extra, path, modelled)
    return bool(extra)


# ---------------------------------------------------------------- contacts


def content_bytes(content: Any, path: str = "content") -> bytes:
    return codec.encode_value(content, path)


def encode_contact(
    contact: Contact, key: str, group_id: str, blobs_out: PendingWrites, content: bytes | None = None
) -> bytes:
    """A contact record; a large content is added to ``blobs_out``.

    The contact's ``id`` must be its key and its ``group_id`` the group holding it (the key and
    the group id themselves were checked by the caller).
    """
    if contact.id != key:
        check_id(contact.id, "id")
        raise SerializationError(f"id: {contact.id!r} differs from its key in the contacts map ({key!r})", "id")
    if contact.group_id != group_id:
        check_id(contact.group_id, "group_id")
        raise SerializationError(
            f"group_id: {contact.group_id!r} is not the group holding the contact ({group_id!r})", "group_id"
        )
    if contact.blend_mode != "accept-last":
        _choice(contact.blend_mode, BLEND_MODES, f"contacts[{key!r}].blend_mode")
    if not isinstance(contact.is_boundary, bool):
        raise SerializationError(f"contacts[{key!r}].is_boundary: expected a bool", "is_boundary")
    if contact.boundary_direction is not None:
        _choice(contact.boundary_direction, BOUNDARY_DIRECTIONS[1:], f"contacts[{key!r}].boundary_direction")
    check_str(contact.name, f"contacts[{key!r}].name", optional=True)
    check_attributes(contact.attributes, f"contacts[{key!r}].attributes")
    _has_extra(contact.extra, f"contacts[{key!r}].extra", CONTACT_FIELDS)
    data = content if content is not None else content_bytes(contact.content)
    record = content_record(data, blobs_out)
    if contact.blend_mode != "accept-last":
        record["b"] = contact.blend_mode
    if contact.is_boundary:
        record["B"] = True
    if contact.boundary_direction is not None:
        record["d"] = contact.boundary_direction
    if contact.name is not None:
        record["n"] = contact.name
    return _encode_member(record, contact)


def _encode_member(record: dict[str, Any], item: Contact | Wire) -> bytes:
    """Add the fields contacts and wires share (at their defaults they are left out) and encode."""
    if item.attributes:
        record["a"] = codec.encode_value(item.attributes, "attributes", _MEMBER_DEPTH)
    if item.extra:
        record["x"] = codec.encode_value(item.extra, "extra", _MEMBER_DEPTH)
    return codec.encode(record)


def content_record(data: bytes, blobs_out: PendingWrites) -> dict[str, Any]:
    if len(data) > LARGE_CONTENT:
        return {"C": codec.link(blobs_out.add(data)), "z": len(data)}
    return {"c": data}


_INLINE_ONLY = b"\xa1\x61c"  # a record that is just {"c": <content bytes>}: every other field at its default


def with_content(record_bytes: bytes, data: bytes, blobs_out: PendingWrites) -> bytes:
    """A contact record with its content replaced, every other field kept."""
    if record_bytes.startswith(_INLINE_ONLY):
        return codec.encode(content_record(data, blobs_out))
    record = codec.decode(record_bytes)
    record.pop("c", None)
    old_large = record.pop("C", None)
    record.pop("z", None)
    record.update(content_record(data, blobs_out))
    if old_large is not None and "C" in record:  # a large content replacing one: its delta base at rest
        blobs_out.replaces(codec.link_digest(record["C"]), codec.link_digest(old_large))
    return codec.encode(record)


def record_content(record: dict[str, Any], fetch: Callable[[bytes], bytes]) -> Any:
    if "c" in record:
        return codec.decode_value(record["c"])
    return codec.decode_value(fetch(codec.link_digest(record["C"])))


def decode_contact(record_bytes: bytes, key: str, group_id: str, fetch: Callable[[bytes], bytes]) -> Contact:
    record = codec.decode(record_bytes)
    return Contact(
        id=record.get("i", key),
        group_id=record.get("g", group_id),
        content=record_content(record, fetch),
        blend_mode=record.get("b", "accept-last"),
        is_boundary=record.get("B", False),
        boundary_direction=record.get("d"),
        name=record.get("n"),
        attributes=codec.decode_value(record["a"]) if "a" in record else {},
        extra=codec.decode_value(record["x"]) if "x" in record else {},
    )


def contact_entry_size(key: str, record_bytes: bytes) -> int:
    """Logical bytes of one contact: key, record, and a separately stored content."""
    size = len(key) + len(record_bytes)
    if b"az" in record_bytes:  # cheap pre-check for the "z" field of a large content
        size += codec.decode(record_bytes).get("z", 0)
    return size


# ---------------------------------------------------------------- wires


def encode_wire(wire: Wire, key: str, group_id: str) -> bytes:
    """A wire record; like a contact, its ``id`` must be its key and its ``group_id`` the group holding it."""
    if wire.id != key:
        check_id(wire.id, f"wires[{key!r}].id")
        raise SerializationError(f"wires[{key!r}].id: {wire.id!r} differs from its key in the wires map", "id")
    if wire.group_id != group_id:
        check_id(wire.group_id, f"wires[{key!r}].group_id")
        raise SerializationError(
            f"wires[{key!r}].group_id: {wire.group_id!r} is not the group holding the wire ({group_id!r})", "group_id"
        )
    check_id(wire.from_id, f"wires[{key!r}].from_id")
    check_id(wire.to_id, f"wires[{key!r}].to_id")
    if wire.type != "bidirectional":
        _choice(wire.type, WIRE_TYPES, f"wires[{key!r}].type")
    check_attributes(wire.attributes, f"wires[{key!r}].attributes")
    _has_extra(wire.extra, f"wires[{key!r}].extra", WIRE_FIELDS)
    record: dict[str, Any] = {"f": wire.from_id, "t": wire.to_id}
    if wire.type != "bidirectional":
        record["y"] = wire.type
    return _encode_member(record, wire)


def decode_wire(record_bytes: bytes, key: str, group_id: str) -> Wire:
    record = codec.decode(record_bytes)
    return Wire(
        id=record.get("i", key),
        group_id=record.get("g", group_id),
        from_id=record["f"],
        to_id=record["t"],
        type=record.get("y", "bidirectional"),
        attributes=codec.decode_value(record["a"]) if "a" in record else {},
        extra=codec.decode_value(record["x"]) if "x" in record else {},
    )


# ---------------------------------------------------------------- groups


def group_state_fields(state: GroupState, key: str) -> dict[str, Any]:
    """The body of a whole group state (validated, its shape included); ``encode_value`` of it is the body.

    ``state`` must be a :class:`GroupState` whose maps are keyed by ids.  Its ``contact_ids`` and
    contacts are made to agree: an id listed with no contact is refused; contacts not listed
    are appended, in the contacts map's order.
    """
    path = f"groups[{key!r}]"
    check_group_state(state, path)
    group = state.group
    check_id_list(group.contact_ids, f"{path}.contact_ids")
    contacts = state.contacts
    listed = set(group.contact_ids)
    for index, cid in enumerate(group.contact_ids):
        if cid not in contacts:
            where = f"{path}.contact_ids[{index}]"
            raise SerializationError(f"{where}: {cid!r} is listed but the group has no such contact", where)
    unlisted = [cid for cid in contacts if cid not in listed]
    body = group_fields(group, key, [*group.contact_ids, *unlisted] if unlisted else None)
    if _has_extra(state.extra, f"{path}.extra", GROUP_STATE_FIELDS):
        body["X"] = state.extra  # beside the group's own "x": the group state document's unmodelled keys
    return body


def group_fields(group: Group, key: str, contact_ids: list[str] | None = None) -> dict[str, Any]:
    """The body of a group as a plain dict (validated); ``encode_value`` of it is the body object.

    ``group.id`` must be ``key``; ``contact_ids``, if given, replaces the group's own list.
    """
    check_id(group.id, "group.id")
    if group.id != key:
        where = f"groups[{key!r}].id"
        raise SerializationError(f"{where}: {group.id!r} differs from its key ({key!r})", where)
    check_str(group.name, f"groups[{key!r}].name")
    check_str(group.parent_id, f"groups[{key!r}].parent_id", optional=True)
    for name in ("contact_ids", "wire_ids", "subgroup_ids", "boundary_contact_ids"):
        check_id_list(getattr(group, name), f"groups[{key!r}].{name}")
    check_attributes(group.attributes, f"groups[{key!r}].attributes")
    body: dict[str, Any] = {"n": group.name}
    if group.parent_id is not None:
        body["p"] = group.parent_id
    for field_key, ids in (
        ("c", group.contact_ids if contact_ids is None else contact_ids),
        ("w", group.wire_ids),
        ("s", group.subgroup_ids),
        ("b", group.boundary_contact_ids),
    ):
        if ids:
            body[field_key] = list(ids)
    if group.attributes:
        body["a"] = group.attributes
    if _has_extra(group.extra, f"groups[{key!r}].extra", GROUP_FIELDS):
        body["x"] = group.extra
    return body


def encode_body(body: dict[str, Any], key: str) -> bytes:
    return codec.encode_value(body, f"groups[{key!r}]", _BODY_DEPTH)


def decode_group(body: dict[str, Any], key: str) -> Group:
    return Group(
        id=body.get("i", key),
        name=body["n"],
        parent_id=body.get("p"),
        contact_ids=list(body.get("c", [])),
        wire_ids=list(body.get("w", [])),
        subgroup_ids=list(body.get("s", [])),
        boundary_contact_ids=list(body.get("b", [])),
        attributes=body.get("a", {}),
        extra=body.get("x", {}),
    )


def own_fields(body: dict[str, Any]) -> dict[str, Any]:
    """A body without the membership lists: what makes a change a ``group-updated``."""
    return {k: v for k, v in body.items() if k not in ("c", "w")}


def encode_group_record(body_digest: bytes) -> bytes:
    return codec.encode({"b": codec.link(body_digest)})


def decode_group_record(data: bytes) -> bytes:
    """The body digest of a group record."""
    return codec.link_digest(codec.decode(data)["b"])


# ---------------------------------------------------------------- member keys


def member_prefix(group_id: str) -> str:
    """The key prefix of one group's contacts (or wires): ``"<len>:<group id>"``.

    Prefixes of different groups are never prefixes of one another, so each
    group's members form one contiguous key range, in member-id order.
    """
    return f"{len(group_id)}:{group_id}"


def member_key(group_id: str, item_id: str) -> str:
    return f"{len(group_id)}:{group_id}{item_id}"


def split_member_key(key: str) -> tuple[str, str]:
    """``(group id, item id)`` of a member key."""
    length, _, rest = key.partition(":")
    n = int(length)
    return rest[:n], rest[n:]


def wire_entry_size(key: str, record_bytes: bytes) -> int:
    return len(key) + len(record_bytes)


# ---------------------------------------------------------------- index


def _h(*parts: bytes) -> str:
    hasher = blake3.blake3()
    for part in parts:
        hasher.update(len(part).to_bytes(4, "big"))
        hasher.update(part)
    return hasher.hexdigest(12)


def attribute_prefix(name: str, value: Any) -> str:
    return "a" + _h(name.encode(), codec.encode_value(value))


def tag_prefix(tag: str) -> str:
    return "t" + _h(tag.encode())


TAG_ATTRIBUTES = ("bassline.tags", "tags")


def index_keys(group_id: str, attributes: dict[str, Any]) -> set[str]:
    keys = {attribute_prefix(name, value) + group_id for name, value in attributes.items()}
    for tags_name in TAG_ATTRIBUTES:
        tags = attributes.get(tags_name)
        if isinstance(tags, list):
            keys.update(tag_prefix(tag) + group_id for tag in tags if isinstance(tag, str))
    return keys
