"""What a write reads besides its tree paths: delta bases and their chain bottoms, old objects to pair, group bodies.

Each read is a round trip on PostgreSQL, S3 or a casstore server, so these tests
count them: a hinted chain bottom is read with the bases instead of walking the
chain, old objects the reader holds decoded are not read to pair them, and the
bodies of the groups a commit changes are read in one batch.  Every shortcut is
checked against the long way: the same frames, objects that re-hash.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import casstore
from casstore import codec
from casstore.model import Contact, Group, GroupState, NetworkState, pairing, records, rootrecords, writes
from casstore.model.reads import NetworkReader
from casstore.store import deltas
from casstore.store.basecache import DeltaBaseCache
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore


def recording(calls: list[Any], read: Callable[..., Any], what: Callable[..., Any] = list) -> Callable[..., Any]:
    """``read`` with what each call was given (as ``what`` of its first argument) appended to ``calls``."""

    def call(*args: Any) -> Any:
        calls.append(what(args[0]) if args else None)
        return read(*args)

    return call


class CountedFrames:
    """A ``get_frames`` that counts its calls."""

    def __init__(self, get_frames: deltas.GetFrames) -> None:
        self.get_frames = get_frames
        self.calls: list[list[bytes]] = []

    def __call__(self, digests: Sequence[bytes]) -> Sequence[bytes | None]:
        self.calls.append(list(digests))
        return self.get_frames(digests)


def versions(count: int) -> list[bytes]:
    return [codec.encode({"k": [f"key-{i}" for i in range(200)], "n": n}) for n in range(count)]


def chain_at_the_bound(store: MemoryStore, cache: DeltaBaseCache) -> tuple[list[bytes], list[bytes]]:
    """Versions v0 (whole) .. v{WRITE_CHAIN} stored, each written by make_delta_frames against the one before."""
    data = versions(deltas.WRITE_CHAIN + 2)
    digests = store.blobs.put_many(data[:1])
    for n in range(1, deltas.WRITE_CHAIN + 1):
        digest = codec.hash_bytes(data[n])
        made = deltas.make_delta_frames([(digest, data[n], digests[-1])], store.blobs.get_frames, cache=cache)
        store.blobs.put_frames(list(made.items()))
        digests.append(digest)
    top = store.blobs.get_frames(digests[-1:])[0]
    assert top is not None and deltas.frame_chain(top) == deltas.WRITE_CHAIN
    return data, digests


def rebuilt(store: MemoryStore, digest: bytes) -> bytes:
    (frame,) = deltas.resolve_frames(store.blobs.get_frames, [digest])
    assert frame is not None
    return codec.unframe(frame, digest)


def test_a_hinted_chain_bottom_is_read_with_the_bases_instead_of_walking_the_chain() -> None:
    store = MemoryStore()
    data, digests = chain_at_the_bound(store, hinted := DeltaBaseCache())
    new, new_id = data[-1], codec.hash_bytes(data[-1])
    frames = {}
    reads = {}
    for name, cache in (("hinted", hinted), ("cold", DeltaBaseCache())):  # cold: another process's view
        counted = CountedFrames(store.blobs.get_frames)
        frames[name] = deltas.make_delta_frames([(new_id, new, digests[-1])], counted, cache=cache)[new_id]
        reads[name] = len(counted.calls)
    assert reads["hinted"] == 1  # the base and the hinted bottom, together; the bottom's content from that read
    assert reads["cold"] > deltas.WRITE_CHAIN  # one read per level of the chain
    assert frames["hinted"] == frames["cold"]
    chain, base, _ = deltas.parse_delta_frame(frames["hinted"])
    assert (chain, base) == (1, digests[0])
    store.blobs.put_frames([(new_id, frames["hinted"])])
    assert rebuilt(store, new_id) == new


@pytest.mark.parametrize("stale", ["absent", "a delta frame", "another whole object"])
def test_a_stale_chain_bottom_hint_costs_a_walk_never_a_wrong_frame(stale: str) -> None:
    store = MemoryStore()
    cache = DeltaBaseCache()
    data, digests = chain_at_the_bound(store, cache)
    other = codec.encode({"unrelated": list(range(100))})
    hint = {
        "absent": codec.hash_bytes(b"never stored"),
        "a delta frame": digests[2],
        "another whole object": store.blobs.put_many([other])[0],
    }[stale]
    cache.add_root_hints({digests[-1]: (hint, deltas.WRITE_CHAIN)})
    new, new_id = data[-1], codec.hash_bytes(data[-1])
    frame = deltas.make_delta_frames([(new_id, new, digests[-1])], store.blobs.get_frames, cache=cache)[new_id]
    chain, base, _ = deltas.parse_delta_frame(frame)
    # a whole frame is a sound base whatever the hint claimed; anything else is not used, and the chain is walked
    assert (chain, base) == (1, hint if stale == "another whole object" else digests[0])
    store.blobs.put_frames([(new_id, frame)])
    assert rebuilt(store, new_id) == new


def network(groups: int = 8, contacts: int = 40) -> NetworkState:
    states = {}
    for g in range(groups):
        gid = f"g{g}"
        items = {f"c{i:03}": Contact(f"c{i:03}", gid, {"v": i, "pad": "x" * 60}) for i in range(contacts)}
        states[gid] = GroupState(Group(gid, gid, contact_ids=list(items)), items, {})
    return NetworkState(groups=states)


def stored_frames(store: casstore.NetworkStore) -> dict[bytes, bytes | None]:
    hashes = sorted(store.blobs.iter_hashes())
    return dict(zip(hashes, store.blobs.get_frames(hashes), strict=True))


def new_contact_in_every_group(store: casstore.NetworkStore, n: int) -> None:
    with store.batch("net") as batch:
        for g in range(8):
            batch.save_contact_content("net", f"g{g}", f"new{n}", {"n": n})


def test_pairing_reads_no_old_object_the_reader_holds_and_held_bytes_are_rehashed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New contacts re-chunk leaves (the general update path, which pairs after the fact): the old root
    and nodes the reader holds are paired without a read; held bytes that do not hash are not used."""
    monkeypatch.setattr(rootrecords, "now_text", lambda: "2026-01-01T00:00:00.000000+00:00")  # the same roots
    stores = {name: casstore.NetworkStore(LmdbStore(tmp_path / name)) for name in ("held", "garbled")}
    for store in stores.values():
        store.save_network_state("net", network())
        new_contact_in_every_group(store, 0)  # the reader now holds the head's root and paths
    pairing_reads: list[int] = []
    walk = pairing.pair_replacements

    def counted(blobs: Any, pending: Any, old: Any, new: Any, held: Any = None) -> None:
        get_many = blobs.get_many
        calls: list[int] = []
        monkeypatch.setattr(blobs, "get_many", recording(calls, get_many, len))
        try:
            walk(blobs, pending, old, new, held)
        finally:
            monkeypatch.delattr(blobs, "get_many")
        pairing_reads.append(sum(calls))

    monkeypatch.setattr(writes, "pair_replacements", counted)
    new_contact_in_every_group(stores["held"], 1)
    assert pairing_reads == [0]
    monkeypatch.setattr(NetworkReader, "held_bytes", lambda self, digest, kind: b"not the object")
    new_contact_in_every_group(stores["garbled"], 1)
    assert pairing_reads[1] > 0  # garbled bytes are not used: the old objects are read instead
    held, garbled = (stored_frames(store) for store in stores.values())
    assert held == garbled  # the same deltas, against the same bases
    assert any(frame and frame[:1] == b"\x02" for frame in held.values())
    for store in stores.values():
        assert casstore.verify(store).ok
        store.close()


