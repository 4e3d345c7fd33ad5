"""Deltas at rest across a transfer: sent as stored, kept as delta frames on receipt, and a write's head guessed.

* a push whose source stores a rewritten object as a delta against the object the destination holds
  sends that stored delta (no new delta is computed), and the destination keeps it as a delta frame;
* ``receive_pack`` keeps a delta only for an object the store lacks, only against a base below the
  chain bound, and still rebuilds and re-hashes every entry before anything is stored;
* an ``http://`` store's write reads no head when the client knows it, and a stale guess loses its
  compare-and-swap and retries (no lost update); a server stores what it is sent whole.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import casstore
import casstore.pack
from casstore import codec
from casstore.errors import CorruptObject
from casstore.model import NetworkState, NetworkStore
from casstore.pack import PackBuilder, make_delta
from casstore.server import create_app
from casstore.store import open_object_store
from casstore.store.deltas import FRAME_DELTA, WRITE_CHAIN, delta_frame, frame_chain
from casstore.store.http import HttpStore
from casstore.store.http.transport import AsgiTransport
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.testing.network import rich_state, sample_group
from casstore.verify import verify


def _leaf(n: int, changed: int = -1) -> bytes:
    return b"".join(b"value-%05d;" % (i if i != changed else 99999) for i in range(n))


def test_an_incremental_push_sends_stored_deltas_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = NetworkStore(MemoryStore()), NetworkStore(MemoryStore())
    groups = {f"g{i}": sample_group(f"g{i}", 25) for i in range(40)}
    src.save_network_state("net", NetworkState(groups, current_group_id="g0", root_group_id="g0"))
    casstore.push(src, dst)
    with src.batch("net") as batch:
        for group in ("g3", "g17", "g31"):
            for i in range(3):
                batch.save_contact_content("net", group, f"{group}-c{i}", f"changed {i}")
    before = set(dst.objects.blobs.iter_hashes())
    computed: list[bytes] = []
    original = casstore.pack.make_delta

    def counting(data: bytes, base: bytes) -> bytes:
        computed.append(codec.hash_bytes(data))
        return original(data, base)

    monkeypatch.setattr(casstore.pack, "make_delta", counting)
    report = casstore.push(src, dst)
    assert report.networks == {"net": "updated"} and report.deltas > 0, report
    sent = set(dst.objects.blobs.iter_hashes()) - before
    frames = zip(sent, src.objects.blobs.get_frames(list(sent)), strict=True)
    stored_as_deltas = {digest for digest, frame in frames if frame is not None and frame[0] == FRAME_DELTA}
    assert stored_as_deltas, "the step stored no delta frame: the test proves nothing"
    assert not stored_as_deltas & set(computed)  # those went as they were stored, no delta computed again
    kept = [f for f in dst.objects.blobs.get_frames(list(stored_as_deltas)) if f is not None and f[0] == FRAME_DELTA]
    assert kept  # and the destination keeps them as delta frames at rest
    assert dst.load_network_state("net") == src.load_network_state("net")
    assert verify(dst).ok


def test_receive_pack_keeps_deltas_only_where_they_are_safe() -> None:
    store = MemoryStore()
    base_data, other = _leaf(400), _leaf(300)
    base, other_id = store.blobs.put_many([base_data, other])
    new_data = _leaf(400, changed=7)
    new = codec.hash_bytes(new_data)
    held_data = _leaf(300, changed=3)
    held = store.blobs.put(held_data)  # present already (whole): not turned into a delta
    builder = PackBuilder()
    builder.add_delta(new, base, make_delta(new_data, base_data))
    builder.add_delta(held, other_id, make_delta(held_data, other))
    assert store.receive_pack(builder.finish()) == 2
    new_frame, held_frame = store.blobs.get_frames([new, held])
    assert new_frame is not None and new_frame[0] == FRAME_DELTA and frame_chain(new_frame) == 1
    assert held_frame is not None and held_frame[0] != FRAME_DELTA
    assert store.blobs.get_many([new, held]) == [new_data, held_data]

    # a base at the chain bound: the object is stored whole
    chained = codec.hash_bytes(b"x" * 4000)
    store.blobs.put_frames([(chained, delta_frame(WRITE_CHAIN, base, make_delta(b"x" * 4000, base_data)))])
    last_data = b"x" * 3999 + b"y"
    last = codec.hash_bytes(last_data)
    builder = PackBuilder()
    builder.add_delta(last, chained, make_delta(last_data, b"x" * 4000))
    store.receive_pack(builder.finish())
    frame = store.blobs.get_frames([last])[0]
    assert frame is not None and frame[0] != FRAME_DELTA
    assert store.blobs.get(last) == last_data

    # a delta that does not rebuild its digest: nothing of the pack is stored
    builder = PackBuilder()
    fine = codec.hash_bytes(_leaf(400, changed=9))
    builder.add_delta(fine, base, make_delta(_leaf(400, changed=9), base_data))
    builder.add_delta(codec.hash_bytes(b"claimed"), base, make_delta(_leaf(400, changed=8), base_data))
    with pytest.raises(CorruptObject):
        store.receive_pack(builder.finish())
    assert store.blobs.missing([fine]) == {fine}

    # a base the store holds damaged: the base is named, nothing stored
    damaged = codec.hash_bytes(b"the real base " * 50)
    store.blobs.put_frames([(damaged, b"\x00" + b"the fake base " * 50)])
    target = b"the real base " * 49 + b"changed"
    builder = PackBuilder()
    builder.add_delta(codec.hash_bytes(target), damaged, make_delta(target, b"the real base " * 50))
    with pytest.raises(CorruptObject) as raised:
        store.receive_pack(builder.finish())
    assert raised.value.object_id == codec.format_id(damaged)
    assert store.blobs.missing([codec.hash_bytes(target)]) == {codec.hash_bytes(target)}


def _client(app: object) -> HttpStore:
    store = open_object_store("http://asgi.test/", transport=AsgiTransport(app))
    assert isinstance(store, HttpStore)
    return store


def test_a_write_reads_no_head_it_knows_and_a_stale_guess_retries(tmp_path: Path) -> None:
    served = LmdbStore(tmp_path / "served")
    app = create_app(served)
    with NetworkStore(_client(app)) as one, NetworkStore(_client(app)) as two:
        one.save_network_state("net", rich_state())
        wire = one.objects.session.wire  # type: ignore[attr-defined]
        one.save_contact_content("net", "root", "root-c0", "warm")  # reads what the write touches
        before = wire.requests
        one.save_contact_content("net", "root", "root-c0", 1)
        assert wire.requests - before == 1  # one receive: the objects and the head's compare-and-swap

        two.save_contact_content("net", "root", "root-c1", "moved by two")
        before = wire.requests
        one.save_contact_content("net", "root", "root-c2", "after two")  # guesses the old head: loses, retries
        assert wire.requests - before >= 2
        before = wire.requests
        one.save_contact_content("net", "root", "root-c2", "contended")  # a ref that just lost is read afresh
        assert wire.requests - before >= 2
        for reader in (one, two):
            assert reader.load_contact_content("net", "root", "root-c1") == "moved by two"
            assert reader.load_contact_content("net", "root", "root-c2") == "contended"


def test_a_server_keeps_received_deltas_and_a_client_gc_keeps_their_bases(tmp_path: Path) -> None:
    """A push's stored deltas reach the server's store as delta frames at rest; the client caches only
    the whole frames it sent, so a gc run through the client judges chains by the server's own forms
    and the server's store stays whole."""
    from casstore.gc import collect_garbage

    served = LmdbStore(tmp_path / "served")
    src = NetworkStore(MemoryStore())
    groups = {f"g{i}": sample_group(f"g{i}", 25) for i in range(40)}
    src.save_network_state("net", NetworkState(groups, current_group_id="g0", root_group_id="g0"))
    with _client(create_app(served)) as client:
        casstore.push(src, client)
        before = set(served.blobs.iter_hashes())
        src.save_contact_content("net", "g3", "g3-c0", "changed")
        report = casstore.push(src, client)
        assert report.deltas > 0, report
        sent = sorted(set(served.blobs.iter_hashes()) - before)
        frames = served.blobs.get_frames(sent)
        assert any(frame is not None and frame[0] == FRAME_DELTA for frame in frames), "kept as deltas at rest"
        gc = collect_garbage(client, grace_minutes=0)
        assert gc.kept_bases > 0 and gc.swept > 0  # the old versions no delta needs are swept
        # a delta frame cached as sent, naming a base the server does not keep (it held the object in
        # another form): the read rebuilds from the server's form instead
        held = next(d for d, f in zip(sent, frames, strict=True) if f is not None and f[0] == FRAME_DELTA)
        data = served.blobs.get(held)
        other = codec.encode_value({"not": "on the server"})
        client.blobs.remember([(held, delta_frame(1, codec.hash_bytes(other), make_delta(data, other)))])
        assert client.blobs.get_many([held]) == [data]
        assert client.blobs.get_frames([held]) == served.blobs.get_frames([held])  # the cache now holds its form
        with NetworkStore(client) as remote:
            assert remote.load_contact_content("net", "g3", "g3-c0") == "changed"
    assert verify(NetworkStore(served)).ok


