"""SIGKILL a writer process at random points; the store must verify clean and hold a committed state.

The writer runs a deterministic sequence of operations (contact writes,
batches, whole-network saves, snapshots and their deletion, a push to a second
store, gc) and appends the index of each finished operation to a log. The
same sequence replayed in memory gives the head after every operation (ids are
content hashes, so the heads are the same bytes once the write times a root
records are left out). After the kill, the store
must verify clean, and its head must be the head after the last logged
operation or after the one that was running when the process died — never
anything in between, never a lost acknowledged write.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import casstore
from casstore import Contact, Group, GroupState, NetworkState, codec
from casstore.gc import collect_garbage
from casstore.model.refs import head_ref

NET = "crash"
OPS = 40


def operations(seed: int) -> list[tuple[Any, ...]]:
    rnd = random.Random(seed)
    ops: list[tuple[Any, ...]] = [("replace", 0, 400)]
    for i in range(1, OPS):
        kind = rnd.choice(["set", "set", "batch", "replace", "snapshot", "drop-snapshot", "push", "gc"])
        ops.append((kind, i, rnd.randrange(1, 1500)))
    return ops


def network(version: int, size: int) -> NetworkState:
    groups = {}
    for g in range(max(1, size // 50)):
        gid = f"g{g:03}"
        ids = [f"c{c:03}" for c in range(50)]
        contacts = {cid: Contact(cid, gid, {"v": version, "c": cid, "pad": "x" * 40}) for cid in ids}
        groups[gid] = GroupState(Group(gid, gid, contact_ids=ids, attributes={"bassline.type": "t"}), contacts)
    return NetworkState(groups)


def apply(store: Any, op: tuple[Any, ...], mirror: Any) -> None:
    kind, i, n = op
    if kind == "replace":
        store.save_network_state(NET, network(i, n))
    elif kind == "set":
        store.save_contact_content(NET, "g000", f"c{n % 50:03}", {"v": i})
    elif kind == "batch":
        with store.batch(NET) as batch:
            for k in range(n % 200 + 1):
                batch.save_contact_content(NET, "g000", f"b{k:03}", {"v": i, "k": k})
    elif kind == "snapshot":
        store.save_snapshot(NET, f"s{i}")
    elif kind == "drop-snapshot":
        snaps = store.list_snapshots(NET)
        if snaps:
            store.delete_snapshot(NET, snaps[-1].id)
    elif kind == "push" and mirror is not None:
        casstore.push(store, mirror, force=True)
    elif kind == "gc":
        collect_garbage(store, grace_minutes=0)


WRITER = """
import sys
sys.path[:0] = [sys.argv[5]]
import casstore, test_crash as t
store = casstore.open_store(sys.argv[1])
mirror = casstore.open_store(sys.argv[2])
with open(sys.argv[4], "a", buffering=1) as log:
    for op in t.operations(int(sys.argv[3])):
        t.apply(store, op, mirror)
        log.write(f"{op[1]}\\n")
        log.flush()
        import os; os.fsync(log.fileno())
"""


def untimed(store: Any, head: bytes | None) -> bytes | None:
    """A head's root without its write times (``"ct"``, ``"ut"``): what the operations determine."""
    if head is None:
        return None
    root = codec.decode(store.blobs.get(head))
    root.pop("ct", None)
    root.pop("ut", None)
    return codec.encode(root)


def expected_heads(seed: int) -> list[bytes | None]:
    """The head after each operation, replayed in memory (index i: after operation i), less its write times."""
    heads: list[bytes | None] = []
    with casstore.open_store("memory://") as store:
        for op in operations(seed):
            if op[0] not in ("push", "gc"):
                apply(store, op, None)
            heads.append(untimed(store, store.refs.get(head_ref(NET))))
    return heads


def run_and_kill(url: str, mirror: str, seed: int, log: Path, after: float) -> int:
    """Start the writer, SIGKILL it ``after`` seconds in; the index of the last finished operation (-1: none)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, mirror, str(seed), str(log), str(Path(__file__).parent)], env=env
    )
    try:
        proc.wait(after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lines = log.read_text().split() if log.exists() else []
    return int(lines[-1]) if lines else -1


def check_trial(tmp_path: Path, scheme: str, seed: int, after: float) -> None:
    """``scheme`` may carry store options (``lmdb?sync=off``): a process crash loses nothing in any sync mode."""
    scheme, _, query = scheme.partition("?")
    query = f"?{query}" if query else ""
    url, mirror = f"{scheme}://{tmp_path / 'store'}{query}", f"{scheme}://{tmp_path / 'mirror'}{query}"
    casstore.open_store(url).close()
    casstore.open_store(mirror).close()
    done = run_and_kill(url, mirror, seed, tmp_path / "log", after)
    heads = expected_heads(seed)
    allowed: set[bytes | None] = {None} if done < 0 else {heads[done]}
    if done + 1 < len(heads):
        allowed.add(heads[done + 1])  # the operation running at the kill may or may not have committed
    for where in (url, mirror):
        with casstore.open_store(where) as store:
            report = casstore.verify(store)
            assert report.ok, f"{where} after a kill at {after:.2f}s (op {done + 1}): {report}"
            if where == url:
                head = untimed(store, store.refs.get(head_ref(NET)))
                where_in = [i for i, h in enumerate(heads) if h == head]
                assert head in allowed, f"kill during op {done + 1}: the head is the state after ops {where_in}"
                if head is not None:
                    assert store.load_network_state(NET) is not None
            else:  # the mirror holds some head the source had (pushes are whole or nothing)
                head = untimed(store, store.refs.get(head_ref(NET)))
                assert head is None or head in heads


@pytest.mark.parametrize("scheme", ["lmdb", "file", "lmdb?sync=off"])
def test_a_killed_writer_leaves_a_clean_store_at_a_committed_state(tmp_path: Path, scheme: str) -> None:
    rnd = random.Random(scheme)
    for trial in range(3):
        check_trial(tmp_path / str(trial), scheme, seed=trial, after=rnd.uniform(0.6, 2.5))


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["lmdb", "file"])
def test_thirty_kills_at_random_points(tmp_path: Path, scheme: str) -> None:
    rnd = random.Random(f"slow-{scheme}")
    started = time.monotonic()
    for trial in range(30):
        check_trial(tmp_path / str(trial), scheme, seed=100 + trial, after=rnd.uniform(0.5, 6.0))
    assert time.monotonic() - started < 900
