"""Structural checks: every object a walk reaches, held to the schema of the kind it is reached by.

Hashes prove that bytes are the ones named; they say nothing about whether the
named thing is a network root, a tree node of the right tree, a group body…
:class:`StructureCheck` says that, for every record kind of
:mod:`casstore.model.records`: the network root (its fields and their types,
every tree link present), the snapshot commit (a timezone-aware ISO-8601
time…), tree nodes (the tree kind they are reached by, heights, sorted string
keys, values or links of the right count) and, in leaves, each group record,
contact record, wire record and index entry; group bodies and large contents
reached from those leaves.  An object linked as two different kinds (a root
whose wires link names the contacts tree) is a problem too.  Fields the schema
does not name are allowed (a later version may add some); fields it names must
have their types.

``verify`` reports what it finds; ``restore`` refuses an image with any problem.
The check never raises: :meth:`StructureCheck.check` returns the problem as text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any

from casstore import codec
from casstore.model import records, schema_leaves
from casstore.model.types import BLEND_MODES, BOUNDARY_DIRECTIONS, WIRE_TYPES
from casstore.model.walk import Kind, Reached

__all__ = ["Remembered", "StructureCheck", "check_body", "check_network_root", "check_node", "check_snapshot"]

#: Tree heights beyond this cannot occur (a tree of 2^64 entries is far shallower).
MAX_TREE_HEIGHT = 64


class _Invalid(Exception):
    """One structural problem (internal: :meth:`StructureCheck.check` turns it into text)."""


def _require(condition: bool, problem: str) -> None:
    if not condition:
        raise _Invalid(problem)


def _is_int(value: object) -> bool:
    return type(value) is int


def _is_count(value: object, limit: int | None = None) -> bool:
    """A whole number (not a bool) from 0 to ``limit``."""
    return type(value) is int and value >= 0 and (limit is None or value <= limit)


def _is_str(value: object, non_empty: bool = False) -> bool:
    if type(value) is not str or (non_empty and not value):
        return False
    if value.isascii():  # the common case, checked cheaply
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _all_str(values: list[Any]) -> bool:
    """Whether every one of ``values`` passes :func:`_is_str` (a node's keys: checked in C where ASCII)."""
    if set(map(type, values)) <= {str} and "".join(values).isascii():
        return True
    return all(_is_str(value) for value in values)


def _all_links(values: list[Any]) -> bool:
    """Whether every one of ``values`` is a casstore link (as :func:`_link` requires), checked in C."""
    return (
        set(map(type, values)) <= {bytes}
        and set(map(len, values)) <= {codec.CID_SIZE}
        and {value[: len(codec.CID_PREFIX)] for value in values} <= {codec.CID_PREFIX}
    )


def _link(obj: dict[str, Any], name: str, what: str) -> bytes:
    _require(name in obj, f"{what} has no {name!r} link")
    value = obj[name]
    _require(
        isinstance(value, bytes) and len(value) == codec.CID_SIZE and value.startswith(codec.CID_PREFIX),
        f"{what}: {name!r} is not a link",
    )
    return bytes(value[len(codec.CID_PREFIX) :])


def _decode_map(data: bytes, what: str, user_data: bool = False) -> dict[str, Any]:
    try:
        obj = codec.decode_value(data) if user_data else codec.decode(data)
    except Exception as exc:  # any decoding failure is the problem reported
        raise _Invalid(f"{what} does not decode: {exc}") from None
    _require(isinstance(obj, dict), f"{what} is not a map")
    assert isinstance(obj, dict)
    return obj


def _optional(obj: dict[str, Any], name: str, test: Callable[[object], bool], what: str, expected: str) -> None:
    if name in obj:
        _require(test(obj[name]), f"{what}: {name!r} is not {expected}")


# ---------------------------------------------------------------- roots and snapshots


def check_network_root(data: bytes) -> list[tuple[bytes, Kind]]:
    """Check a network root; returns its links with the kind each must be."""
    root = _decode_map(data, "network root")
    _require(root.get("t") == "net", "not a network root (its 't' is not 'net')")
    _require(root.get("v") == records.NETWORK_VERSION and _is_int(root.get("v")), "network root: unknown version")
    links = [(_link(root, name, "network root"), f"tree:{name}") for name in records.NETWORK_TREES]
    if records.CONFLICTS_FIELD in root:
        links.append((_link(root, records.CONFLICTS_FIELD, "network root"), f"tree:{records.CONFLICTS_TREE}"))
    for name in ("current", "rootGroup"):
        _require(_is_str(root.get(name)), f"network root: {name!r} is not a string")
    _require(_is_count(root.get("size")), "network root: 'size' is not a whole number")
    if "m" in root:
        _require(isinstance(root["m"], bytes), "network root: 'm' (metadata) is not bytes")
        metadata = _decode_map(root["m"], "network root metadata", user_data=True)
        _require(all(_is_str(key) for key in metadata), "network root: a metadata key is not a string")
    for name in ("ct", "ut"):
        if name in root:
            _time(root[name], f"network root: {name!r}")
    return links


def _time(value: Any, what: str) -> None:
    """An ISO-8601 time with a time zone."""
    _require(_is_str(value), f"{what} is not a string")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise _Invalid(f"{what} {value!r} is not an ISO-8601 time") from None
    _require(when.tzinfo is not None, f"{what} {value!r} has no time zone")


def check_snapshot(data: bytes) -> list[tuple[bytes, Kind]]:
    """Check a snapshot commit; returns its link (the network root)."""
    snap = _decode_map(data, "snapshot")
    _require(snap.get("t") == "snap", "not a snapshot (its 't' is not 'snap')")
    _require(_is_str(snap.get("network"), non_empty=True), "snapshot: 'network' is not a network id")
    root = _link(snap, "root", "snapshot")
    for name in ("parent", "label"):
        _require(snap.get(name) is None or _is_str(snap.get(name)), f"snapshot: {name!r} is not a string or null")
    if "parents" in snap:
        parents = snap["parents"]
        _require(
            isinstance(parents, list) and len(parents) > 1 and all(_is_str(p, non_empty=True) for p in parents),
            "snapshot: 'parents' is not a list of two or more snapshot ids",
        )
        assert isinstance(parents, list)
        _require(snap.get("parent") == parents[0], "snapshot: 'parent' is not the first of 'parents'")
    time: Any = snap.get("time")
    _require(_is_str(time), "snapshot: 'time' is not a string")
    try:
        when = datetime.fromisoformat(time)
    except ValueError:
        raise _Invalid(f"snapshot: 'time' {time!r} is not an ISO-8601 time") from None
    _require(when.tzinfo is not None, f"snapshot: 'time' {time!r} has no time zone")
    _require(_is_count(snap.get("size")), "snapshot: 'size' is not a whole number")
    _require(snap.get("auto", True) is True, "snapshot: 'auto' is present and not true")
    return [(root, "net")]


# ---------------------------------------------------------------- tree nodes and their entries


def check_body(data: bytes) -> None:
    """Check a group body (raises :class:`_Invalid`)."""
    body = _decode_map(data, "group body", user_data=True)
    _require(_is_str(body.get("n")), "group body: 'n' (name) is not a string")
    _optional(body, "p", _is_str, "group body", "a string (parent id)")
    _optional(body, "i", lambda v: _is_str(v, non_empty=True), "group body", "a group id")
    for name in ("c", "w", "s", "b"):
        _optional(
            body,
            name,
            lambda v: isinstance(v, list) and all(_is_str(i, non_empty=True) for i in v),
            "group body",
            "a list of ids",
        )
    _optional(body, "a", lambda v: isinstance(v, dict), "group body", "a map (attributes)")


def _is_id(value: object) -> bool:
    return _is_str(value, non_empty=True)


#: Optional fields of contact and wire records: name → (test, what it must be).  Only the fields a
#: record has are looked at (a typical record has one or two), and a message is built only on failure.
_CONTACT_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "b": (lambda v: _is_str(v) and v in BLEND_MODES, "a blend mode"),
    "B": (lambda v: type(v) is bool, "a bool"),
    "d": (lambda v: _is_str(v) and v in BOUNDARY_DIRECTIONS[1:], "a boundary direction"),
    "n": (_is_str, "a string (name)"),
    "i": (_is_id, "an id"),
    "g": (_is_id, "an id"),
    "z": (_is_count, "a size"),
}
_WIRE_FIELDS: dict[str, tuple[Callable[[object], bool], str]] = {
    "f": (_is_id, "a contact id"),
    "t": (_is_id, "a contact id"),
    "y": (lambda v: _is_str(v) and v in WIRE_TYPES, "a wire type"),
    "i": (_is_id, "an id"),
    "g": (_is_id, "an id"),
}


