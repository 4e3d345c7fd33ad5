"""Deltas at rest (casstore/store/deltas.py): chains, corruption through chains, gc, sync, images, compatibility."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import casstore
from casstore import codec
from casstore.archive import archive, restore
from casstore.errors import CorruptObject
from casstore.gc import collect_garbage
from casstore.model import Contact, Group, GroupState, NetworkState, pairing, records, writes
from casstore.pack import make_delta
from casstore.store import deltas
from casstore.store.base import BlobStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryBlobs, MemoryStore


def group_state(gid: str, contacts: int, seed: int = 0) -> GroupState:
    rnd = random.Random(seed)
    items = {
        f"c{i:03}": Contact(f"c{i:03}", gid, {"v": rnd.randint(0, 10**6), "pad": "x" * 60}) for i in range(contacts)
    }
    return GroupState(Group(gid, gid, contact_ids=list(items)), items, {})


def frame_kinds(blobs: BlobStore) -> Counter[int]:
    """How many stored frames have each chain length (0: whole)."""
    hashes = list(blobs.iter_hashes())
    return Counter(deltas.frame_chain(frame or b"") for frame in blobs.get_frames(hashes))


def broken_deltas(blobs: BlobStore) -> list[str]:
    """Delta frames whose base is absent."""
    hashes = list(blobs.iter_hashes())
    bases = {
        digest: frame[2:34]
        for digest, frame in zip(hashes, blobs.get_frames(hashes), strict=True)
        if frame is not None and frame[:1] == b"\x02"
    }
    absent = blobs.missing(set(bases.values()))
    return [codec.format_id(d) for d, base in bases.items() if base in absent]


@pytest.fixture
def chain() -> Iterator[tuple[MemoryStore, list[bytes]]]:
    """A store holding versions v0 (whole) .. v{MAX_CHAIN} of one object, each a delta of the one before."""
    store = MemoryStore()
    versions = [codec.encode({"k": [f"key-{i}" for i in range(200)], "n": n}) for n in range(deltas.MAX_CHAIN + 1)]
    digests = store.blobs.put_many(versions[:1])
    for n in range(1, len(versions)):
        digest = codec.hash_bytes(versions[n])
        frame = deltas.delta_frame(n, digests[-1], make_delta(versions[n], versions[n - 1]))
        store.blobs.put_frames([(digest, frame)])
        digests.append(digest)
    yield store, digests


def test_reads_through_chains_of_every_length_rehash(chain: tuple[MemoryStore, list[bytes]]) -> None:
    store, digests = chain
    assert frame_kinds(store.blobs) == Counter(range(deltas.MAX_CHAIN + 1))
    for digest, data in zip(digests, store.blobs.get_many(digests), strict=True):
        assert codec.hash_bytes(data) == digest
    for digest in reversed(digests):  # one at a time too: each read rebuilds its own chain
        assert codec.hash_bytes(store.blobs.get(digest)) == digest
    # what leaves the store is whole, and compressed as a whole frame would be
    for digest, frame in zip(digests, store.blobs.get_whole_frames(digests, compress=True), strict=True):
        assert frame is not None and frame[:1] in (b"\x00", b"\x01")
        assert codec.hash_bytes(codec.unframe(frame, digest)) == digest
    with pytest.raises(CorruptObject):  # a delta frame read raw is never taken for the object
        codec.unframe(store.blobs.get_frames(digests[-1:])[0] or b"", digests[-1])


def test_a_flipped_byte_in_a_base_is_detected_in_every_dependent(chain: tuple[MemoryStore, list[bytes]]) -> None:
    store, digests = chain
    assert isinstance(store.blobs, MemoryBlobs)
    frames = store.blobs._frames
    for victim in range(len(digests) - 1):
        original = frames[digests[victim]]
        damaged = bytearray(original)
        damaged[len(damaged) // 2 + 1] ^= 0x04  # in the delta (or the whole body), past the header
        frames[digests[victim]] = bytes(damaged)
        for n, digest in enumerate(digests):
            if n < victim:
                assert codec.hash_bytes(store.blobs.get(digest)) == digest
            else:
                with pytest.raises(CorruptObject):
                    store.blobs.get(digest)
        frames[digests[victim]] = original
    frames.pop(digests[0])  # a missing base too
    for digest in digests[1:]:
        with pytest.raises(CorruptObject, match="delta whose base is missing or corrupt"):
            store.blobs.get(digest)


def test_a_chain_that_does_not_count_down_is_corrupt_not_a_loop() -> None:
    store = MemoryStore()
    a, b = codec.encode("a" * 300), codec.encode("b" * 300)
    da, db = codec.hash_bytes(a), codec.hash_bytes(b)
    store.blobs.put_frames(
        [(da, deltas.delta_frame(2, db, make_delta(a, b))), (db, deltas.delta_frame(1, da, make_delta(b, a)))]
    )
    for digest in (da, db):
        with pytest.raises(CorruptObject):
            store.blobs.get(digest)


def churn(store: casstore.NetworkStore, steps: int, seed: int = 1, groups: int = 3) -> list[str]:
    """``steps`` batches of four contact changes, each followed by a snapshot; the snapshots' ids."""
    rnd = random.Random(seed)
    snapshots = []
    for _ in range(steps):
        with store.batch("net") as batch:
            for _ in range(4):
                gid, cid = f"g{rnd.randrange(groups)}", f"c{rnd.randrange(150):03}"
                batch.save_contact_content("net", gid, cid, {"v": rnd.randint(0, 10**6), "pad": "y" * 60})
        snapshots.append(store.save_snapshot("net"))
    return snapshots


