"""The live network image (casstore.runtime): coalescing, each mode's flush points, transactions,
flush failures injected through a wrapper, bad values, two live images on one network, and the
snapshot timer with retention.  The crash tests per mode are in ``test_runtime_crash.py``."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import casstore
from casstore import Contact, Group, GroupState, NetworkState
from casstore.errors import GroupNotFound, StorageConnectionError, StorageError
from casstore.gc import collect_garbage
from casstore.model import NetworkStore
from casstore.runtime import NetworkImage, SchedulerStorageConfig
from casstore.store import open_object_store
from casstore.store.base import BlobStore, RefUpdate
from casstore.store.wrappers.base import WrappedBlobs, WrappedStore

NET = "net"


class FlakyBlobs(WrappedBlobs):
    def __init__(self, inner: BlobStore, owner: FlakyStore) -> None:
        super().__init__(inner)
        self.owner = owner

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        self.owner.check()
        super().put_frames(items)


class FlakyStore(WrappedStore):
    """Counts commits; while ``down``, every write raises StorageConnectionError (reads still work)."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.blobs = FlakyBlobs(inner.blobs, self)
        self.down = False
        self.commits = 0
        self.attempts = 0

    def check(self) -> None:
        if self.down:
            raise StorageConnectionError("backend down (injected)")

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        self.attempts += 1
        self.check()
        self.commits += 1
        super().commit(frames, updates)


def network(groups: int = 3, contacts: int = 10) -> NetworkState:
    states = {}
    for g in range(groups):
        gid = f"g{g}"
        ids = [f"c{c}" for c in range(contacts)]
        states[gid] = GroupState(Group(gid, gid, contact_ids=ids), {cid: Contact(cid, gid, 0) for cid in ids})
    return NetworkState(states)


def flaky_store(url: str = "memory://") -> tuple[NetworkStore, FlakyStore]:
    flaky = FlakyStore(open_object_store(url))
    store = NetworkStore(flaky)
    store.save_network_state(NET, network())
    return store, flaky


def image(store: NetworkStore, mode: str = "immediate", **settings: Any) -> NetworkImage:
    return NetworkImage(store, NET, SchedulerStorageConfig(mode, **settings))  # type: ignore[arg-type]


def test_one_hundred_changes_to_one_contact_are_one_write_in_one_commit() -> None:
    store, flaky = flaky_store()
    with image(store) as live:
        before = flaky.commits
        for value in range(100):
            live.set("g0", "c1", value)
        assert store.load_contact_content(NET, "g0", "c1") == 0  # nothing before the flush
        assert live.cycle_done() is True
        status = live.status()
        assert (flaky.commits - before, status.contact_writes, status.flushes, status.dirty) == (1, 1, 1, 0)
        assert store.load_contact_content(NET, "g0", "c1") == 99
        assert live.head == casstore.codec.format_id(store.refs.get("networks/net/head") or b"")


def test_each_mode_flushes_when_its_docstring_says() -> None:
    store, flaky = flaky_store()
    with image(store, "batch", batch_size=5) as live:
        for value in range(4):
            live.set("g0", "c0", value)
        assert flaky.commits == 1 and not live.durable()  # 1: the setup's save
        live.set("g1", "c0", "fifth")  # the batch is full: flushed inside this write
        assert flaky.commits == 2 and live.durable() and store.load_contact_content(NET, "g1", "c0") == "fifth"
        live.set("g0", "c0", "end")
        assert live.flush() and store.load_contact_content(NET, "g0", "c0") == "end"
    with image(store, "manual") as live:
        live.set("g0", "c0", "m")
        assert live.cycle_done() is False and store.load_contact_content(NET, "g0", "c0") == "end"
        live.close()  # manual: close does not flush
    assert store.load_contact_content(NET, "g0", "c0") == "end"
    with image(store, "manual") as live:
        live.set("g0", "c0", "m")
        assert live.save() and store.load_contact_content(NET, "g0", "c0") == "m"
    with image(store, "interval", interval_ms=20) as live:
        live.set("g2", "c2", "ticked")
        deadline = time.monotonic() + 10
        while store.load_contact_content(NET, "g2", "c2") != "ticked":
            assert time.monotonic() < deadline, "the interval flusher never flushed"
            time.sleep(0.01)
        assert live.status().flushes >= 1


