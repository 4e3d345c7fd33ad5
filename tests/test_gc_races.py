"""gc racing writers: a push or a local write that commits between gc's mark and its sweep, reusing
objects no ref reached when gc marked, keeps them (the refs and the recent writes are read again
before each batch of deletes).  Each race is made deterministic by running the write from a hook."""

from __future__ import annotations

import glob
import os
import time
from pathlib import Path
from typing import Any

import pytest

import casstore
import casstore.gc as gcmod
from casstore import Contact, Group, GroupState, NetworkState


def state(seed: int) -> NetworkState:
    groups = {}
    for g in range(3):
        gid = f"g{g}"
        contacts = {f"c{i}": Contact(f"c{i}", gid, {"seed": seed, "i": i, "pad": "x" * 200}) for i in range(20)}
        groups[gid] = GroupState(Group(gid, gid, contact_ids=list(contacts)), contacts)
    return NetworkState(groups)


@pytest.mark.parametrize("kind", ["lmdb", "file"])
def test_a_push_between_mark_and_sweep_keeps_the_objects_it_found_present(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{kind}://{tmp_path / 'dst'}"
    with casstore.open_store("memory://") as source, casstore.open_store(url) as destination:
        destination.save_network_state("net", state(1))
        destination.save_network_state("net", state(2))  # state 1's objects: unreachable, soon old
        time.sleep(1.2)
        source.save_network_state("other", state(1))  # the same objects, under another network
        real_mark = gcmod.mark
        pushed: list[casstore.SyncReport] = []

        def mark_then_push(*args: Any, **kwargs: Any) -> Any:
            marked = real_mark(*args, **kwargs)
            if not pushed:  # gc has marked: the push finds state 1's objects present and sends none
                pushed.append(casstore.push(source, destination))
            return marked

        monkeypatch.setattr(gcmod, "mark", mark_then_push)
        gcmod.collect_garbage(destination, grace_minutes=1 / 60)
        assert pushed and pushed[0].networks == {"other": "created"}
    with casstore.open_store(url) as reopened:
        assert casstore.verify(reopened).ok
        assert reopened.load_network_state("other") == state(1)


def test_a_local_write_between_mark_and_sweep_keeps_the_old_leaf_it_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"file://{tmp_path / 's'}"
    first, second = {"v": os.urandom(3000).hex()}, {"v": os.urandom(3000).hex()}
    with casstore.open_store(url) as store:
        store.save_network_state("n", state(0))
        store.save_contact_content("n", "g0", "c0", first)
        store.save_contact_content("n", "g0", "c0", second)  # the leaf holding `first`: unreachable
    long_ago = time.time() - 7200
    for path in glob.glob(f"{tmp_path}/s/objects/??/*"):
        os.utime(path, (long_ago, long_ago))  # written two hours ago: past the default grace period
    with casstore.open_store(url) as writer, casstore.open_store(url) as collector:
        real = gcmod._by_chain_level
        wrote: list[bool] = []

        def write_then_sweep(*args: Any) -> Any:
            if not wrote:  # a write that starts and ends while gc runs, setting the old value back
                writer.save_contact_content("n", "g0", "c0", first)
                wrote.append(True)
            return real(*args)

        monkeypatch.setattr(gcmod, "_by_chain_level", write_then_sweep)
        report = gcmod.collect_garbage(collector)
        assert wrote and report.swept >= 1  # the superseded objects of `second` still go
    with casstore.open_store(url) as reopened:
        assert casstore.verify(reopened).ok
        assert reopened.load_contact_content("n", "g0", "c0") == first