def network(groups: int = 3) -> NetworkState:
    return NetworkState({f"g{i}": group_state(f"g{i}", 150, i) for i in range(groups)}, "g0", "g0")


def test_writes_store_bounded_chains_and_every_snapshot_reads_back(tmp_path: Path) -> None:
    store = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
    store.save_network_state("net", network())
    states, snapshots = [], []
    for step in range(3 * deltas.WRITE_CHAIN):
        snapshots += churn(store, 1, seed=step)
        states.append(store.load_network_state("net"))
    kinds = frame_kinds(store.blobs)
    assert set(kinds) == set(range(deltas.WRITE_CHAIN + 1)), kinds  # every length up to the bound, none past it
    store.close()
    reopened = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
    for snapshot, state in zip(snapshots, states, strict=True):
        assert reopened.load_snapshot("net", snapshot) == state
    report = casstore.verify(reopened)
    assert report.ok, report


def test_the_write_engine_pairs_what_it_rewrites_with_what_it_replaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewritten tree nodes, a replaced large content and a changed group body are stored as deltas against
    the objects they replace, paired by the writer as it wrote them (before the pairing walk runs)."""
    store = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
    state = network()
    big = {"blob": "z" * 5000, "n": 0}
    state.groups["g1"].contacts["c007"].content = big
    store.save_network_state("net", state)
    contacts, groups = store.reader.trees["contacts"], store.reader.trees["groups"]

    def head_root() -> dict[str, Any]:
        return store.network_root(store.refs.get("networks/net/head") or b"")

    def large_content(root: dict[str, Any]) -> bytes:
        (link,) = [codec.decode(v)["C"] for _, v in contacts.items(root["contacts"]) if b"\x61C\xd8\x2a" in v]
        return codec.link_digest(link)

    def delta_base(digest: bytes) -> bytes:
        return deltas.parse_delta_frame(store.blobs.get_frames([digest])[0] or b"")[1]

    old = head_root()
    old_nodes = {digest for digest, _ in contacts.node_digests(old["contacts"])}
    old_body = records.decode_group_record(groups.get(old["groups"], "g0") or b"")
    paired_before_walk: list[int] = []
    walk = pairing.pair_replacements

    def recording(blobs: BlobStore, pending: Any, old_root: bytes | None, new_root: bytes, held: Any = None) -> None:
        paired_before_walk.append(len(pending.bases))
        walk(blobs, pending, old_root, new_root, held)

    monkeypatch.setattr(writes, "pair_replacements", recording)
    with store.batch("net") as batch:
        batch.save_contact_content("net", "g0", "c010", {"v": -1, "pad": "y" * 60})
        batch.save_contact_content("net", "g1", "c007", {**big, "n": 1})
    group = store.load_group_state("net", "g0")
    assert group is not None
    group.group.attributes = {"bassline.type": "changed"}
    store.save_group_state("net", "g0", group)

    new = head_root()
    rewritten = [digest for digest, _ in contacts.node_digests(new["contacts"]) if digest not in old_nodes]
    assert rewritten and all(delta_base(digest) in old_nodes for digest in rewritten)
    assert delta_base(large_content(new)) == large_content(old)
    assert delta_base(records.decode_group_record(groups.get(new["groups"], "g0") or b"")) == old_body
    assert paired_before_walk and min(paired_before_walk) > 0
    assert casstore.verify(store).ok
    store.close()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3), st.booleans()), min_size=1, max_size=5))
def test_gc_never_leaves_a_delta_without_its_base(plan: list[tuple[int, int, bool]]) -> None:
    store = casstore.NetworkStore(MemoryStore())
    store.save_network_state("net", network(2))
    for seed, (steps, drop, delete_network) in enumerate(plan):
        churn(store, steps, seed=seed, groups=2)
        snapshots = sorted(store.list_snapshots("net"), key=lambda s: s.created_at)
        for snapshot in snapshots[: min(drop, len(snapshots))]:
            store.delete_snapshot("net", snapshot.id)
        if delete_network and seed == len(plan) - 1:
            store.delete_network("net")
        collect_garbage(store, grace_minutes=0)
        assert broken_deltas(store.blobs) == []
        report = casstore.verify(store)
        assert report.ok, report
        if store.exists("net"):
            assert store.load_network_state("net") is not None
        else:
            break


def test_gc_keeps_the_bases_of_recent_unreachable_deltas() -> None:
    store = casstore.NetworkStore(MemoryStore())
    store.save_network_state("net", network(1))
    churn(store, 3, groups=1)
    store.delete_network("net")  # everything unreachable; the newest deltas within the grace period
    report = collect_garbage(store, grace_minutes=60)
    assert report.swept == 0 and broken_deltas(store.blobs) == []
    assert casstore.verify(store).ok


def test_a_sweep_interrupted_part_way_never_leaves_a_delta_without_its_base(monkeypatch: pytest.MonkeyPatch) -> None:
    """The directory backend deletes one file at a time: gc deletes the longest chains first."""
    store = casstore.NetworkStore(MemoryStore())
    store.save_network_state("net", network(1))
    churn(store, 3 * deltas.WRITE_CHAIN, groups=1)
    assert frame_kinds(store.blobs)[deltas.WRITE_CHAIN] > 0
    store.delete_network("net")  # everything unreachable
    real = store.blobs.delete_many
    calls: list[int] = []

    def killed_after_one_call(digests: Any) -> int:
        if calls:
            raise KeyboardInterrupt("the sweep is interrupted")
        calls.append(1)
        return real(digests)

    monkeypatch.setattr(store.blobs, "delete_many", killed_after_one_call)
    with pytest.raises(KeyboardInterrupt):
        collect_garbage(store, grace_minutes=0)
    assert calls and broken_deltas(store.blobs) == []
    assert frame_kinds(store.blobs)[deltas.WRITE_CHAIN] == 0, "the longest chains went first"
    report = casstore.verify(store)
    assert report.ok, report


@pytest.mark.parametrize("receiver_deltas", [True, False])
def test_sync_and_images_between_delta_and_whole_stores_round_trip(tmp_path: Path, receiver_deltas: bool) -> None:
    src = casstore.NetworkStore(LmdbStore(tmp_path / "src"))
    src.save_network_state("net", network())
    churn(src, 6)
    assert frame_kinds(src.blobs)[1] > 0
    dst = casstore.NetworkStore(LmdbStore(tmp_path / "dst") if receiver_deltas else MemoryStore())
    casstore.push(src, dst)
    assert dst.load_network_state("net") == src.load_network_state("net")
    assert casstore.verify(dst).ok
    # the destination writes on, then the source pulls it back through deltas
    deltas.WRITE_DELTAS = receiver_deltas
    try:
        churn(dst, 4, seed=7)
    finally:
        deltas.WRITE_DELTAS = True
    casstore.pull(src, dst)
    assert src.load_network_state("net") == dst.load_network_state("net")
    assert casstore.verify(src).ok and casstore.verify(dst).ok
    image = tmp_path / "net.car"
    archive(src, "net", str(image))
    fresh = casstore.NetworkStore(MemoryStore())
    restore(fresh, str(image))
    assert fresh.load_network_state("net") == src.load_network_state("net")
    assert casstore.verify(fresh).ok


def test_stores_written_before_deltas_read_unchanged_and_grow_by_deltas(tmp_path: Path) -> None:
    deltas.WRITE_DELTAS = False  # the layout of before: whole frames only
    try:
        old = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
        old.save_network_state("net", network())
        churn(old, 3)
        before = old.load_network_state("net")
        assert set(frame_kinds(old.blobs)) == {0}
        old.close()
    finally:
        deltas.WRITE_DELTAS = True
    store = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
    assert store.load_network_state("net") == before
    churn(store, 3, seed=5)
    assert frame_kinds(store.blobs)[1] > 0
    assert casstore.verify(store).ok


def test_gc_keeps_unreachable_bases_of_reachable_deltas_and_sweeps_the_rest() -> None:
    store = casstore.NetworkStore(MemoryStore())
    store.save_network_state("net", network(1))
    for snapshot in churn(store, 5, groups=1):
        store.delete_snapshot("net", snapshot)
    report = collect_garbage(store, grace_minutes=0)
    assert report.kept_bases > 0 and report.swept > 0  # old versions under the head's deltas stay; others go
    assert broken_deltas(store.blobs) == []
    assert casstore.verify(store).ok


def test_stats_counts_frames_by_kind_and_chain_length(tmp_path: Path, cli: Any) -> None:
    store = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
    store.save_network_state("net", network())
    churn(store, 3)
    expected = frame_kinds(store.blobs)
    store.close()
    document = json.loads(cli("--store", str(tmp_path / "s"), "stats", "--frames", "--json").output)
    frames = document["frames"]
    assert {int(k): n for k, n in frames["chain_lengths"].items()} == dict(expected)
    assert frames["frames"]["delta"]["objects"] == sum(n for length, n in expected.items() if length)
    assert frames["frame_bytes"] == sum(kind["bytes"] for kind in frames["frames"].values())
    assert frames["overhead_bytes"] == document["stored_bytes"] - frames["frame_bytes"]


_KILL_WORKER = """
import random, sys
sys.path.insert(0, sys.argv[2])
import casstore
from casstore.gc import collect_garbage
from casstore.store.lmdb import LmdbStore
from test_deltas import churn
store = casstore.NetworkStore(LmdbStore(sys.argv[1]))
seed = 0
print("ready", flush=True)
while True:
    seed += 1
    churn(store, 1, seed=seed)
    snapshots = sorted(store.list_snapshots("net"), key=lambda s: s.created_at)
    for snapshot in snapshots[:-2]:
        store.delete_snapshot("net", snapshot.id)
    collect_garbage(store, grace_minutes=0)
