"""Packs and deltas: round trips, and every way a damaged pack is refused before anything is stored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casstore import codec
from casstore.errors import CorruptObject, InvalidPack, ObjectNotFound
from casstore.pack import (
    EMPTY_PACK,
    MAGIC,
    SPLICE,
    ZSTD,
    PackBuilder,
    VerifiedPack,
    apply_delta,
    apply_pack,
    common_prefix,
    common_suffix,
    make_delta,
    read_pack,
)
from casstore.store.base import RefUpdate
from casstore.store.memory import MemoryStore


@st.composite
def edited(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A base and a version of it with a few spans replaced, inserted or deleted (or an unrelated string)."""
    base = draw(st.binary(max_size=3000))
    if draw(st.booleans()):
        return base, draw(st.binary(max_size=300))
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 40))
        data[at : at + cut] = draw(st.binary(max_size=40))
    return base, bytes(data)


@given(edited())
def test_a_delta_rebuilds_exactly(pair: tuple[bytes, bytes]) -> None:
    base, data = pair
    delta = make_delta(data, base)
    assert apply_delta(delta, base, codec.hash_bytes(data)) == data


def _naive_prefix(a: bytes, b: bytes) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@given(edited(), st.integers(0, 300))
def test_common_prefix_and_suffix_agree_with_a_byte_by_byte_count(pair: tuple[bytes, bytes], cut: int) -> None:
    base, data = pair
    for a, b in ((data, base), (base, data), (data, data[: max(0, len(data) - cut)])):
        prefix = common_prefix(a, b)
        assert prefix == _naive_prefix(a, b)
        limit = min(len(a), len(b)) - prefix
        assert common_suffix(a, b, limit) == min(limit, _naive_prefix(a[::-1], b[::-1]))


def test_a_one_value_change_is_a_small_splice() -> None:
    base = codec.encode({"k": [f"key-{i}" for i in range(60)], "v": [f"value {i}" * 5 for i in range(60)]})
    changed = codec.encode({"k": [f"key-{i}" for i in range(60)], "v": [f"value {i}" * 5 for i in range(59)] + ["x"]})
    delta = make_delta(changed, base)
    assert delta[0] == SPLICE and len(delta) < 60 < len(changed)


def test_a_large_rewrite_uses_zstd_with_the_base_as_dictionary() -> None:
    words = [f"word{i:04d} " for i in range(400)]
    base = "".join(words).encode()
    data = "".join([*words[:50], "new ", *words[51:300], "new ", *words[301:]]).encode()  # two distant edits
    delta = make_delta(data, base)
    assert delta[0] == ZSTD and len(delta) < 200 < len(data) // 10  # a splice would carry 250 words
    assert apply_delta(delta, base, codec.hash_bytes(data)) == data


def pack_of(store: MemoryStore, base: bytes, data: bytes, extra: bytes) -> tuple[bytes, bytes, bytes]:
    """A pack with ``data`` as a delta against ``base`` (held by ``store``) and ``extra`` in full."""
    [(base_id, base_frame)] = codec.frame_many([base])
    store.blobs.put_frames([(base_id, base_frame)])
    [(data_id, data_frame), (extra_id, extra_frame)] = codec.frame_many([data, extra])
    builder = PackBuilder()
    builder.add(data_id, data_frame, data, base_id, base)
    builder.add_frame(extra_id, extra_frame)
    assert builder.deltas == 1 and builder.objects == 2
    return builder.finish(), data_id, extra_id


BASE = codec.encode({"v": [f"contact value number {i}" for i in range(100)]})
DATA = codec.encode({"v": [f"contact value number {i}" for i in range(99)] + ["changed"]})
EXTRA = codec.encode({"other": "object"})


def test_apply_pack_rebuilds_every_object_as_a_verified_frame() -> None:
    store = MemoryStore()
    pack, data_id, extra_id = pack_of(store, BASE, DATA, EXTRA)
    frames = apply_pack(store.blobs, pack)
    assert [digest for digest, _ in frames] == [data_id, extra_id]
    assert [codec.unframe(frame, digest) for digest, frame in frames] == [DATA, EXTRA]
    assert len(pack) < len(MAGIC) + 2 * 33 + 32 + len(EXTRA) + 40  # the delta is a few bytes


@pytest.mark.parametrize(
    ("damage", "error"),
    [
        (lambda p: b"NOTAPACK" + p[8:], InvalidPack),
        (lambda p: p[:-3], InvalidPack),  # truncated inside the last entry
        (lambda p: p[: len(MAGIC) + 20], InvalidPack),  # truncated inside the first header
        (lambda p: p[: len(MAGIC)] + b"\x07" + p[len(MAGIC) + 1 :], InvalidPack),  # unknown entry tag
        (lambda p: p[:-1] + bytes([p[-1] ^ 1]), CorruptObject),  # a flipped byte in the full object
    ],
)
def test_a_damaged_pack_is_refused(damage: object, error: type[Exception]) -> None:
    store = MemoryStore()
    pack, _, _ = pack_of(store, BASE, DATA, EXTRA)
    with pytest.raises(error):
        apply_pack(store.blobs, damage(pack))  # type: ignore[operator]