def test_after_a_push_of_deltas_a_write_through_the_pushing_client_reads_nothing(tmp_path: Path) -> None:
    """The client caches a pushed delta entry as a delta frame on the base it holds: the next write's
    tree path rebuilds from the cache (no read), and the cached chain rebuilds exactly what the server holds."""
    served = LmdbStore(tmp_path / "served")
    src = NetworkStore(LmdbStore(tmp_path / "src"))
    src.save_network_state("net", rich_state())
    with NetworkStore(_client(create_app(served))) as remote:
        casstore.push(src, remote.objects)
        for step in range(3):
            src.save_contact_content("net", "root", "root-c0", {"step": step})
            report = casstore.push(src, remote.objects)
            assert report.deltas > 0
        wire = remote.objects.session.wire  # type: ignore[attr-defined]
        cached = remote.objects.blobs.cache  # type: ignore[attr-defined]
        head = served.refs.get("networks/net/head")
        assert head is not None
        chained = [d for d in list(served.blobs.iter_hashes()) if (f := cached.lookup([d])[0]) and frame_chain(f) > 0]
        assert chained, "pushed deltas are cached as delta frames"
        assert remote.objects.blobs.get_many(chained) == served.blobs.get_many(chained)
        before = wire.requests
        remote.save_contact_content("net", "root", "root-c1", "written after the push")
        assert wire.requests - before == 1  # one receive: nothing read back
        assert src.load_contact_content("net", "root", "root-c0") == {"step": 2}
        assert NetworkStore(served).load_contact_content("net", "root", "root-c0") == {"step": 2}
        assert verify(NetworkStore(served)).ok
