"""Each persistence mode's loss bound under SIGKILL, on LMDB and ``file://`` (issue #15).

A writer process runs a live image in one mode over a deterministic stream of
changes (change ``n`` sets one contact to ``n``), logging what the mode has
acknowledged, and is SIGKILLed at a random moment.  The stream replayed in the
test gives the state after every change, so the store as the next image finds it (journal
entries folded first, as :func:`~casstore.runtime.recover_journal` does)
must be exactly one of the states the bound allows:

* ``immediate``: the state at the last acknowledged ``cycle_done()`` or at the next one;
* ``batch``: the state at the last acknowledged flush or the next flush point;
* ``manual``: the state at the last ``save()`` or the one in progress;
* ``transactional``: the state after the last committed transaction or the next one,
  never part of one, never a rolled-back change;
* ``interval``: the state at some copy of the image (a prefix of the stream) holding every
  change made more than ``max(interval, F) + F`` before the kill (``F``: the longest flush
  the writer saw), plus a scheduling allowance (``SLACK``) for a loaded machine.

Writers are forked from one server process per test module (started once, casstore
imported once), so a trial costs its run time, not an interpreter start.  One trial
per mode and backend by default; :data:`SLOW_TRIALS` under ``slow`` (20 kills per mode).
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import casstore
from casstore import Contact, Group, GroupState, NetworkState
from casstore.runtime import recover_journal

NET = "crash"
GROUPS, CONTACTS = 4, 16
BATCH_SIZE = 7
INTERVAL_MS = 30
#: Scheduling allowance for the interval bound: the flusher thread may wake late on a loaded machine.
SLACK = 0.5
MODES = ("immediate", "batch", "interval", "manual", "transactional")
BACKENDS = ("lmdb", "file")
SLOW_TRIALS = 10  # per mode and backend: 20 kills per mode
MAX_CHANGES = 50_000


def key(n: int) -> tuple[str, str]:
    """The contact change ``n`` sets (to ``n``)."""
    return f"g{n % GROUPS}", f"c{(n * 7 + n // GROUPS) % CONTACTS}"


def chunks(seed: int, kind: str) -> Iterator[int]:
    """Sizes of the stream's units (cycles, batches, saves, transactions), deterministic per seed."""
    rnd = random.Random(f"{seed}-{kind}")
    while True:
        yield rnd.randint(1, 12)


def initial() -> NetworkState:
    groups = {}
    for g in range(GROUPS):
        gid, ids = f"g{g}", [f"c{c}" for c in range(CONTACTS)]
        groups[gid] = GroupState(Group(gid, gid, contact_ids=ids), {cid: Contact(cid, gid, -1) for cid in ids})
    return NetworkState(groups)


def state_after(changes: list[int]) -> dict[tuple[str, str], int]:
    state = {(f"g{g}", f"c{c}"): -1 for g in range(GROUPS) for c in range(CONTACTS)}
    for n in changes:
        state[key(n)] = n
    return state


# ---------------------------------------------------------------- the writer (in the forked child)


def write(url: str, mode: str, log_path: str, seed: int) -> None:
    from casstore.runtime import NetworkImage, SchedulerStorageConfig

    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def note(*words: object) -> None:
        os.write(log, (" ".join(map(str, words)) + "\n").encode())

    store = casstore.open_store(url, create=False)
    config = SchedulerStorageConfig(mode, batch_size=BATCH_SIZE, interval_ms=INTERVAL_MS)  # type: ignore[arg-type]
    live = NetworkImage(store, NET, config)
    note("ready", time.monotonic())
    sizes = chunks(seed, mode)
    n = 0
    unit = 0
    while n < MAX_CHANGES:
        size = next(sizes)
        if mode == "interval":
            for _ in range(size):
                live.set(*key(n), n)
                n += 1
            flush = live.status().last_flush_seconds or 0.0
            note("at", n, time.monotonic(), flush)
            time.sleep(0.001)
        elif mode == "transactional":
            doomed = unit % 4 == 3
            try:
                with live.transaction():
                    for i in range(size):
                        if doomed and i == size // 2:
                            raise KeyError("rolled back")
                        live.set(*key(n + i), "doomed" if doomed else n + i)
            except KeyError:
                pass
            else:
                n += size
                if live.durable():
                    note("ack", unit)
            unit += 1
        else:
            flushes = live.status().flushes
            for _ in range(size):
                live.set(*key(n), n)
                n += 1
                if mode == "batch" and live.status().flushes != flushes:
                    flushes = live.status().flushes
                    note("ack", n)
            done = live.cycle_done() if mode == "immediate" else live.flush() if mode == "batch" else live.save()
            if done:
                note("ack", n)
    note("finished")


