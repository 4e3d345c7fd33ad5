"""The LMDB segment layout: one segment per write, an index, compaction by gc's deletes, old stores kept."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import blake3
import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_deltas import churn
from test_deltas import network as sample

import casstore
from casstore.store import lmdb as lmdb_backend
from casstore.store import lmdbsegments
from casstore.store.lmdb import LmdbStore


def frame(n: int, size: int) -> tuple[bytes, bytes]:
    data = n.to_bytes(4, "big") * (size // 4 + 1)
    data = data[:size]
    return blake3.blake3(data).digest(), data


def segment_table(path: Path) -> tuple[dict[int, tuple[int, int, list[bytes]]], dict[bytes, int]]:
    """Read straight from LMDB: segment number → (live bytes, frame bytes, digests in its header),
    and the index, digest → segment number."""
    env = lmdb.open(str(path), max_dbs=8, readonly=True, lock=False)
    segments, index = {}, {}
    with env.begin() as txn:
        live_db, seg_db = env.open_db(b"seglive", txn=txn), env.open_db(b"segments", txn=txn)
        for key, value in txn.cursor(seg_db):
            (count,) = struct.unpack_from(">I", value)
            digests = [bytes(value[4 + 32 * i : 36 + 32 * i]) for i in range(count)]
            live, total = struct.unpack(">QQ", txn.get(key, db=live_db) or b"")
            segments[int.from_bytes(key, "big")] = (live, total, digests)
        for digest, where in txn.cursor(env.open_db(b"index", txn=txn)):
            index[bytes(digest)] = struct.unpack(">QII", where)[0]
    env.close()
    return segments, index


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(st.integers(0, 60), st.integers(1, 3000)), max_size=12),  # frames written
            st.sets(st.integers(0, 60), max_size=20),  # then deleted
        ),
        min_size=1,
        max_size=8,
    )
)
def test_writes_and_deletes_match_a_dictionary_and_segments_stay_dense(
    tmp_path_factory: pytest.TempPathFactory, plan: list[tuple[list[tuple[int, int]], set[int]]]
) -> None:
    path = tmp_path_factory.mktemp("segments")
    store = LmdbStore(path, sync="off")
    model: dict[bytes, bytes] = {}
    names: dict[int, tuple[bytes, bytes]] = {}  # each name's frame is fixed by its first size
    for writes, deletes in plan:
        batch = [names.setdefault(n, frame(n, size)) for n, size in writes]
        store.blobs.put_frames(batch)
        model.update(batch)
        doomed = [names[n][0] for n in deletes if n in names]
        assert store.blobs.delete_many(doomed) == len({d for d in doomed if d in model})
        for digest in doomed:
            model.pop(digest, None)

        every = [d for d, _ in names.values()]
        assert store.blobs.get_frames(every) == [model.get(d) for d in every]
        assert store.blobs.missing(every) == {d for d in every if d not in model}
        assert sorted(store.blobs.iter_hashes()) == sorted(model)
        assert store.blobs.stats().objects == len(model)
    store.close()

    segments, index = segment_table(path)
    assert set(index) == set(model)
    for number, (live, total, digests) in segments.items():
        assert live == sum(len(model[d]) for d in digests if index.get(d) == number) > 0
        assert live >= lmdbsegments.COMPACT_BELOW * total
    assert all(digest in segments[number][2] for digest, number in index.items())


def test_a_large_write_is_cut_into_segments_and_reads_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lmdbsegments, "SEGMENT_BYTES", 10_000)
    store = LmdbStore(tmp_path / "s")
    items = [frame(n, 3000) for n in range(10)] + [frame(99, 25_000)]
    store.blobs.put_frames(items)
    assert store.blobs.get_frames([d for d, _ in items]) == [f for _, f in items]
    store.close()
    segments, _ = segment_table(tmp_path / "s")
    # 10,000-byte segments: three frames of 3,000 bytes each, then the last one and the big one
    assert [len(digests) for *_, digests in segments.values()] == [3, 3, 3, 1, 1]


def test_deletes_drop_empty_segments_and_rewrite_thin_ones(tmp_path: Path) -> None:
    store = LmdbStore(tmp_path / "s")
    first = [frame(n, 1000) for n in range(10)]
    second = [frame(n, 1000) for n in range(10, 20)]
    store.blobs.put_frames(first)
    store.blobs.put_frames(second)
    store.blobs.delete_many([d for d, _ in first])  # the whole first segment
    store.blobs.delete_many([d for d, _ in second[:6]])  # 4 of 10 frames left: under half
    stats = store.blobs.stats()
    assert stats.extra is not None and stats.extra["segments"] == 1 and stats.extra["segment_dead_bytes"] == 0
    assert store.blobs.get_frames([d for d, _ in second]) == [None] * 6 + [f for _, f in second[6:]]
    store.close()
    (only,) = segment_table(tmp_path / "s")[0].values()
    assert only == (4000, 4000, [d for d, _ in second[6:]])


def test_frames_take_fewer_pages_than_one_slot_each(tmp_path: Path) -> None:
    """The point of the layout: 5,000 frames of 100-3,000 bytes (a network's deltas and whole leaves),
    100 per commit, against the pages the old layout (one B-tree slot or overflow run each) takes."""
    items = [frame(n, 100 + n * 2903 % 2900) for n in range(5000)]
    store = LmdbStore(tmp_path / "s")
    for at in range(0, len(items), 100):
        store.blobs.put_frames(items[at : at + 100])
    stored = store.blobs.stats().stored_bytes
    store.close()
    env = lmdb.open(str(tmp_path / "old"), max_dbs=8, map_size=1 << 28)
    blobs = env.open_db(b"blobs")
    for at in range(0, len(items), 100):
        with env.begin(write=True) as txn:
            txn.cursor(blobs).putmulti(items[at : at + 100])
    with env.begin() as txn:
        st = txn.stat(blobs)
    env.close()
    old = (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]) * st["psize"]
    assert stored < 0.8 * old, (stored, old)  # measured: 0.65


def _write_legacy_store(path: Path, items: list[tuple[bytes, bytes]]) -> None:
    """A store as casstore wrote it before segments: frames in ``blobs``, digest → frame."""
    os.makedirs(path)
    env = lmdb.open(str(path), max_dbs=8, subdir=True)
    with env.begin(write=True) as txn:
        blobs = env.open_db(b"blobs", txn=txn)
        for name in (b"refs", b"log", b"meta"):
            env.open_db(name, txn=txn)
        txn.cursor(blobs).putmulti(items)
    env.close()


def test_a_store_written_before_segments_reads_unchanged_and_new_writes_go_to_segments(tmp_path: Path) -> None:
    old = [frame(n, 500) for n in range(20)]
    _write_legacy_store(tmp_path / "s", old)

    readonly = LmdbStore(tmp_path / "s", read_only=True)  # no segment tables yet: read from the old one
    assert readonly.blobs.get_frames([d for d, _ in old]) == [f for _, f in old]
    assert sorted(readonly.blobs.iter_hashes()) == sorted(d for d, _ in old)
    readonly.close()

    store = LmdbStore(tmp_path / "s")
    new = [frame(n, 500) for n in range(20, 30)]
    store.blobs.put_frames(old[:5] + new)  # the old ones are held already and are not copied
    everything = old + new
    assert store.blobs.get_frames([d for d, _ in everything]) == [f for _, f in everything]
    assert store.blobs.missing([d for d, _ in everything]) == set()
    assert sorted(store.blobs.iter_hashes()) == sorted(d for d, _ in everything)
    stats = store.blobs.stats()
    assert stats.objects == 30 and stats.extra is not None and stats.extra["legacy_objects"] == 20
    assert store.blobs.delete_many([old[0][0], new[0][0]]) == 2
    assert store.blobs.get_frames([old[0][0], new[0][0], old[1][0]]) == [None, None, old[1][1]]
    store.close()
    (segment,) = segment_table(tmp_path / "s")[0].values()
    assert segment[2] == [d for d, _ in new]


def test_networks_written_before_segments_load_verify_and_grow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network written in the old layout (``WRITE_SEGMENTS = False``) loads and verifies after the change,
    and its later writes, in segments, build on the old objects (deltas against old bases included)."""
    monkeypatch.setattr(lmdb_backend, "WRITE_SEGMENTS", False)
    old = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
    old.save_network_state("net", sample())
    churn(old, 2)
    state = old.load_network_state("net")
    old.close()
    monkeypatch.setattr(lmdb_backend, "WRITE_SEGMENTS", True)
    store = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
    assert store.load_network_state("net") == state
    assert (store.blobs.stats().extra or {})["segments"] == 0
    churn(store, 3, seed=7)
    assert casstore.verify(store).ok
    stats = store.blobs.stats()
    assert stats.extra is not None and int(stats.extra["segments"]) > 0 and int(stats.extra["legacy_objects"]) > 0
    store.close()