def test_a_delta_that_does_not_rebuild_its_object_is_corrupt() -> None:
    store = MemoryStore()
    pack, data_id, _ = pack_of(store, BASE, DATA, EXTRA)
    entries = list(read_pack(pack))
    at = pack.index(entries[0].payload) + len(entries[0].payload) - 1  # the last byte of the delta's new middle
    with pytest.raises(CorruptObject) as info:
        apply_pack(store.blobs, pack[:at] + bytes([pack[at] ^ 1]) + pack[at + 1 :])
    assert codec.format_id(data_id) in str(info.value) and info.value.code == "STORAGE_CORRUPTION_ERROR"


def test_a_delta_whose_base_the_receiver_lacks_names_it() -> None:
    store = MemoryStore()
    pack, _, _ = pack_of(store, BASE, DATA, EXTRA)
    base_id = codec.hash_bytes(BASE)
    store.blobs.delete_many([base_id])
    with pytest.raises(ObjectNotFound) as info:
        apply_pack(store.blobs, pack)
    assert codec.format_id(base_id) in str(info.value) and info.value.code == "OBJECT_NOT_FOUND"


def test_a_corrupt_base_is_never_used() -> None:
    store = MemoryStore()
    pack, _, _ = pack_of(store, BASE, DATA, EXTRA)
    base_id = codec.hash_bytes(BASE)
    store.blobs.delete_many([base_id])  # a held object keeps its frame: damage it by replacing it
    store.blobs.put_frames([(base_id, b"\x00" + BASE[:-1] + b"!")])  # stored bytes that do not hash to the id
    with pytest.raises(CorruptObject) as info:
        apply_pack(store.blobs, pack)
    assert codec.format_id(base_id) in str(info.value)


def test_an_empty_pack_moves_refs_alone() -> None:
    store = MemoryStore()
    assert PackBuilder().finish() == EMPTY_PACK and apply_pack(store.blobs, EMPTY_PACK) == []
    digest = store.blobs.put(EXTRA)
    objects = store.blobs.stats().objects
    assert store.receive_pack(EMPTY_PACK, [RefUpdate("config/x", None, digest)]) == 0
    assert store.refs.get("config/x") == digest and store.blobs.stats().objects == objects


def test_only_a_pack_built_here_from_checked_frames_skips_the_second_hash_of_whole_frames() -> None:
    store = MemoryStore()
    [(extra_id, extra_frame)] = codec.frame_many([EXTRA])
    bad_frame = extra_frame[:-1] + bytes([extra_frame[-1] ^ 1])
    assert not isinstance(PackBuilder().finish(), VerifiedPack)
    builder = PackBuilder(verified=True)
    builder.add_frame(extra_id, bad_frame)  # a caller that breaks its promise: the mark is all that is trusted
    vouched = builder.finish()
    assert isinstance(vouched, VerifiedPack) and apply_pack(store.blobs, vouched) == [(extra_id, bad_frame)]
    for travelled in (bytes(vouched), vouched[:], b"" + vouched):  # what arrives from elsewhere is plain bytes
        assert type(travelled) is bytes
        with pytest.raises(CorruptObject):
            apply_pack(store.blobs, travelled)


def test_a_delta_in_a_verified_pack_is_still_rebuilt_and_re_hashed() -> None:
    store = MemoryStore()
    pack, data_id, _ = pack_of(store, BASE, DATA, EXTRA)
    entries = list(read_pack(pack))
    at = pack.index(entries[0].payload) + len(entries[0].payload) - 1
    with pytest.raises(CorruptObject) as info:
        apply_pack(store.blobs, VerifiedPack(pack[:at] + bytes([pack[at] ^ 1]) + pack[at + 1 :]))
    assert codec.format_id(data_id) in str(info.value)


def test_add_frames_builds_what_add_frame_does() -> None:
    items = codec.frame_many([BASE, DATA, EXTRA])
    one, many = PackBuilder(), PackBuilder()
    for digest, frame in items:
        one.add_frame(digest, frame)
    many.add_frames(items)
    assert one.finish() == many.finish() and one.objects == many.objects == 3
    verified = PackBuilder(verified=True)
    verified.add_frames(items)
    pack = verified.finish()
    assert isinstance(pack, VerifiedPack) and pack == one.finish() and pack.entries == list(read_pack(pack))
