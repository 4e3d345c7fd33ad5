"""Regression tests for issue #11's input and shape findings (4, 5, 6, 11-14), each named after its case."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import BUCKET
from hypothesis import given
from hypothesis import strategies as st

import casstore
from casstore import Contact, Group, GroupState, NetworkState, Wire, codec
from casstore.errors import InvalidId, InvalidStoreURL, SerializationError, StorageError
from casstore.model import NetworkStore
from casstore.model.bassline_json import network_from_json, network_to_json
from casstore.model.types import MAX_ID_BYTES
from casstore.store.file import FileStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.store.s3 import S3Store
from casstore.store.s3.refs import MAX_KEY_BYTES

Cli = Callable[..., Any]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def group_state(gid: str = "g", contents: dict[str, Any] | None = None, **contacts: Any) -> GroupState:
    members = {cid: Contact(cid, gid, content) for cid, content in {**(contents or {}), **contacts}.items()}
    return GroupState(Group(gid, "G", contact_ids=list(members)), members)


@pytest.fixture
def store() -> Iterator[NetworkStore]:
    with casstore.open_store("memory://") as opened:
        opened.save_network_state("n", NetworkState({"g": group_state(c=1)}))
        yield opened


def unchanged(store: NetworkStore) -> Callable[[], None]:
    """A check that the store's refs and objects are as they were when this was called."""
    refs, stats = store.refs.list(), store.blobs.stats()

    def check() -> None:
        assert store.refs.list() == refs and store.blobs.stats() == stats

    return check


# ---------------------------------------------------------------- 4: depth


def test_case_4_attributes_and_extra_fields_take_values_as_deep_as_contents(store: NetworkStore) -> None:
    deep = nested(codec.MAX_DEPTH)
    state = group_state(c=deep)
    state.group.attributes = {"deep": deep}
    state.group.extra = {"deepExtra": deep}
    state.contacts["c"].attributes = {"deep": deep}
    state.contacts["c"].extra = {"deepExtra": deep}
    state.wires["w"] = Wire("w", "g", "c", "c", attributes={"deep": deep}, extra={"deepExtra": deep})
    state.group.wire_ids = ["w"]
    store.save_group_state("n", "g", state)
    assert store.load_group_state("n", "g") == state
    loaded = store.load_network_state("n")
    assert loaded is not None and network_from_json(network_to_json(loaded)) == loaded
    for too_deep in (nested(codec.MAX_DEPTH + 1), nested(5_000)):
        check = unchanged(store)
        for where in ("group", "contact", "wire"):
            bad = group_state(c=1)
            bad.wires["w"], bad.group.wire_ids = Wire("w", "g", "c", "c"), ["w"]
            targets: dict[str, Group | Contact | Wire] = {"group": bad.group, "contact": bad.contacts["c"]}
            targets["wire"] = bad.wires["w"]
            targets[where].attributes = {"deep": too_deep}
            with pytest.raises(SerializationError, match="levels deep"):
                store.save_group_state("n", "g", bad)
        check()


@pytest.mark.parametrize("depth", [codec.MAX_DEPTH + 1, 900, 5_000])
def test_case_4_the_json_converter_refuses_what_is_too_deep_without_recursing(depth: int) -> None:
    doc = {"groups": {"g": {"group": {"name": "G"}, "contacts": {"c": {"content": nested(depth)}}}}}
    with pytest.raises(SerializationError, match="levels deep") as info:
        network_from_json(doc)
    assert info.value.code == "STORAGE_SERIALIZATION_ERROR" and "contacts['c'].content" in str(info.value)
    state = NetworkState({"g": GroupState(Group("g", "G"), {"c": Contact("c", "g", nested(depth))})})
    with pytest.raises(SerializationError, match="levels deep"):
        network_to_json(state)


