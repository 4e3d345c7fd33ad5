"""The live image at its edges (found by a fuzzing pass, session 17): an interrupt in a flush, callbacks
that call back into the image, writes after close, wrong-typed arguments and out-of-range periods."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from test_runtime import NET, network

from casstore.errors import InvalidConfig, SerializationError, StorageError
from casstore.model import NetworkStore
from casstore.runtime import NetworkImage, SchedulerStorageConfig, recover_journal
from casstore.runtime.retention import prune_snapshots
from casstore.store import open_object_store
from casstore.store.base import RefUpdate
from casstore.store.wrappers.base import WrappedStore


class InterruptedStore(WrappedStore):
    """The next ``interrupts`` commits raise KeyboardInterrupt, as a Ctrl-C landing in them would."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.interrupts = 0

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        if self.interrupts:
            self.interrupts -= 1
            raise KeyboardInterrupt
        super().commit(frames, updates)


def interrupted_store() -> tuple[NetworkStore, InterruptedStore]:
    inner = InterruptedStore(open_object_store("memory://"))
    store = NetworkStore(inner)
    store.save_network_state(NET, network(contacts=50))
    return store, inner


@pytest.mark.parametrize("mode", ["manual", "immediate"])  # a flush to the head; a journal entry
def test_an_interrupted_flush_keeps_every_change_dirty(mode: str) -> None:
    store, inner = interrupted_store()
    with NetworkImage(store, NET, SchedulerStorageConfig(mode)) as live:  # type: ignore[arg-type]
        for cid in range(50):
            live.set("g1", f"c{cid}", f"v{cid}")
        inner.interrupts = 1
        with pytest.raises(KeyboardInterrupt):
            live.flush() if mode == "manual" else live.cycle_done()
        assert live.status().dirty == 50 and not live.durable()
        assert live.flush() and live.durable()
    assert [store.load_contact_content(NET, "g1", f"c{cid}") for cid in range(50)] == [f"v{c}" for c in range(50)]


def _returns_within(fn: Callable[[], object], seconds: float = 10.0) -> bool:
    done = threading.Event()

    def run() -> None:
        fn()
        done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(seconds)


def test_callbacks_may_call_back_into_the_image_without_deadlocking_it() -> None:
    store = NetworkStore(open_object_store("memory://"))
    store.save_network_state(NET, network())
    holder: dict[str, NetworkImage] = {}
    calls: list[bool] = []
    live = NetworkImage(
        store, NET, SchedulerStorageConfig("manual"), on_error=lambda exc: calls.append(holder["live"].flush())
    )
    holder["live"] = live
    live.set("g0", "c0", object())  # rejected at the flush: on_error, which flushes again
    assert _returns_within(live.flush) and calls == [True]
    refreshed: list[BaseException] = []

    def refresh_from_inside_the_commit(_state: Any) -> None:
        try:
            live.refresh()
        except StorageError as exc:
            refreshed.append(exc)

    store.subscribe(NET, refresh_from_inside_the_commit)
    live.set("g0", "c1", "after")
    assert _returns_within(live.flush)  # the subscriber runs inside the image's own commit
    assert refreshed and "callback of its own commit" in str(refreshed[0])
    live.refresh()  # from outside a callback, as usual
    assert store.load_contact_content(NET, "g0", "c1") == "after"
    live.close()


def test_after_close_writes_are_refused_and_a_second_close_may_flush() -> None:
    store = NetworkStore(open_object_store("memory://"))
    store.save_network_state(NET, network())
    live = NetworkImage(store, NET, SchedulerStorageConfig("manual"))
    live.set("g0", "c0", "kept")
    assert live.close(flush=False) is False
    with pytest.raises(StorageError, match="closed"):
        live.set("g0", "c0", 1)
    with pytest.raises(StorageError, match="closed"):
        live.delete_group("g0")
    assert live.get("g0", "c0") == "kept"  # reads still answer from memory
    assert live.close(flush=True) is True and store.load_contact_content(NET, "g0", "c0") == "kept"


def test_wrong_typed_arguments_are_storage_errors() -> None:
    store = NetworkStore(open_object_store("memory://"))
    store.save_network_state(NET, network())
    with NetworkImage(store, NET, SchedulerStorageConfig("manual")) as live:
        for call in (
            lambda: live.get([], "c0"),  # type: ignore[arg-type]
            lambda: live.contact("g0", {}),  # type: ignore[arg-type]
            lambda: live.group([]),  # type: ignore[arg-type]
            lambda: live.set("g0", [], 1),  # type: ignore[arg-type]
        ):
            with pytest.raises(SerializationError):
                call()
    with pytest.raises(InvalidConfig):
        NetworkImage(store, NET, "interval")  # type: ignore[arg-type]
    with pytest.raises(SerializationError):
        NetworkImage("memory://", NET)  # type: ignore[arg-type]
    with pytest.raises(SerializationError):
        recover_journal("memory://", NET)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfig):
        SchedulerStorageConfig.from_persistence("x")  # type: ignore[arg-type]
    for keep_within in ("7d", 3600, timedelta(days=-1)):
        with pytest.raises(SerializationError, match="keep_within"):
            prune_snapshots(store, NET, keep_within=keep_within)  # type: ignore[arg-type]
    with pytest.raises(StorageError, match="flush process cannot open"):
        NetworkImage(store, NET, SchedulerStorageConfig("immediate"), flush_process=True)


@pytest.mark.parametrize("setting", ["interval_ms", "snapshot_interval"])
def test_periods_past_a_year_are_invalid(setting: str) -> None:
    for value in (10**13, 10**400):
        with pytest.raises(InvalidConfig, match=setting):
            SchedulerStorageConfig("interval", **{setting: value})
    SchedulerStorageConfig("interval", **{setting: 365 * 24 * 3600 * 1000})  # a year is still fine


