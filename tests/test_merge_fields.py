"""Merges of a contact's other fields (#17: per field and key, three-way, recorded when both changed them)
and resolving every kind of conflict (contact, wire, group) with --ours / --theirs / --value, in Python
and through the CLI."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import casstore
from casstore.errors import StorageError
from casstore.merge import merge_roots
from casstore.model import Contact, Group, GroupState, NetworkState, NetworkStore, Wire, records
from casstore.model.conflicts import conflict_key, conflicts_tree, encode_conflict
from casstore.model.refs import head_ref
from casstore.store.base import PendingWrites, RefUpdate

Edit = Callable[[Contact], None]


def _contact_state(contact: Contact | None) -> NetworkState:
    contacts = {} if contact is None else {"c": contact}
    return NetworkState({"g": GroupState(Group("g", "G", contact_ids=list(contacts)), contacts)}, "g", "g")


def _head(store: NetworkStore, net: str) -> bytes:
    digest = store.refs.get(head_ref(net))
    assert digest is not None
    return digest


def _edited(store: NetworkStore, net: str, start: Contact | None, edit: Edit) -> bytes:
    contact = Contact("c", "g", 1) if start is None else Contact(**vars(start))
    contact.attributes, contact.extra = dict(contact.attributes), dict(contact.extra)
    edit(contact)
    store.save_network_state(net, _contact_state(contact))
    return _head(store, net)


def _name(value: str) -> Edit:
    return lambda c: setattr(c, "name", value)


def _content(value: Any) -> Edit:
    return lambda c: setattr(c, "content", value)


def _attr(key: str, value: Any) -> Edit:
    return lambda c: c.attributes.__setitem__(key, value) if value is not None else c.attributes.pop(key)


def _both(*edits: Edit) -> Edit:
    def run(c: Contact) -> None:
        for edit in edits:
            edit(c)

    return run


def _gs(values: list[int]) -> dict[str, Any]:
    return {"_tag": "GrowSet", "values": values}


BASE = Contact("c", "g", 10, attributes={"u": "C", "k": 1}, extra={"color": "red"})
MERGE_BASE = Contact("c", "g", 10, blend_mode="merge", attributes={"u": "C"})
# (case, base contact (None: a two-way merge), ours' edit, theirs' edit, theirs later,
#  the merged contact's fields that matter, the conflict's (reason, fields, kept) or None)
CASES: list[tuple[str, Contact | None, Edit, Edit, bool, dict[str, Any], Any]] = [
    ("one side's name", BASE, _name("n"), _content(10), True, {"name": "n"}, None),
    ("the same name", BASE, _name("n"), _name("n"), False, {"name": "n"}, None),
    ("names differ: later", BASE, _name("o"), _name("t"), True, {"name": "t"},
     ("both-changed", ["name"], {"name": "t"})),
    ("names differ: ours later", BASE, _name("o"), _name("t"), False, {"name": "o"},
     ("both-changed", ["name"], {"name": "o"})),
    ("attributes key by key", BASE, _attr("u", "F"), _attr("k", 2), True, {"attributes": {"u": "F", "k": 2}}, None),
    ("one attribute both set", BASE, _both(_attr("u", "F"), _attr("new", 1)), _attr("u", "K"), True,
     {"attributes": {"u": "K", "k": 1, "new": 1}}, ("both-changed", ["attributes"], {"attributes": {"u": "K"}})),
    ("attribute removed vs changed", BASE, _attr("u", None), _attr("u", "K"), False, {"attributes": {"k": 1}},
     ("both-changed", ["attributes"], {"attributes": {}})),
    ("boundary", BASE, lambda c: setattr(c, "is_boundary", True),
     lambda c: setattr(c, "boundary_direction", "input"), True, {"is_boundary": True, "boundary_direction": "input"},
     None),
    ("boundary directions differ", BASE, lambda c: setattr(c, "boundary_direction", "output"),
     lambda c: setattr(c, "boundary_direction", "input"), True, {"boundary_direction": "input"},
     ("both-changed", ["boundaryDirection"], {"boundaryDirection": "input"})),
    ("extra field", BASE, lambda c: c.extra.update(color="blue"), lambda c: c.extra.update(color="green"), False,
     {"extra": {"color": "blue"}}, ("both-changed", ["color"], {"color": "blue"})),
    ("blend mode vs content", Contact("c", "g", 1), lambda c: setattr(c, "blend_mode", "merge"), _content(2), False,
     {"blend_mode": "merge", "content": 2}, None),
    ("new blend mode decides the contents", Contact("c", "g", _gs([1])),
     _both(lambda c: setattr(c, "blend_mode", "merge"), _content(_gs([1, 2]))), _content(_gs([1, 3])), False,
     {"blend_mode": "merge", "content": _gs([1, 2, 3])}, None),
    ("content and name", BASE, _both(_content(11), _name("o")), _both(_content(12), _name("t")), True,
     {"content": 12, "name": "t"}, ("both-changed", ["content", "name"], {"content": 12, "name": "t"})),
    ("contradiction and name", MERGE_BASE, _both(_content(11), _name("o")), _both(_content(12), _name("t")), True,
     {"content": 11, "name": "t"}, ("contradiction", ["content", "name"], {"content": 11, "name": "t"})),
    ("two-way: one side's blend mode decides", None, _content(_gs([1])),
     _both(lambda c: setattr(c, "blend_mode", "merge"), _content(_gs([2]))), False,
     {"blend_mode": "merge", "content": _gs([1, 2])}, None),
    ("two-way: names differ", None, _name("o"), _name("t"), True, {"name": "t", "content": 1},
     ("both-changed", ["name"], {"name": "t"})),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "base", "ours_edit", "theirs_edit", "later", "expected", "conflict"), CASES, ids=[c[0] for c in CASES]
)
def test_contact_fields_merge_three_way(
    case: str, base: Contact | None, ours_edit: Edit, theirs_edit: Edit, later: bool, expected: Any, conflict: Any
) -> None:
    store = casstore.open_store("memory://")
    store.save_network_state("b", _contact_state(base))
    b = _head(store, "b") if base is not None else None
    ours = _edited(store, "o", base, ours_edit)
    theirs = _edited(store, "t", base, theirs_edit)
    merged = merge_roots(store.reader, b, ours, theirs, theirs_later=later)
    store.objects.commit(merged.pending.frames(), [])
    contact = store.reader.state_at(merged.digest).groups["g"].contacts["c"]
    assert {name: getattr(contact, name) for name in expected} == expected
    found = [c.as_json() for c in merged.conflicts]
    if conflict is None:
        assert found == []
    else:
        (record,) = found
        reason, fields, kept = conflict
        assert (record["reason"], record["fields"], record["kept"]) == (reason, fields, kept)
        assert record["kept_side"] == ("ours" if reason == "contradiction" or not later else "theirs")
        for side, digest in (("ours", ours), ("theirs", theirs)):  # each side's values of those fields
            side_contact = store.reader.state_at(digest).groups["g"].contacts["c"]
            if "name" in fields:
                assert record[side]["name"] == side_contact.name
            if "content" in fields:
                assert record[side]["content"] == side_contact.content
        if reason == "contradiction":
            assert record["values"] == [11, 12] and record["message"] == "Values cannot be merged"
    # symmetric (up to a contradiction's kept content), and merging the same change again records nothing new
    swapped = merge_roots(store.reader, b, theirs, ours, theirs_later=not later)
    store.objects.commit(swapped.pending.frames(), [])
    other = store.reader.state_at(swapped.digest).groups["g"].contacts["c"]
    if conflict is None or conflict[0] != "contradiction":
        assert other == contact
    else:
        assert (other.name, other.content) == ("t", 12)
    assert merge_roots(store.reader, b, merged.digest, theirs, theirs_later=later).digest == merged.digest


# ---------------------------------------------------------------- resolving every kind


def _network(name: str = "G") -> NetworkState:
    g_contacts = {cid: Contact(cid, "g", 0) for cid in ("a", "b", "m", "d")}
    g_contacts["m"] = Contact("m", "g", 10, attributes={"u": "C", "k": 1})
    wires = {"w1": Wire("w1", "g", "a", "b"), "w2": Wire("w2", "g", "b", "a")}
    g = Group("g", name, contact_ids=list(g_contacts), wire_ids=list(wires), attributes={"x": 1})
    h = Group("h", "H", contact_ids=["k"])
    return NetworkState(
        {"g": GroupState(g, g_contacts, wires), "h": GroupState(h, {"k": Contact("k", "h", 0)})}, "g", "g"
    )


def _diverged() -> tuple[NetworkStore, bytes]:
    """Network "o" merged with "t" (theirs later): a conflict of every kind and reason."""
    store = casstore.open_store("memory://")
    store.save_network_state("o", _network())
    store.save_network_state("t", _network())
    base = _head(store, "o")
    for net, side in (("o", "ours"), ("t", "theirs")):
        state = store.load_network_state(net)
        assert state is not None
        g = state.groups["g"]
        m = g.contacts["m"]
        m.name, m.content, m.attributes["u"] = side, {"ours": 11, "theirs": 12}[side], side  # fields: both-changed
        g.wires["w1"].to_id = "m" if side == "ours" else "d"  # wire: both-changed
        g.group.name = f"G-{side}"  # group: both-changed
        if side == "ours":  # ours removes what theirs changes: delete-modify of a wire, a group, a contact
            del g.wires["w2"]
            g.group.wire_ids.remove("w2")
            del state.groups["h"]
            del g.contacts["d"]
            g.group.contact_ids.remove("d")
        else:
            g.wires["w2"].type = "directed"
            state.groups["h"].group.attributes = {"new": 1}
            g.contacts["d"].name, g.contacts["d"].content = "kept", 5
        store.save_network_state(net, state)
    merged = merge_roots(store.reader, base, _head(store, "o"), _head(store, "t"), theirs_later=True)
    store.objects.commit(merged.pending.frames(), [RefUpdate(head_ref("o"), _head(store, "o"), merged.digest)])
    kinds = {(c.kind, c.item, c.reason, c.kept_side) for c in store.conflicts("o")}
    assert kinds == {
        ("contact", "m", "both-changed", "theirs"), ("contact", "d", "delete-modify", "theirs"),
        ("wire", "w1", "both-changed", "theirs"), ("wire", "w2", "delete-modify", "theirs"),
        ("group", "g", "both-changed", "theirs"), ("group", "h", "delete-modify", "theirs"),
    }  # fmt: skip
    return store, base


def _assert_consistent(store: NetworkStore) -> None:
    """The resolved state re-saved afresh gives the same trees and size (lists agree with members)."""
    fresh = casstore.open_store("memory://")
    state = store.load_network_state("o")
    assert state is not None
    fresh.save_network_state("x", state)
    root, again = store.network_root(_head(store, "o")), fresh.network_root(_head(fresh, "x"))
    for name in ("groups", "contacts", "wires", "index", "size"):
        assert root[name] == again[name], name


def _g(store: NetworkStore) -> GroupState:
    state = store.load_group_state("o", "g")
    assert state is not None
    return state


RESOLVE: list[tuple[str, str, str, Any, Callable[[NetworkStore], Any], Any]] = [
    ("g", "m", "ours", None, lambda s: (lambda c: (c.content, c.name, c.attributes))(_g(s).contacts["m"]),
     (11, "ours", {"u": "ours", "k": 1})),
    ("g", "m", "theirs", None, lambda s: (lambda c: (c.content, c.name, c.attributes))(_g(s).contacts["m"]),
     (12, "theirs", {"u": "theirs", "k": 1})),
    ("g", "m", "value", 99, lambda s: (lambda c: (c.content, c.name))(_g(s).contacts["m"]), (99, "theirs")),
    ("g", "m", "fields", {"name": "chosen", "attributes": {"u": "mine"}},
     lambda s: (lambda c: (c.content, c.name, c.attributes))(_g(s).contacts["m"]),
     (12, "chosen", {"u": "mine", "k": 1})),
    ("g", "d", "ours", None, lambda s: ("d" in _g(s).contacts, "d" in _g(s).group.contact_ids), (False, False)),
    ("g", "d", "theirs", None, lambda s: (lambda c: (c.content, c.name))(_g(s).contacts["d"]), (5, "kept")),
    ("g", "w1", "ours", None, lambda s: _g(s).wires["w1"].to_id, "m"),
    ("g", "w1", "theirs", None, lambda s: _g(s).wires["w1"].to_id, "d"),
    ("g", "w1", "value", {"fromId": "b", "toId": "m", "type": "directed", "attributes": {"b": {"/": {"bytes": "AQI"}}}},
     lambda s: (lambda w: (w.from_id, w.to_id, w.type, w.attributes))(_g(s).wires["w1"]),
     ("b", "m", "directed", {"b": b"\x01\x02"})),
    ("g", "w2", "ours", None, lambda s: ("w2" in _g(s).wires, _g(s).group.wire_ids), (False, ["w1"])),
    ("g", "w2", "theirs", None, lambda s: (_g(s).wires["w2"].type, _g(s).group.wire_ids), ("directed", ["w1", "w2"])),
    ("g", "w2", "value", Wire("w2", "g", "m", "d"), lambda s: (_g(s).wires["w2"].to_id, _g(s).group.wire_ids),
     ("d", ["w1", "w2"])),
    ("g", "g", "ours", None, lambda s: (lambda g: (g.name, g.contact_ids, g.wire_ids))(_g(s).group),
     ("G-ours", ["a", "b", "m", "d"], ["w1", "w2"])),
    ("g", "g", "theirs", None, lambda s: _g(s).group.name, "G-theirs"),
    ("g", "g", "value", {"name": "mine", "contactIds": ["m"], "attributes": {"y": 2}},
     lambda s: (lambda g: (g.name, g.contact_ids, g.wire_ids, g.attributes))(_g(s).group),
     ("mine", ["m", "a", "b", "d"], ["w1", "w2"], {"y": 2})),
    ("h", "h", "ours", None, lambda s: s.load_group_state("o", "h"), None),
    ("h", "h", "theirs", None, lambda s: (lambda h: h and (h.group.attributes, list(h.contacts)))(
        s.load_group_state("o", "h")), ({"new": 1}, ["k"])),
    ("h", "h", "value", {"name": "H2"}, lambda s: (lambda h: h and h.group.name)(s.load_group_state("o", "h")), "H2"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("group", "item", "choice", "value", "read", "expected"), RESOLVE, ids=[f"{r[1]}-{r[2]}" for r in RESOLVE]
)
def test_resolve_every_kind(
    group: str, item: str, choice: str, value: Any, read: Callable[[NetworkStore], Any], expected: Any
) -> None:
    store, _ = _diverged()
    if item == "d" and choice == "theirs":  # the contact was deleted since the merge: restoring re-creates it
        store.delete_contact("o", "g", "d")
    before = _head(store, "o")
    settled = store.resolve_conflict("o", group, item, choice, value)
    assert settled.item == item
    assert read(store) == expected
    assert (settled.kind, settled.item) not in {(c.kind, c.item) for c in store.conflicts("o")}
    assert len(store.conflicts("o")) == 5
    assert _head(store, "o") != before
    _assert_consistent(store)
    assert not casstore.verify(store).invalid


@pytest.mark.parametrize(
    ("item", "value", "message"),
    [
        ("w1", {"fromId": "a"}, "missing 'toId'"),
        ("w1", {"fromId": "a", "toId": "b", "type": "sideways"}, "type"),
        ("w1", {"id": "other", "fromId": "a", "toId": "b"}, "differs from its key"),
        ("w1", [1], "JSON object"),
        ("g", {"name": 5}, "expected str"),
        ("g", {"name": "x", "contactIds": ["nobody"]}, "no such member"),
        ("g", {"name": "x", "wireIds": ["w9"]}, "no such member"),
        ("h", "not a group", "JSON object"),
    ],
)
def test_invalid_value_is_refused_with_nothing_written(item: str, value: Any, message: str) -> None:
    store, _ = _diverged()
    before, listed = _head(store, "o"), store.conflicts("o")
    with pytest.raises(StorageError, match=message):
        store.resolve_conflict("o", "g" if item != "h" else "h", item, "value", value)
    assert _head(store, "o") == before and store.conflicts("o") == listed


@pytest.mark.parametrize(
    ("item", "value", "message"),
    [
        ("m", {"blendMode": "merge"}, "fields.blendMode: not a field this conflict recorded"),
        ("m", {}, "expected a map of some of the recorded fields"),
        ("m", 5, "expected a map"),
        ("m", {"name": 5}, "name"),
        ("w1", {"toId": "a"}, "not recorded by field"),
        ("g", {"name": "x"}, "not recorded by field"),
    ],
)
def test_invalid_fields_are_refused_with_nothing_written(item: str, value: Any, message: str) -> None:
    store, _ = _diverged()
    before, listed = _head(store, "o"), store.conflicts("o")
    with pytest.raises(StorageError, match=message) as raised:
        store.resolve_conflict("o", "g", item, "fields", value)
    assert raised.value.code == "STORAGE_SERIALIZATION_ERROR"
    assert _head(store, "o") == before and store.conflicts("o") == listed


def test_cli_resolves_wires_groups_and_fields(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "store"
    store, _ = _diverged()
    with casstore.open_store(path) as on_disk:
        casstore.sync.push(store, on_disk)
    at = ["--store", str(path)]
    listed = json.loads(cli(*at, "conflicts", "o", "--json").output)["conflicts"]
    m = next(c for c in listed if c["item"] == "m")
    assert m["fields"] == ["content", "attributes", "name"] and m["ours"]["name"] == "ours"
    wire = next(c for c in listed if c["item"] == "w1")
    assert wire["ours"]["toId"] == "m" and wire["theirs"]["toId"] == "d"  # the record as export writes it
    out = json.loads(cli(*at, "resolve", "o", "g", "w1", "--value", json.dumps(wire["ours"]), "--json").output)
    assert out["choice"] == "value" and out["resolved"]["kind"] == "wire" and out["remaining"] == 5
    bad = cli(*at, "resolve", "o", "g", "g", "--value", '{"name": 1}', "--json", code=1)
    assert json.loads(bad.stderr or bad.output)["error"]["code"] == "INVALID_NETWORK_JSON"
    out = json.loads(cli(*at, "resolve", "o", "g", "g", "--ours", "--json").output)
    assert out["resolved"]["kind"] == "group" and out["remaining"] == 4
    out = json.loads(cli(*at, "resolve", "o", "g", "m", "--theirs", "--json").output)
    assert out["resolved"]["fields"] == ["content", "attributes", "name"] and out["remaining"] == 3
    cli(*at, "resolve", "o", "h", "h", "--ours")  # the side that had deleted the group: deleted
    with casstore.open_store(path) as on_disk:
        g = on_disk.load_group_state("o", "g")
        assert g is not None and on_disk.load_group_state("o", "h") is None
        assert (g.wires["w1"].to_id, g.group.name, g.contacts["m"].name) == ("m", "G-ours", "theirs")
        assert [c.item for c in on_disk.conflicts("o")] == ["d", "w2"]


CLI_CASES = [r for r in RESOLVE if r[1] in ("m", "w1", "g", "h") and not isinstance(r[3], Wire)]


@pytest.mark.parametrize(
    ("group", "item", "choice", "value"), [r[:4] for r in CLI_CASES], ids=[f"{r[1]}-{r[2]}" for r in CLI_CASES]
)
def test_cli_resolve_is_the_python_resolve(
    cli: Any, tmp_path: Path, group: str, item: str, choice: str, value: Any
) -> None:
    """Each kind with each option through the CLI: its --json document, and the state Python's resolve makes."""
    twin, _ = _diverged()
    twin.resolve_conflict("o", group, item, choice, value)
    path = tmp_path / "store"
    store, _ = _diverged()
    with casstore.open_store(path) as on_disk:
        casstore.sync.push(store, on_disk)
    option = [f"--{choice}", json.dumps(value)] if choice in ("value", "fields") else [f"--{choice}"]
    out = json.loads(cli("--store", str(path), "resolve", "o", group, item, *option, "--json").output)
    assert (out["resolved"]["item"], out["choice"], out["remaining"]) == (item, choice, 5)
    with casstore.open_store(path) as on_disk:
        assert on_disk.load_network_state("o") == twin.load_network_state("o")
        assert on_disk.conflicts("o") == twin.conflicts("o")