def _deep_json(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.parametrize("depth", [codec.MAX_DEPTH + 1, 900, 100_000])
def test_case_4_cli_import_set_and_put_of_too_deep_json_say_one_line(cli: Cli, depth: int) -> None:
    cli("--store", "s", "init")
    cli("--store", "s", "import", "n", "-", input=json.dumps({"groups": {"g": {"group": {"name": "G"}}}}))
    network = '{"groups": {"g": {"group": {"name": "G"}, "contacts": {"c": {"content": ' + _deep_json(depth) + "}}}}}"
    Path("deep.json").write_text(_deep_json(depth))
    Path("net.json").write_text(network)
    for args in (("set", "n", "g", "c", _deep_json(depth)), ("put", "deep.json"), ("import", "n", "net.json")):
        result = cli("--store", "s", *args, code=1)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "levels deep" in lines[0], result.stderr
        error = json.loads(cli("--store", "s", "--json", *args, code=1).stderr)["error"]
        assert error["code"] == "STORAGE_SERIALIZATION_ERROR" and "levels deep" in error["message"]
    assert json.loads(cli("--store", "s", "export", "n").stdout)["groups"]["g"]["contacts"] == {}


def test_case_4_cli_reads_values_at_the_limit(cli: Cli) -> None:
    cli("--store", "s", "init")
    cli("--store", "s", "import", "n", "-", input=json.dumps({"groups": {"g": {"group": {"name": "G"}}}}))
    snapshot = cli("--store", "s", "snapshot", "n").stdout.strip().split()[-1]
    cli("--store", "s", "set", "n", "g", "c", _deep_json(codec.MAX_DEPTH))
    assert json.loads(cli("--store", "s", "get", "n", "g", "c", "--json").stdout)["content"] == nested(codec.MAX_DEPTH)
    exported = json.loads(cli("--store", "s", "export", "n").stdout)
    assert exported["groups"]["g"]["contacts"]["c"]["content"] == nested(codec.MAX_DEPTH)
    cli("--store", "s", "show", "n", "--group", "g", "--json")
    assert "1 change" in cli("--store", "s", "diff", "n", snapshot).stdout
    cli("--store", "s", "import", "again", "-", input=json.dumps(exported))


# ---------------------------------------------------------------- 5: wrong types


def test_case_5_wrong_python_types_are_storage_errors_naming_the_argument(store: NetworkStore) -> None:
    check = unchanged(store)
    empty = Group("g", "G")
    calls: list[tuple[str, Callable[[], object]]] = [
        ("group_id", lambda: store.load_contact_content("n", 1.5, "c")),  # type: ignore[arg-type]
        ("contact_id", lambda: store.load_contact_content("n", "g", None)),  # type: ignore[arg-type]
        ("group_id", lambda: store.load_group_state("n", ["g"])),  # type: ignore[arg-type]
        ("network_id", lambda: store.load_network_state(7)),  # type: ignore[arg-type]
        ("network_id", lambda: store.batch(b"n")),  # type: ignore[arg-type]
        ("group_id", lambda: store.delete_group("n", 3)),  # type: ignore[arg-type]
        ("contacts key 1", lambda: store.save_group_state("n", "g", GroupState(empty, {1: Contact("1", "g")}))),  # type: ignore[dict-item]
        ("contacts['c']", lambda: store.save_group_state("n", "g", GroupState(empty, {"c": "x"}))),  # type: ignore[dict-item]
        ("wires", lambda: store.save_group_state("n", "g", GroupState(empty, {}, []))),  # type: ignore[arg-type]
        ("groups['g']", lambda: store.save_group_state("n", "g", "state")),  # type: ignore[arg-type]
        ("groups['g'].group", lambda: store.save_group_state("n", "g", GroupState({"id": "g"}))),  # type: ignore[arg-type]
        ("groups['g']", lambda: store.save_network_state("n", NetworkState({"g": Group("g", "G")}))),  # type: ignore[dict-item]
        ("groups key 5", lambda: store.save_network_state("n", NetworkState({5: group_state()}))),  # type: ignore[dict-item]
        ("state.groups", lambda: store.save_network_state("n", NetworkState([]))),  # type: ignore[arg-type]
        ("current_group_id", lambda: store.save_network_state("n", NetworkState({}, None))),  # type: ignore[arg-type]
        ("state", lambda: store.save_network_state("n", {"groups": {}})),  # type: ignore[arg-type]
        ("path", lambda: store.subscribe(5, print)),  # type: ignore[arg-type]
        ("callback", lambda: store.subscribe("n", "print")),  # type: ignore[arg-type]
    ]
    for named, call in calls:
        with pytest.raises(StorageError) as info:
            call()
        assert named in str(info.value), (named, info.value)
    check()


@pytest.mark.parametrize("where", ["network", "group", "contact"])
def test_case_5_a_lone_surrogate_in_an_id_is_a_serialization_error(store: NetworkStore, where: str) -> None:
    check = unchanged(store)
    ids = {"network": "n", "group": "g", "contact": "c"} | {where: "bad\ud800"}
    for call in (store.load_contact_content, store.save_contact_content):
        with pytest.raises(SerializationError, match="not valid Unicode"):
            call(ids["network"], ids["group"], ids["contact"], *([1] if call == store.save_contact_content else []))
    check()


@pytest.mark.parametrize(
    "endpoint", ["notaurl", "http://", "ftp://host", "http://host:99999", "http://exa mple.com", "http://[::1"]
)
def test_case_5_a_malformed_s3_endpoint_is_invalid_store_url(endpoint: str) -> None:
    with pytest.raises(InvalidStoreURL) as info:
        casstore.open_store(f"s3://{BUCKET}/p?endpoint_url={endpoint}")
    assert "endpoint" in str(info.value).lower()


# ---------------------------------------------------------------- 6: long ids

LONG_ID = "✓" * 341 + "x"  # 1,024 UTF-8 bytes; %-escaped in a ref name: over 3,000 characters


def test_case_6_the_id_limit_is_1024_utf8_bytes(store: NetworkStore) -> None:
    assert len(LONG_ID.encode()) == MAX_ID_BYTES
    check = unchanged(store)
    over = LONG_ID + "y"
    calls: list[Callable[[], object]] = [
        lambda: store.save_contact_content(over, "g", "c", 1),
        lambda: store.save_contact_content("n", over, "c", 1),
        lambda: store.save_contact_content("n", "g", over, 1),
        lambda: store.save_group_state("n", over, group_state(over)),
        lambda: store.save_group_state("n", "g", group_state("g", {over: 1})),
        lambda: store.load_network_state(over),
        lambda: store.save_group_state("n", "g", GroupState(Group("g", "G", subgroup_ids=["x" * 1025]))),
    ]
    for call in calls:
        with pytest.raises(InvalidId, match="1,024") as info:
            call()
        assert info.value.code == "INVALID_ID"
    check()


def _long_network() -> NetworkState:
    state = GroupState(
        Group(LONG_ID, "long", contact_ids=[LONG_ID], wire_ids=[LONG_ID]),
        {LONG_ID: Contact(LONG_ID, LONG_ID, {"v": LONG_ID})},
        {LONG_ID: Wire(LONG_ID, LONG_ID, LONG_ID, LONG_ID)},
    )
    return NetworkState({LONG_ID: state}, LONG_ID, LONG_ID)


def _stores(tmp_path: Path) -> dict[str, NetworkStore]:
    return {
        "memory": NetworkStore(MemoryStore()),
        "lmdb": NetworkStore(LmdbStore(tmp_path / "lmdb", map_size=64 << 20)),
        "file": NetworkStore(FileStore(tmp_path / "files")),
        "s3": NetworkStore(S3Store(BUCKET, "long", cache=False)),
    }


def test_case_6_ids_of_1024_bytes_work_on_every_backend_and_travel(tmp_path: Path, mock_s3: None) -> None:
    stores = _stores(tmp_path)
    state = _long_network()
    try:
        for kind, store in stores.items():
            store.save_network_state(LONG_ID, state)
            store.save_contact_content(LONG_ID, LONG_ID, LONG_ID, "set")
            state.groups[LONG_ID].contacts[LONG_ID].content = "set"
            snapshot = store.save_snapshot(LONG_ID, label=LONG_ID)
            assert store.load_network_state(LONG_ID) == state, kind
            assert store.list_networks() == [LONG_ID] and store.exists(LONG_ID)
            assert [s.id for s in store.list_snapshots(LONG_ID)] == [snapshot]
            assert store.load_snapshot(LONG_ID, snapshot) == state
            state.groups[LONG_ID].contacts[LONG_ID].content = {"v": LONG_ID}
            store.delete_network(LONG_ID)
            assert store.list_networks() == [] and store.refs.list() == {}
        source = stores["lmdb"]
        source.save_network_state(LONG_ID, state)
        source.save_snapshot(LONG_ID)
        for kind in ("file", "s3"):
            casstore.push(source, stores[kind])
            assert stores[kind].load_network_state(LONG_ID) == state, kind
            assert stores[kind].list_snapshots(LONG_ID) == source.list_snapshots(LONG_ID)
        casstore.push(stores["s3"], stores["memory"])
        assert stores["memory"].load_network_state(LONG_ID) == state
        keys = [item["Key"] for item in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]]
        assert max(len(key.encode()) for key in keys) <= MAX_KEY_BYTES
    finally:
        for store in stores.values():
            store.close()


