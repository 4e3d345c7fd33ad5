"""Tree nodes against their schema (casstore/model/schema.py check_node), entry by entry and node-wide."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import casstore
from casstore import codec
from casstore.model import Contact, Group, GroupState, NetworkState, schema
from casstore.model.schema import Remembered, StructureCheck, _Invalid, check_node
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
    """Keys and records found valid are not checked again; the same key with other bytes is."""
    leaf = contacts_leaf()
    checked = Remembered()
    check_node("contacts", codec.encode(leaf), checked)
    assert checked.keys == set(leaf["k"]) and checked.records == {"contacts": set(leaf["v"]), "wires": set()}
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


def _text() -> st.SearchStrategy[str]:
    return st.sampled_from(["", "x", "input", "output", "merge", "accept-last", "directed", "bidirectional", "é"])


def _field_value() -> st.SearchStrategy[Any]:
    return st.one_of(_text(), st.integers(-2, 2), st.booleans(), st.none(), st.lists(st.integers(0, 3), max_size=2))


def _content() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.builds(codec.encode_value, st.one_of(st.integers(-(2**63), 2**63 - 1), _text(), st.binary(max_size=3))),
        st.sampled_from([b"", b"\xff", codec._ESCAPE_PREFIX, codec._ESCAPE_PREFIX + b"\x01"]),
    )


def _record() -> st.SearchStrategy[bytes]:
    names = st.sampled_from(["b", "B", "d", "n", "i", "g", "z", "f", "t", "y", "x"])
    fields = st.dictionaries(names, _field_value(), max_size=4)
    large = st.sampled_from([codec.link(bytes(32)), b"not a link"])
    attributes = st.sampled_from([codec.encode_value({"k": 1}), codec.encode_value([1]), b"\xff"])
    extras = st.fixed_dictionaries({}, optional={"c": _content(), "C": large, "a": attributes})
    # otherwise valid records, some with attributes or a separate content (which the fast path leaves alone)
    valid_contact = st.fixed_dictionaries(
        {"c": _content()}, optional={"b": st.sampled_from(["merge", "accept-last"]), "a": attributes, "C": large}
    )
    valid_wire = st.fixed_dictionaries(
        {"f": st.just("a"), "t": st.just("b")}, optional={"y": st.just("directed"), "a": attributes}
    )
    made = st.one_of(valid_contact, valid_wire, st.builds(lambda a, b: {**a, **b}, fields, extras))
    return st.one_of(st.builds(codec.encode, made), st.sampled_from([b"\xff", codec.encode([1]), b""]))


def _member_key() -> st.SearchStrategy[str]:
    valid = st.builds(
        lambda gid, mid: f"{len(gid)}:{gid}{mid}",
        st.sampled_from(["g", "gé", "grp"]),
        st.sampled_from(["c1", "c2", "w", "é"]),
    )
    return st.one_of(valid, st.sampled_from(["x", "0:abc", "3:ab", "²:ab", "1:", "01:ab"]))


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(["contacts", "wires"]),
    st.dictionaries(_member_key(), _record(), min_size=1, max_size=6),
    st.lists(st.integers(0, 5), max_size=3),
)
def test_the_leaf_fast_path_accepts_only_what_the_entry_by_entry_check_accepts(
    kind: str, entries: dict[str, bytes], remembered_first: list[int]
) -> None:
    """Valid and broken leaves alike: check_node answers what it answers with the fast path switched off
    (the same links, or the same problem named), also with some entries remembered from an earlier leaf."""
    keys = sorted(entries)
    leaf = codec.encode({"t": kind, "h": 0, "k": keys, "v": [entries[key] for key in keys]})
    earlier = sorted({keys[i % len(keys)] for i in remembered_first})
    earlier_leaf = codec.encode({"t": kind, "h": 0, "k": earlier, "v": [entries[key] for key in earlier]})

    def outcome(fast: bool) -> tuple[str, Any]:
        checked = Remembered()
        with patch.dict(schema._FAST_RECORDS, {} if fast else {k: lambda values: False for k in schema._FAST_RECORDS}):
            for node in ([earlier_leaf] if earlier else []) + [leaf]:
                try:
                    links = check_node(kind, node, checked)
                except Invalid as exc:
                    return "invalid", str(exc)
        return "valid", links

    assert outcome(fast=True) == outcome(fast=False)
