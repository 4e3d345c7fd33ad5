"""Push, pull and sync between every pair of backends; minimality, divergence and interruption."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from backends import CASES
from conftest import s3_faults
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import casstore
from casstore import sync
from casstore.model import Contact, GroupState, NetworkState, NetworkStore
from casstore.model.refs import head_ref, tip_ref
from casstore.pack import read_pack
from casstore.store.base import RefUpdate
from casstore.store.memory import MemoryStore
from casstore.sync import engine
from casstore.testing.network import rich_state, sample_group
from casstore.verify import verify

KINDS = [case.name for case in CASES if case.sync_pairs]  # the backend cases of tests/backends.py
PAIRS = list(itertools.product(KINDS, KINDS)) + [
    pair for case in CASES for partner in case.sync_partners for pair in ((case.name, partner), (partner, case.name))
]


def change(store: NetworkStore, network: str, value: Any) -> None:
    store.save_contact_content(network, "root", "root-c3", value)


def snapshots(store: NetworkStore, network: str) -> set[str]:
    return {info.id for info in store.list_snapshots(network)}


@pytest.mark.parametrize(("src_kind", "dst_kind"), PAIRS)
def test_push_then_pull_back_between_every_pair(
    make: Callable[[str], NetworkStore], src_kind: str, dst_kind: str
) -> None:
    src, dst = make(src_kind), make(dst_kind)
    src.save_network_state("net", rich_state())
    src.save_snapshot("net", "first")
    change(src, "net", "second")
    src.save_snapshot("net", "second")
    src.save_network_state("other", NetworkState({"g": sample_group("g", 5)}, "g", "g"))

    report = casstore.push(src, dst)
    assert report.networks == {"net": "created", "other": "created"}
    assert report.objects_sent > 0 and report.bytes_sent > 0 and report.snapshots_copied == 2
    for network in ("net", "other"):
        assert dst.load_network_state(network) == src.load_network_state(network)
    assert snapshots(dst, "net") == snapshots(src, "net")
    again = casstore.push(src, dst)
    assert again.objects_sent == 0 and again.round_trips <= 2
    assert set(again.networks.values()) == {"up-to-date"}

    change(dst, "net", "made on the destination")  # the destination moves on; pull it back
    dst.save_snapshot("net", "third")
    pulled = casstore.pull(src, dst, remote=sync.remote_name(dst))
    assert pulled.networks["net"] == "updated", pulled
    assert src.load_network_state("net") == dst.load_network_state("net")
    assert snapshots(src, "net") == snapshots(dst, "net")
    assert verify(src).ok and verify(dst).ok
    assert casstore.push(src, dst).objects_sent == 0


def test_pull_records_the_agreed_head_in_the_local_store(make: Callable[[str], NetworkStore]) -> None:
    local, remote = make("memory"), make("lmdb")
    remote.save_network_state("net", rich_state())
    assert casstore.pull(local, remote, remote="origin").networks == {"net": "created"}
    assert local.refs.get(sync.tracking_ref("origin", "net")) == remote.refs.get("networks/net/head")
    assert remote.refs.list("remotes/") == {}  # nothing recorded on the remote side


def test_divergence_moves_nothing_unless_forced(make: Callable[[str], NetworkStore]) -> None:
    a, b = make("lmdb"), make("lmdb")
    a.save_network_state("net", rich_state())
    casstore.push(a, b, remote="b")
    change(a, "net", "from a")
    change(b, "net", "from b")
    a.save_snapshot("net", "a's snapshot")
    before_a, before_b = a.refs.get("networks/net/head"), b.refs.get("networks/net/head")

    report = casstore.push(a, b, remote="b")
    assert report.networks == {"net": "diverged"}
    assert b.refs.get("networks/net/head") == before_b and a.refs.get("networks/net/head") == before_a
    assert snapshots(b, "net") == snapshots(a, "net")  # snapshots are immutable: always copied
    assert casstore.pull(a, b, remote="b").networks == {"net": "diverged"}
    assert a.refs.get("networks/net/head") == before_a

    forced = casstore.push(a, b, remote="b", force=True)
    assert forced.networks == {"net": "updated"}
    assert b.load_network_state("net") == a.load_network_state("net")
    assert casstore.push(a, b, remote="b").networks == {"net": "up-to-date"}


def test_a_target_ahead_is_left_alone(make: Callable[[str], NetworkStore]) -> None:
    a, b = make("memory"), make("memory")
    a.save_network_state("net", rich_state())
    casstore.push(a, b, remote="b")
    change(b, "net", "only b changed")
    ahead = b.refs.get("networks/net/head")
    assert casstore.push(a, b, remote="b").networks == {"net": "up-to-date"}
    assert b.refs.get("networks/net/head") == ahead
    assert casstore.pull(a, b, remote="b").networks == {"net": "updated"}
    assert a.refs.get("networks/net/head") == ahead


def test_store_sync_pulls_then_pushes(make: Callable[[str], NetworkStore]) -> None:
    local, remote = make("lmdb"), make("file")
    local.save_network_state("mine", rich_state())
    remote.save_network_state("theirs", NetworkState({"g": sample_group("g", 3)}, "g", "g"))
    report = local.sync(remote)
    assert report.networks == {"mine": "created", "theirs": "created"}
    assert local.list_networks() == remote.list_networks() == ["mine", "theirs"]
    change(local, "mine", 1)
    assert local.sync(remote).networks == {"mine": "updated", "theirs": "up-to-date"}
    assert remote.load_network_state("mine") == local.load_network_state("mine")
    assert local.sync(remote).objects_sent == 0


def test_a_pull_notifies_the_local_subscribers_of_the_groups_it_changed(make: Callable[[str], NetworkStore]) -> None:
    local, remote = make("memory"), make("lmdb")
    remote.save_network_state("net", rich_state())
    casstore.pull(local, remote, remote="r")
    heard: list[tuple[str, Any]] = []
    local.subscribe("net", lambda state: heard.append((state.group.id, state.contacts["root-c3"].content)))
    change(remote, "net", "new value")
    assert casstore.pull(local, remote, remote="r").networks == {"net": "updated"}
    assert heard == [("root", "new value")]


def test_push_of_a_missing_network_is_a_clear_error(make: Callable[[str], NetworkStore]) -> None:
    a, b = make("memory"), make("memory")
    with pytest.raises(casstore.errors.NetworkNotFound) as info:
        casstore.push(a, b, networks=["nope"])
    assert info.value.code == "NETWORK_NOT_FOUND"


class FailAfter:
    """Makes a store's ``receive_pack`` (sync's one write) raise once ``limit`` objects have landed."""

    def __init__(self, store: NetworkStore, limit: int) -> None:
        self.limit, self.landed = limit, 0
        self.original = store.objects.receive_pack
        store.objects.receive_pack = self  # type: ignore[method-assign]

    def __call__(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        if self.landed >= self.limit:
            raise ConnectionError("connection lost")
        stored = self.original(pack, updates)
        self.landed += stored
        return stored


@pytest.mark.parametrize("dst_kind", ["lmdb", "file", "s3"])
def test_an_interrupted_push_moves_no_ref_and_resumes(
    make: Callable[[str], NetworkStore], monkeypatch: pytest.MonkeyPatch, dst_kind: str
) -> None:
    src, dst = make("lmdb"), make(dst_kind)
    groups = {f"g{i}": sample_group(f"g{i}", 300) for i in range(20)}
    src.save_network_state("net", NetworkState(groups, "g0", "g0"))
    src.save_snapshot("net")
    full = casstore.push(src, make("memory"))
    monkeypatch.setattr(engine, "WRITE_OBJECTS", 5)
    failing = FailAfter(dst, full.objects_sent // 2)
    with pytest.raises(ConnectionError):
        casstore.push(src, dst)
    assert dst.refs.list() == {}
    assert failing.landed >= full.objects_sent // 2
    report = verify(dst)
    assert report.ok and report.objects == failing.landed
    dst.objects.receive_pack = failing.original  # type: ignore[method-assign]
    rest = casstore.push(src, dst)
    assert rest.networks == {"net": "created"}
    assert rest.objects_sent == full.objects_sent - failing.landed
    assert dst.load_network_state("net") == src.load_network_state("net")
    assert verify(dst).ok


def test_push_and_pull_through_s3_faults(make: Callable[[str], NetworkStore]) -> None:
    """Throttling and 500s on 30% of S3 requests (retried by botocore): the exchange completes, verify passes."""
    local, remote = make("lmdb"), make("s3")
    groups = {f"g{i}": sample_group(f"g{i}", 200) for i in range(10)}
    local.save_network_state("net", NetworkState(groups, "g0", "g0"))
    local.save_snapshot("net")
    with s3_faults(remote.objects.client, rate=0.3, seed=5) as injected:  # type: ignore[attr-defined]
        assert casstore.push(local, remote).networks == {"net": "created"}
        remote.save_contact_content("net", "g1", "g1-c0", 7)
        back = make("memory")
        assert casstore.pull(back, remote).networks == {"net": "created"}
    assert injected
    assert back.load_network_state("net") == remote.load_network_state("net")
    assert verify(remote).ok


def test_a_source_missing_an_object_fails_before_any_ref_moves(make: Callable[[str], NetworkStore]) -> None:
    src, dst = make("memory"), make("memory")
    src.save_network_state("net", rich_state())
    victim = next(iter(src.blobs.iter_hashes()))
    src.blobs.delete_many([victim])
    with pytest.raises(casstore.errors.StorageError):
        casstore.push(src, dst)
    assert dst.refs.list() == {}
    assert verify(dst).ok


class RecordingStore(MemoryStore):
    """Records every ``receive_pack`` call, and every object or ref write that does not come through one."""

    def __init__(self, passive_remote: bool) -> None:
        super().__init__()
        self.passive_remote = passive_remote
        self.received: list[tuple[bytes, list[RefUpdate]]] = []
        self.bypassing: list[str] = []
        self.inside = False
        for target, method in ((self.blobs, "put_frames"), (self.refs, "compare_and_swap"), (self.refs, "delete")):
            setattr(target, method, self._watch(method, getattr(target, method)))

    def _watch(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def watched(*args: Any) -> Any:
            if not self.inside:
                self.bypassing.append(name)
            return call(*args)

        return watched

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        if not self.inside:
            self.bypassing.append("commit")
        super().commit(frames, updates)

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        self.received.append((pack, list(updates)))
        self.inside = True
        try:
            return super().receive_pack(pack, updates)
        finally:
            self.inside = False


@pytest.mark.parametrize("passive_remote", [False, True])
def test_every_batch_of_a_push_arrives_through_receive_pack(
    monkeypatch: pytest.MonkeyPatch, passive_remote: bool
) -> None:
    src = NetworkStore(MemoryStore())
    src.save_network_state("net", NetworkState({f"g{i}": sample_group(f"g{i}", 300) for i in range(4)}, "g0", "g0"))
    src.save_snapshot("net")
    recorder = RecordingStore(passive_remote)
    dst = NetworkStore(recorder)
    monkeypatch.setattr(engine, "WRITE_OBJECTS", 7)
    for update in (False, True):
        if update:
            step(src, 4, "changed")
            src.save_snapshot("net")
        before, old_head = set(recorder.blobs.iter_hashes()), recorder.refs.get(head_ref("net"))
        recorder.received.clear()
        report = casstore.push(src, dst)
        assert report.networks == {"net": "updated" if update else "created"}
        calls = recorder.received
        entries = [entry for pack, _ in calls for entry in read_pack(pack)]
        # batches of 7 objects, then the last (maybe empty) batch, with the ref moves
        assert len(calls) == report.objects_sent // 7 + 1 and len(entries) == report.objects_sent
        assert {entry.digest for entry in entries} == set(recorder.blobs.iter_hashes()) - before
        assert all(not updates for _, updates in calls[:-1])  # the ref moves ride with the last batch only
        moved = {u.name: (u.expected, u.new) for u in calls[-1][1]}
        assert moved[head_ref("net")] == (old_head, src.refs.get(head_ref("net")))
        assert moved[tip_ref("net")][1] == src.refs.get(tip_ref("net"))
        assert recorder.refs.list() == src.refs.list("networks/")
        deltas = sum(entry.base is not None for entry in entries)
        assert deltas == report.deltas
        if update and not passive_remote:
            assert deltas > 0 and report.bytes_sent == sum(len(pack) for pack, _ in calls)
        else:  # whole frames only (nothing to delta against, or a passive remote); bytes_sent counts the frames
            assert deltas == 0 and report.bytes_sent == sum(len(entry.payload) for entry in entries)
    assert recorder.bypassing == []
    assert dst.load_network_state("net") == src.load_network_state("net")
    assert verify(dst).ok


def step(store: NetworkStore, groups: int, value: str) -> int:
    """Set one contact in each group to ``value``, in one batch; the bytes of the whole frames that created.

    (At rest the rewritten objects are deltas: their whole frames are what a transfer without deltas sends.)
    """
    before = set(store.blobs.iter_hashes())
    with store.batch("net") as batch:
        for i in range(groups):
            batch.save_contact_content("net", f"g{i}", f"g{i}-c7", {"changed": value})
    created = [digest for digest in store.blobs.iter_hashes() if digest not in before]
    return sum(len(frame or b"") for frame in store.blobs.get_whole_frames(created, compress=True))


@pytest.mark.parametrize(
    ("src_kind", "dst_kind"), [("memory", "lmdb"), ("lmdb", "file"), ("file", "memory"), ("lmdb", "s3"), ("s3", "lmdb")]
)
def test_updates_travel_as_deltas_unless_a_side_is_a_passive_remote(
    make: Callable[[str], NetworkStore], src_kind: str, dst_kind: str
) -> None:
    src, dst = make(src_kind), make(dst_kind)
    src.save_network_state("net", NetworkState({f"g{i}": sample_group(f"g{i}", 300) for i in range(4)}, "g0", "g0"))
    assert casstore.push(src, dst).deltas == 0  # nothing to delta against yet
    passive = src.objects.passive_remote or dst.objects.passive_remote
    for sender, receiver, move in ((src, dst, casstore.push), (dst, src, casstore.pull)):
        created = step(sender, 4, f"by {sender.url}")
        report = move(src, dst) if move is casstore.push else move(src, dst, remote=sync.remote_name(dst))
        assert report.networks == {"net": "updated"}
        assert receiver.load_network_state("net") == sender.load_network_state("net")
        assert verify(receiver).ok
        if passive:  # S3 runs no casstore code to rebuild a delta: whole frames travel
            assert report.deltas == 0 and report.bytes_sent == created
        else:
            assert report.deltas >= 4 and report.bytes_sent < created / 2, (report, created)


def test_a_base_the_sender_lacks_is_not_used(make: Callable[[str], NetworkStore]) -> None:
    """Forcing over a head the source never saw: no delta against it, and the push still lands whole."""
    src, dst = make("lmdb"), make("lmdb")
    src.save_network_state("net", NetworkState({f"g{i}": sample_group(f"g{i}", 300) for i in range(4)}, "g0", "g0"))
    casstore.push(src, dst)
    step(dst, 2, "by the destination")  # a head only the destination has
    step(src, 4, "by the source")
    assert casstore.push(src, dst).networks == {"net": "diverged"}
    forced = casstore.push(src, dst, force=True)
    assert forced.networks == {"net": "updated"} and forced.deltas == 0
    assert dst.load_network_state("net") == src.load_network_state("net")
    assert verify(dst).ok


def test_group_bodies_and_large_contents_travel_as_deltas(make: Callable[[str], NetworkStore]) -> None:
    """A group body (it lists its contacts) and a large content are paired with their old versions by key."""
    src, dst = make("memory"), make("lmdb")
    rows = [{"t": i, "reading": f"sensor value {i * 7}"} for i in range(2000)]  # ~60 KB: its own object
    group = sample_group("g", 2000)
    group.contacts["g-c0"].content = rows
    src.save_network_state("net", NetworkState({"g": group}, "g", "g"))
    casstore.push(src, dst)
    rows[1000]["reading"] = "changed"
    group.contacts["g-new"] = Contact("g-new", "g", "a new contact")
    group.group.contact_ids.append("g-new")  # rewrites the group body
    src.save_group_state("net", "g", group)
    report = casstore.push(src, dst)
    assert report.networks == {"net": "updated"}
    assert dst.load_network_state("net") == src.load_network_state("net")
    assert verify(dst).ok
    # the group body's frame is ~3.6 KB and the large content's ~9.3 KB: both must have gone as deltas
    assert report.deltas >= 2 and report.bytes_sent < 3_000, report


@pytest.mark.slow
def test_an_incremental_push_sends_about_what_the_step_created(make: Callable[[str], NetworkStore]) -> None:
    src, dst = make("lmdb"), make("lmdb")
    groups = {}
    for g in range(100):
        state = sample_group(f"g{g}", 0)
        state.contacts = {f"c{i}": Contact(f"c{i}", f"g{g}", {"v": i, "g": g}) for i in range(1000)}
        groups[f"g{g}"] = state
    src.save_network_state("net", NetworkState(groups, "g0", "g0"))
    src.save_snapshot("net")
    casstore.push(src, dst)
    before = src.blobs.stats().objects
    with src.batch("net") as batch:
        for i in range(1000):  # 1% churn, spread over the groups
            batch.save_contact_content("net", f"g{i % 100}", f"c{(i * 37) % 1000}", {"v": -i})
    src.save_snapshot("net")
    created = src.blobs.stats().objects - before
    report = casstore.push(src, dst)
    print(f"step created {created} objects; the push sent {report.objects_sent} in {report.round_trips} round trips")
    assert report.networks == {"net": "updated"}
    assert 0 < report.objects_sent <= 2 * created
    assert report.deltas >= 0.9 * report.objects_sent  # the rewritten leaves and their paths travel as deltas
    assert dst.load_network_state("net") == src.load_network_state("net")


class TwoStores(RuleBasedStateMachine):
    """Random histories on two stores and random pushes and pulls between them (``a`` is the local one)."""

    def __init__(self) -> None:
        super().__init__()
        self.stores = {"a": NetworkStore(MemoryStore()), "b": NetworkStore(MemoryStore())}
        self.seen_snapshots: dict[str, set[str]] = {"a": set(), "b": set()}

    def head(self, name: str) -> bytes | None:
        return self.stores[name].refs.get("networks/n/head")

    @rule(side=st.sampled_from(["a", "b"]), value=st.integers(0, 3))
    def edit(self, side: str, value: int) -> None:
        store = self.stores[side]
        if store.exists("n"):
            store.save_contact_content("n", "g", "g-c0", value)
        else:
            store.save_group_state("n", "g", _group_with(value))

    @rule(side=st.sampled_from(["a", "b"]))
    def snapshot(self, side: str) -> None:
        if self.stores[side].exists("n"):
            self.seen_snapshots[side].add(self.stores[side].save_snapshot("n"))

    @rule(direction=st.sampled_from(["push", "pull"]), force=st.booleans())
    def exchange(self, direction: str, force: bool) -> None:
        a, b = self.stores["a"], self.stores["b"]
        source, target = ("a", "b") if direction == "push" else ("b", "a")
        if not self.stores[source].exists("n"):
            return
        base = a.refs.get(sync.tracking_ref("r", "n"))
        source_head, target_head = self.head(source), self.head(target)
        if direction == "push":
            report = casstore.push(a, b, force=force, remote="r")
        else:
            report = casstore.pull(a, b, force=force, remote="r")
        may_move = target_head is None or target_head == base or force
        expected = source_head if may_move else target_head
        assert self.head(source) == source_head
        assert self.head(target) == expected
        if target_head != source_head and not may_move:
            assert report.networks["n"] in ("diverged", "up-to-date")
            assert (report.networks["n"] == "diverged") == (source_head != base)
        if self.head(target) == source_head:
            assert a.refs.get(sync.tracking_ref("r", "n")) == source_head
        self.seen_snapshots[target] |= self.seen_snapshots[source]

    @rule()
    def sync_both_ways(self) -> None:
        a, b = self.stores["a"], self.stores["b"]
        report = a.sync(b, name="r")
        if report.networks.get("n") in ("created", "updated", "up-to-date"):
            assert self.head("a") == self.head("b")
        if report.networks:
            self.seen_snapshots["a"] |= self.seen_snapshots["b"]
            self.seen_snapshots["b"] |= self.seen_snapshots["a"]

    @invariant()
    def no_snapshot_is_lost(self) -> None:
        for side, store in self.stores.items():
            if store.exists("n"):
                assert self.seen_snapshots[side] <= snapshots(store, "n")


def _group_with(value: Any) -> GroupState:
    state = sample_group("g", 2)
    state.contacts["g-c0"].content = value
    return state


TestTwoStores = TwoStores.TestCase
TestTwoStores.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)


def test_a_tip_naming_a_deleted_snapshot_travels_with_its_snapshot(tmp_path: Path) -> None:
    """The tip still names the newest snapshot after that snapshot's ref is deleted; a push must send it."""
    src, dst = casstore.open_store(f"lmdb://{tmp_path / 'a'}"), casstore.open_store(f"lmdb://{tmp_path / 'b'}")
    src.save_network_state("net", rich_state())
    first = src.save_snapshot("net", "kept")
    src.save_contact_content("net", "root", "root-c0", {"changed": True})
    gone = src.save_snapshot("net", "dropped")
    src.delete_snapshot("net", gone)
    assert [s.id for s in src.list_snapshots("net")] == [first]
    casstore.push(src, dst)
    report = verify(dst)
    assert report.ok, report
    assert dst.refs.get(tip_ref("net")) == src.refs.get(tip_ref("net"))
    assert [s.id for s in dst.list_snapshots("net")] == [first]


