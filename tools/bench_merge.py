"""The merge benchmark (#17): two replicas diverge by one 1%-churn step each; merge them, on LMDB.

Workload: ``tools/bench_network.py``'s network (groups of 100 contacts, mixed blend modes, 0.5%
large contents).  From one common head, "ours" and "theirs" each change 1% of the contacts in one
batch (in the 10x network the same number of contacts: the cost should follow the changes), 10%
of the changed contacts overlapping (both sides change them: each a conflict, as
``accept-last`` or as a ``merge`` contradiction of two different readings).  ``merge_ms`` times
``casstore.merge.merge_network`` (base given: the common head), commit included; ``step_ms`` one
side's step in the same run.  The 10x network (1,000,000 contacts by default) is built group batch
by group batch, and timed separately (``build_10x_s``).

    python tools/bench_merge.py [--contacts 100000] [--skip-10x] [--json PATH]

Keys: ``merge_ms`` (target <= 100 and <= 3 x ``step_ms``), ``merge_ms_10x_network`` (<= 2 x ``merge_ms``),
``conflicts`` (= ``expected_conflicts``, the overlap).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_network import PER_GROUP, emit, make_group, make_state, print_targets, small_value

import casstore
from casstore.merge import merge_network
from casstore.model import NetworkStore
from casstore.model.refs import head_ref
from casstore.store.lmdb import LmdbStore

BUILD_GROUPS = 500  # groups per batch when building the 10x network


def build(store: NetworkStore, net: str, contacts: int) -> float:
    """The network of ``contacts`` contacts, written in batches of groups; seconds taken."""
    start = time.perf_counter()
    if contacts <= 200_000:
        store.save_network_state(net, make_state(contacts))
        return time.perf_counter() - start
    rnd = random.Random(3)
    groups = contacts // PER_GROUP
    for first in range(0, groups, BUILD_GROUPS):
        with store.batch(net) as batch:
            for g in range(first, min(groups, first + BUILD_GROUPS)):
                batch.save_group_state(net, f"group-{g:06d}", make_group(g, rnd))
    return time.perf_counter() - start


def diverge_and_merge(store: NetworkStore, contacts: int, seed: int, churn: int) -> dict[str, Any]:
    """Both sides' steps from the network ``ours`` (copied as ``theirs``), then the merge."""
    base = store.refs.get(head_ref("ours"))
    assert base is not None
    store.refs.compare_and_swap(head_ref("theirs"), store.refs.get(head_ref("theirs")), base)
    rnd = random.Random(seed)
    overlap = churn // 10
    picked = rnd.sample(range(contacts), 2 * churn - overlap)
    ours_ids, theirs_ids = picked[:churn], picked[churn - overlap :]

    def key(n: int) -> tuple[str, str]:
        gid = f"group-{n // PER_GROUP:06d}"
        return gid, f"{gid}/c{n % PER_GROUP:03d}"

    def step(net: str, ids: list[int]) -> float:
        changes = [(*key(n), small_value(rnd)) for n in ids]
        start = time.perf_counter()
        with store.batch(net) as batch:
            for gid, cid, value in changes:
                batch.save_contact_content(net, gid, cid, value)
        return (time.perf_counter() - start) * 1000

    step_ms = step("ours", ours_ids)
    step("theirs", theirs_ids)
    theirs = store.refs.get(head_ref("theirs"))
    assert theirs is not None
    start = time.perf_counter()
    result = merge_network(store, "ours", theirs, base=base)
    merge_ms = (time.perf_counter() - start) * 1000
    assert result.outcome == "merged"
    return {"step_ms": step_ms, "merge_ms": merge_ms, "conflicts": len(result.conflicts), "expected": overlap}


def run(contacts: int, workdir: Path, rounds: int, churn: int) -> dict[str, Any]:
    store = casstore.NetworkStore(LmdbStore(workdir))
    build_s = build(store, "ours", contacts)
    runs = [diverge_and_merge(store, contacts, seed, churn) for seed in range(rounds)]
    store.close()
    return {
        "build_s": round(build_s, 2),
        "step_ms": round(statistics.median(r["step_ms"] for r in runs), 2),
        "merge_ms": round(statistics.median(r["merge_ms"] for r in runs), 2),
        "conflicts": runs[-1]["conflicts"],
        "expected_conflicts": runs[-1]["expected"],
        "all_conflicts_as_expected": all(r["conflicts"] == r["expected"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5, help="diverge-and-merge rounds (median reported)")
    parser.add_argument("--skip-10x", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        churn = max(10, args.contacts // 100)  # the same number of changes in the 10x network
        main_run = run(args.contacts, Path(tmp) / "main", args.rounds, churn)
        result: dict[str, Any] = {"contacts": args.contacts, **main_run}
        targets = [
            ("merge_ms <= 100", main_run["merge_ms"] <= 100),
            ("merge_ms <= 3 x step_ms", main_run["merge_ms"] <= 3 * main_run["step_ms"]),
            ("conflicts == expected_conflicts", main_run["all_conflicts_as_expected"]),
        ]
        if not args.skip_10x:
            big = run(args.contacts * 10, Path(tmp) / "big", args.rounds, churn)
            result.update(
                {
                    "build_10x_s": big["build_s"],
                    "step_ms_10x_network": big["step_ms"],
                    "merge_ms_10x_network": big["merge_ms"],
                    "conflicts_10x_network": big["conflicts"],
                }
            )
            targets.append(("merge_ms_10x_network <= 2 x merge_ms", big["merge_ms"] <= 2 * main_run["merge_ms"]))
    emit(result, args.json)
    print_targets(targets)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
