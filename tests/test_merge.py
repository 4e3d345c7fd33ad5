"""Three-way merge of networks (#17): the content rules against upstream's cases, the merge properties
(hypothesis over random divergent histories), conflicts stored/listed/resolved, and interrupted merges."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import casstore
from casstore import codec
from casstore.errors import ConflictNotFound, RefConflict
from casstore.merge import merge3, merge_network, merge_roots
from casstore.merge.content import Contradiction
from casstore.model import Contact, Group, GroupState, NetworkState, NetworkStore, Wire
from casstore.model.refs import head_ref
from casstore.store.base import ObjectStore, RefUpdate

BASE = "__base__"  # a base value distinct from both sides: the two-way cases of upstream's table


def gs(values: list[Any]) -> dict[str, Any]:
    return {"_tag": "GrowSet", "values": values}


def ss(values: list[Any]) -> dict[str, Any]:
    return {"_tag": "ShrinkSet", "values": values}


def ga(items: list[Any]) -> dict[str, Any]:
    return {"_tag": "GrowArray", "items": items}


def sa(items: list[Any]) -> dict[str, Any]:
    return {"_tag": "ShrinkArray", "items": items}


def gm(entries: dict[str, Any]) -> dict[str, Any]:
    return {"_tag": "GrowMap", "entries": entries}


def sm(entries: dict[str, Any]) -> dict[str, Any]:
    return {"_tag": "ShrinkMap", "entries": entries}


# upstream's packages/core/src/mergeable/__tests__/merge.test.ts, case by case (base: neither side)
MERGES: list[tuple[str, Any, Any, Any, Any]] = [
    ("null yields to a value", BASE, None, 42, 42),
    ("a value is kept over null", BASE, "hello", None, "hello"),
    ("both null", BASE, None, None, None),
    ("equal scalars", BASE, 42, 42, 42),
    ("equal arrays", BASE, [1, 2, 3], [1, 2, 3], [1, 2, 3]),
    ("GrowSets union", BASE, gs([1, 2, 3]), gs([3, 4, 5]), gs([1, 2, 3, 4, 5])),
    ("empty GrowSet", BASE, gs([]), gs([1, 2]), gs([1, 2])),
    ("ShrinkSets intersect", BASE, ss([1, 2, 3, 4]), ss([3, 4, 5, 6]), ss([3, 4])),
    ("GrowArrays concatenate", BASE, ga([1, 2]), ga([3, 4]), ga([1, 2, 3, 4])),
    ("GrowArray with a plain array", BASE, ga([1, 2]), [3, 4], ga([1, 2, 3, 4])),
    ("ShrinkArrays intersect, unique", BASE, sa([1, 2, 3, 2]), sa([2, 3, 4]), sa([2, 3])),
    ("GrowMaps of different keys", BASE, gm({"a": 1}), gm({"b": 2}), gm({"a": 1, "b": 2})),
    ("GrowMaps of equal values", BASE, gm({"a": 1, "b": 2}), gm({"a": 1, "c": 3}), gm({"a": 1, "b": 2, "c": 3})),
    ("GrowMaps nest", BASE, gm({"t": gs([1, 2])}), gm({"t": gs([2, 3])}), gm({"t": gs([1, 2, 3])})),
    (
        "ShrinkMaps keep common keys",
        BASE,
        sm({"a": 1, "b": 2, "c": 3}),
        sm({"a": 1, "b": 2, "d": 4}),
        sm({"a": 1, "b": 2}),
    ),
    ("plain maps merge key-wise", BASE, {"a": 1}, {"b": 2}, {"a": 1, "b": 2}),
    ("plain arrays concatenate (from an empty base)", [], [1, 2], [3, 4], [1, 2, 3, 4]),
    # three-way, where upstream concatenates: each side's additions once
    ("arrays: base plus both additions", [1, 2], [1, 2, 3], [1, 2, 4], [1, 2, 3, 4]),
    ("arrays: the same change twice adds nothing", [1, 2, 4], [1, 2, 3, 4], [1, 2, 4], [1, 2, 3, 4]),
    ("arrays: an addition on both sides appears once", [1], [1, 2], [1, 2], [1, 2]),
    ("arrays: a removal applies", [1, 2, 3], [1, 3, 9], [1, 2, 3, 7], [1, 3, 9, 7]),
    ("GrowArray: merging again adds nothing", ga([1]), ga([1, 2, 3]), ga([1, 3]), ga([1, 2, 3])),
    (
        "maps: a key removed on one side goes",
        {"a": 1, "b": 2},
        {"a": 1},
        {"a": 1, "b": 2, "c": 3},
        {"a": 1, "c": 3},
    ),
    ("one side changed: take it", 1, 1, 5, 5),
]

CONTRADICTIONS: list[tuple[str, Any, Any, str]] = [
    ("different scalars", 42, 43, "Values cannot be merged"),
    ("different strings", "hello", "world", "Values cannot be merged"),
    ("different bools", True, False, "Values cannot be merged"),
    ("different types", 42, "hello", "Values cannot be merged"),
    ("a bool is not 1", True, 1, "Values cannot be merged"),
    ("a string is not an array", "hello", [], "Values cannot be merged"),
    ("ShrinkSets without intersection", ss([1, 2]), ss([3, 4]), "Empty set intersection"),
    ("ShrinkArrays without intersection", sa([1, 2]), sa([3, 4]), "Empty array intersection"),
    ("GrowMaps with a conflicting key", gm({"a": 1, "b": 2}), gm({"b": 3, "c": 4}), "Values cannot be merged"),
    ("ShrinkMaps without common keys", sm({"a": 1}), sm({"b": 2}), "Empty map intersection"),
    ("ShrinkMaps with conflicting values", sm({"a": 1}), sm({"a": 2}), "Values cannot be merged"),
    ("different collection types", gs([1, 2]), ss([1, 2]), "Cannot merge different collection types"),
    ("a tagged set with a plain array", gs([1, 2]), [1, 2], "Cannot merge tagged collection with incompatible type"),
]


@pytest.mark.parametrize(("case", "base", "ours", "theirs", "expected"), MERGES, ids=[m[0] for m in MERGES])
def test_merge_content_rules(case: str, base: Any, ours: Any, theirs: Any, expected: Any) -> None:
    assert merge3(base, ours, theirs) == expected


@pytest.mark.parametrize(("case", "ours", "theirs", "message"), CONTRADICTIONS, ids=[c[0] for c in CONTRADICTIONS])
def test_merge_content_contradictions(case: str, ours: Any, theirs: Any, message: str) -> None:
    with pytest.raises(Contradiction) as raised:
        merge3(BASE, ours, theirs)
    assert raised.value.message == message
    if message == "Values cannot be merged" and not isinstance(ours, dict):
        assert (raised.value.left, raised.value.right) == (ours, theirs)  # upstream's leftValue / rightValue


# ---------------------------------------------------------------- networks


def base_state() -> NetworkState:
    contacts = {
        "last": Contact("last", "g", 1),
        "set": Contact("set", "g", gs([1]), blend_mode="merge"),
        "num": Contact("num", "g", 10, blend_mode="merge"),
        "gone": Contact("gone", "g", "x"),
    }
    wires = {"w1": Wire("w1", "g", "last", "set")}
    g = Group("g", "G", contact_ids=list(contacts), wire_ids=["w1"], attributes={"type": "t"})
    h = Group("h", "H", contact_ids=["k"])
    return NetworkState(
        {"g": GroupState(g, contacts, wires), "h": GroupState(h, {"k": Contact("k", "h", 0)})}, "g", "g"
    )


def two_sides(store: NetworkStore) -> tuple[bytes, bytes, bytes]:
    store.save_network_state("o", base_state())
    store.save_network_state("t", base_state())
    base = store.refs.get(head_ref("o"))
    assert base is not None
    store.save_contact_content("o", "g", "last", 2)
    store.save_contact_content("t", "g", "last", 3)
    store.save_contact_content("o", "g", "set", gs([1, 2]))
    store.save_contact_content("t", "g", "set", gs([1, 3]))
    store.save_contact_content("o", "g", "num", 11)
    store.save_contact_content("t", "g", "num", 12)
    store.delete_contact("t", "g", "gone")
    store.save_contact_content("o", "h", "new", "from ours")
    store.delete_group("t", "h")  # theirs removed a group ours added a contact to: kept (delete-modify)
    ours, theirs = store.refs.get(head_ref("o")), store.refs.get(head_ref("t"))
    assert ours is not None and theirs is not None
    return base, ours, theirs


def written(store: ObjectStore, merged: Any) -> bytes:
    store.commit(merged.pending.frames(), [])
    return bytes(merged.digest)


def test_merge_by_blend_mode_records_conflicts() -> None:
    store = casstore.open_store("memory://")
    base, ours, theirs = two_sides(store)
    merged = merge_roots(store.reader, base, ours, theirs, theirs_later=True)
    state = store.reader.state_at(written(store, merged))
    g = state.groups["g"]
    assert g.contacts["last"].content == 3  # accept-last: the later side (theirs)
    assert g.contacts["set"].content == gs([1, 2, 3])  # merge: union
    assert g.contacts["num"].content == 11  # merge, contradiction: ours kept
    assert "gone" not in g.contacts and "gone" not in g.group.contact_ids
    assert state.groups["h"].contacts["new"].content == "from ours"
    assert state.groups["h"].group.contact_ids == ["k", "new"]
    found = {(c.kind, c.item): c for c in merged.conflicts}
    assert set(found) == {("contact", "last"), ("contact", "num"), ("group", "h")}
    last = found["contact", "last"]
    assert (last.reason, last.base, last.ours, last.theirs, last.kept, last.kept_side) == (
        "both-changed", 1, 2, 3, 3, "theirs",
    )  # fmt: skip
    num = found["contact", "num"].as_json()
    assert num["reason"] == "contradiction" and num["message"] == "Values cannot be merged"
    assert num["values"] == [11, 12] and num["base"] == 10 and num["kept"] == 11
    assert found["group", "h"].reason == "delete-modify" and found["group", "h"].kept_side == "ours"
    # the conflicts live in the merged root; an ordinary write keeps them
    root = store.reader.network_root(merged.digest)
    assert "k" in root
    ours_again = merge_roots(store.reader, base, ours, theirs, theirs_later=False)
    assert [c.kept for c in ours_again.conflicts if c.item == "last"] == [2]  # ours later: ours kept


def test_conflicts_are_listed_kept_by_writes_and_resolved() -> None:
    store = casstore.open_store("memory://")
    base, _, theirs = two_sides(store)
    result = merge_network(store, "o", theirs, base=base)
    assert result.outcome == "merged" and result.base_source == "given"
    assert [c.item for c in store.conflicts("o")] == ["last", "num", "h"]
    store.save_contact_content("o", "g", "set", gs([9]))  # an ordinary write keeps them
    assert len(store.conflicts("o")) == 3
    store.resolve_conflict("o", "g", "last", "ours")
    assert store.load_contact_content("o", "g", "last") == 2
    store.resolve_conflict("o", "g", "num", "value", 99)
    assert store.load_contact_content("o", "g", "num") == 99
    with pytest.raises(ConflictNotFound):
        store.resolve_conflict("o", "g", "last", "theirs")
    store.resolve_conflict("o", "h", "h", "ours")
    assert store.conflicts("o") == []
    head = store.refs.get(head_ref("o"))
    assert head is not None and "k" not in store.network_root(head)  # resolving them all: an ordinary state
    snap = store.list_snapshots("o")[0]
    assert len(snap.parents) == 2 and snap.id == result.snapshot
    assert not casstore.verify(store).invalid


def test_interrupted_merge_leaves_the_head(monkeypatch: pytest.MonkeyPatch) -> None:
    store = casstore.open_store("memory://")
    base, ours, theirs = two_sides(store)
    objects = store.objects
    real = objects.commit

    def moved_meanwhile(frames: Any, updates: Any) -> None:
        # another writer moves the head between the merge's read and its commit
        other = next(u for u in updates if u.name == head_ref("o"))
        real([], [RefUpdate(head_ref("o"), other.expected, base)])
        real(frames, updates)

    monkeypatch.setattr(objects, "commit", moved_meanwhile)
    with pytest.raises(RefConflict):
        merge_network(store, "o", theirs, base=base)
    assert store.refs.get(head_ref("o")) == base  # the other write stands; the merge moved nothing
    assert not any(s.parents[1:] for s in store.list_snapshots("o"))

    def crash(frames: Any, updates: Any) -> None:
        raise KeyboardInterrupt

    store.objects.commit = real  # type: ignore[method-assign]
    store.refs.compare_and_swap(head_ref("o"), base, ours)
    monkeypatch.setattr(objects, "commit", crash)
    with pytest.raises(KeyboardInterrupt):
        merge_network(store, "o", theirs, base=base)
    assert store.refs.get(head_ref("o")) == ours and store.conflicts("o") == []


# ---------------------------------------------------------------- properties

_values = st.one_of(st.integers(-3, 3), st.text("ab", max_size=2), st.lists(st.integers(0, 4), max_size=3))
_op = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(["g", "h"]), st.sampled_from(["a", "b", "c", "d"]), _values),
    st.tuples(st.just("grow"), st.just("g"), st.just("s"), st.integers(0, 5)),
    st.tuples(st.just("delete"), st.sampled_from(["g", "h"]), st.sampled_from(["a", "b", "c"]), st.none()),
    st.tuples(st.just("drop-group"), st.just("h"), st.none(), st.none()),
    st.tuples(st.just("rename"), st.sampled_from(["g", "h"]), st.text("xy", min_size=1, max_size=2), st.none()),
    st.tuples(st.just("wire"), st.just("g"), st.sampled_from(["w1", "w2"]), st.sampled_from(["a", "b", "c"])),
    # a contact's other fields: its name, one attribute (merged per field and key, recorded when both differ)
    st.tuples(st.just("name"), st.sampled_from(["g", "h"]), st.sampled_from(["a", "b"]), st.sampled_from(["x", "y"])),
    st.tuples(st.just("attribute"), st.just("g"), st.sampled_from(["a", "s"]), st.integers(0, 2)),
)


def _start() -> NetworkState:
    def group(gid: str, ids: list[str]) -> GroupState:
        contacts = {cid: Contact(cid, gid, i) for i, cid in enumerate(ids)}
        if gid == "g":
            contacts["s"] = Contact("s", "g", gs([0]), blend_mode="merge")
        return GroupState(Group(gid, gid.upper(), contact_ids=list(contacts)), contacts)

    return NetworkState({"g": group("g", ["a", "b"]), "h": group("h", ["a", "c"])}, "g", "g")


def _apply(store: NetworkStore, net: str, ops: list[tuple[Any, ...]]) -> None:
    for kind, gid, item, value in ops:
        state = store.load_group_state(net, gid)
        if state is None:
            continue
        if kind == "set":
            store.save_contact_content(net, gid, item, value)
        elif kind == "grow" and "s" in state.contacts:
            old = state.contacts["s"].content
            store.save_contact_content(net, gid, "s", gs(sorted({*old["values"], value})))
        elif kind == "delete":
            store.delete_contact(net, gid, item)
        elif kind == "drop-group":
            store.delete_group(net, gid)
        elif kind == "rename":
            state.group.name = item
            store.save_group_state(net, gid, state)
        elif kind in ("name", "attribute") and item in state.contacts:
            if kind == "name":
                state.contacts[item].name = value
            else:
                state.contacts[item].attributes["u"] = value
            store.save_group_state(net, gid, state)
        elif kind == "wire" and value in state.contacts and "a" in state.contacts:
            state.wires[item] = Wire(item, gid, "a", value)
            state.group.wire_ids = [w for w in state.group.wire_ids if w != item] + [item]
            store.save_group_state(net, gid, state)


def _state(store: NetworkStore, digest: bytes) -> NetworkState:
    return store.reader.state_at(digest)


def _items(state: NetworkState) -> dict[tuple[str, str, str], Any]:
    out: dict[tuple[str, str, str], Any] = {}
    for gid, group in state.groups.items():
        out["group", gid, gid] = codec.encode_value(group.group.name)
        for cid, contact in group.contacts.items():
            out["contact", gid, cid] = codec.encode_value(contact.content)
            out["fields", gid, cid] = codec.encode_value([contact.name, contact.attributes, contact.blend_mode])
        for wid, wire in group.wires.items():
            out["wire", gid, wid] = codec.encode_value([wire.from_id, wire.to_id])
    return out


def _check_invariants(store: NetworkStore, digest: bytes) -> None:
    """The merged state re-saved from scratch gives the very same trees and size (so its lists agree
    with its members, its index with its attributes, its size with its records) and verifies clean."""
    fresh = casstore.open_store("memory://")
    fresh.save_network_state("x", _state(store, digest))
    again = fresh.network_root(fresh.refs.get(head_ref("x")) or b"")
    root = store.network_root(digest)
    for name in ("groups", "contacts", "wires", "index", "size"):
        assert root[name] == again[name], name


#: more with CASSTORE_MERGE_EXAMPLES=500 (the default keeps the suite's time budget)
EXAMPLES = int(os.environ.get("CASSTORE_MERGE_EXAMPLES", "40"))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_op, max_size=6), st.lists(_op, max_size=6), st.booleans())
def test_merge_properties(ours_ops: list[Any], theirs_ops: list[Any], theirs_later: bool) -> None:
    store = casstore.open_store("memory://")
    for net in ("o", "t"):
        store.save_network_state(net, _start())
    base = store.refs.get(head_ref("o"))
    _apply(store, "o", ours_ops)
    _apply(store, "t", theirs_ops)
    ours, theirs = store.refs.get(head_ref("o")), store.refs.get(head_ref("t"))
    assert base is not None and ours is not None and theirs is not None
    reader = store.reader

    merged = merge_roots(reader, base, ours, theirs, theirs_later=theirs_later)
    m = written(store, merged)
    _check_invariants(store, m)

    # symmetric, up to the kept value of contradictions (ours, by rule)
    swapped = written(store, merge_roots(reader, base, theirs, ours, theirs_later=not theirs_later))
    a, b = _items(_state(store, m)), _items(_state(store, swapped))
    contradicted = {("contact", c.group, c.item) for c in merged.conflicts if c.reason == "contradiction"}
    assert {k: v for k, v in a.items() if k not in contradicted} == {
        k: v for k, v in b.items() if k not in contradicted
    }
    assert _state(store, m).groups.keys() == _state(store, swapped).groups.keys()
    for gid in _state(store, m).groups:
        assert _state(store, m).groups[gid].group.contact_ids == _state(store, swapped).groups[gid].group.contact_ids

    # merging with an unchanged side gives the other side; merging again changes nothing
    assert merge_roots(reader, base, ours, base, theirs_later=theirs_later).digest == ours
    assert _items(_state(store, written(store, merge_roots(reader, base, base, theirs, theirs_later=True)))) == (
        _items(_state(store, theirs))
    )
    assert merge_roots(reader, base, m, theirs, theirs_later=theirs_later).digest == m

    # nothing present on either side is lost unless the other side removed it unchanged
    before, o_items, t_items = (_items(_state(store, d)) for d in (base, ours, theirs))
    for key in o_items.keys() | t_items.keys():
        if key in a:
            continue
        if key in o_items:
            assert key not in t_items and before.get(key) == o_items[key], key
        if key in t_items:
            assert key not in o_items and before.get(key) == t_items[key], key


_FILLERS = 300  # per group: trees of several levels, so a merge's limited reads matter
_big_op = st.one_of(
    _op,
    st.tuples(st.just("bulk"), st.sampled_from(["g", "h"]), st.integers(0, _FILLERS - 1), st.integers(1, 60)),
    st.tuples(st.just("add"), st.sampled_from(["g", "h"]), st.integers(0, 50), st.none()),
)


def _start_big() -> NetworkState:
    state = _start()
    for gid, group in state.groups.items():
        for i in range(_FILLERS):
            group.contacts[f"f{i:03d}"] = Contact(f"f{i:03d}", gid, {"n": i, "pad": "x" * (i % 40)})
        group.group.contact_ids = list(group.contacts)
    return state


def _apply_big(store: NetworkStore, net: str, ops: list[tuple[Any, ...]], salt: int) -> None:
    for kind, gid, item, value in ops:
        if kind == "bulk":
            if store.load_group_state(net, gid) is not None:
                with store.batch(net) as batch:
                    for i in range(item, min(_FILLERS, item + value)):
                        batch.save_contact_content(net, gid, f"f{i:03d}", [salt, i])
        elif kind == "add":
            state = store.load_group_state(net, gid)
            if state is not None:
                state.contacts[f"n{item:02d}"] = Contact(f"n{item:02d}", gid, salt)
                state.group.contact_ids = [c for c in state.group.contact_ids if c != f"n{item:02d}"] + [f"n{item:02d}"]
                store.save_group_state(net, gid, state)
        else:
            _apply(store, net, [(kind, gid, item, value)])


@settings(max_examples=max(10, EXAMPLES // 2), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_big_op, max_size=6), st.lists(_big_op, max_size=6), st.booleans())
def test_a_merge_reading_only_what_changed_equals_one_reading_both_sides_whole(
    ours_ops: list[Any], theirs_ops: list[Any], theirs_later: bool
) -> None:
    """The merge's shortcuts (ours diffed only where theirs changed, no group reconciliation when no
    group record changed and no member came or went) give the very root and conflicts of a merge
    that diffs both sides whole and reconciles every touched group."""
    from unittest import mock

    from casstore.merge import network as merge_module
    from casstore.merge.treediff import aligned_diff

    store = casstore.open_store("memory://")
    for net in ("o", "t"):
        store.save_network_state(net, _start_big())
    base = store.refs.get(head_ref("o"))
    _apply_big(store, "o", ours_ops, 1)
    _apply_big(store, "t", theirs_ops, 2)
    ours, theirs = store.refs.get(head_ref("o")), store.refs.get(head_ref("t"))
    assert base is not None and ours is not None and theirs is not None
    assert store.reader.trees["contacts"].load(store.network_root(base)["contacts"]).level >= 1
    quick = merge_roots(store.reader, base, ours, theirs, theirs_later=theirs_later)

    def whole(tree: Any, old: bytes, new: bytes, trace: Any = None, within: Any = None) -> Any:
        return aligned_diff(tree, old, new, trace)  # ``within`` ignored: both sides read whole

    with (
        mock.patch.object(merge_module, "aligned_diff", whole),
        mock.patch.object(merge_module._Merge, "presence_changed", lambda self: True),
    ):
        thorough = merge_roots(store.reader, base, ours, theirs, theirs_later=theirs_later)
    assert quick.digest == thorough.digest
    key = lambda c: (c.kind, c.group, c.item)  # noqa: E731
    assert sorted(quick.conflicts, key=key) == sorted(thorough.conflicts, key=key)
    _check_invariants(store, written(store, quick))


def test_snapshot_parents_format_and_checks() -> None:
    from casstore.model import records
    from casstore.model.schema import check_snapshot

    root = codec.hash_bytes(b"root")
    single = records.decode_snapshot(records.encode_snapshot("n", root, "p1", None, 1))
    assert "parents" not in single and records.snapshot_parents(single) == ["p1"]  # old shape, unchanged
    assert records.snapshot_parents(records.decode_snapshot(records.encode_snapshot("n", root, None, None, 1))) == []
    data = records.encode_snapshot("n", root, None, "m", 1, parents=["p1", "p2"])
    merged = records.decode_snapshot(data)
    assert merged["parent"] == "p1" and records.snapshot_parents(merged) == ["p1", "p2"]
    check_snapshot(data)
    bad = codec.decode(data)
    for parents in (["p1"], ["p2", "p1"], "p1"):
        with pytest.raises(Exception, match="parent"):
            check_snapshot(codec.encode({**bad, "parents": parents}))


def test_gc_keeps_the_conflicts_tree() -> None:
    from casstore.gc import collect_garbage

    store = casstore.open_store("memory://")
    base, _, theirs = two_sides(store)
    merge_network(store, "o", theirs, base=base)
    store.delete_network("t")
    collect_garbage(store, grace_minutes=0)
    report = casstore.verify(store)
    assert not report.missing and not report.invalid
    assert [c.item for c in store.conflicts("o")] == ["last", "num", "h"]