def test_transactions_commit_once_roll_back_in_memory_and_nest_as_savepoints() -> None:
    store, flaky = flaky_store()
    with image(store, "transactional") as live:
        commits = flaky.commits
        with pytest.raises(ValueError), live.transaction():
            live.set("g0", "c0", "doomed")
            live.set("g0", "fresh", "doomed")
            live.put_group("gx", GroupState(Group("gx", "new")))
            assert live.get("g0", "c0") == "doomed"  # visible inside
            raise ValueError
        assert live.get("g0", "c0") == 0 and live.contact("g0", "fresh") is None and live.group("gx") is None
        assert "fresh" not in live.group("g0").group.contact_ids  # type: ignore[union-attr]
        assert flaky.commits == commits and live.durable()
        with live.transaction():
            live.set("g0", "c0", "outer")
            with live.transaction():
                live.set("g0", "c1", "inner kept")
            with pytest.raises(KeyError), live.transaction():
                live.set("g0", "c2", "inner rolled back")
                raise KeyError
            with pytest.raises(StorageError, match="inside an image transaction"):
                live.flush()
            assert flaky.commits == commits  # nothing written before the outermost exit
        assert flaky.commits == commits + 1
        loaded = [store.load_contact_content(NET, "g0", c) for c in ("c0", "c1", "c2")]
        assert loaded == ["outer", "inner kept", 0]


def test_a_failed_flush_loses_nothing_is_reported_and_retried_while_the_runtime_goes_on() -> None:
    store, flaky = flaky_store()
    errors: list[StorageError] = []
    live = NetworkImage(store, NET, SchedulerStorageConfig("immediate"), on_error=errors.append)
    live.set("g0", "c0", "a")
    flaky.down = True
    assert live.cycle_done() is False
    status = live.status()
    assert status.failures == 1 and status.dirty == 1 and "STORAGE_CONNECTION_ERROR" in (status.last_error or "")
    assert len(errors) == 1 and isinstance(errors[0], StorageConnectionError)
    live.set("g0", "c1", "b")  # the runtime's writes and reads go on
    live.put_group("gy", GroupState(Group("gy", "y"), {"k": Contact("k", "gy", 1)}))
    assert live.get("g0", "c0") == "a" and live.get("gy", "k") == 1
    assert live.cycle_done() is False and live.status().failures == 2
    flaky.down = False
    assert live.cycle_done() is True
    assert live.status().failures == 0 and live.status().last_error is None
    state = store.load_network_state(NET)
    assert state is not None
    assert state.groups["g0"].contacts["c0"].content == "a" and state.groups["g0"].contacts["c1"].content == "b"
    assert state.groups["gy"].contacts["k"].content == 1
    live.close()


def test_a_value_set_while_a_failed_flush_was_in_flight_is_the_one_written_after() -> None:
    store, flaky = flaky_store()
    entered, release = threading.Event(), threading.Event()
    check = flaky.check

    def held_then_down() -> None:
        entered.set()
        assert release.wait(30)
        raise StorageConnectionError("backend down (injected)")

    live = image(store, "manual")
    live.set("g0", "c0", "carried by the failed flush")
    live.set("g0", "c1", "only in the failed flush")
    flaky.check = held_then_down  # type: ignore[method-assign]
    flushing = threading.Thread(target=live.flush)
    flushing.start()
    assert entered.wait(30)
    live.set("g0", "c0", "set meanwhile")  # newer than what the failed flush carried
    release.set()
    flushing.join(30)
    flaky.check = check  # type: ignore[method-assign]
    assert live.status().failures == 1 and live.status().dirty == 2
    assert live.flush()
    assert store.load_contact_content(NET, "g0", "c0") == "set meanwhile"
    assert store.load_contact_content(NET, "g0", "c1") == "only in the failed flush"
    live.close()


def test_a_rolled_back_transaction_leaves_earlier_unflushed_values_to_be_written() -> None:
    store, _ = flaky_store()
    live = image(store, "manual")
    live.set("g0", "c0", "before")
    live.set("g1", "c1", "before, in a group the transaction replaces")
    with pytest.raises(ValueError), live.transaction():
        live.set("g0", "c0", "rolled back")
        live.put_group("g1", GroupState(Group("g1", "replaced"), {"c1": Contact("c1", "g1", "rolled back")}))
        raise ValueError
    assert live.status().dirty == 2
    assert live.flush()
    assert store.load_contact_content(NET, "g0", "c0") == "before"
    assert store.load_contact_content(NET, "g1", "c1") == "before, in a group the transaction replaces"
    live.close()


def test_a_down_backend_does_not_slow_every_write_of_a_batch() -> None:
    store, flaky = flaky_store()
    with image(store, "batch", batch_size=2) as live:
        flaky.down = True
        for value in range(2000):
            live.set("g0", f"c{value % 10}", value)
        assert flaky.attempts <= 50  # not one per full batch (1,000): later ones wait for the retry pause
        assert live.status().failures >= 1 and live.status().dirty == 10
        flaky.down = False
        assert live.flush()
    assert store.load_contact_content(NET, "g0", "c9") == 1999