def test_case_6_s3_lists_long_ref_names_written_by_another_client(mock_s3: None) -> None:
    name = "networks/" + "y" * 2000 + "/head"
    with S3Store(BUCKET, "p", cache=False) as writer, S3Store(BUCKET, "p", cache=False) as reader:
        digest = writer.blobs.put(codec.encode_value("x"))
        writer.refs.compare_and_swap(name, None, digest)
        assert reader.refs.list("networks/") == {name: digest}  # the name read from the object
        assert reader.refs.list(name[:1500]) == {name: digest}
        assert reader.refs.get(name) == digest
        reader.refs.delete(name, digest)
        assert writer.refs.list() == {}


# ---------------------------------------------------------------- 11: ids agree with their places


def test_case_11_ids_differing_from_their_place_are_refused_naming_the_path(store: NetworkStore) -> None:
    check = unchanged(store)
    wrong_group = group_state(c=1)
    wrong_group.contacts["c"].group_id = "other"
    wrong_key = GroupState(Group("g", "G", contact_ids=["c"]), {"c": Contact("d", "g")})
    wrong_wire = group_state()
    wrong_wire.wires = {"w": Wire("w", "other", "a", "b")}
    wrong_wire_key = group_state()
    wrong_wire_key.wires = {"w": Wire("v", "g", "a", "b")}
    cases: list[tuple[str, Callable[[], object]]] = [
        ("groups['g'].contacts['c'].group_id", lambda: store.save_group_state("n", "g", wrong_group)),
        ("groups['g'].contacts['c'].id", lambda: store.save_group_state("n", "g", wrong_key)),
        ("wires['w'].group_id", lambda: store.save_group_state("n", "g", wrong_wire)),
        ("wires['w'].id", lambda: store.save_group_state("n", "g", wrong_wire_key)),
        ("groups['g'].id", lambda: store.save_group_state("n", "g", group_state("h"))),
        ("groups['g'].id", lambda: store.save_network_state("n", NetworkState({"g": group_state("h")}))),
    ]
    for path, call in cases:
        with pytest.raises(SerializationError) as info:
            call()
        assert path in str(info.value), (path, info.value)
    with pytest.raises(SerializationError, match=r"contacts\['c'\].group_id"), store.batch("n") as batch:
        batch.save_group_state("n", "g", wrong_group)
    check()


