"""Public calls keep their contracts at the edges: found by a fuzzing pass over the API (session 17).

Each test names the defect it pins: a write that was dropped, a write that
touched what it should not, a block used after its end, a wrong-typed argument
that escaped as something other than a ``StorageError``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

import casstore
from casstore import Contact, Group, GroupState, NetworkState, Wire
from casstore.archive import archive, restore
from casstore.errors import InvalidStoreURL, NetworkNotFound, SerializationError, StorageError
from casstore.gc import collect_garbage
from casstore.model import NetworkStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore


@pytest.fixture(params=["memory", "lmdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NetworkStore]:
    objects = MemoryStore() if request.param == "memory" else LmdbStore(tmp_path / "store")
    with NetworkStore(objects) as opened:
        yield opened


def two_contacts() -> NetworkState:
    group = Group("root", "R", contact_ids=["a", "b"])
    return NetworkState({"root": GroupState(group, {"a": Contact("a", "root", 1), "b": Contact("b", "root", 2)})})


# ---------------------------------------------------------------- delete_contact


def test_a_transactions_delete_contact_is_committed_and_read_back(store: NetworkStore) -> None:
    store.save_network_state("n", two_contacts())
    with store.transaction("n") as tx:
        tx.delete_contact("n", "root", "b")
        assert tx.load_contact_content("n", "root", "b") is None, "read-your-writes sees the delete"
    assert tx.end_head != tx.start_head
    assert store.load_contact_content("n", "root", "b") is None
    store.save_contact_content("n", "root", "b", 2)
    store.transact("n", lambda view: view.delete_contact("n", "root", "b"))
    assert store.load_contact_content("n", "root", "b") is None
    with store.transaction("n") as tx:  # after another write in the same transaction too
        tx.save_contact_content("n", "root", "a", 10)
        tx.save_contact_content("n", "root", "b", 20)
        tx.delete_contact("n", "root", "b")
    state = store.load_group_state("n", "root")
    assert state is not None and set(state.contacts) == {"a"} and state.group.contact_ids == ["a"]
    assert state.contacts["a"].content == 10


def test_deleting_an_id_that_is_not_a_contact_of_the_group_keeps_wires_naming_it(store: NetworkStore) -> None:
    # a root wire to a subgroup's boundary contact "in": deleting "in" from root (not root's) is a no-op
    root = GroupState(
        Group("root", "R", contact_ids=["t"], wire_ids=["w"], subgroup_ids=["sub"]),
        {"t": Contact("t", "root", 1)},
        {"w": Wire("w", "root", "t", "in")},
    )
    sub = GroupState(
        Group("sub", "S", parent_id="root", contact_ids=["in"], boundary_contact_ids=["in"]),
        {"in": Contact("in", "sub", 0, is_boundary=True)},
    )
    store.save_network_state("n", NetworkState({"root": root, "sub": sub}))
    head = store.network_stats("n").head
    store.delete_contact("n", "root", "in")
    with store.batch("n") as batch:
        batch.delete_contact("n", "root", "in")
    after = store.load_group_state("n", "root")
    assert after is not None and set(after.wires) == {"w"} and after.group.wire_ids == ["w"]
    assert store.network_stats("n").head == head, "nothing changed"
    store.delete_contact("n", "root", "t")  # the contact itself: its wire goes with it
    gone = store.load_group_state("n", "root")
    assert gone is not None and gone.wires == {} and gone.contacts == {}


# ---------------------------------------------------------------- blocks


def test_a_batch_is_over_when_its_block_ends(store: NetworkStore) -> None:
    store.save_network_state("n", two_contacts())
    with store.batch("n") as batch:
        batch.save_contact_content("n", "root", "a", 2)
    with pytest.raises(StorageError, match="is over"):
        batch.save_contact_content("n", "root", "a", 3)
    with pytest.raises(StorageError, match="is over"):
        batch.delete_contact("n", "root", "a")
    assert store.load_contact_content("n", "root", "a") == 2
    with pytest.raises(RuntimeError), store.batch("n") as abandoned:
        abandoned.save_contact_content("n", "root", "a", 4)
        raise RuntimeError("the block fails")
    with pytest.raises(StorageError, match="is over"):
        abandoned.save_contact_content("n", "root", "a", 5)
    assert store.load_contact_content("n", "root", "a") == 2


def test_a_block_is_entered_once(store: NetworkStore) -> None:
    store.save_network_state("n", two_contacts())
    for block in (store.batch("n"), store.transaction("n")):
        with block as view:
            view.save_contact_content("n", "root", "a", 7)
        with pytest.raises(StorageError, match="used already"), block:
            pass
    assert store.load_contact_content("n", "root", "a") == 7


def test_a_transaction_starts_where_its_block_is_entered(store: NetworkStore) -> None:
    store.save_network_state("n", two_contacts())
    block = store.transaction("n")
    store.save_contact_content("n", "root", "a", 5)  # lands before the block is entered: no conflict
    with block as tx:
        tx.save_contact_content("n", "root", "b", tx.load_contact_content("n", "root", "a") + 1)
    assert store.load_contact_content("n", "root", "b") == 6


def test_writes_after_replacing_the_whole_network_apply_on_top_of_it(store: NetworkStore) -> None:
    store.save_network_state("n", two_contacts())
    replacement = two_contacts()
    replacement.groups["g2"] = GroupState(Group("g2", "G2"))
    for make_view in (store.batch, store.transaction):
        with make_view("n") as view:
            view.save_network_state("n", replacement)
            view.delete_contact("n", "root", "a")
            view.save_contact_content("n", "root", "b", "set")
            view.save_group_state("n", "new", GroupState(Group("new", "N")))
            view.delete_group("n", "g2")
        state = store.load_network_state("n")
        assert state is not None and sorted(state.groups) == ["new", "root"]
        assert state.groups["root"].group.contact_ids == ["b"] and state.groups["root"].contacts["b"].content == "set"
        fresh = NetworkStore(MemoryStore())  # the logical size kept by the write equals a fresh write's
        fresh.save_network_state("n", state)
        assert store.network_stats("n").logical_bytes == fresh.network_stats("n").logical_bytes
        store.save_network_state("n", two_contacts())
    assert casstore.verify(store).ok


def test_a_batch_of_deletes_on_a_missing_network_does_nothing(store: NetworkStore) -> None:
    with store.batch("missing") as batch:
        batch.delete_group("missing", "g")
        batch.delete_contact("missing", "g", "c")
    assert store.list_networks() == []
    with pytest.raises(NetworkNotFound), store.batch("missing") as batch:
        batch.delete_group("missing", "g")
        batch.save_contact_content("missing", "g", "c", 1)
    assert store.list_networks() == []


def test_a_transactions_reads_take_the_stores_signatures(store: NetworkStore) -> None:
    state = two_contacts()
    state.groups["root"].group.attributes = {"bassline.author": "bob"}
    store.save_network_state("n", state)
    with store.transaction("n") as tx:
        assert [g.group.id for g in tx.query_groups("n", {"author": "bob"})] == ["root"]
        assert tx.query_groups("n", {"author": "eve"}) == []
        with pytest.raises(SerializationError, match="group_id"):
            tx.load_contact_content("n", None, "a")  # type: ignore[arg-type]
        with pytest.raises(SerializationError, match="group_id"):
            tx.load_group_state("n", {"g": 1})  # type: ignore[arg-type]


# ---------------------------------------------------------------- wrong arguments


@pytest.mark.parametrize(
    "url",
    [
        "{tmp}/a\x00b",
        "lmdb://{tmp}/\ud800",
        "file://{tmp}/" + "x" * 300,
        "lmdb://{tmp}/big?map_size=99999999999999999999999",
    ],
)
def test_open_store_raises_storage_errors_only(tmp_path: Path, url: str) -> None:
    with pytest.raises(StorageError) as raised:
        casstore.open_store(url.format(tmp=tmp_path))
    assert raised.value.code and "cannot open" in str(raised.value)


def test_open_store_names_a_bad_path_as_a_bad_url(tmp_path: Path) -> None:
    with pytest.raises(InvalidStoreURL, match="null"):
        casstore.open_store(f"{tmp_path}/a\x00b")


@pytest.mark.parametrize("networks", ["home", 5, b"home"])
def test_push_and_pull_refuse_networks_that_are_not_a_list(networks: object) -> None:
    a, b = casstore.open_store("memory://"), casstore.open_store("memory://")
    a.save_network_state("home", two_contacts())
    for move in (casstore.push, casstore.pull):
        with pytest.raises(SerializationError, match="expected a list of network ids"):
            move(a, b, networks)  # type: ignore[arg-type]
    assert b.list_networks() == []
    casstore.push(a, b, ["home"])
    assert b.list_networks() == ["home"]


def test_store_functions_refuse_what_is_not_a_store(tmp_path: Path) -> None:
    for call in (
        lambda: casstore.verify("memory://"),  # type: ignore[arg-type]
        lambda: collect_garbage("memory://"),  # type: ignore[arg-type]
        lambda: archive("memory://", "n", str(tmp_path / "x.car")),  # type: ignore[arg-type]
        lambda: restore("memory://", str(tmp_path / "x.car")),  # type: ignore[arg-type]
    ):
        with pytest.raises(SerializationError, match="expected an opened store"):
            call()
    assert not (tmp_path / "x.car").exists()


@pytest.mark.parametrize("grace", [-1, float("nan"), float("inf"), "10", True])
def test_gc_refuses_a_bad_grace_period(grace: object) -> None:
    store = casstore.open_store("memory://")
    with pytest.raises(SerializationError, match="grace_minutes"):
        collect_garbage(store, grace_minutes=grace)  # type: ignore[arg-type]


def test_network_to_json_refuses_what_is_not_a_state() -> None:
    with pytest.raises(SerializationError, match="expected a NetworkState"):
        casstore.network_to_json({"groups": {}})  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="GroupState"):
        casstore.network_to_json(NetworkState({"g": 1}))  # type: ignore[dict-item]


# ---------------------------------------------------------------- values


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def test_network_extra_takes_values_as_deep_as_everywhere_else(store: NetworkStore) -> None:
    state = two_contacts()
    state.extra = {"v": nested(256)}
    store.save_network_state("n", state)
    loaded = store.load_network_state("n")
    assert loaded is not None and loaded.extra == {"v": nested(256)}
    state.extra = {"v": nested(257)}
    with pytest.raises(SerializationError, match="levels deep"):
        store.save_network_state("n", state)


@pytest.mark.parametrize("where", ["contact", "wire", "group", "group state"])
@pytest.mark.parametrize("empty", [None, "", [], 0])
def test_an_empty_extra_of_the_wrong_type_is_refused(store: NetworkStore, where: str, empty: object) -> None:
    group = Group("root", "R", contact_ids=["a"], wire_ids=["w"])
    contact = Contact("a", "root", 1)
    wire = Wire("w", "root", "a", "a")
    group_extra: object = {}
    if where == "contact":
        contact.extra = empty  # type: ignore[assignment]
    elif where == "wire":
        wire.extra = empty  # type: ignore[assignment]
    elif where == "group":
        group.extra = empty  # type: ignore[assignment]
    else:
        group_extra = empty
    state = NetworkState({"root": GroupState(group, {"a": contact}, {"w": wire}, group_extra)})  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="extra"):
        store.save_network_state("n", state)
    assert store.list_networks() == []


def test_negative_zero_is_stored_as_zero(store: NetworkStore) -> None:
    """DAG-CBOR has one zero (as JSON, Bassline's own format, does): documented in docs/format.md."""
    store.save_network_state("n", two_contacts())
    store.save_contact_content("n", "root", "a", {"x": -0.0})
    value = store.load_contact_content("n", "root", "a")
    assert value == {"x": 0.0} and math.copysign(1, value["x"]) == 1


# ---------------------------------------------------------------- several networks at once


def test_save_network_states_saves_none_when_one_state_is_invalid(store: NetworkStore) -> None:
    big = two_contacts()
    big.groups["root"].contacts["a"].content = "x" * 5000  # a content stored as an object of its own
    broken = two_contacts()
    broken.groups["root"].group.contact_ids.append("ghost")  # listed, not held: refused when encoded
    with pytest.raises(SerializationError, match="'ghost' is listed"):
        store.save_network_states({"first": big, "second": broken})
    assert store.list_networks() == [] and store.objects.blobs.stats().objects == 0  # not even the big content
    with pytest.raises(SerializationError, match="mapping"):
        store.save_network_states([("first", two_contacts())])  # type: ignore[arg-type]
    store.save_network_states({"first": big, "second": two_contacts()})
    assert sorted(store.list_networks()) == ["first", "second"]
    assert store.load_contact_content("first", "root", "a") == "x" * 5000
    assert store.load_contact_content("second", "root", "b") == 2
    assert casstore.verify(store).ok


def test_a_failed_clone_puts_back_every_ref_it_moved(tmp_path: Path) -> None:
    from casstore import codec, sync
    from casstore.errors import CorruptObject
    from casstore.model.refs import head_ref

    with NetworkStore(LmdbStore(tmp_path / "source")) as source:
        source.save_network_state("a", two_contacts())
        source.save_network_state("b", NetworkState({"root": GroupState(Group("root", "only b"), {})}))
        victim = source.refs.get(head_ref("b"))
        assert victim is not None
        frame = source.objects.blobs.get_frames([victim])[0]
        source.objects.blobs.delete_many([victim])
        source.objects.blobs.put_frames([(victim, b"\x00" + codec.encode_value("not b's root"))])
    with pytest.raises(CorruptObject):
        sync.clone(f"lmdb://{tmp_path / 'source'}", f"lmdb://{tmp_path / 'copy'}")
    with LmdbStore(tmp_path / "copy") as copy:
        assert copy.refs.list() == {}
    with LmdbStore(tmp_path / "source") as repaired:
        repaired.blobs.delete_many([victim])
        repaired.blobs.put_frames([(victim, frame)])  # type: ignore[list-item]
    sync.clone(f"lmdb://{tmp_path / 'source'}", f"lmdb://{tmp_path / 'copy'}")
    with casstore.open_store(tmp_path / "copy", create=False) as copy:
        assert sorted(copy.list_networks()) == ["a", "b"] and casstore.verify(copy).ok