def group_bodies(store: casstore.NetworkStore) -> set[bytes]:
    root = store.network_root(store.refs.get("networks/net/head") or b"")
    return {records.decode_group_record(value) for _, value in store.reader.trees["groups"].items(root["groups"])}


def test_the_bodies_a_commit_changes_are_read_in_one_batch_and_its_new_bodies_not_again(tmp_path: Path) -> None:
    first = casstore.NetworkStore(LmdbStore(tmp_path / "s"))
    first.save_network_state("net", network())
    bodies = group_bodies(first)
    first.close()
    store = casstore.NetworkStore(LmdbStore(tmp_path / "s"))  # a cold reader: no body cached
    calls: list[list[bytes]] = []
    get_many = store.blobs.get_many
    store.blobs.get_many = recording(calls, get_many)  # type: ignore[method-assign]
    new_contact_in_every_group(store, 1)
    body_reads = [call for call in calls if set(call) & bodies]
    assert len(body_reads) == 1 and set(body_reads[0]) == bodies  # all eight, in one read
    written = group_bodies(store)
    assert not written & bodies
    calls.clear()
    new_contact_in_every_group(store, 2)  # the bodies the last commit wrote are held: none is read
    assert not [call for call in calls if set(call) & written]
    assert {f"new{n}" for n in (1, 2)} <= set(store.load_group_state("net", "g3").contacts)  # type: ignore[union-attr]
    store.close()


def test_whole_state_and_group_reads_pause_the_cyclic_collector_and_restore_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A whole-state load allocates what it returns; collections meanwhile would only traverse it."""
    store = casstore.NetworkStore(MemoryStore())
    store.save_network_state("net", network())
    seen: list[bool] = []
    decode_group = records.decode_group
    monkeypatch.setattr(records, "decode_group", recording(seen, decode_group, lambda _: gc.isenabled()))
    assert gc.isenabled()
    state = casstore.NetworkStore(store.objects).load_network_state("net")
    found = casstore.NetworkStore(store.objects).query_groups("net")
    assert state is not None and len(state.groups) == len(found) == 8
    assert len(seen) == 16 and not any(seen) and gc.isenabled()


def test_a_load_or_query_reads_every_separately_stored_content_in_one_batch() -> None:
    state = network()
    for g in range(8):  # contents large enough to be stored apart from their records
        state.groups[f"g{g}"].contacts["c001"].content = {"big": f"{g}" * 5000}
    store = casstore.NetworkStore(MemoryStore())
    store.save_network_state("net", state)
    calls: list[list[bytes]] = []
    get_many = store.blobs.get_many
    store.blobs.get_many = recording(calls, get_many)  # type: ignore[method-assign]
    sizes = {len(codec.encode_value({"big": f"{g}" * 5000})) for g in range(8)}
    for read in (
        lambda fresh: fresh.load_network_state("net"),
        lambda fresh: {g.group.id: g for g in fresh.query_groups("net")},
    ):
        calls.clear()
        fresh = casstore.NetworkStore(store.objects)  # a cold reader
        loaded = read(fresh)
        if isinstance(loaded, NetworkState):
            loaded = loaded.groups
        assert loaded is not None and all(
            loaded[f"g{g}"].contacts["c001"].content == {"big": f"{g}" * 5000} for g in range(8)
        )
        large = [call for call in calls if any(len(data) in sizes for data in get_many(call))]
        assert len(large) == 1 and len(large[0]) == 8
