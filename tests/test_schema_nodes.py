"""Tree nodes against their schema (casstore/model/schema.py check_node), entry by entry and node-wide."""

from __future__ import annotations

from typing import Any

import pytest

import casstore
from casstore import codec
from casstore.model import Contact, Group, GroupState, NetworkState
from casstore.model.schema import StructureCheck, _Invalid, check_node
from casstore.model.walk import Reached
from casstore.store.memory import MemoryStore

Invalid = _Invalid  # what check_node raises (StructureCheck turns it into text)


def contacts_leaf() -> dict[str, Any]:
    """A real contacts leaf of a small network, decoded."""
    store = casstore.NetworkStore(MemoryStore())
    items = {f"c{i}": Contact(f"c{i}", "g", {"v": i}) for i in range(5)}
    store.save_network_state("n", NetworkState({"g": GroupState(Group("g", "g", contact_ids=list(items)), items, {})}))
    root = codec.decode(store.blobs.get(store.refs.get("networks/n/head") or b""))
    leaf: dict[str, Any] = codec.decode(store.blobs.get(codec.link_digest(root["contacts"])))
    assert leaf["h"] == 0 and len(leaf["k"]) == 5
    return leaf


def test_a_valid_leaf_passes_and_each_node_wide_rule_is_enforced() -> None:
    leaf = contacts_leaf()
    assert check_node("contacts", codec.encode(leaf)) == []
    keys, values = leaf["k"], leaf["v"]
    broken = {
        "keys are not in strictly rising order": {**leaf, "k": [keys[1], keys[0], *keys[2:]]},
        "'k' is not a list of strings": {**leaf, "k": [*keys[:-1], 7]},
        "a value is not encoded data": {**leaf, "v": [*values[:-1], "text"]},
    }
    duplicate = {**leaf, "k": [keys[0], keys[0], *keys[2:]]}
    with pytest.raises(Invalid, match="strictly rising"):
        check_node("contacts", codec.encode(duplicate))
    for problem, node in broken.items():
        with pytest.raises(Invalid, match=problem):
            check_node("contacts", codec.encode(node))


def test_non_ascii_keys_are_strings_too() -> None:
    leaf = contacts_leaf()
    record = leaf["v"][0]
    key = f"{len('gé')}:gé" + "x"  # a member key: the group id's length, the group id, the contact id
    check_node("contacts", codec.encode({**leaf, "k": [key], "v": [record]}))


def test_an_inner_node_names_its_first_child_that_is_no_link() -> None:
    links = [codec.link(bytes([n]) * 32) for n in range(3)]
    node = {"t": "contacts", "h": 1, "k": ["a", "b", "c"], "c": links}
    assert check_node("contacts", codec.encode(node)) == [(bytes([n]) * 32, "tree:contacts") for n in range(3)]
    with pytest.raises(Invalid, match="child 1: 'c' is not a link"):
        check_node("contacts", codec.encode({**node, "c": [links[0], links[1][:-1], b"x"]}))


def test_remembered_entries_are_those_exact_entries() -> None:
    """An entry found valid is not checked again; the same key with other bytes is."""
    leaf = contacts_leaf()
    checked: set[tuple[str, bytes]] = set()
    check_node("contacts", codec.encode(leaf), checked)
    assert checked == set(zip(leaf["k"], leaf["v"], strict=True))
    bad_record = codec.encode({"b": "no-such-blend-mode", "c": codec.encode_value(1)})
    with pytest.raises(Invalid, match="'b' is not a blend mode"):
        check_node("contacts", codec.encode({**leaf, "v": [*leaf["v"][:-1], bad_record]}), checked)


def test_an_object_linked_as_two_kinds_is_named() -> None:
    child = bytes(range(32))
    node = codec.encode({"t": "contacts", "h": 1, "k": ["a"], "c": [codec.link(child)]})
    other = codec.encode({"t": "wires", "h": 1, "k": ["a"], "c": [codec.link(child)]})
    check = StructureCheck()
    assert check.check(Reached(codec.hash_bytes(node), "tree:contacts", node, b"", [], None, None)) is None
    problem = check.check(Reached(codec.hash_bytes(other), "tree:wires", other, b"", [], None, None))
    assert problem is not None and codec.format_id(child) in problem and "tree:contacts" in problem
