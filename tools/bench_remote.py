"""The remote benchmark: push, pull/clone, single writes, concurrent writers and subscriptions over HTTP.

Starts its own ``casstore serve`` (LMDB) on loopback in a separate process.  Same
workload as tools/bench_network.py (100,000 contacts by default) and the same
1%-churn step as tools/bench_sync.py.  Baselines measured in the same run: the
in-process LMDB→LMDB push and clone, and (if git is installed) ``git push`` of
the same step to a local bare repository.  Bytes and round trips are counted
by the client's own sockets (``HttpStore.session.wire``: request and response
lines, headers and bodies, both ways: what the socket carried); the sync
report's ``bytes_sent`` (the packs) is given next to them as ``*_pack_bytes``.
The incremental push figures are medians of three 1% steps, each pushed to the
in-process destination and then to the server.

    python tools/bench_remote.py [--contacts 100000] [--writers 8] [--writes 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from bench_network import emit, make_state, print_targets
from bench_sync import git_step, one_step, timed_push

import casstore
from casstore.model import GroupState
from casstore.store import open_object_store
from casstore.store.lmdb import LmdbStore

ROOT = Path(__file__).resolve().parent.parent


class Server:
    """``casstore serve`` in a child process."""

    def __init__(self, path: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        command = [sys.executable, "-m", "casstore", "serve", f"lmdb://{path}", "--init", "--port", str(self.port)]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
            if time.monotonic() > deadline:
                raise RuntimeError("casstore serve did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def measured(store: Any, call: Any) -> tuple[float, int, int, Any]:
    """(ms, round trips, bytes both ways on the wire, result) of ``call()``, from ``store``'s client counters."""
    wire = store.session.wire
    sent, received, requests = wire.snapshot()
    start = time.perf_counter()
    result = call()
    ms = (time.perf_counter() - start) * 1000
    sent_after, received_after, requests_after = wire.snapshot()
    return ms, requests_after - requests, sent_after - sent + received_after - received, result


def writer(url: str, worker: int, writes: int, out: Any) -> None:
    """``writes`` contact writes; a write that gives up under contention is counted and made again."""
    gave_up = 0
    start = time.perf_counter()
    try:
        with casstore.open_store(url, create=False) as store:
            for i in range(writes):
                while True:
                    try:
                        store.save_contact_content("load", "g", f"w{worker}-{i}", i)
                        break
                    except casstore.StorageError:
                        gave_up += 1
    finally:
        out.put((time.perf_counter() - start, gave_up))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--writes", type=int, default=200, help="contact writes per concurrent writer")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    state = make_state(args.contacts)
    result: dict[str, Any] = {"contacts": args.contacts}

    with tempfile.TemporaryDirectory(prefix="casstore-bench-remote-") as tmp:
        work = Path(tmp)
        server = Server(work / "served")
        try:
            src = casstore.NetworkStore(LmdbStore(work / "src"))
            local_dst = casstore.NetworkStore(LmdbStore(work / "dst"))
            remote = casstore.NetworkStore(open_object_store(server.url))
            src.save_network_state("bench", state)
            src.save_snapshot("bench", "imported")

            ms, report = timed_push(src, local_dst)
            result["baseline_clone_push_ms"] = round(ms, 1)
            ms, trips, body, report = measured(remote.objects, lambda: casstore.push(src, remote.objects))
            result["remote_full_push_ms"] = round(ms, 1)
            result["remote_full_push_bytes"] = body
            result["remote_full_push_pack_bytes"] = report.bytes_sent

            # three 1% steps, each pushed to both destinations: medians (one push is one noisy sample)
            local_ms, remote_ms, bodies, packs, trip_counts, local_bytes = [], [], [], [], [], []
            for seed in (7, 8, 9):
                changes = one_step(src, state, seed=seed)
                ms, report = timed_push(src, local_dst)
                local_ms.append(ms)
                local_bytes.append(report.bytes_sent)
                ms, trips, body, report = measured(remote.objects, lambda: casstore.push(src, remote.objects))
                remote_ms.append(ms)
                bodies.append(body)
                packs.append(report.bytes_sent)
                trip_counts.append(trips)
            result["baseline_incremental_push_ms"] = round(statistics.median(local_ms), 1)
            result["baseline_incremental_push_bytes"] = int(statistics.median(local_bytes))
            result["remote_incremental_push_ms"] = round(statistics.median(remote_ms), 1)
            result["remote_incremental_push_ms_each"] = [round(ms, 1) for ms in remote_ms]
            result["remote_incremental_push_bytes"] = int(statistics.median(bodies))
            result["remote_incremental_push_pack_bytes"] = int(statistics.median(packs))
            result["remote_push_round_trips"] = max(trip_counts)

            start = time.perf_counter()
            casstore.clone(local_dst, work / "baseline-clone")
            result["baseline_clone_s"] = round(time.perf_counter() - start, 2)
            origin = open_object_store(server.url)
            ms, trips, body, report = measured(origin, lambda: casstore.clone(origin, work / "remote-clone"))
            origin.close()
            result["remote_clone_s"] = round(ms / 1000, 2)
            result["remote_clone_round_trips"] = trips
            result["remote_clone_bytes"] = body
            with casstore.open_store(work / "remote-clone") as cloned:
                assert cloned.load_network_state("bench") == src.load_network_state("bench")

            gids = sorted(state.groups)
            times, trips_each = [], []
            for i in range(50):
                gid = gids[i % len(gids)]
                ms, trips, body, _ = measured(
                    remote.objects, lambda i=i, gid=gid: remote.save_contact_content("bench", gid, f"single-{i}", i)
                )
                times.append(ms)
                trips_each.append(trips)
            result["remote_contact_write_ms_median"] = round(statistics.median(times), 2)
            result["remote_contact_write_round_trips_median"] = statistics.median(trips_each)
            # the same through a client that has read nothing yet (the one above pushed the network: its cache
            # holds the frames it sent): each write first reads its group's path, one round trip per level
            fresh = casstore.NetworkStore(open_object_store(server.url))
            times, trips_each = [], []
            for i in range(50, 100):
                gid = gids[i % len(gids)]
                ms, trips, body, _ = measured(
                    fresh.objects, lambda i=i, gid=gid: fresh.save_contact_content("bench", gid, f"single-{i}", i)
                )
                times.append(ms)
                trips_each.append(trips)
            fresh.close()
            result["remote_contact_write_ms_median_new_client"] = round(statistics.median(times), 2)
            result["remote_contact_write_round_trips_median_new_client"] = statistics.median(trips_each)
            times = []
            for i in range(50):
                start = time.perf_counter()
                src.save_contact_content("bench", gids[i % len(gids)], f"single-{i}", i)
                times.append((time.perf_counter() - start) * 1000)
            result["baseline_contact_write_ms_median"] = round(statistics.median(times), 2)

            result.update(subscribe_latency(server.url, gids[0]))
            result.update(concurrent_writes(server.url, remote, args.writers, args.writes))
            for store in (src, local_dst, remote):
                store.close()
        finally:
            server.stop()
        git = git_step(work, state, changes)
    if git is not None:
        result.update(git)
    report_figures(result, git)
    emit(result, args.json)
    return 0


