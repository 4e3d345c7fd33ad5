"""The delta base cache (casstore/store/basecache.py): bounded, bypassed by gc and verify, not trusted by receivers."""

from __future__ import annotations

import importlib
import random
from collections.abc import Sequence
from pathlib import Path

import pytest

import casstore
from casstore import codec, pack
from casstore.errors import CorruptObject
from casstore.gc import collect_garbage
from casstore.model import Contact, Group, GroupState, NetworkState
from casstore.store import deltas
from casstore.store.base import BlobStore
from casstore.store.basecache import DeltaBaseCache, StoredReads
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryBlobs, MemoryStore
from casstore.verify import verify

A, B, C, D = (bytes([n]) * 32 for n in range(4))


def test_the_cache_is_bounded_in_bytes_and_evicts_the_least_recently_used() -> None:
    cache = DeltaBaseCache(max_bytes=100)
    cache.add([(A, b"a" * 40), (B, b"b" * 40)])
    assert cache.get_many([A]) == {A: b"a" * 40}  # A is now the most recently used
    cache.add([(C, b"c" * 40)])
    assert cache.get_many([A, B, C]) == {A: b"a" * 40, C: b"c" * 40}
    assert cache.nbytes == 80 and len(cache) == 2
    cache.add([(D, b"d" * 101)])  # larger than the whole cache: not kept, nothing evicted for it
    assert cache.get_many([D]) == {} and len(cache) == 2
    with cache.bypassed():
        assert cache.get_many([A, C]) == {}
    assert set(cache.get_many([A, C])) == {A, C}
    assert DeltaBaseCache(max_bytes=0).get_many([A]) == {}


def network(groups: int = 3, contacts: int = 60) -> NetworkState:
    rnd = random.Random(5)
    states = {}
    for g in range(groups):
        gid = f"g{g}"
        items = {
            f"c{i:03}": Contact(f"c{i:03}", gid, {"v": rnd.randint(0, 10**6), "pad": "x" * 60}) for i in range(contacts)
        }
        states[gid] = GroupState(Group(gid, gid, contact_ids=list(items)), items, {})
    return NetworkState(states, "g0", "g0")


def delta_leaves(blobs: BlobStore) -> dict[bytes, bytes]:
    """Every delta-framed object -> its base."""
    hashes = list(blobs.iter_hashes())
    return {
        digest: deltas.parse_delta_frame(frame)[1]
        for digest, frame in zip(hashes, blobs.get_frames(hashes), strict=True)
        if frame is not None and deltas.frame_chain(frame) > 0
    }


def test_a_write_keeps_what_it_made_so_reading_it_back_rebuilds_no_chain() -> None:
    store = casstore.NetworkStore(MemoryStore())
    store.save_network_state("n", network())
    store.save_contact_content("n", "g1", "c007", {"v": "changed"})
    blobs = store.objects.blobs
    leaf, base = next(iter(delta_leaves(blobs).items()))
    assert set(blobs.delta_bases.get_many([leaf, base])) == {leaf, base}

    read: list[bytes] = []
    get_frames = blobs.get_frames

    def counted(digests: Sequence[bytes]) -> list[bytes | None]:
        read.extend(digests)
        return get_frames(digests)

    blobs.get_frames = counted  # type: ignore[method-assign]
    assert codec.hash_bytes(blobs.get(leaf)) == leaf
    assert read == [leaf], "the object's own frame is read (it must be present); its base is not"
    read.clear()
    with blobs.delta_bases.bypassed():
        assert codec.hash_bytes(blobs.get(leaf)) == leaf
    assert read == [leaf, base]


def test_verify_and_gc_judge_chains_by_the_stored_bases_not_the_cache(tmp_path: Path) -> None:
    store = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
    store.save_network_state("n", network())
    store.save_contact_content("n", "g1", "c007", {"v": "changed"})
    blobs = store.objects.blobs
    leaf, base = next(iter(delta_leaves(blobs).items()))
    assert base in blobs.delta_bases.get_many([base])
    # the old leaf is unreachable now, but a stored delta needs it: gc keeps it, cached or not
    report = collect_garbage(store, grace_minutes=0)
    assert base in blobs and report.kept_bases >= 1 and verify(store).ok
    blobs.delete_many([base])  # a broken chain (damage: gc never does this)
    assert verify(store).corrupt == [codec.format_id(leaf)]


