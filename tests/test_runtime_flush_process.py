"""The live image's speed devices: the flush process of interval mode (casstore.runtime.worker) and the
collector paused during a flush (casstore.collector).  Timing figures are the benchmark's
(``tools/bench_runtime.py``); these tests check that the devices keep every guarantee."""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import casstore
from casstore import Contact, Group, GroupState, NetworkState
from casstore.collector import collector_paused
from casstore.errors import StorageError
from casstore.model import NetworkStore
from casstore.runtime import NetworkImage, SchedulerStorageConfig
from casstore.store import open_object_store
from casstore.store.wrappers.base import WrappedStore

NET = "net"


def network() -> NetworkState:
    ids = [f"c{c}" for c in range(20)]
    return NetworkState({"g": GroupState(Group("g", "g", contact_ids=ids), {cid: Contact(cid, "g", 0) for cid in ids})})


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.mark.parametrize("scheme", ["lmdb", "file"])
def test_interval_flushes_commit_in_a_flush_process_and_lose_nothing_when_it_dies(tmp_path: Path, scheme: str) -> None:
    url = str(tmp_path / "s") if scheme == "lmdb" else f"file://{tmp_path / 's'}"
    errors: list[StorageError] = []
    with casstore.open_store(url) as store:
        store.save_network_state(NET, network())
        live = NetworkImage(store, NET, SchedulerStorageConfig("interval", interval_ms=20), on_error=errors.append)
        worker = live._worker
        assert worker is not None
        live.set("g", "c0", {"v": 1})
        live.set("g", "new", [1, 2])  # a new contact, created by the flush process's commit
        live.set("g", "bad", object())  # picklable, outside the data model: rejected by the child
        wait_for(lambda: live.status().flushes >= 1 and live.durable(), "the flush process never flushed")
        first = worker.pid
        assert first is not None and first != os.getpid()
        assert live.status().rejected[-1].contact_id == "bad"
        # this process's store reads what the flush process committed
        assert store.load_contact_content(NET, "g", "c0") == {"v": 1}
        assert store.load_contact_content(NET, "g", "new") == [1, 2]
        assert store.load_contact_content(NET, "g", "bad") is None

        live.set("g", "lambda", lambda: 1)  # cannot be pickled: this flush runs in-process, rejects it
        wait_for(lambda: any(r.contact_id == "lambda" for r in live.status().rejected), "never rejected")

        # the flush process dies while a flush waits on it: that flush fails, nothing is lost, the next one
        # starts a new process
        os.kill(first, signal.SIGSTOP)
        for n in range(50):
            live.set("g", f"c{n % 20}", n)
        wait_for(lambda: live.status().dirty == 0 and not live.durable(), "no flush went to the stopped process")
        time.sleep(0.3)  # past the copy of the dirty set: the flush has been sent and waits for the reply
        os.kill(first, signal.SIGKILL)
        wait_for(lambda: live.status().total_failures >= 1, "the dead flush process was not noticed")
        assert any("flush process" in str(e) and "died" in str(e) for e in errors)
        wait_for(lambda: live.durable() and live.status().failures == 0, "no retry after the flush process died")
        assert worker.pid not in (None, first)  # a new one
        final = [max(n for n in range(50) if n % 20 == c) for c in range(20)]
        assert [live.get("g", f"c{c}") for c in range(20)] == final
        live.close()
        assert worker.pid is None
        assert [store.load_contact_content(NET, "g", f"c{c}") for c in range(20)] == final


def test_a_flush_process_is_refused_where_it_could_not_open_the_same_store(tmp_path: Path) -> None:
    with casstore.open_store("memory://") as store:
        store.save_network_state(NET, network())
        with pytest.raises(StorageError, match="flush process"):
            NetworkImage(store, NET, SchedulerStorageConfig("interval"), flush_process=True)
        with NetworkImage(store, NET, SchedulerStorageConfig("interval")) as live:
            assert live._worker is None  # the default: a thread of this process
    wrapped = NetworkStore(WrappedStore(open_object_store(str(tmp_path / "w"))))  # a wrapper would be bypassed
    wrapped.save_network_state(NET, network())
    with NetworkImage(wrapped, NET, SchedulerStorageConfig("interval")) as live:
        assert live._worker is None
    wrapped.close()


def test_the_collector_pause_nests_and_restores_what_was_there() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # disabled before: left disabled
    finally:
        gc.enable()
    with pytest.raises(KeyError), collector_paused():
        raise KeyError("x")
    assert gc.isenabled()
