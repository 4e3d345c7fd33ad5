"""The network benchmark: import, 1%-churn steps with snapshots, loads, queries, verify, on LMDB.

Workload (deterministic): groups of 100 contacts (1,000 groups for the default
100,000 contacts), contents mostly 50-200-byte JSON-like values and 0.5% of
20-100 KB, group attributes with type/author/tags, ~100 wires per group; then
20 steps, each changing 1% of contacts at random in one batch and taking a
snapshot.  The 1,000,000-contact figures (snapshot time, RSS ratio) run in a
subprocess so their memory is measured alone.

History: ``contact_history`` of one contact over a chain of snapshots, each
after a one-contact change (every 10th changes the contact whose history is
read), cold caches: at 100 and 1,000 snapshots of the ``--contacts`` workload,
and at 1,000 snapshots of a tenth of it (``history_ms_10k_contacts`` for the
default 100,000).

    python tools/bench_network.py [--contacts 100000] [--steps 20] [--skip-1m] [--skip-history] [--json PATH]
    python tools/bench_network.py --history-only      # the history figures alone (a few seconds)
    python tools/bench_network.py --no-deltas         # the layout before #18: whole frames, one LMDB entry each
    python tools/bench_network.py --no-segments       # deltas at rest, but one LMDB entry per object
    python tools/bench_network.py --baseline          # also the --no-deltas layout, in the same run (baseline_*)

At-rest figures: ``growth_per_step_bytes`` (``du`` of the store over the steps,
per step), ``disk_to_logical`` (``du`` / logical bytes after the steps),
``cold_load_s`` (the whole network, cold caches), ``load_snapshot_s`` (the
oldest snapshot, cold caches; with ``--baseline`` both are the medians of
``COLD_ROUNDS`` rounds that read the two layouts in turn, the single reading
each run took kept as ``*_first_reading``), ``frames_by_chain`` (stored frames by chain
length; 0 = whole), ``frame_bytes`` / ``delta_frame_bytes`` (what the frames
hold), ``page_fill`` (frame bytes over the object tables' LMDB pages) and
``lmdb_pages`` (where ``data.mdb``'s bytes go: each table's pages, and the free
pages LMDB keeps for reuse).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lmdb

import casstore
from casstore.model import Contact, Group, GroupState, NetworkState, Wire
from casstore.store import deltas
from casstore.store import lmdb as lmdb_backend
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.sync import push

PER_GROUP = 100
WORDS = ["alpha", "beta", "gamma", "delta", "sensor", "value", "north", "south", "ready", "idle"]
TYPES = [f"type-{i}" for i in range(100)]  # one type matches ~1% of groups
AUTHORS = [f"author-{i}" for i in range(20)]
TAGS = [f"tag-{i}" for i in range(30)]
#: Rounds of cold reads of both layouts, taken in turn, behind the ``*_vs_baseline`` read ratios.
COLD_ROUNDS = 5


def small_value(rnd: random.Random) -> dict[str, Any]:
    value: dict[str, Any] = {"reading": rnd.randint(0, 10**6), "unit": rnd.choice(["C", "F", "kPa", "%"])}
    for _ in range(rnd.randint(1, 6)):
        value[rnd.choice(WORDS)] = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(1, 4)))
    value["ok"] = rnd.random() < 0.5
    return value


def large_value(rnd: random.Random) -> dict[str, Any]:
    target = rnd.randint(20_000, 100_000)
    rows = []
    size = 0
    while size < target:
        row = {"t": rnd.randint(0, 10**9), "v": round(rnd.random() * 100, 3), "s": rnd.choice(WORDS)}
        rows.append(row)
        size += 45
    return {"series": rows}


def content(rnd: random.Random) -> Any:
    return large_value(rnd) if rnd.random() < 0.005 else small_value(rnd)


def make_group(g: int, rnd: random.Random, per_group: int = PER_GROUP) -> GroupState:
    """Group ``g`` of the workload: ``per_group`` contacts wired in a ring pattern, with type/author/tags."""
    gid = f"group-{g:06d}"
    cids = [f"{gid}/c{i:03d}" for i in range(per_group)]
    cs = {cid: Contact(cid, gid, content(rnd), rnd.choice(["accept-last", "merge"])) for cid in cids}
    ws = {}
    for w in range(per_group):
        wid = f"{gid}/w{w:03d}"
        ws[wid] = Wire(wid, gid, cids[w], cids[(w * 7 + 1) % per_group])
    attrs = {
        "bassline.type": TYPES[g % len(TYPES)],
        "bassline.author": rnd.choice(AUTHORS),
        "bassline.tags": rnd.sample(TAGS, 3),
    }
    group = Group(gid, f"Group {g}", "group-000000" if g else None, cids, list(ws), [], [], attrs)
    return GroupState(group, cs, ws)


def make_state(contacts: int, seed: int = 1, per_group: int = PER_GROUP) -> NetworkState:
    """``contacts`` contacts in groups of ``per_group`` (:func:`make_group`, one random stream)."""
    rnd = random.Random(seed)
    groups = {f"group-{g:06d}": make_group(g, rnd, per_group) for g in range(max(1, contacts // per_group))}
    return NetworkState(groups, "group-000000", "group-000000")


def to_json(state: NetworkState) -> bytes:
    """Bassline's JSON shape, compact: the logical size of a state."""
    from casstore.model.bassline_json import network_to_json

    return json.dumps(network_to_json(state), separators=(",", ":")).encode()