def test_a_bypassing_reader_keeps_only_what_it_rebuilt_from_the_store_itself() -> None:
    cache = DeltaBaseCache()
    cache.add([(A, b"cached")])
    reads = StoredReads(max_bytes=100)
    cache.keep_rebuilt([(B, b"not bypassed: dropped")])
    with cache.bypassed(reads):
        cache.keep_rebuilt([(B, b"b" * 40), (C, b"c" * 40)])
        assert cache.get_many([A, B, C]) == {B: b"b" * 40, C: b"c" * 40}  # never the cache's own entries
        cache.keep_rebuilt([(D, b"d" * 40)])  # past the bound: the oldest goes first
        assert set(cache.get_many([B, C, D])) == {C, D}
        with cache.bypassed():  # gc inside a verify: the outer reader's record still stands
            assert set(cache.get_many([C])) == {C}
    with cache.bypassed():
        assert cache.get_many([C, D]) == {}
    assert cache.get_many([A, C]) == {A: b"cached"}


@pytest.mark.parametrize("batch", [2, 2048])
def test_verify_rebuilds_each_stored_delta_once_and_still_finds_a_damaged_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """A history of chains, read in small batches too (so a chain's objects are read in different
    batches): each delta is applied once; a damaged base is still found in every object built on it."""
    store = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
    store.save_network_state("n", network())
    for n in range(9):
        store.save_contact_content("n", "g1", "c007", {"v": n})
        store.save_snapshot("n", f"step {n}")
    store.close()
    store = casstore.NetworkStore(LmdbStore(tmp_path / "s"))  # a fresh process: nothing cached
    monkeypatch.setattr(importlib.import_module("casstore.verify"), "BATCH", batch)
    applied: list[bytes] = []
    apply_delta = pack.apply_delta

    def counted(delta: bytes, base: bytes, digest: bytes) -> bytes:
        applied.append(digest)
        return apply_delta(delta, base, digest)

    monkeypatch.setattr(deltas, "apply_delta", counted)
    assert verify(store).ok
    stored = delta_leaves(store.objects.blobs)
    assert len(stored) >= 8 and sorted(applied) == sorted(stored)
    bases = set(stored.values()) - set(stored)  # whole frames at the bottom of chains
    victim = next(iter(bases))
    dependents = set()
    for digest in stored:
        below = digest
        while below in stored:
            below = stored[below]
        if below == victim:
            dependents.add(codec.format_id(digest))
    frame = store.objects.blobs.get_frames([victim])[0] or b""
    store.objects.blobs.delete_many([victim])
    store.objects.blobs.put_frames([(victim, frame[:-1] + bytes([frame[-1] ^ 1]))])
    assert set(verify(store).corrupt) == dependents | {codec.format_id(victim)}
    store.close()


def test_a_source_with_a_damaged_stored_delta_is_refused_by_the_destination() -> None:
    """A push sends a stored delta as it is, even where the source's cache stands in for rebuilding it:
    the destination rebuilds every delta from its own base and re-hashes, so damage never lands."""
    src, dst = casstore.NetworkStore(MemoryStore()), casstore.NetworkStore(MemoryStore())
    src.save_network_state("n", network())
    casstore.push(src, dst)
    before = dst.objects.refs.get("networks/n/head")
    src.save_contact_content("n", "g1", "c007", {"v": "changed"})
    blobs = src.objects.blobs
    assert isinstance(blobs, MemoryBlobs)
    leaf = next(iter(delta_leaves(blobs)))
    damaged = bytearray(blobs._frames[leaf])
    damaged[-3] ^= 0x20  # inside the delta's new bytes
    blobs._frames[leaf] = bytes(damaged)
    assert leaf in blobs.delta_bases.get_many([leaf])
    with pytest.raises(CorruptObject):
        casstore.push(src, dst)
    assert dst.objects.refs.get("networks/n/head") == before
    assert leaf not in dst.objects.blobs and verify(dst).ok


def test_a_received_pack_keeps_what_it_re_hashed_as_the_next_transfers_bases() -> None:
    """A pack from elsewhere (a server's) has its whole entries re-hashed: they are kept, as rebuilt deltas are."""
    from casstore.pack import PackBuilder, make_delta

    store = MemoryStore()
    old, new = codec.encode_value({"v": "x" * 300}), codec.encode_value({"v": "x" * 299 + "y"})
    builder = PackBuilder()
    builder.add_frames(codec.frame_many([old]))
    store.receive_pack(builder.finish())
    old_id, new_id = codec.hash_bytes(old), codec.hash_bytes(new)
    assert store.blobs.delta_bases.get_many([old_id]) == {old_id: old}
    builder = PackBuilder()
    builder.add_delta(new_id, old_id, make_delta(new, old))
    store.receive_pack(builder.finish())
    assert store.blobs.delta_bases.get_many([new_id]) == {new_id: new}
    assert store.blobs.get_many([new_id, old_id]) == [new, old]