def test_image_and_store_agree_after_structural_changes() -> None:
    store, _ = flaky_store()
    with image(store, "manual") as live:
        outer = Group("outer", "outer", subgroup_ids=["middle"])
        middle = Group("middle", "middle", parent_id="outer", subgroup_ids=["inner"], contact_ids=["m"])
        inner = Group("inner", "inner", parent_id="middle")
        live.put_group("outer", GroupState(outer))
        live.put_group("middle", GroupState(middle, {"m": Contact("m", "middle", 1)}))
        live.put_group("inner", GroupState(inner))
        live.set("g1", "brand-new", "hello")
        assert live.save()
        live.delete_group("middle")  # inner moves up to outer, in the image as in the store
        live.set("inner", "born", 2)
        assert live.save()
        assert live.group("inner").group.parent_id == "outer"  # type: ignore[union-attr]
        assert live.group("outer").group.subgroup_ids == ["inner"]  # type: ignore[union-attr]
        assert store.load_network_state(NET) == live.state


def test_a_bad_value_is_reported_and_the_rest_is_written() -> None:
    store, _ = flaky_store()
    errors: list[StorageError] = []
    with NetworkImage(store, NET, SchedulerStorageConfig("immediate"), on_error=errors.append) as live:
        live.set("g0", "c0", {1, 2})  # a set is outside the data model
        live.set("g0", "c1", "fine")
        assert live.cycle_done() is False
        assert store.load_contact_content(NET, "g0", "c1") == "fine"
        assert [(r.group_id, r.contact_id) for r in live.status().rejected] == [("g0", "c0")]
        assert "c0" in str(errors[0]) and "set" in str(errors[0])
        with pytest.raises(GroupNotFound):
            live.set("nope", "c0", 1)


def test_two_live_images_on_one_network_merge_their_changes(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'shared'}"  # two opens in one process (LMDB allows one per process)
    first, second = casstore.open_store(url), casstore.open_store(url)
    first.save_network_state(NET, network())
    a, b = image(first), image(second)
    a.set("g0", "c0", "from a")
    b.set("g1", "c1", "from b")
    b.set("g0", "c0", "b loses: a flushes later")
    assert b.cycle_done()
    assert a.cycle_done()  # a conflict: a's dirty contacts are written on b's head, and a takes in b's change
    assert a.get("g1", "c1") == "from b" and a.get("g0", "c0") == "from a"
    b.set("g2", "c2", "b again")
    assert b.cycle_done()  # b takes in a's changes the same way
    assert b.get("g0", "c0") == "from a" and b.get("g1", "c1") == "from b"
    stored = casstore.open_store(url)
    got = [stored.load_contact_content(NET, g, c) for g, c in (("g0", "c0"), ("g1", "c1"), ("g2", "c2"))]
    assert got == ["from a", "from b", "b again"]
    a.refresh()
    assert a.get("g2", "c2") == "b again"
    for closable in (a, b):
        closable.close()
    for store in (first, second, stored):
        store.close()


def test_auto_snapshots_keep_the_newest_n_spare_labelled_ones_and_gc_reclaims(tmp_path: Path) -> None:
    store = casstore.open_store(str(tmp_path / "store"))
    store.save_network_state(NET, network(contacts=50))
    labelled = store.save_snapshot(NET, "keep me")
    keep, extra = 3, 4
    live = image(store, "immediate", snapshot_interval=1, max_snapshots=keep)
    for step in range(keep + extra):
        live.set("g0", "c0", {"step": step, "pad": "x" * 3000})  # big enough to be its own object
        time.sleep(0.003)  # past the 1 ms snapshot interval
        assert live.flush()  # one head move each (cycle_done journals, and a fold may take several cycles)
    live.close()
    snapshots = store.list_snapshots(NET)
    automatic = [s for s in snapshots if s.automatic]
    assert live.status().auto_snapshots == keep + extra
    assert len(automatic) == keep and all(s.label is None for s in automatic)
    assert [s.id for s in snapshots if not s.automatic] == [labelled]
    assert store.load_snapshot(NET, automatic[0].id).groups["g0"].contacts["c0"].content["step"] == keep + extra - 1
    report = collect_garbage(store, grace_minutes=0)
    assert report.swept >= 2 * extra  # at least each pruned snapshot's own object and network root
    assert casstore.verify(store).ok
    store.close()