def serve() -> None:
    """The fork server: each stdin line ``URL MODE LOG SEED`` forks a writer; its pid goes to stdout."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # killed writers are reaped by the kernel
    for line in sys.stdin:
        url, mode, log_path, seed = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                write(url, mode, log_path, int(seed))
            finally:
                os._exit(0)
        print(pid, flush=True)


# ---------------------------------------------------------------- the checks (in the test)


def allowed_states(mode: str, seed: int, lines: list[list[str]], killed_at: float) -> list[dict[Any, int]]:
    """The states the mode's bound allows after the kill, given what the writer logged."""
    sizes = chunks(seed, mode)
    if mode == "transactional":  # units are transactions; every fourth one rolls back
        acked = max((int(w[1]) for w in lines if w[0] == "ack"), default=-1)
        totals, total = [], 0  # committed changes after each transaction
        for unit in range(acked + 12):
            size = next(sizes)
            total += 0 if unit % 4 == 3 else size
            totals.append(total)
        base = totals[acked] if acked >= 0 else 0
        following = next(t for t in totals[acked + 1 :] if t > base)
        return [state_after(list(range(base))), state_after(list(range(following)))]
    if mode == "interval":
        return []  # checked by check_interval
    points = [0]  # the change counts at which this mode flushes
    counter = total = 0
    acked = max((int(w[1]) for w in lines if w[0] == "ack"), default=0)
    while total <= acked + 100:
        for _ in range(next(sizes)):
            total += 1
            counter += 1
            if mode == "batch" and counter == BATCH_SIZE:
                points.append(total)
                counter = 0
        points.append(total)
        counter = 0
    later = [p for p in points if p > acked]
    return [state_after(list(range(acked))), state_after(list(range(later[0])))]


def check_interval(found: dict[Any, int], lines: list[list[str]], killed_at: float) -> None:
    present = max(found.values())
    assert found == state_after(list(range(present + 1))), "the store holds no copy of the image (not a prefix)"
    ats = [(int(w[1]), float(w[2]), float(w[3])) for w in lines if w[0] == "at"]
    longest = max((f for _, _, f in ats), default=0.0)
    bound = max(INTERVAL_MS / 1000, longest) + longest + SLACK
    must = max((n for n, t, _ in ats if t <= killed_at - bound), default=0)
    assert present + 1 >= must, f"lost changes made {bound:.3f}s before the kill: have {present + 1}, needed {must}"


@pytest.fixture(scope="module")
def fork_server() -> Iterator[subprocess.Popen[str]]:
    source = str(Path(casstore.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def trial(server: subprocess.Popen[str], tmp: Path, backend: str, mode: str, seed: int) -> None:
    path = tmp / f"{backend}-{mode}-{seed}"
    url = str(path) if backend == "lmdb" else f"file://{path}"
    with casstore.open_store(url) as store:
        store.save_network_state(NET, initial())
    log = tmp / f"{backend}-{mode}-{seed}.log"
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write(f"{url} {mode} {log} {seed}\n")
    server.stdin.flush()
    ready, _, _ = select.select([server.stdout], [], [], 60)
    assert ready, "the fork server did not answer"
    pid = int(server.stdout.readline())
    deadline = time.monotonic() + 60
    while not (log.exists() and log.read_text().startswith("ready")):
        assert time.monotonic() < deadline, "the writer never got ready"
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0.03, 0.25))
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    while True:  # gone once the kernel reaped it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.002)
    lines = [line.split() for line in log.read_text().splitlines()]
    assert ["finished"] not in lines, "the writer finished before the kill: make the stream longer"
    with casstore.open_store(url, create=False) as store:
        assert casstore.verify(store).ok  # as the kill left it, journal entries and all
        recover_journal(store, NET)  # what the next image does before it loads (LMDB's journal; a no-op on file)
        state = store.load_network_state(NET)
        assert state is not None
        found = {(g, c): contact.content for g, gs in state.groups.items() for c, contact in gs.contacts.items()}
        assert casstore.verify(store).ok
    if mode == "interval":
        check_interval(found, lines, killed_at)
        return
    allowed = allowed_states(mode, seed, lines, killed_at)
    acks = [w for w in lines if w[0] == "ack"]
    assert found in allowed, f"{mode}: the store is not a state the bound allows (last ack {acks[-1:]})"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_a_killed_writer_keeps_its_modes_bound(
    fork_server: subprocess.Popen[str], tmp_path: Path, backend: str, mode: str
) -> None:
    trial(fork_server, tmp_path, backend, mode, seed=MODES.index(mode))


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_many_killed_writers_keep_their_modes_bound(
    fork_server: subprocess.Popen[str], tmp_path: Path, backend: str, mode: str
) -> None:
    for seed in range(100, 100 + SLOW_TRIALS - 1):  # with the default run's trial: SLOW_TRIALS per backend
        trial(fork_server, tmp_path, backend, mode, seed)


if __name__ == "__main__":
    serve()