class Celsius(dict[str, float]):
    """A value class the flush process cannot import (this test module is not on its path)."""


def test_a_value_the_flush_process_cannot_rebuild_is_flushed_in_process(tmp_path: Any) -> None:
    import time

    import casstore

    with casstore.open_store(f"lmdb://{tmp_path / 'store'}") as store:
        store.save_network_state(NET, network())
        config = SchedulerStorageConfig("interval", interval_ms=50)
        with NetworkImage(store, NET, config, journal=False) as live:
            assert live._worker is not None  # the interval flushes go to a child interpreter
            live.set("g0", "c0", Celsius(celsius=21.0))
            live.set("g1", "c1", "good value")
            deadline = time.monotonic() + 20
            while not live.durable() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert live.durable() and live.status().failures == 0
        assert store.load_contact_content(NET, "g1", "c1") == "good value"
        assert store.load_contact_content(NET, "g0", "c0") == {"celsius": 21.0}


# ---------------------------------------------------------------- the journal


class HoldFirstFold(WrappedStore):
    """Holds the first commit that deletes journal refs (a fold) until ``go`` is set."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.held, self.go, self.done = threading.Event(), threading.Event(), False

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        if not self.done and any(u.name.startswith("journal/") and u.new is None for u in updates):
            self.done = True
            self.held.set()
            self.go.wait(30)
        super().commit(frames, updates)


def test_a_fold_never_writes_an_entry_another_image_recovered_meanwhile(tmp_path: Any) -> None:
    import casstore

    lmdb = casstore.open_store(f"lmdb://{tmp_path / 'store'}")
    lmdb.save_network_state(NET, network())
    held = HoldFirstFold(lmdb.objects)
    first = NetworkImage(NetworkStore(held), NET, SchedulerStorageConfig("immediate"))
    first.set("g0", "c0", "first: older")
    assert first.cycle_done()  # a journal entry; the background fold of it is then held
    assert held.held.wait(10)
    second = NetworkImage(NetworkStore(lmdb.objects), NET, SchedulerStorageConfig("manual"))  # recovers it
    assert second.get("g0", "c0") == "first: older"
    second.set("g0", "c0", "second: newer, acknowledged")
    assert second.flush()
    held.go.set()  # the first image's fold goes on: the entry is gone, so it must not be written again
    first.close()
    second.close()
    assert lmdb.load_contact_content(NET, "g0", "c0") == "second: newer, acknowledged"
    lmdb.close()


def test_journal_entries_stay_in_order_when_the_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    from casstore.runtime import journal

    store = NetworkStore(open_object_store("memory://"))
    store.save_network_state(NET, network())
    entries = journal.Journal(store, NET)
    now = [2_000_000_000_000_000_000]
    monkeypatch.setattr("casstore.runtime.journal.time.time_ns", lambda: now[0])
    first, _ = entries.append({("g0", "c0"): "older"})
    now[0] -= 3600 * 10**9  # an hour back (NTP, a VM resumed)
    second, _ = entries.append({("g0", "c0"): "newest"})
    assert first is not None and second is not None and first.name < second.name
    recover_journal(store, NET)  # as after a crash: replayed in name order
    assert store.load_contact_content(NET, "g0", "c0") == "newest"


def test_a_malformed_journal_entry_is_reported_corrupt_and_folds_nothing() -> None:
    from casstore import codec
    from casstore.errors import CorruptObject

    store = NetworkStore(open_object_store("memory://"))
    store.save_network_state(NET, network())
    name = "journal/net/00000000000000000001-x-1"
    for body in (
        {"t": "journal", "v": 2, "net": "other", "k": ["g0", "c0"], "d": codec.encode_value(["another network's"])},
        {"t": "journal", "v": 2, "net": NET, "k": [1, 2], "d": codec.encode_value([1])},
    ):
        ((digest, frame),) = codec.frame_many([codec.encode(body)])
        store.objects.commit([(digest, frame)], [RefUpdate(name, store.objects.refs.get(name), digest)])
        with pytest.raises(CorruptObject) as error:
            recover_journal(store, NET)
        assert error.value.object_id == codec.format_id(digest) and name in str(error.value)
        assert store.load_contact_content(NET, "g0", "c0") == 0


def test_a_rollback_keeps_dirty_what_a_failed_flush_put_back() -> None:
    from casstore.errors import StorageConnectionError

    class FailsOnceHeld(WrappedStore):
        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.armed, self.entered, self.release = False, threading.Event(), threading.Event()

        def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
            if self.armed:
                self.armed = False
                self.entered.set()
                self.release.wait(30)
                raise StorageConnectionError("backend down (injected)")
            super().commit(frames, updates)

    gated = FailsOnceHeld(open_object_store("memory://"))
    store = NetworkStore(gated)
    store.save_network_state(NET, network())
    live = NetworkImage(store, NET, SchedulerStorageConfig("manual"))
    live.set("g0", "c0", "before the transaction")
    gated.armed = True
    flushing = threading.Thread(target=live.flush)
    flushing.start()
    assert gated.entered.wait(10)  # the flush has taken the dirty map
    with pytest.raises(RuntimeError), live.transaction():
        live.set("g0", "c0", "inside the transaction")
        gated.release.set()
        flushing.join()  # it failed: its change is back in the dirty map
        raise RuntimeError("roll back")
    assert live.get("g0", "c0") == "before the transaction" and not live.durable()
    assert live.flush() and store.load_contact_content(NET, "g0", "c0") == "before the transaction"
    live.close()