def emit(result: dict[str, Any], path: Path | None) -> None:
    """The figures as one JSON line on stdout, and indented in ``path`` when given."""
    print(json.dumps(result))
    if path:
        path.write_text(json.dumps(result, indent=2) + "\n")


def print_targets(targets: list[tuple[str, bool]]) -> None:
    for label, ok in targets:
        print(f"  {label}: {'met' if ok else 'NOT met'}")


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def disk_usage(path: Path) -> int:
    """What ``du`` counts for a directory: allocated blocks of every file below it."""
    return sum(entry.stat().st_blocks * 512 for entry in path.rglob("*") if entry.is_file())


def lmdb_pages(path: Path) -> dict[str, int]:
    """Bytes of ``data.mdb`` by table (its pages), and the pages on LMDB's free list (``free``)."""
    env = lmdb.open(str(path), max_dbs=16, readonly=True, lock=False)
    out: dict[str, int] = {}
    with env.begin() as txn:
        names = [bytes(key) for key, _ in txn.cursor()]
        for name in names:
            st = txn.stat(env.open_db(name, txn=txn, create=False))
            out[name.decode()] = (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]) * st["psize"]
        main = env.stat()
        psize = main["psize"]
    used = sum(out.values()) + (main["branch_pages"] + main["leaf_pages"] + main["overflow_pages"]) * psize
    out["free"] = (env.info()["last_pgno"] + 1 - 2) * psize - used  # two meta pages
    env.close()
    return out


