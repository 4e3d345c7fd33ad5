"""The live-image benchmark (issue #15): persistence modes over a 100,000-contact network.

Workload (deterministic): ``bench_network.make_state`` (groups of 100 contacts) imported
once; then propagation cycles of 1-10 changed contacts each (small JSON-like values), run
through a :class:`casstore.runtime.NetworkImage` on LMDB and, as the ceiling, on memory, in
the same run:

* ``immediate``: ``cycle_done()`` after each cycle — cycles/s and the cycle time p50/p99; where the
  store has a journal (LMDB: ``immediate_journal``) a cycle is durable as a journal entry and the
  image's background thread folds entries into the head (``immediate_folds`` head moves), and
  ``immediate_close_s`` is the ``close()`` after the run that folds what was left (memory has no
  journal: each cycle moves the head there);
* ``batch`` with ``batch_size=1000``: changes/s until every change is durable, flushes included
  (``persist()`` at the end of the batch; on LMDB each flush is a journal entry), the background
  folds made meanwhile (``batch_folds_during_run``), then the ``flush()`` that folds every entry still
  in the journal into the head (``batch_final_fold_s``) and the rate counted to that point
  (``batch_changes_per_s_to_head``: until a reader of the head sees every change);
* ``interval`` (100 ms flusher) against persistence off (``manual``, never saved): runtime
  throughput ratio (``interval_runtime_overhead``), each run for ``--seconds`` (cycles repeated), persistence
  off measured before and after the interval run and averaged (the machine's load drifts), with the
  interval run's flush count, mean flush time and ``interval_flush_busy_share`` (flush time over the
  run's length); ``busy_core_runtime_ratio``, the same ratio for persistence off while a child process
  spins on the other core, is the machine's ceiling for any flusher that keeps a core busy (on a VM
  whose cores share a host, a busy core slows the other one);
* ``model_batch_cycles_per_s`` / ``model_batch_changes_per_s``: the same work through
  ``NetworkStore.batch`` (one batch per cycle / per 1,000 changes), the write path a flush uses:
  the ceiling of ``immediate`` and ``batch`` (``*_vs_model_batch``: the ratios);
* ``flush_10k_s`` / ``model_batch_10k_s``: one flush of 10,000 dirty contacts against one
  ``NetworkStore.batch`` of the same 10,000 ``save_contact_content`` calls (``flush_vs_model_batch``:
  their ratio, above 1 when the flush is quicker);
* ``lmdb_sync_commits_per_s`` (LMDB only): a bare LMDB write transaction of one small put, synced as
  the store's are (default flags), the floor under ``immediate`` (one durable commit per cycle) on this disk;
* ``image_write_ns`` / ``image_read_ns``: one ``set`` / ``get`` on the loaded image, before any flush,
  with a plain ``dict`` store + ``set`` add under a lock measured alongside as the machine's yardstick
  (seven rounds of each in turn, medians; ``image_write_vs_yardstick``: the ratio).

    python tools/bench_runtime.py [--contacts 100000] [--cycles 10000] [--seconds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import lmdb
from bench_network import make_state

import casstore
from casstore.runtime import NetworkImage, SchedulerStorageConfig

NET = "bench"


def cycles_of(state: Any, count: int, seed: int) -> list[list[tuple[str, str, dict[str, Any]]]]:
    rnd = random.Random(seed)
    keys = [(gid, cid) for gid, gs in state.groups.items() for cid in gs.contacts]
    return [
        [(*rnd.choice(keys), {"reading": rnd.randint(0, 10**6), "cycle": n}) for _ in range(rnd.randint(1, 10))]
        for n in range(count)
    ]


def run_cycles(image: NetworkImage, cycles: list[list[tuple[str, str, Any]]], done: bool) -> list[float]:
    times = []
    for cycle in cycles:
        started = time.perf_counter()
        for gid, cid, value in cycle:
            image.set(gid, cid, value)
        if done:
            assert image.cycle_done(), image.status().last_error
        times.append(time.perf_counter() - started)
    return times


def per_call_ns(fn: Any, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e9


def run_for(image: NetworkImage, cycles: list[list[tuple[str, str, Any]]], seconds: float) -> float:
    """Cycles per second, repeating ``cycles`` until ``seconds`` have passed."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run_cycles(image, cycles, done=False)
        done += len(cycles)
    return done / (time.perf_counter() - started)


