"""The Python API's rough edges of issue #12, each reproduced and its new behaviour asserted; and the calls
added with them: ``load_contact``, ``delete_contact``, ``network_stats``, snapshot-id prefixes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import casstore
from casstore import Contact, Group, GroupState, NetworkState, NetworkStore, Wire
from casstore.errors import InvalidId, NetworkNotFound, SerializationError, SnapshotNotFound, StorageError
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sample-network.json"


@pytest.fixture(params=["memory", "lmdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NetworkStore]:
    objects = MemoryStore() if request.param == "memory" else LmdbStore(tmp_path / "store")
    with NetworkStore(objects) as opened:
        yield opened


def sample(store: NetworkStore, network: str = "main") -> NetworkState:
    state = casstore.network_from_json(json.loads(SAMPLE.read_text()))
    store.save_network_state(network, state)
    return state


def authored(author: str, *tags: str) -> GroupState:
    return GroupState(Group(author, author, attributes={"bassline.author": author, "bassline.tags": list(tags)}))


# ---------------------------------------------------------------- the rough edges


def test_edge_diff_defaults_b_to_the_current_state(store: NetworkStore) -> None:
    sample(store)
    before = store.save_snapshot("main")
    store.save_contact_content("main", "sensors", "temperature", {"celsius": 30})
    # was: TypeError, diff() missing 1 required positional argument: 'b'
    assert store.diff("main", before) == store.diff("main", before, None)
    assert [(c.kind, c.item_id) for c in store.diff("main", before)] == [("contact-updated", "temperature")]


def test_edge_query_groups_takes_the_filter_mapping(store: NetworkStore) -> None:
    for gid, tags in (("bob", ("x", "y")), ("ann", ("x",))):
        store.save_group_state("main", gid, authored(gid, *tags))
    # was: TypeError, query_groups() takes 2 positional arguments
    assert [g.group.id for g in store.query_groups("main", {"author": "bob"})] == ["bob"]
    assert [g.group.id for g in store.query_groups("main", {"tags": ["x"]})] == ["ann", "bob"]
    assert [g.group.id for g in store.query_groups("main", {"tags": ["x"]}, author="ann")] == ["ann"]
    assert store.query_groups("main", {"author": "bob"}) == store.query_groups("main", author="bob")
    assert [g.group.id for g in store.query_groups("main", {})] == ["ann", "bob"]
    assert [g.group.id for g in store.query_groups("main", {"attributes": {"bassline.author": "ann"}})] == ["ann"]
    with pytest.raises(SerializationError, match="unknown key 'floor'"):
        store.query_groups("main", {"floor": 2})
    with pytest.raises(SerializationError, match="both"):
        store.query_groups("main", {"author": "bob"}, author="ann")
    with pytest.raises(SerializationError, match="mapping"):
        store.query_groups("main", ["author"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "filters",
    [
        {"tags": [1]},
        {"tags": "x"},
        {"tags": ["\ud800"]},
        {"author": "\udc80"},
        {"type": 3},
        {"attributes": {"\ud800": 1}},
        {"attributes": {1: 1}},
        {"attributes": {"a": {1, 2}}},
        {"attributes": ["a"]},
    ],
)
def test_edge_query_input_is_checked(store: NetworkStore, filters: dict[str, object]) -> None:
    store.save_group_state("main", "bob", authored("bob", "x"))
    # was: TypeError / AttributeError / UnicodeEncodeError from inside the index scan (and [] for an absent network)
    for network in ("main", "absent"):
        with pytest.raises(SerializationError):
            store.query_groups(network, **filters)  # type: ignore[arg-type]
        with pytest.raises(SerializationError):
            store.query_groups(network, filters)
    with pytest.raises(SerializationError):
        store.query_groups("\udc80")


def test_edge_snapshot_ids_take_unique_prefixes(store: NetworkStore) -> None:
    sample(store)
    first = store.save_snapshot("main", "first")
    store.save_contact_content("main", "sensors", "temperature", 1)
    second = store.save_snapshot("main")
    # was: SnapshotNotFound for every prefix the CLI accepts
    for prefix in (first[:16], first[:12], codec_hex(first)[:10]):  # 12 characters: clashes are ~1 in 10^7
        assert store.load_snapshot("main", prefix) == store.load_snapshot("main", first)
        assert store.resolve_snapshot("main", prefix) == first
    assert store.diff("main", first[:10], second[:10]) == store.diff("main", first, second)
    assert store.diff("main", first[:10]) == store.diff("main", first, None)
    with pytest.raises(SnapshotNotFound, match="8 or more"):
        store.load_snapshot("main", first[:7])
    with pytest.raises(SnapshotNotFound):
        store.load_snapshot("main", "bafyr4izzzzzzzzzz")
    store.delete_snapshot("main", first[:14])
    assert [s.id for s in store.list_snapshots("main")] == [second]
    # unknown, short or malformed: a no-op, as in upstream Bassline
    for text in (first, first[:14], "bafyr4izzzzzzzzzz", "nope", ""):
        store.delete_snapshot("main", text)
    assert [s.id for s in store.list_snapshots("main")] == [second]


def codec_hex(snapshot_id: str) -> str:
    from casstore import codec

    return codec.parse_id(snapshot_id).hex()


def test_edge_an_ambiguous_prefix_names_the_candidates(store: NetworkStore) -> None:
    sample(store)
    by_prefix: dict[str, list[str]] = {}
    while not any(len(ids) > 1 for ids in by_prefix.values()):  # 33 snapshots make a clash certain
        snapshot_id = store.save_snapshot("main")
        by_prefix.setdefault(snapshot_id[:8], []).append(snapshot_id)
    prefix, ids = next((p, ids) for p, ids in by_prefix.items() if len(ids) > 1)
    before = store.list_snapshots("main")
    for call in (store.load_snapshot, store.delete_snapshot, store.resolve_snapshot):
        with pytest.raises(InvalidId, match="ambiguous") as info:
            call("main", prefix)
        assert all(snapshot_id in str(info.value) for snapshot_id in ids)
        assert info.value.code == "INVALID_ID"
    with pytest.raises(InvalidId):
        store.diff("main", prefix)
    assert store.list_snapshots("main") == before  # the ambiguous delete deleted nothing


def test_edge_load_contact_tells_missing_from_null(store: NetworkStore) -> None:
    store.save_group_state("main", "g", GroupState(Group("g", "G", contact_ids=["c"]), {"c": Contact("c", "g")}))
    # was: both None through load_contact_content
    assert store.load_contact_content("main", "g", "c") is None
    assert store.load_contact_content("main", "g", "missing") is None
    assert store.load_contact("main", "g", "c") == Contact("c", "g", None)
    for network, group, contact in (("main", "g", "missing"), ("main", "nope", "c"), ("absent", "g", "c")):
        assert store.load_contact(network, group, contact) is None
    store.save_contact_content("main", "g", "c", {"big": "x" * 5000})  # a content stored as its own object
    loaded = store.load_contact("main", "g", "c")
    assert loaded is not None and loaded.content == {"big": "x" * 5000}
    with pytest.raises(SerializationError):
        store.load_contact("main", 1, "c")  # type: ignore[arg-type]


def test_edge_bassline_json_is_exported_at_the_top() -> None:
    # was: ImportError / AttributeError (only casstore.model.bassline_json had them)
    assert {"network_from_json", "network_to_json", "NetworkJSONError"} <= set(casstore.__all__)
    doc = json.loads(SAMPLE.read_text())
    state = casstore.network_from_json(doc)
    assert casstore.network_from_json(casstore.network_to_json(state)) == state
    with pytest.raises(casstore.NetworkJSONError) as info:
        casstore.network_from_json({"groups": 1})
    assert isinstance(info.value, StorageError)
    for name in casstore.__all__:
        assert hasattr(casstore, name), name


# ---------------------------------------------------------------- delete_contact


def wired_group() -> GroupState:
    group = Group("g", "G", contact_ids=["a", "b", "c"], wire_ids=["ab", "bc"], boundary_contact_ids=["a"])
    contacts = {cid: Contact(cid, "g", cid.upper(), is_boundary=cid == "a") for cid in "abc"}
    wires = {"ab": Wire("ab", "g", "a", "b"), "bc": Wire("bc", "g", "b", "c")}
    return GroupState(group, contacts, wires)


def test_delete_contact_takes_its_ids_and_the_groups_wires_naming_it(store: NetworkStore) -> None:
    store.save_group_state("main", "g", wired_group())
    store.save_group_state("main", "other", GroupState(Group("other", "O"), {}, {"x": Wire("x", "other", "a", "q")}))
    store.delete_contact("main", "g", "a")
    state = store.load_group_state("main", "g")
    assert state is not None
    assert set(state.contacts) == {"b", "c"} and set(state.wires) == {"bc"}
    assert state.group.contact_ids == ["b", "c"] and state.group.wire_ids == ["bc"]
    assert state.group.boundary_contact_ids == []
    other = store.load_group_state("main", "other")
    assert other is not None and set(other.wires) == {"x"}, "wires of other groups are not touched"
    store.delete_contact("main", "g", "b")
    after = store.load_group_state("main", "g")
    assert after is not None and after.wires == {} and after.group.wire_ids == [] and after.group.contact_ids == ["c"]
    assert_size_is_recomputed(store, "main")


def assert_size_is_recomputed(store: NetworkStore, network: str) -> None:
    """The logical size kept by the writes equals that of the same state written afresh."""
    state = store.load_network_state(network)
    assert state is not None
    fresh = NetworkStore(MemoryStore())
    fresh.save_network_state(network, state)
    assert store.network_stats(network).logical_bytes == fresh.network_stats(network).logical_bytes


def test_delete_contact_of_nothing_is_a_no_op(store: NetworkStore) -> None:
    store.delete_contact("absent", "g", "c")
    assert store.list_networks() == []
    store.save_group_state("main", "g", wired_group())
    head = store.network_stats("main").head
    store.delete_contact("main", "g", "zz")
    store.delete_contact("main", "nope", "a")
    assert store.network_stats("main").head == head, "nothing changed, so no new head"
    with pytest.raises(SerializationError):
        store.delete_contact("main", "g", "")
    with pytest.raises(SerializationError):
        store.delete_contact("main", "g", 3)  # type: ignore[arg-type]


def test_delete_contact_in_a_batch_is_one_write_in_order(store: NetworkStore) -> None:
    store.save_group_state("main", "g", wired_group())
    seen: list[GroupState] = []
    store.subscribe("main/g", seen.append)
    with store.batch("main") as batch:
        batch.save_contact_content("main", "g", "new", 1)  # created, then deleted: never there
        batch.delete_contact("main", "g", "new")
        batch.delete_contact("main", "g", "c")
        batch.save_contact_content("main", "g", "c", "again")  # deleted, then re-created
        batch.delete_contact("main", "g", "b")
    assert len(seen) == 1, "one write, one notification"
    state = store.load_group_state("main", "g")
    assert state is not None
    assert state.group.contact_ids == ["a", "c"] and state.group.wire_ids == []
    assert state.contacts["c"] == Contact("c", "g", "again") and "new" not in state.contacts
    assert_size_is_recomputed(store, "main")
    with pytest.raises(SerializationError), store.batch("main") as batch:
        batch.delete_contact("other", "g", "a")
    # after replacing the whole network, a delete applies to the replacement
    with store.batch("main") as batch:
        batch.save_network_state("main", NetworkState({"g": wired_group()}))
        batch.delete_contact("main", "g", "a")
    assert store.load_contact("main", "g", "a") is None and store.load_contact("main", "g", "b") is not None


def test_a_contact_set_after_its_group_was_replaced_in_the_same_batch_is_listed(store: NetworkStore) -> None:
    store.save_group_state("main", "g", wired_group())
    only_a = GroupState(Group("g", "G", contact_ids=["a"]), {"a": Contact("a", "g", "A")}, {})
    with store.batch("main") as batch:
        batch.save_group_state("main", "g", only_a)  # drops b and c
        batch.save_contact_content("main", "g", "c", "back")  # then re-creates c
        batch.save_contact_content("main", "g", "new", 1)
        batch.save_contact_content("main", "g", "a", "A2")
    one_by_one = NetworkStore(MemoryStore())
    one_by_one.save_group_state("main", "g", wired_group())
    one_by_one.save_group_state("main", "g", only_a)
    for cid, content in (("c", "back"), ("new", 1), ("a", "A2")):
        one_by_one.save_contact_content("main", "g", cid, content)
    state = store.load_group_state("main", "g")
    assert state is not None and state.group.contact_ids == ["a", "c", "new"]
    assert state == one_by_one.load_group_state("main", "g")


# ---------------------------------------------------------------- network_stats


def test_network_stats(store: NetworkStore) -> None:
    state = sample(store)
    figures = store.network_stats("main")
    assert (figures.groups, figures.contacts, figures.wires) == (
        len(state.groups),
        sum(len(g.contacts) for g in state.groups.values()),
        sum(len(g.wires) for g in state.groups.values()),
    )
    assert figures.snapshots == 0 and figures.last_snapshot_at is None and figures.last_change_at is None
    assert figures.changed_since_snapshot and figures.logical_bytes > 0
    assert figures.current_group_id == state.current_group_id and figures.root_group_id == state.root_group_id
    store.save_snapshot("main", "one")
    snapshot = store.list_snapshots("main")[0]
    figures = store.network_stats("main")
    assert figures.snapshots == 1 and not figures.changed_since_snapshot
    assert figures.last_snapshot_at == figures.last_change_at == snapshot.created_at
    assert figures.logical_bytes == snapshot.size and figures.head == snapshot.root
    store.save_contact_content("main", "sensors", "extra", 1)
    figures = store.network_stats("main")
    assert figures.changed_since_snapshot and figures.last_change_at is None and figures.contacts == 10
    with pytest.raises(NetworkNotFound):
        store.network_stats("absent")


def test_network_stats_counts_a_tree_of_many_leaves() -> None:
    store = NetworkStore(MemoryStore())
    groups = {
        f"g{g:03d}": GroupState(
            Group(f"g{g:03d}", "G"),
            {f"c{i}": Contact(f"c{i}", f"g{g:03d}", i) for i in range(50)},
            {f"w{i}": Wire(f"w{i}", f"g{g:03d}", "c0", f"c{i}") for i in range(7)},
        )
        for g in range(120)
    }
    store.save_network_state("big", NetworkState(groups, "g000", "g000"))
    figures = store.network_stats("big")
    assert (figures.groups, figures.contacts, figures.wires) == (120, 6000, 840)


# ---------------------------------------------------------------- push, pull, clone by URL


def test_edge_push_pull_and_clone_take_a_url(tmp_path: Path) -> None:
    here = casstore.open_store(f"file://{tmp_path / 'here'}")
    sample(here)
    here.save_snapshot("main", "first")
    there_url = f"file://{tmp_path / 'there'}"
    casstore.open_store(there_url).close()
    # was: AttributeError: 'str' object has no attribute 'url'
    assert casstore.push(here, there_url).networks == {"main": "created"}
    copy_url = f"file://{tmp_path / 'copy'}"
    cloned = casstore.clone(there_url, copy_url)  # a URL on both sides; the copy is created
    assert cloned.networks == {"main": "created"} and cloned.snapshots_copied == 1
    with casstore.open_store(copy_url, create=False) as copy:
        assert casstore.sync.remotes(copy) == {"origin": there_url}
        copy.save_contact_content("main", "sensors", "temperature", 99)
        assert casstore.push(copy, "origin").networks == {"main": "updated"}  # a remote's name stands for its URL
        assert casstore.pull(copy, there_url).networks == {"main": "up-to-date"}  # tracked as origin: agreed
        with pytest.raises(casstore.errors.NetworkExists):
            casstore.clone(here, copy)
    assert casstore.pull(here, there_url).networks == {"main": "updated"}
    assert here.load_contact_content("main", "sensors", "temperature") == 99
    with pytest.raises(casstore.errors.StoreNotFound):
        casstore.push(here, f"file://{tmp_path / 'nowhere'}")
    with pytest.raises(casstore.errors.InvalidStoreURL):
        casstore.push(here, 3)  # type: ignore[arg-type]
    here.close()


def test_a_diverged_network_says_what_diverged() -> None:
    a, b = NetworkStore(MemoryStore()), NetworkStore(MemoryStore())
    sample(a)
    casstore.push(a, b, remote="b")
    agreed = a.network_stats("main").head
    a.save_contact_content("main", "sensors", "temperature", "a")
    a_snapshot = a.save_snapshot("main", "a's")
    b.save_contact_content("main", "sensors", "temperature", "b")
    b_snapshot = b.save_snapshot("main", "b's")
    report = casstore.push(a, b, remote="b")
    assert report.networks == {"main": "diverged"}
    assert report.diverged == {
        "main": casstore.Divergence(
            "main",
            local_head=a.network_stats("main").head,
            remote_head=b.network_stats("main").head,
            agreed_head=agreed,
            local_only_snapshots=[a_snapshot],
            remote_only_snapshots=[b_snapshot],
        )
    }
    pulled = casstore.pull(a, b, remote="b")  # the same view from the same side; a's snapshot now on b too
    assert pulled.diverged["main"].local_head == a.network_stats("main").head
    assert pulled.diverged["main"].remote_only_snapshots == [b_snapshot]
    assert pulled.diverged["main"].local_only_snapshots == []
    assert casstore.push(a, b, remote="b", force=True).diverged == {}