def _member_key(key: str) -> None:
    length, colon, rest = key.partition(":")
    if not (colon and length.isdigit() and length.isascii() and 0 < int(length) < len(rest)):
        raise _Invalid("its key is not a member key")


def _user_value(value: object, what: str) -> Any:
    _require(isinstance(value, bytes), f"{what} is not encoded data")
    assert isinstance(value, bytes)
    try:
        return codec.decode_value(value)
    except Exception as exc:
        raise _Invalid(f"{what} does not decode: {exc}") from None


def _member_record(key: str, value: bytes, fields: dict[str, tuple[Callable[[object], bool], str]]) -> dict[str, Any]:
    """The record of a contact or wire, its key and the fields both kinds share checked."""
    _member_key(key)
    try:
        record = codec.decode(value)
    except Exception as exc:
        raise _Invalid(f"does not decode: {exc}") from None
    _require(type(record) is dict, "is not a map")
    assert isinstance(record, dict)
    for name, field_value in record.items():
        check = fields.get(name)
        if check is not None and not check[0](field_value):
            raise _Invalid(f"{name!r} is not {check[1]}")
    if "a" in record:
        _require(isinstance(_user_value(record["a"], "attributes"), dict), "attributes are not a map")
    return record


def _contact(key: str, value: bytes, links: list[tuple[bytes, Kind]]) -> None:
    try:
        record = _member_record(key, value, _CONTACT_FIELDS)
        if "c" in record:
            _require("C" not in record, "has both an inline and a separate content")
            _user_value(record["c"], "content")
        else:
            links.append((_link(record, "C", "the record"), "data"))
            _require("z" in record, "has a separate content but no 'z' (its size)")
    except _Invalid as exc:
        raise _Invalid(f"contact {key!r}: {exc}") from None