"""


def test_sigkill_during_delta_writes_and_gc_leaves_no_broken_chain(tmp_path: Path) -> None:
    """A writer-and-gc loop SIGKILLed at random points: verify clean, no delta without its base, head loads.

    Three kills by default; ``CASSTORE_DELTA_KILLS=30`` for more.
    """
    path = tmp_path / "s"
    seeded = casstore.NetworkStore(LmdbStore(path))
    seeded.save_network_state("net", network())
    seeded.close()
    rnd = random.Random(5)
    for _ in range(int(os.environ.get("CASSTORE_DELTA_KILLS", "3"))):
        child = subprocess.Popen(
            [sys.executable, "-c", _KILL_WORKER, str(path), str(Path(__file__).parent)],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        time.sleep(rnd.uniform(0.05, 0.8))
        child.send_signal(signal.SIGKILL)
        child.wait()
        store = casstore.NetworkStore(LmdbStore(path))
        assert broken_deltas(store.blobs) == []
        report = casstore.verify(store)
        assert report.ok, report
        assert store.load_network_state("net") is not None
        store.close()


@pytest.mark.parametrize("cache", ["caching-wrapper", "http-client"])
def test_gc_and_verify_judge_delta_bases_by_the_stored_frames_not_a_cache_of_frames_written(
    tmp_path: Path, cache: str, request: pytest.FixtureRequest
) -> None:
    """A frame cache holds what was written; the store may keep another form of the same object (it
    already held it, as a delta).  gc must keep the base the store's form needs, and verify must
    check the store's own chain, whatever the cache holds."""
    from casstore.store import open_object_store
    from casstore.store.wrappers.caching import CachingStore
    from casstore.verify import verify

    if cache == "http-client":  # the server's store is a memory store; the client caches frames it sent
        served = request.getfixturevalue("asgi_stores")
        remote = open_object_store(served.url_for(tmp_path), transport=served.transport)
        inner = served.backing(tmp_path)
    else:
        inner = LmdbStore(tmp_path / "s")
    plain = casstore.NetworkStore(inner)
    plain.save_network_state("n", NetworkState({"g": group_state("g", 40)}, "g", "g"))
    plain.save_contact_content("n", "g", "c007", {"v": "changed"})  # its leaf is now a delta on the old leaf
    stored = {d: f for d in inner.blobs.iter_hashes() if (f := inner.blobs.get_frames([d])[0]) is not None}
    leaf, frame = next((d, f) for d, f in stored.items() if deltas.frame_chain(f) == 1)
    old_leaf = deltas.parse_delta_frame(frame)[1]
    cached = casstore.NetworkStore(remote if cache == "http-client" else CachingStore(inner))
    whole = codec.frame_many([inner.blobs.get(leaf)])[0]
    cached.objects.blobs.put_frames([whole])  # held already: the store keeps its delta, the cache the whole frame
    assert inner.blobs.get_frames([leaf]) == [frame]
    report = collect_garbage(cached.objects, grace_minutes=0)
    assert old_leaf in inner.blobs, "the base of a stored delta is kept"
    assert report.kept_bases >= 1 and verify(plain).ok
    assert plain.load_contact("n", "g", "c007") is not None
    # a delta cached as written, on a base the store never kept: the read rebuilds from the store's form
    other = codec.encode_value({"not": "stored"})
    fake = deltas.delta_frame(1, codec.hash_bytes(other), make_delta(inner.blobs.get(leaf), other))
    blobs: Any = cached.objects.blobs
    (blobs.remember if cache == "http-client" else blobs.cache.add)([(leaf, fake)])
    assert blobs.get_many([leaf]) == inner.blobs.get_many([leaf])
    inner.blobs.delete_many([old_leaf])  # now the stored chain is broken: verify through the cache sees it
    assert verify(cached).corrupt == [codec.format_id(leaf)]