@contextmanager
def busy_core(seconds: float) -> Iterator[None]:
    """A child process spinning in pure Python for ``seconds`` (as a flush process would keep a core busy)."""
    spin = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: sum(range(10000))"
    child = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.1)  # running before the measurement starts
        yield
    finally:
        child.kill()
        child.wait()


def lmdb_sync_commits_per_s(directory: str, n: int = 200) -> float:
    """A bare LMDB commit of one 100-byte put, with the store's (default, synced) flags."""
    env = lmdb.open(directory, map_size=1 << 26, max_dbs=2, subdir=True)
    db = env.open_db(b"floor")
    started = time.perf_counter()
    for i in range(n):
        with env.begin(write=True) as txn:
            txn.put(b"key-%d" % (i % 10), os.urandom(100), db=db)
    rate = n / (time.perf_counter() - started)
    env.close()
    return rate


def measure(url: str, contacts: int, cycles: int, seconds: float, floor_dir: Path | None = None) -> dict[str, Any]:
    state = make_state(contacts)
    result: dict[str, Any] = {}
    with casstore.open_store(url) as store:
        store.save_network_state(NET, state)
        started = time.perf_counter()
        image = NetworkImage(store, NET, SchedulerStorageConfig("immediate"))
        result["load_s"] = round(time.perf_counter() - started, 3)

        work = cycles_of(state, cycles, 1)
        floors = [] if floor_dir is None else [lmdb_sync_commits_per_s(str(floor_dir / "before"))]
        times = run_cycles(image, work, done=True)
        result["immediate_cycles_per_s"] = round(len(times) / sum(times))
        if floor_dir is not None:  # the disk's sync latency drifts with the machine's load: around the run
            floors.append(lmdb_sync_commits_per_s(str(floor_dir / "after")))
            result["lmdb_sync_commits_per_s"] = round(statistics.mean(floors))
            result["lmdb_sync_commits_per_s_before_after"] = [round(f) for f in floors]
            result["immediate_vs_lmdb_floor"] = round(result["immediate_cycles_per_s"] / statistics.mean(floors), 3)
        quantiles = statistics.quantiles(times, n=100)
        result["immediate_cycle_ms_p50"] = round(statistics.median(times) * 1000, 3)
        result["immediate_cycle_ms_p99"] = round(quantiles[98] * 1000, 3)
        folded_at = time.perf_counter()
        image.close()  # folds what the journal still holds: the head then has every cycle
        result["immediate_journal"] = image._journal is not None
        result["immediate_folds"] = image.status().folds
        result["immediate_close_s"] = round(time.perf_counter() - folded_at, 3)

        image = NetworkImage(store, NET, SchedulerStorageConfig("batch", batch_size=1000))
        work = cycles_of(state, cycles, 2)
        changes = sum(len(c) for c in work)
        started = time.perf_counter()
        run_cycles(image, work, done=False)
        assert image.persist()  # the end of the batch: every change durable (as a journal entry on LMDB)
        durable_at = time.perf_counter()
        result["batch_changes_per_s"] = round(changes / (durable_at - started))
        result["batch_folds_during_run"] = image.status().folds
        assert image.flush()  # every journal entry folded: the head holds every change
        result["batch_final_fold_s"] = round(time.perf_counter() - durable_at, 3)
        result["batch_changes_per_s_to_head"] = round(changes / (time.perf_counter() - started))
        image.close()

        # the model's own write path on the same work, as the ceiling of what a flush can do
        work = cycles_of(state, min(cycles, 2000), 4)
        started = time.perf_counter()
        for cycle in work:
            with store.batch(NET) as batch:
                for gid, cid, value in cycle:
                    batch.save_contact_content(NET, gid, cid, value)
        result["model_batch_cycles_per_s"] = round(len(work) / (time.perf_counter() - started))
        work = cycles_of(state, cycles, 5)
        changes, started = 0, time.perf_counter()
        flat = [change for cycle in work for change in cycle]
        for at in range(0, len(flat), 1000):
            with store.batch(NET) as batch:
                for gid, cid, value in flat[at : at + 1000]:
                    batch.save_contact_content(NET, gid, cid, value)
            changes += len(flat[at : at + 1000])
        result["model_batch_changes_per_s"] = round(changes / (time.perf_counter() - started))
        for name, baseline in (("immediate", "model_batch_cycles_per_s"), ("batch", "model_batch_changes_per_s")):
            rate = result["immediate_cycles_per_s" if name == "immediate" else "batch_changes_per_s"]
            result[f"{name}_vs_model_batch"] = round(rate / result[baseline], 3)

        # one large flush against one model batch of exactly the same writes
        image = NetworkImage(store, NET, SchedulerStorageConfig("manual"))
        keys = [(gid, cid) for gid, gs in state.groups.items() for cid in gs.contacts]
        rnd = random.Random(6)
        big = [(gid, cid, {"reading": rnd.randint(0, 10**6)}) for gid, cid in rnd.sample(keys, min(10_000, len(keys)))]
        for gid, cid, value in big:
            image.set(gid, cid, value)
        started = time.perf_counter()
        assert image.flush()
        result["flush_10k_s"] = round(time.perf_counter() - started, 3)
        image.close()
        big = [(gid, cid, {"reading": value["reading"] + 1}) for gid, cid, value in big]
        started = time.perf_counter()
        with store.batch(NET) as batch:
            for gid, cid, value in big:
                batch.save_contact_content(NET, gid, cid, value)
        result["model_batch_10k_s"] = round(time.perf_counter() - started, 3)
        result["flush_vs_model_batch"] = round(result["model_batch_10k_s"] / result["flush_10k_s"], 3)

        # runtime throughput: persistence off, the 100 ms interval flusher, persistence off again
        work = cycles_of(state, cycles, 3)
        rates = []
        for mode, settings in (("manual", {}), ("interval", {"interval_ms": 100}), ("manual", {})):
            image = NetworkImage(store, NET, SchedulerStorageConfig(mode, **settings))  # type: ignore[arg-type]
            rates.append(run_for(image, work, seconds))
            status = image.status()
            image.close(flush=False)
            if mode == "interval":
                result["interval_flushes"] = status.flushes
                result["interval_flush_s_mean"] = round(status.flush_seconds / max(status.flushes, 1), 3)
                result["interval_flush_busy_share"] = round(status.flush_seconds / seconds, 3)
        off = (rates[0] + rates[2]) / 2
        result["interval_runtime_overhead"] = round(rates[1] / off, 3)
        # the machine's own ceiling: persistence off while another process keeps the other core busy
        image = NetworkImage(store, NET, SchedulerStorageConfig("manual"))
        with busy_core(seconds + 1):
            result["busy_core_runtime_ratio"] = round(run_for(image, work, seconds) / off, 3)
        image.close(flush=False)
        result["persistence_off_cycles_per_s"] = round(off)
        result["persistence_off_cycles_per_s_before_after"] = [round(rates[0]), round(rates[2])]
        result["interval_cycles_per_s"] = round(rates[1])

        image = NetworkImage(store, NET, SchedulerStorageConfig("manual"))
        gid, cid = next((g, c) for g, gs in state.groups.items() for c in gs.contacts)
        lock, dirty, values = threading.Lock(), set(), {gid: {cid: 0}}

        def yardstick() -> None:
            with lock:
                values[gid][cid] = 1
                dirty.add((gid, cid))

        # rounds of each in turn, the median of each: the machine's load drifts between them
        calls = {
            "image_write_ns": lambda: image.set(gid, cid, 1),
            "image_read_ns": lambda: image.get(gid, cid),
            "yardstick_dict_and_set_ns": yardstick,
        }
        rounds: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(7):
            for name, call in calls.items():
                rounds[name].append(per_call_ns(call, 50_000))
        for name, figures in rounds.items():
            result[name] = round(statistics.median(figures))
        result["image_write_vs_yardstick"] = round(result["image_write_ns"] / result["yardstick_dict_and_set_ns"], 3)
        image.close(flush=False)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each interval-overhead run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="casstore-bench-runtime-") as tmp:
        lmdb = measure(str(Path(tmp) / "lmdb"), args.contacts, args.cycles, args.seconds, Path(tmp))
    memory = measure("memory://", args.contacts, args.cycles, args.seconds)
    result = {"contacts": args.contacts, "cycles": args.cycles, **lmdb, "memory": memory}
    print(f"casstore runtime benchmark: {args.contacts:,} contacts, {args.cycles:,} cycles; LMDB (memory ceiling)")
    for key, value in lmdb.items():
        print(f"  {key:<42} {value!s:>14} ({memory.get(key, '-')})")
    targets = [
        ("immediate_cycles_per_s", ">=", 300),
        ("batch_changes_per_s", ">=", 100_000),
        ("interval_runtime_overhead", ">=", 0.8),
        ("image_write_ns", "<=", 2000),
    ]
    for name, op, bound in targets:
        value = lmdb[name]
        ok = value >= bound if op == ">=" else value <= bound
        print(f"  target {name} {op} {bound}: {'met' if ok else 'NOT met'} ({value})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