def test_a_push_that_loses_the_head_race_leaves_the_snapshot_tip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The destination's head moves after the push listed it: reported diverged, and neither the head
    nor the snapshot tip moves (a moved tip would make the next snapshot claim the source's history)."""
    from casstore.store.lmdb import LmdbStore

    src = casstore.open_store(f"lmdb://{tmp_path / 'src'}")
    dst = casstore.open_store(f"lmdb://{tmp_path / 'dst'}")
    src.save_network_state("net", NetworkState({"g0": sample_group("g0"), "g1": sample_group("g1")}))
    src.save_snapshot("net", "s0")
    assert sync.push(src, dst).networks == {"net": "created"}
    src.save_contact_content("net", "g0", "c0", "src-change")
    src.save_snapshot("net", "src-s1")
    tip_before = dst.refs.get(tip_ref("net"))
    real = LmdbStore.receive_pack
    raced: list[bool] = []

    def racing(self: LmdbStore, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        if updates and not raced:
            raced.append(True)
            dst.save_contact_content("net", "g1", "c1", "a concurrent write")  # another writer moves the head
        return real(self, pack, updates)

    monkeypatch.setattr(LmdbStore, "receive_pack", racing)
    assert sync.push(src, dst).networks == {"net": "diverged"}
    assert dst.refs.get(tip_ref("net")) == tip_before
    nxt = dst.save_snapshot("net", "dst-next")
    labels = {s.id: s.label for s in dst.list_snapshots("net")}
    parents = next(s.parents for s in dst.list_snapshots("net") if s.id == nxt)
    assert [labels.get(p) for p in parents] == ["s0"]
    src.close()
    dst.close()