def _wire(key: str, value: bytes) -> None:
    try:
        record = _member_record(key, value, _WIRE_FIELDS)
        _require("f" in record and "t" in record, "lacks 'f' or 't' (the contacts it joins)")
    except _Invalid as exc:
        raise _Invalid(f"wire {key!r}: {exc}") from None


def _conflict(key: str, value: bytes) -> None:
    """A conflicts-tree entry: a kind letter and a member key or group id, and a conflict record."""
    _require(key[:1] in ("c", "w", "g") and len(key) > 1, f"conflict {key!r}: not a contact, wire or group key")
    if key[0] != "g":
        _member_key(key[1:])
    record = _user_value(value, f"conflict {key!r}")
    _require(isinstance(record, dict), f"conflict {key!r}: not a map")
    _require(
        record.get("reason") in ("both-changed", "contradiction", "delete-modify"), f"conflict {key!r}: unknown reason"
    )


class Remembered:
    """Member keys and records (per tree kind) found valid, so that a walk checks each one once.

    A rewritten leaf repeats all its entries but one, so across a history most
    entries are checked once.  Records that link to something (a separate
    content) are not remembered: they are checked with their links every time.
    """

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.records: dict[str, set[bytes]] = {"contacts": set(), "wires": set()}

    def __len__(self) -> int:
        return len(self.keys) + sum(map(len, self.records.values()))

    def clear(self) -> None:
        self.keys.clear()
        for kind in self.records.values():
            kind.clear()


_FAST_RECORDS = {"contacts": schema_leaves.contact_records_valid, "wires": schema_leaves.wire_records_valid}


def check_node(tree_kind: str, data: bytes, checked: Remembered | None = None) -> list[tuple[bytes, Kind]]:
    """Check a node of a ``tree_kind`` tree and its entries; returns its links with their kinds.

    ``checked``: member keys and records found valid before, which are not
    checked again; valid ones are added.  A leaf's new keys and records are
    checked together first (:mod:`casstore.model.schema_leaves`), and entry by
    entry only if that fast path cannot vouch for them all.
    """
    what = f"{tree_kind} tree node"
    node = _decode_map(data, what)
    _require(node.get("t") == tree_kind, f"not a {what} (its 't' is {node.get('t')!r})")
    height, keys = node.get("h"), node.get("k")
    _require(_is_count(height, MAX_TREE_HEIGHT), f"{what}: 'h' is not a tree height")
    _require(isinstance(keys, list) and _all_str(keys), f"{what}: 'k' is not a list of strings")
    assert isinstance(keys, list)
    _require(keys == sorted(set(keys)), f"{what}: keys are not in strictly rising order")
    links: list[tuple[bytes, Kind]] = []
    if height:
        children = node.get("c")
        _require(isinstance(children, list) and len(children) == len(keys) > 0, f"{what}: 'c' does not match 'k'")
        assert isinstance(children, list)
        if not _all_links(children):
            for number in range(len(children)):  # names the first that is not
                _link({"c": children[number]}, "c", f"{what} child {number}")
        return list(zip(codec.link_digests(children), repeat(f"tree:{tree_kind}")))
    values = node.get("v")
    _require(isinstance(values, list) and len(values) == len(keys), f"{what}: 'v' does not match 'k'")
    assert isinstance(values, list)
    _require(set(map(type, values)) <= {bytes}, f"{what}: a value is not encoded data")
    if tree_kind in _FAST_RECORDS:
        _check_members(tree_kind, keys, values, checked if checked is not None else Remembered(), links)
    elif tree_kind == "groups":
        for key, value in zip(keys, values, strict=True):
            _require(bool(key), f"{what}: an empty group id")
            links.append((_link(_decode_map(value, f"group {key!r}"), "b", f"group {key!r}"), "body"))
    elif tree_kind == records.CONFLICTS_TREE:
        for key, value in zip(keys, values, strict=True):
            _conflict(key, value)
    elif tree_kind == "index":
        for key, value in zip(keys, values, strict=True):
            if value != records.NULL or key[:1] not in ("a", "t"):
                raise _Invalid(f"{what}: entry {key!r} is not an attribute or tag entry (a key and null)")
    else:
        raise _Invalid(f"no tree of kind {tree_kind!r}")
    return links