def test_case_11_the_current_and_root_group_may_name_groups_not_stored(store: NetworkStore) -> None:
    state = NetworkState({"g": group_state(c=1)}, current_group_id="root", root_group_id="elsewhere")
    store.save_network_state("n", state)
    assert store.load_network_state("n") == state


# ---------------------------------------------------------------- 12: contact_ids agree with the contacts


def test_case_12_contacts_not_listed_are_listed_and_listed_ids_need_a_contact(store: NetworkStore) -> None:
    registry = GroupState(Group("g", "Registry"), {"b": Contact("b", "g", 2), "a": Contact("a", "g", 1)})
    store.save_group_state("n", "g", registry)
    loaded = store.load_group_state("n", "g")
    assert loaded is not None and loaded.group.contact_ids == ["b", "a"]  # appended in the map's order
    assert registry.group.contact_ids == []  # the caller's object is left alone
    partly = GroupState(Group("g", "G", contact_ids=["a"]), {"b": Contact("b", "g"), "a": Contact("a", "g")})
    store.save_network_state("n", NetworkState({"g": partly}))
    state = store.load_network_state("n")
    assert state is not None and state.groups["g"].group.contact_ids == ["a", "b"]
    doc = {"groups": {"g": {"group": {"name": "G"}, "contacts": {"x": {"content": 1}}}}}
    store.save_network_state("j", network_from_json(doc))
    assert network_to_json(store.load_network_state("j"))["groups"]["g"]["group"]["contactIds"] == ["x"]  # type: ignore[arg-type]
    check = unchanged(store)
    dangling = GroupState(Group("g", "G", contact_ids=["a", "ghost"]), {"a": Contact("a", "g")})
    with pytest.raises(SerializationError, match=r"groups\['g'\].contact_ids\[1\]: 'ghost'"):
        store.save_group_state("n", "g", dangling)
    with pytest.raises(SerializationError, match="ghost"):
        store.save_network_state("n", NetworkState({"g": dangling}))
    check()