def subscribe_latency(url: str, gid: str, samples: int = 40) -> dict[str, float]:
    listener = casstore.open_store(url)
    writer_store = casstore.open_store(url)
    heard = threading.Event()

    def callback(group: GroupState) -> None:
        heard.set()

    unsubscribe = listener.subscribe(f"bench/{gid}", callback)
    latencies = []
    for i in range(samples):
        heard.clear()
        writer_store.save_contact_content("bench", gid, f"sub-{i}", i)
        written = time.perf_counter()
        if heard.wait(5):
            latencies.append((time.perf_counter() - written) * 1000)
        time.sleep(0.05)
    unsubscribe()
    listener.close()
    writer_store.close()
    latencies.sort()
    return {
        "subscribe_latency_ms_p50": round(statistics.median(latencies), 1),
        "subscribe_latency_ms_p99": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        "subscribe_missed": samples - len(latencies),
    }


def concurrent_writes(url: str, remote: casstore.NetworkStore, writers: int, writes: int) -> dict[str, Any]:
    from casstore.testing.network import sample_group

    remote.save_group_state("load", "g", sample_group("g", 0))
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=writer, args=(url, k, writes, out)) for k in range(writers)]
    for proc in procs:
        proc.start()
    answers = [out.get(timeout=1800) for _ in procs]
    for proc in procs:
        proc.join()
    elapsed = [took for took, _ in answers]
    group = remote.load_group_state("load", "g")
    present = 0 if group is None else sum(1 for name in group.contacts if name.startswith("w"))
    return {
        "remote_writes_per_s": round(writers * writes / max(elapsed), 1),
        "concurrent_writers": writers,
        "concurrent_writes_present": present,
        "concurrent_writes_lost": writers * writes - present,
        "concurrent_writes_given_up_and_redone": sum(n for _, n in answers),
    }


def report_figures(result: dict[str, Any], git: dict[str, Any] | None) -> None:
    print(f"casstore remote benchmark: {result['contacts']:,} contacts over HTTP on loopback")
    for key, value in result.items():
        print(f"  {key}: {value}")
    targets = [
        ("remote_incremental_push_bytes <= 250 KB", result["remote_incremental_push_bytes"] <= 250_000),
        ("remote_incremental_push_ms <= 150", result["remote_incremental_push_ms"] <= 150),
        ("remote_push_round_trips <= 4", result["remote_push_round_trips"] <= 4),
        ("remote_clone_s <= 2x the in-process clone", result["remote_clone_s"] <= 2 * result["baseline_clone_s"]),
        ("remote_clone_round_trips <= 3", result["remote_clone_round_trips"] <= 3),
        ("remote_contact_write_ms_median <= 10", result["remote_contact_write_ms_median"] <= 10),
        ("concurrent writes: none lost", result["concurrent_writes_lost"] == 0),
    ]
    if git is not None:
        targets.append(
            (
                "remote_incremental_push_bytes < this run's git push",
                result["remote_incremental_push_bytes"] < git["git_push_bytes"],
            )
        )
    print_targets(targets)


if __name__ == "__main__":
    sys.exit(main())
