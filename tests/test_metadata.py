"""Network metadata and created/updated times (#16 item 5): in the root, the API, snapshots, sync, JSON, checks."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from casstore import codec, open_store
from casstore.errors import NetworkNotFound, SerializationError
from casstore.model import Contact, Group, GroupState, NetworkState, NetworkStore
from casstore.model.bassline_json import NetworkJSONError, network_from_json, network_to_json
from casstore.model.refs import head_ref
from casstore.model.schema import check_network_root
from casstore.store.memory import MemoryStore
from casstore.sync import push
from casstore.verify import verify


def state(value: object = 1, metadata: dict[str, object] | None = None) -> NetworkState:
    group = GroupState(Group("root", "Root", contact_ids=["c"]), {"c": Contact("c", "root", value)})
    return NetworkState({"root": group}, metadata=metadata or {})


@pytest.fixture
def store() -> NetworkStore:
    return NetworkStore(MemoryStore())


def test_metadata_is_saved_loaded_replaced_and_kept_by_other_writes(store: NetworkStore) -> None:
    assert store.load_network_metadata("n") is None
    with pytest.raises(NetworkNotFound):
        store.save_network_metadata("n", {"a": 1})
    store.save_network_state("n", state(metadata={"owner": "alice", "tags": ["x"], "raw": b"\x00"}))
    assert store.load_network_metadata("n") == {"owner": "alice", "tags": ["x"], "raw": b"\x00"}
    store.save_contact_content("n", "root", "c", 2)  # other writes keep it
    assert store.load_network_metadata("n") == {"owner": "alice", "tags": ["x"], "raw": b"\x00"}
    store.save_network_metadata("n", {"owner": "bob"})
    loaded = store.load_network_state("n")
    assert (
        loaded is not None and loaded.metadata == {"owner": "bob"} and loaded.groups["root"].contacts["c"].content == 2
    )
    with store.batch("n") as batch:
        batch.save_contact_content("n", "root", "c", 3)
        batch.save_network_metadata("n", {})
    assert store.load_network_metadata("n") == {}
    assert "m" not in store.network_root(store.refs.get(head_ref("n")))  # type: ignore[arg-type]


def test_bad_metadata_is_refused_before_anything_is_written(store: NetworkStore) -> None:
    store.save_network_state("n", state())
    head = store.refs.get(head_ref("n"))
    for bad in ({1: "x"}, {"x": {1, 2}}, ["not", "a", "dict"]):
        with pytest.raises(SerializationError):
            store.save_network_metadata("n", bad)  # type: ignore[arg-type]
        with pytest.raises(SerializationError):
            store.save_network_state("n", NetworkState(metadata=bad))  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="timezone-aware"):
        store.save_network_state("n", NetworkState(created_at=datetime(2020, 1, 1)), keep_times=True)
    assert store.refs.get(head_ref("n")) == head


def test_times_created_kept_updated_moved_and_outside_equality(store: NetworkStore) -> None:
    before = datetime.now(UTC)
    store.save_network_state("n", state())
    first = store.load_network_state("n")
    assert first is not None and first.created_at is not None and first.updated_at is not None
    assert before <= first.created_at == first.updated_at <= datetime.now(UTC)
    time.sleep(0.002)
    store.save_contact_content("n", "root", "c", 2)
    store.save_network_state("n", state(2))  # a whole-network write keeps created too
    second = store.load_network_state("n")
    assert second is not None and second.created_at == first.created_at
    assert second.updated_at is not None and second.updated_at > first.updated_at
    assert second == state(2) and first != second  # times never take part in ==
    head = store.refs.get(head_ref("n"))
    store.save_contact_content("n", "root", "c", 2)  # a write changing nothing moves nothing
    store.save_network_state("n", state(2))
    assert store.refs.get(head_ref("n")) == head


def test_metadata_and_times_travel_in_snapshots_sync_and_keep_times_gives_the_same_root(tmp_path: Path) -> None:
    source = NetworkStore(MemoryStore())
    source.save_network_state("n", state(metadata={"k": "v"}))
    snap = source.save_snapshot("n")
    source.save_network_metadata("n", {"k": "w"})
    assert source.load_snapshot("n", snap).metadata == {"k": "v"}
    with open_store(tmp_path / "lmdb") as target:
        push(source, target)
        original = source.load_network_state("n")
        copied = target.load_network_state("n")
        assert copied == original and copied is not None and original is not None
        assert (copied.created_at, copied.updated_at) == (original.created_at, original.updated_at)
        assert verify(target).ok
        # through the JSON shape, with the times kept: the very same root
        doc = network_to_json(original)
        assert set(doc["network"]) == {"metadata", "createdAt", "updatedAt"}
        target.save_network_state("again", network_from_json(doc), keep_times=True)
        assert target.refs.get(head_ref("again")) == source.refs.get(head_ref("n"))


def test_the_json_network_key_is_checked() -> None:
    assert network_from_json({"groups": {}}).metadata == {}
    bads: list[dict[str, object]] = [{"network": []}, {"network": {"metadata": 3}}, {"network": {"createdAt": "x"}}]
    for bad in bads:
        with pytest.raises(NetworkJSONError):
            network_from_json({"groups": {}, **bad})
    with pytest.raises(NetworkJSONError, match="time zone"):
        network_from_json({"groups": {}, "network": {"updatedAt": "2020-01-01T00:00:00"}})


def test_the_structure_check_reads_the_new_root_fields(store: NetworkStore) -> None:
    store.save_network_state("n", state(metadata={"a": 1}))
    data = store.blobs.get(store.refs.get(head_ref("n")))  # type: ignore[arg-type]
    assert len(check_network_root(data)) == 4
    root = codec.decode(data)
    for field, bad in (("m", "text"), ("m", codec.encode_value([1])), ("ct", "noon"), ("ut", "2020-01-01T00:00:00")):
        broken = codec.encode({**root, field: bad})
        with pytest.raises(Exception, match="network root"):
            check_network_root(broken)