# ---------------------------------------------------------------- 13: delete_group keeps the tree


def _tree() -> NetworkState:
    def group(gid: str, parent: str | None, *subgroups: str) -> GroupState:
        state = group_state(gid, {f"{gid}-c": gid})
        state.group.parent_id, state.group.subgroup_ids = parent, list(subgroups)
        return state

    groups = [
        group("root", None, "a", "b", "z"),
        group("a", "root", "a1", "a2"),
        group("a1", "a"),
        group("a2", "a", "a2x"),
        group("a2x", "a2"),
        group("b", "root"),
    ]
    return NetworkState({state.group.id: state for state in groups})


def test_case_13_delete_group_moves_its_subgroups_up_to_its_parent(store: NetworkStore) -> None:
    store.save_network_state("t", _tree())
    store.delete_group("t", "a")
    state = store.load_network_state("t")
    assert state is not None and set(state.groups) == {"root", "a1", "a2", "a2x", "b"}
    assert state.groups["root"].group.subgroup_ids == ["a1", "a2", "b", "z"]  # in a's place, in a's order
    assert state.groups["a1"].group.parent_id == state.groups["a2"].group.parent_id == "root"
    assert state.groups["a2"].group.subgroup_ids == ["a2x"] and state.groups["a2x"].group.parent_id == "a2"
    assert store.load_contact_content("t", "a", "a-c") is None
    assert store.load_contact_content("t", "a1", "a1-c") == "a1"
    store.delete_group("t", "root")  # a top-level group: its subgroups become top-level
    state = store.load_network_state("t")
    assert state is not None and set(state.groups) == {"a1", "a2", "a2x", "b"}
    assert all(state.groups[gid].group.parent_id is None for gid in ("a1", "a2", "b"))


def test_case_13_delete_group_in_a_batch_sees_the_batch_and_leaves_prepared_groups_alone(store: NetworkStore) -> None:
    store.save_network_state("t", _tree())
    moved = _tree().groups["a1"]
    with store.batch("t") as batch:
        batch.save_group_state("t", "a1", moved)
        batch.delete_group("t", "a")
        batch.delete_group("t", "a2")
    state = store.load_network_state("t")
    assert state is not None and set(state.groups) == {"root", "a1", "a2x", "b"}
    assert state.groups["root"].group.subgroup_ids == ["a1", "a2x", "b", "z"]
    assert state.groups["a1"].group.parent_id == "root" and state.groups["a2x"].group.parent_id == "root"
    assert moved.group.parent_id == "a"  # the caller's state is not changed


# ---------------------------------------------------------------- 14: fields casstore does not model


EXTRA_DOC: dict[str, Any] = {
    "groups": {
        "g": {
            "group": {"id": "g", "name": "G", "contactIds": ["c"], "wireIds": ["w"], "layout": {"x": 1, "y": [2]}},
            "contacts": {"c": {"id": "c", "groupId": "g", "content": 1, "ui": {"color": "red"}, "v2": None}},
            "wires": {"w": {"id": "w", "groupId": "g", "fromId": "c", "toId": "c", "curve": 0.5}},
        }
    },
    "currentGroupId": "g",
    "rootGroupId": "g",
}


