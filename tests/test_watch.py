"""Watching refs (``ObjectStore.watch_refs``) and subscribing across processes.

The polling watch every backend inherits is checked on its own (differences,
a listing that fails and recovers, stop); then a network subscribed in this
process hears writes made by another process on LMDB and on a directory.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import pytest

import casstore
from casstore import GroupState
from casstore.store.watch import RefChanges, RefPoller, ref_differences
from casstore.testing.network import sample_group


def test_ref_differences_reports_changed_added_and_deleted() -> None:
    before = {"a": b"1", "b": b"2", "c": b"3"}
    after = {"a": b"1", "b": b"9", "d": b"4"}
    assert ref_differences(before, after) == {"b": b"9", "c": None, "d": b"4"}
    assert ref_differences(after, after) == {}


def test_poller_survives_failing_listings_and_reports_what_changed_meanwhile() -> None:
    refs = {"n/head": b"0"}
    failing = threading.Event()
    calls: list[int] = []

    def list_refs(prefix: str) -> Mapping[str, bytes]:
        calls.append(1)
        if failing.is_set():
            raise ConnectionError("the server went away")
        return {name: value for name, value in refs.items() if name.startswith(prefix)}

    reports: list[RefChanges] = []
    got = threading.Event()

    def callback(changes: RefChanges) -> None:
        reports.append(dict(changes))
        got.set()

    poller = RefPoller(list_refs, "n/", callback, 0.02)
    try:
        failing.set()
        refs["n/head"] = b"1"
        refs["n/head"] = b"2"  # two moves while unreachable: the latest is what matters
        refs["n/other"] = b"x"
        time.sleep(0.1)
        assert reports == [] and len(calls) > 2, "listings were attempted and failed"
        failing.clear()
        assert got.wait(2)
        assert reports == [{"n/head": b"2", "n/other": b"x"}]
    finally:
        poller.stop()
    count = len(calls)
    time.sleep(0.1)
    assert len(calls) == count, "a stopped poller lists nothing more"
    poller.stop()  # idempotent


def test_a_callback_that_raises_does_not_stop_the_watch(caplog: pytest.LogCaptureFixture) -> None:
    refs: dict[str, bytes] = {}
    seen: list[RefChanges] = []

    def callback(changes: RefChanges) -> None:
        seen.append(changes)
        raise ValueError("subscriber bug")

    poller = RefPoller(lambda prefix: dict(refs), "", callback, 0.02)
    try:
        refs["a"] = b"1"
        time.sleep(0.1)
        refs["a"] = b"2"
        deadline = time.monotonic() + 2
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [dict(c) for c in seen] == [{"a": b"1"}, {"a": b"2"}]
        assert "subscriber bug" in caplog.text
    finally:
        poller.stop()


WRITER = """
import sys, casstore
with casstore.open_store(sys.argv[1], create=False) as store:
    store.save_contact_content("net", "g", "g-c0", sys.argv[2])
"""


@pytest.mark.parametrize("scheme", ["lmdb", "file"])
def test_a_subscriber_hears_a_write_made_by_another_process(tmp_path: Path, scheme: str) -> None:
    url = f"{scheme}://{tmp_path / 'store'}"
    with casstore.open_store(url) as store:
        store.save_group_state("net", "g", sample_group("g"))
        heard: list[tuple[float, object]] = []
        arrived = threading.Event()

        def listen(state: GroupState) -> None:
            heard.append((time.monotonic(), state.contacts["g-c0"].content))
            arrived.set()

        store.subscribe("net", listen)
        subprocess.run([sys.executable, "-c", WRITER, url, "written by B"], check=True, timeout=60)
        done = time.monotonic()
        assert arrived.wait(5), "the other process's write was never reported"
        assert heard[0][1] == "written by B"
        assert heard[0][0] - done < 1.0, "reported within a second of the other process's commit"
        time.sleep(0.6)
        assert len(heard) == 1