def _check_members(
    tree_kind: str, keys: list[str], values: list[bytes], checked: Remembered, links: list[tuple[bytes, Kind]]
) -> None:
    """Check a contacts or wires leaf's entries not checked before: together, else one by one (naming a problem)."""
    remembered = checked.records[tree_kind]
    new_keys, new_records = set(keys) - checked.keys, set(values) - remembered
    if not (new_keys or new_records):
        return
    if schema_leaves.member_keys_valid(new_keys) and _FAST_RECORDS[tree_kind](new_records):
        checked.keys |= new_keys
        remembered |= new_records  # the fast path takes no record that links (a separate content)
        return
    for key, value in zip(keys, values, strict=True):
        if key in new_keys or value in new_records:
            linked = len(links)
            if tree_kind == "contacts":
                _contact(key, value, links)
            else:
                _wire(key, value)
            checked.keys.add(key)
            if len(links) == linked:
                remembered.add(value)


# ---------------------------------------------------------------- a whole walk


#: Valid member keys and records a :class:`StructureCheck` remembers (about 150 MB at the most; a history of
#: 100,000 contacts and wires needs about 450,000); beyond, it starts afresh.
_MAX_REMEMBERED = 1_000_000


class StructureCheck:
    """Checks each object of a walk (:func:`casstore.model.walk.walk`'s ``visit`` hook) against its schema.

    Keeps, across the walk, the kind every object was first linked as, so an
    object linked as two kinds is found, and which ``data`` objects are group
    bodies (the walk reaches bodies and large contents alike as ``data``).
    A body reached before a later level linked to it as one is checked by
    :meth:`finish`.
    """

    def __init__(self) -> None:
        self._kinds: dict[bytes, Kind] = {}  # every non-data object linked so far → the kind it must be
        self._bodies: set[bytes] = set()
        self._contents: set[bytes] = set()  # data objects already checked as contents (not as bodies)
        self._late_bodies: list[bytes] = []
        self._entries = Remembered()  # member keys and records found valid (check_node)

    def check(self, item: Reached) -> str | None:
        """The problem with ``item`` (``None`` if it fits the schema of its kind)."""
        try:
            self._check(item)
        except _Invalid as exc:
            return str(exc)
        except Exception as exc:  # a check never raises: what broke it is the finding
            return f"{item.kind} object does not decode: {exc}"
        return None

    def _check(self, item: Reached) -> None:
        kind, data = item.kind, item.data
        if kind == "net":
            links = check_network_root(data)
        elif kind == "snap":
            links = check_snapshot(data)
        elif kind.startswith("tree:"):
            if len(self._entries) > _MAX_REMEMBERED:
                self._entries.clear()
            links = check_node(kind[5:], data, self._entries)
        elif kind == "data":
            if item.digest in self._bodies:
                check_body(data)
            else:
                self._contents.add(item.digest)
                _user_value(data, "content")
            return
        else:  # "opaque": any object a ref outside the network namespaces names
            return
        for child, child_kind in links:
            if child_kind == "body":
                self._bodies.add(child)
                if child in self._contents:
                    self._late_bodies.append(child)
                continue
            if child_kind == "data":
                continue
            first = self._kinds.setdefault(child, child_kind)
            if first != child_kind:
                raise _Invalid(
                    f"links to {codec.format_id(child)} as a {child_kind} object; it is also linked as a {first} object"
                )

    def finish(self, fetch: Callable[[list[bytes]], Sequence[bytes | None]]) -> dict[bytes, str]:
        """Check, as bodies, the objects checked as contents before a group linked them; their problems."""
        problems: dict[bytes, str] = {}
        digests = list(dict.fromkeys(self._late_bodies))
        if not digests:
            return problems
        for digest, frame in zip(digests, fetch(digests), strict=True):
            if frame is None:
                continue  # absent: the walk reported it already
            try:
                check_body(codec.unframe(frame, digest))
            except _Invalid as exc:
                problems[digest] = str(exc)
            except Exception as exc:
                problems[digest] = f"group body unreadable: {exc}"
        return problems