def test_case_14_unmodelled_fields_of_contacts_groups_and_wires_survive_import_and_export(
    store: NetworkStore,
) -> None:
    state = network_from_json(EXTRA_DOC)
    assert state.groups["g"].contacts["c"].extra == {"ui": {"color": "red"}, "v2": None}
    store.save_network_state("x", state)
    assert store.load_network_state("x") == state
    exported = network_to_json(store.load_network_state("x"))  # type: ignore[arg-type]
    for kind, item in (("group", "g"), ("contacts", "c"), ("wires", "w")):
        original = EXTRA_DOC["groups"]["g"][kind]
        got = exported["groups"]["g"][kind]
        if kind != "group":
            original, got = original[item], got[item]
        assert {k: v for k, v in got.items() if k in original} == original, kind
    store.save_contact_content("x", "g", "c", 2)  # a content change keeps the other fields
    after = store.load_group_state("x", "g")
    assert after is not None and after.contacts["c"].extra == {"ui": {"color": "red"}, "v2": None}
    before = store.save_snapshot("x")
    state.groups["g"].wires["w"].extra = {"curve": 0.7}
    store.save_network_state("x", state)
    assert [(c.kind, c.item_id) for c in store.diff("x", before, None)] == [
        ("contact-updated", "c"),
        ("wire-updated", "w"),
    ]


def test_case_14_an_extra_field_may_not_shadow_a_modelled_one(store: NetworkStore) -> None:
    check = unchanged(store)
    state = group_state(c=1)
    state.contacts["c"].extra = {"content": 5}
    with pytest.raises(SerializationError, match="modelled field"):
        store.save_group_state("n", "g", state)
    state = group_state(c=1)
    state.group.extra = {1: "x"}  # type: ignore[dict-item]
    with pytest.raises(SerializationError, match="expected a string"):
        store.save_group_state("n", "g", state)
    check()


def test_case_14_unknown_top_level_keys_survive_import_writes_and_export(store: NetworkStore) -> None:
    doc = {**EXTRA_DOC, "bassline.version": {"major": 3}, "notes": "kept"}
    store.save_network_state("top", network_from_json(doc))
    store.save_contact_content("top", "g", "c", 3)  # a later write keeps them
    with store.batch("top") as batch:
        batch.save_contact_content("top", "g", "c", 4)
    state = store.load_network_state("top")
    assert state is not None and state.extra == {"bassline.version": {"major": 3}, "notes": "kept"}
    exported = network_to_json(state)
    assert exported["bassline.version"] == {"major": 3} and exported["notes"] == "kept"
    store.save_network_state("top", network_from_json({k: v for k, v in doc.items() if k != "notes"}))
    again = store.load_network_state("top")
    assert again is not None and again.extra == {"bassline.version": {"major": 3}}  # replaced, not merged


def test_case_14_unknown_keys_beside_a_groups_members_survive_writes_and_export(store: NetworkStore) -> None:
    doc = json.loads(json.dumps(EXTRA_DOC))
    doc["groups"]["g"]["layout"] = {"x": 10, "y": [1, 2]}
    store.save_network_state("gx", network_from_json(doc))
    store.save_contact_content("gx", "g", "c", 5)  # later writes keep them
    group = store.load_group_state("gx", "g")
    assert group is not None and group.extra == {"layout": {"x": 10, "y": [1, 2]}}
    state = store.load_network_state("gx")
    assert state is not None and network_to_json(state)["groups"]["g"]["layout"] == {"x": 10, "y": [1, 2]}
    before = store.save_snapshot("gx")
    group.extra = {"layout": {"x": 11}}
    store.save_group_state("gx", "g", group)
    assert [(c.kind, c.item_id) for c in store.diff("gx", before, None)] == [("group-updated", "g")]
    group.extra = {"contacts": 1}  # a modelled key may not be shadowed
    with pytest.raises(SerializationError, match="contacts"):
        store.save_group_state("gx", "g", group)


def _depth(value: Any) -> int:
    """Nesting depth of lists and maps, by recursion (the reference for codec's iterative check)."""
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


_values = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=30,
)


@given(_values, st.integers(min_value=0, max_value=6))
def test_the_depth_check_agrees_with_recursion_on_any_value(value: Any, limit: int) -> None:
    assert codec._depth_exceeds(value, limit) == (_depth(value) > limit)
