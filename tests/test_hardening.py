"""Regression tests for the hardening findings (issue #11), each named after its numbered case."""

from __future__ import annotations

from pathlib import Path

import pytest

import casstore
from casstore import Contact, Group, GroupState, NetworkState, codec, errors
from casstore.errors import CorruptObject, InvalidStoreURL, SerializationError, StorageError


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def one_contact(content: object) -> NetworkState:
    group = Group("root", "Root", contact_ids=["c"])
    return NetworkState({"root": GroupState(group, {"c": Contact("c", "root", content)})})


@pytest.mark.parametrize("depth", [codec.MAX_DEPTH + 1, 999, 1_000, 5_000])
def test_case_4_values_deeper_than_the_limit_are_refused_by_every_write(depth: int) -> None:
    with casstore.open_store("memory://") as store:
        store.save_network_state("n", one_contact(1))
        refs_before = store.refs.list()
        objects_before = store.blobs.stats()
        with pytest.raises(SerializationError, match="levels deep"):
            store.save_contact_content("n", "root", "c", nested(depth))
        with pytest.raises(SerializationError, match="levels deep"):
            store.save_network_state("n", one_contact(nested(depth)))
        with pytest.raises(SerializationError, match="levels deep"), store.batch("n") as batch:
            batch.save_contact_content("n", "root", "c", nested(depth))
        assert store.refs.list() == refs_before and store.blobs.stats() == objects_before
        assert store.load_contact_content("n", "root", "c") == 1


def test_case_4_values_at_the_limit_round_trip_through_every_read_path() -> None:
    from casstore.model.bassline_json import network_from_json, network_to_json

    deepest = nested(codec.MAX_DEPTH)
    with casstore.open_store("memory://") as store:
        store.save_network_state("n", one_contact(1))
        first = store.save_snapshot("n")
        store.save_contact_content("n", "root", "c", deepest)
        assert store.load_contact_content("n", "root", "c") == deepest
        state = store.load_network_state("n")
        assert state is not None
        assert network_from_json(network_to_json(state)).groups["root"].contacts["c"].content == deepest
        (change,) = store.diff("n", first, None)
        assert change.kind == "contact-updated"


def test_case_7_a_flipped_bit_in_a_zstd_frame_header_is_corrupt_object() -> None:
    data = codec.encode_value({"text": "x" * 4000, "n": list(range(200))})
    ((digest, frame),) = codec.frame_many([data])
    assert frame[:1] == b"\x01", "the test needs a compressed frame"
    caught = 0
    for at in range(1, 19):  # the zstd frame header, and the start of the first block
        for bit in range(8):
            damaged = bytearray(frame)
            damaged[at] ^= 1 << bit
            try:
                assert codec.unframe(bytes(damaged), digest) == data  # a flip zstd ignores still yields the data
            except CorruptObject as exc:
                assert codec.format_id(digest) in str(exc)
                caught += 1
    assert caught >= 18 * 8 - 8


def test_case_7_a_header_declaring_a_huge_size_is_refused_without_allocating_it() -> None:
    import zstandard

    data = b"y" * 10_000
    packed = zstandard.ZstdCompressor().compress(data)
    params = zstandard.get_frame_parameters(packed)
    assert params.content_size == len(data)
    # A frame header whose content size field (8 bytes) claims 2^40 bytes.
    forged = bytearray(b"\x28\xb5\x2f\xfd\xc0") + (1 << 40).to_bytes(8, "little") + packed[6:]
    with pytest.raises(CorruptObject, match="impossible size"):
        codec.unframe(b"\x01" + bytes(forged), codec.hash_bytes(data))


def test_case_5_bad_store_options_and_paths_are_storage_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidStoreURL, match="map_size"):
        casstore.open_store(f"lmdb://{tmp_path}/a?map_size=-5")
    with pytest.raises(InvalidStoreURL, match="map_size"):
        casstore.open_store(f"lmdb://{tmp_path}/a?map_size=lots")
    with pytest.raises(InvalidStoreURL, match="sync must be one of full, data, off, not 'fast'"):
        casstore.open_store(f"lmdb://{tmp_path}/a?sync=fast")
    for url in ("lmdb:///proc/self/nope", "file:///proc/self/nope"):
        with pytest.raises(StorageError, match="/proc/self/nope"):
            casstore.open_store(url)


def test_case_5_permission_denied_is_storage_permission_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> None:  # as a non-root user on a 0500 directory
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    for url in (f"file://{tmp_path}/store", f"lmdb://{tmp_path}/store"):
        with pytest.raises(errors.StoragePermissionError, match="Permission denied"):
            casstore.open_store(url)


def test_case_15_error_codes_follow_upstream_bassline() -> None:
    assert SerializationError.code == "STORAGE_SERIALIZATION_ERROR"
    assert CorruptObject.code == "STORAGE_CORRUPTION_ERROR"
    assert errors.StorageConnectionError.code == "STORAGE_CONNECTION_ERROR"
    assert errors.StoragePermissionError.code == "STORAGE_PERMISSION_ERROR"
    assert errors.NetworkNotFound.code == "NETWORK_NOT_FOUND"
    assert errors.GroupNotFound.code == "GROUP_NOT_FOUND"
    assert errors.SnapshotNotFound.code == "SNAPSHOT_NOT_FOUND"


def test_case_15_every_error_code_is_documented_once() -> None:
    table = (Path(__file__).parent.parent / "docs" / "errors.md").read_text()
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, StorageError) and value.__module__ == errors.__name__
    ]
    codes = {cls.code for cls in classes}
    assert len(codes) == len(classes), "two error classes share a code"
    for cls in classes:
        assert f"`{cls.code}`" in table and f"`{cls.__name__}`" in table, cls.__name__