def run_main(contacts: int, steps: int, workdir: Path) -> dict[str, Any]:
    state = make_state(contacts)
    logical = len(to_json(state))
    store = casstore.NetworkStore(LmdbStore(workdir / "store"))
    out: dict[str, Any] = {"contacts": contacts, "groups": len(state.groups), "steps": steps}

    import_s, _ = timed(store.save_network_state, "bench", state)
    out["import_s"] = round(import_s, 3)
    out["import_contacts_per_s"] = round(contacts / import_s)
    imported_du = disk_usage(workdir / "store")
    oldest = store.save_snapshot("bench", "imported")

    rnd = random.Random(99)
    all_contacts = [(gid, cid) for gid, gs in state.groups.items() for cid in gs.contacts]
    step_ms = []
    churn = max(1, contacts // 100)
    for step in range(steps):
        changes = [(gid, cid, small_value(rnd)) for gid, cid in rnd.sample(all_contacts, churn)]
        logical += sum(len(json.dumps(v, separators=(",", ":"))) for _, _, v in changes)
        start = time.perf_counter()
        with store.batch("bench") as batch:
            for gid, cid, value in changes:
                batch.save_contact_content("bench", gid, cid, value)
        store.save_snapshot("bench", f"step {step}")
        step_ms.append((time.perf_counter() - start) * 1000)
    out["step_ms_median"] = round(statistics.median(step_ms), 2)
    out["step_ms_max"] = round(max(step_ms), 2)

    snaps = [timed(store.save_snapshot, "bench")[0] * 1000 for _ in range(20)]
    out["snapshot_ms_100k" if contacts == 100_000 else f"snapshot_ms_{contacts}"] = round(statistics.median(snaps), 3)

    store.close()
    stepped_du = disk_usage(workdir / "store")
    out["lmdb_pages"] = lmdb_pages(workdir / "store")
    out["growth_per_step_bytes"] = round((stepped_du - imported_du) / max(1, steps))
    store = casstore.NetworkStore(LmdbStore(workdir / "store"))  # cold caches for the reads
    stats = store.blobs.stats()
    out["objects"] = stats.objects
    out["bytes_on_disk"] = (stats.extra or {}).get("file_bytes", stats.stored_bytes)
    out["blob_pages_bytes"] = stats.stored_bytes
    out["logical_bytes"] = logical
    out["disk_ratio"] = round(out["bytes_on_disk"] / logical, 3)
    out["du_bytes"] = stepped_du
    out["disk_to_logical"] = round(stepped_du / logical, 3)
    census = deltas.frame_census(store.blobs.get_frames, list(store.blobs.iter_hashes()))
    out["frames_by_chain"] = census["chain_lengths"]
    out["frame_bytes"] = census["frame_bytes"]
    out["delta_frame_bytes"] = census["frames"]["delta"]["bytes"]
    out["page_fill"] = round(census["frame_bytes"] / stats.stored_bytes, 3)  # frame bytes / object tables' pages

    load_s, loaded = timed(store.load_network_state, "bench")
    out["load_network_s"] = out["cold_load_s"] = round(load_s, 3)
    assert loaded is not None and len(loaded.groups) == len(state.groups)
    store.close()
    store = casstore.NetworkStore(LmdbStore(workdir / "store"))
    snapshot_s, old_state = timed(store.load_snapshot, "bench", oldest)
    out["load_snapshot_s"] = round(snapshot_s, 3)
    assert old_state == state

    sample = [all_contacts[rnd.randrange(len(all_contacts))] for _ in range(10_000)]
    start = time.perf_counter()
    for gid, cid in sample:
        store.load_contact_content("bench", gid, cid)
    out["contact_loads_per_s"] = round(len(sample) / (time.perf_counter() - start))

    fresh = casstore.NetworkStore(store.objects)
    selective_s, found = timed(lambda: fresh.query_groups("bench", type=TYPES[7]))
    fresh = casstore.NetworkStore(store.objects)
    scan_s, everything = timed(lambda: fresh.query_groups("bench"))
    out["query_selective_ms"] = round(selective_s * 1000, 2)
    out["query_selective_matches"] = len(found)
    out["query_scan_ms"] = round(scan_s * 1000, 2)
    assert len(everything) == len(state.groups)

    verify_s, report = timed(casstore.verify, store)
    assert report.ok
    out["verify_s"] = round(verify_s, 3)
    store.close()
    return out


HISTORY_GROUP, HISTORY_CONTACT = "group-000000", "group-000000/c050"


def history_chain(contacts: int, snapshots: list[int], workdir: Path) -> dict[int, float]:
    """Import, then snapshots after one-contact changes; at each count in ``snapshots``, the median
    milliseconds of a cold ``contact_history`` of one contact over the whole chain, on LMDB.

    The chain is built in memory and pushed to LMDB (one transfer), which spares a thousand
    fsynced commits; the reads measured are LMDB's.
    """
    state = make_state(contacts, seed=3)
    building = casstore.NetworkStore(MemoryStore())
    building.save_network_state("h", state)
    lmdb = LmdbStore(workdir / f"history-{contacts}")
    rnd = random.Random(5)
    others = [(g, c) for g, gs in state.groups.items() for c in gs.contacts if c != HISTORY_CONTACT]
    times: dict[int, float] = {}
    taken = 0
    for target in sorted(snapshots):
        while taken < target:
            gid, cid = (HISTORY_GROUP, HISTORY_CONTACT) if taken % 10 == 0 else rnd.choice(others)
            building.save_contact_content("h", gid, cid, small_value(rnd))
            building.save_snapshot("h", f"step {taken}")
            taken += 1
        push(building, lmdb, ["h"])
        runs = []
        for _ in range(5):
            cold = casstore.NetworkStore(lmdb)  # a fresh node cache: every node read from LMDB
            elapsed, entries = timed(cold.contact_history, "h", HISTORY_GROUP, HISTORY_CONTACT)
            assert len(entries) == (target + 9) // 10, len(entries)  # one per change of the contact
            runs.append(elapsed * 1000)
        times[target] = round(statistics.median(runs), 2)
    lmdb.close()
    return times


def cold_reads(store_dir: Path) -> tuple[float, float]:
    """One cold load of the whole network and one of its oldest snapshot, each on a freshly opened store."""
    store = casstore.NetworkStore(LmdbStore(store_dir))
    load_s, _ = timed(store.load_network_state, "bench")
    oldest = store.list_snapshots("bench")[-1].id
    store.close()
    store = casstore.NetworkStore(LmdbStore(store_dir))
    snapshot_s, _ = timed(store.load_snapshot, "bench", oldest)
    store.close()
    return load_s, snapshot_s


def alternating_cold_reads(stores: dict[str, Path], rounds: int = COLD_ROUNDS) -> dict[str, dict[str, float]]:
    """Median cold reads of each store over ``rounds`` rounds that take the stores in turn (the machine's
    load drifts, so one reading each would compare two moments, not two layouts)."""
    readings: dict[str, list[tuple[float, float]]] = {name: [] for name in stores}
    for _ in range(rounds):
        for name, store_dir in stores.items():
            readings[name].append(cold_reads(store_dir))
    return {
        name: {
            "cold_load_s": round(statistics.median(r[0] for r in rs), 3),
            "load_snapshot_s": round(statistics.median(r[1] for r in rs), 3),
        }
        for name, rs in readings.items()
    }


def run_history(contacts: int, workdir: Path) -> dict[str, Any]:
    big = history_chain(contacts, [100, 1000], workdir)
    small_contacts = max(PER_GROUP, contacts // 10)
    small = history_chain(small_contacts, [1000], workdir)
    return {
        "history_ms_100_snapshots": big[100],
        "history_ms_1000_snapshots": big[1000],
        f"history_ms_{_short(small_contacts)}_contacts": small[1000],
        f"history_ms_{_short(contacts)}_contacts": big[1000],
    }


def _short(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 and n < 1_000_000 else str(n)


def run_million(contacts: int, workdir: Path) -> dict[str, Any]:
    """In a fresh process: RSS of the input alone vs peak while importing it; snapshot time."""
    state = make_state(contacts, seed=2)
    rss_state = rss_bytes()
    store = casstore.NetworkStore(LmdbStore(workdir / "big"))
    import_s, _ = timed(store.save_network_state, "big", state)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    snaps = [timed(store.save_snapshot, "big")[0] * 1000 for _ in range(20)]
    store.close()
    return {
        "import_1m_s": round(import_s, 2),
        "snapshot_ms_1m": round(statistics.median(snaps), 3),
        "rss_state_bytes": rss_state,
        "rss_peak_bytes": peak,
        "rss_ratio_1m": round(peak / rss_state, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--big", type=int, default=1_000_000, help="contacts of the large import")
    parser.add_argument("--skip-1m", action="store_true", help="skip the large import")
    parser.add_argument("--million-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--skip-history", action="store_true", help="skip the contact_history figures")
    parser.add_argument("--history-only", action="store_true", help="only the contact_history figures")
    parser.add_argument(
        "--no-deltas", action="store_true", help="whole frames, one LMDB entry each (the layout before)"
    )
    parser.add_argument("--no-segments", action="store_true", help="deltas, but one LMDB entry per object")
    parser.add_argument("--baseline", action="store_true", help="also run the --no-deltas layout (baseline_*)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    deltas.WRITE_DELTAS = not args.no_deltas
    lmdb_backend.WRITE_SEGMENTS = not (args.no_deltas or args.no_segments)

    if args.million_only:
        print(json.dumps(run_million(args.big, args.million_only)))
        return 0

    if args.history_only:
        with tempfile.TemporaryDirectory(prefix="casstore-bench-") as tmp:
            result = {"contacts": args.contacts, **run_history(args.contacts, Path(tmp))}
        print(f"casstore contact_history benchmark: {args.contacts:,} contacts, LMDB")
        for key, value in result.items():
            print(f"  {key:<28} {value:>12}")
        ok = result["history_ms_1000_snapshots"] <= 1000
        print_targets([(f"history_ms_1000_snapshots <= 1000 ({result['history_ms_1000_snapshots']})", ok)])
        emit(result, args.json)
        return 0

    with tempfile.TemporaryDirectory(prefix="casstore-bench-") as tmp:
        result = run_main(args.contacts, args.steps, Path(tmp) / "main")
        if args.baseline:
            deltas.WRITE_DELTAS = lmdb_backend.WRITE_SEGMENTS = False
            baseline_dir = Path(tmp) / "baseline" / "store"
            baseline = run_main(args.contacts, args.steps, baseline_dir.parent)
            deltas.WRITE_DELTAS = not args.no_deltas
            lmdb_backend.WRITE_SEGMENTS = not (args.no_deltas or args.no_segments)
            skip = ("contacts", "groups")
            result.update({f"baseline_{key}": value for key, value in baseline.items() if key not in skip})
            # the read ratios from rounds of both layouts in turn, not from the one reading each run took
            cold = alternating_cold_reads({"main": Path(tmp) / "main" / "store", "baseline": baseline_dir})
            for key in ("cold_load_s", "load_snapshot_s"):
                result[f"{key}_first_reading"] = result[key]
                result[f"baseline_{key}_first_reading"] = baseline[key]
                result[key] = cold["main"][key]
                result[f"baseline_{key}"] = baseline[key] = cold["baseline"][key]
            result["cold_read_rounds"] = COLD_ROUNDS
            for key in ("cold_load_s", "load_snapshot_s", "step_ms_median", "growth_per_step_bytes", "verify_s"):
                if baseline[key]:
                    result[f"{key}_vs_baseline"] = round(result[key] / baseline[key], 3)
        if not args.skip_history:
            result.update(run_history(args.contacts, Path(tmp)))
        if not args.skip_1m:
            proc = subprocess.run(
                [sys.executable, __file__, "--million-only", tmp, "--big", str(args.big)],
                capture_output=True,
                text=True,
                check=True,
            )
            result.update(json.loads(proc.stdout.strip().splitlines()[-1]))

    targets = [
        ("import_contacts_per_s", ">=", 130_000),
        ("step_ms_median", "<=", 40),
        ("snapshot_ms_1m", "<=", 2),
        ("rss_ratio_1m", "<=", 2),
        ("verify_s", "<=", 0.5),
        ("growth_per_step_bytes", "<=", 500_000),
        ("disk_to_logical", "<=", 0.9),
        ("cold_load_s_vs_baseline", "<=", 1.2),
        ("load_snapshot_s_vs_baseline", "<=", 1.2),
        ("history_ms_1000_snapshots", "<=", 1000),
    ]
    print(f"casstore network benchmark: {result['contacts']:,} contacts in {result['groups']:,} groups, LMDB")
    for key, value in result.items():
        print(f"  {key:<24} {value:>16,}" if isinstance(value, int) else f"  {key:<24} {value!s:>16}")
    print("targets:")
    checks = [
        (f"{key} {op} {bound} ({result[key]})", result[key] >= bound if op == ">=" else result[key] <= bound)
        for key, op, bound in targets
        if key in result
    ]
    if "snapshot_ms_100k" in result and "snapshot_ms_1m" in result:
        checks.append(
            ("snapshot_ms_1m <= 1.5 x snapshot_ms_100k", result["snapshot_ms_1m"] <= 1.5 * result["snapshot_ms_100k"])
        )
    checks.append(
        ("query_selective_ms <= query_scan_ms / 10", result["query_selective_ms"] <= result["query_scan_ms"] / 10)
    )
    checks.append(
        (
            f"bytes_on_disk <= logical_bytes (ratio {result['disk_ratio']})",
            result["bytes_on_disk"] <= result["logical_bytes"],
        )
    )
    print_targets(checks)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