def test_records_of_the_first_merges_resolve_too() -> None:
    """Wire and group records written before the camelCase shape (Python field names) still resolve."""
    store, _ = _diverged()
    head = _head(store, "o")
    root = store.network_root(head)
    pending = PendingWrites()
    tree = conflicts_tree(store.reader, pending)
    edits: dict[str, Any] = {}
    for c in store.conflicts("o"):
        if c.item == "w1":
            old = dataclasses.replace(c, ours=dataclasses.asdict(Wire("w1", "g", "a", "m", extra={"note": 1})))
            edits[conflict_key("wire", "g", "w1")] = encode_conflict(old)
        if c.item == "g":
            old = dataclasses.replace(c, ours=dataclasses.asdict(Group("g", "old-shape", contact_ids=["m"])))
            edits[conflict_key("group", "g", "g")] = encode_conflict(old)
    conflicts, _ = tree.update(root["k"], edits)
    data = records.encode_network_root(
        {kind: root[kind] for kind in records.NETWORK_TREES}, root["current"], root["rootGroup"], root["size"],
        root.get("x"), root.get("m"), root.get("ct"), root.get("ut"), conflicts=conflicts,
    )  # fmt: skip
    digest = pending.add(data)
    store.objects.commit(pending.frames(), [RefUpdate(head_ref("o"), head, digest)])
    store.resolve_conflict("o", "g", "w1", "ours")
    store.resolve_conflict("o", "g", "g", "ours")
    g = _g(store)
    assert (g.wires["w1"].to_id, g.wires["w1"].extra, g.group.name) == ("m", {"note": 1}, "old-shape")
    assert g.group.contact_ids == ["m", "a", "b", "d"]
