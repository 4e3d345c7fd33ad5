"""The sync benchmark: full clone, incremental push of one 1%-churn step, and a no-op push.

Same workload as tools/bench_network.py (100,000 contacts by default).  Pairs:
LMDB→LMDB, which sends packs with rewritten objects as deltas against the ones
they replace, and LMDB→S3 (moto in-process; S3 requests counted by type), which
uploads whole frames because S3 runs no casstore code to rebuild a delta.  Baselines
measured in the same run: the naive alternative (copying the whole state, i.e. a
full clone's bytes and time) and, if git is installed, ``git push`` of the same
step from a git repository of the materialized state (a directory per group, a
JSON file per contact; ``git gc`` first, pushed to a local bare repository).

    python tools/bench_sync.py [--contacts 100000] [--json PATH]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
from bench_network import emit, make_state, print_targets, small_value
from moto import mock_aws

import casstore
from casstore.model import NetworkState
from casstore.model.bassline_json import contact_to_json, network_to_json
from casstore.store.lmdb import LmdbStore
from casstore.store.s3 import S3Store

BUCKET = "casstore-bench"


def timed_push(src: casstore.NetworkStore, dst: casstore.NetworkStore) -> tuple[float, casstore.SyncReport]:
    gc.collect()
    gc.disable()  # as timeit does: a collection of the benchmark's own large heap is not the push's cost
    try:
        start = time.perf_counter()
        report = casstore.push(src, dst)  # each destination is tracked under its own (URL-derived) name
        return (time.perf_counter() - start) * 1000, report
    finally:
        gc.enable()


def figures(ms: float, report: casstore.SyncReport) -> dict[str, Any]:
    return {
        "ms": round(ms, 1),
        "objects": report.objects_sent,
        "bytes": report.bytes_sent,
        "round_trips": report.round_trips,
        "skipped": report.objects_skipped,
        "deltas": report.deltas,
    }


def one_step(store: casstore.NetworkStore, state: NetworkState, seed: int) -> list[tuple[str, str, Any]]:
    rnd = random.Random(seed)
    pairs = [(g, c) for g, gs in state.groups.items() for c in gs.contacts]
    changes = [(g, c, small_value(rnd)) for g, c in rnd.sample(pairs, max(1, len(pairs) // 100))]
    with store.batch("bench") as batch:
        for g, c, value in changes:
            batch.save_contact_content("bench", g, c, value)
    store.save_snapshot("bench", "step")
    return changes


def git_step(workdir: Path, state: NetworkState, changes: list[tuple[str, str, Any]]) -> dict[str, Any] | None:
    """``git push`` of the same step, from a repository of the materialized state to a local bare one."""
    if shutil.which("git") is None:
        return None
    repo, remote = workdir / "git-src", workdir / "git-dst.git"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "b"}
    env["GIT_COMMITTER_EMAIL"] = "b@x"

    def git(*args: str, cwd: Path = repo) -> str:
        done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def write_contact(gid: str, cid: str, contact: Any) -> None:
        (repo / gid / f"{quote(cid, safe='')}.json").write_text(json.dumps(contact_to_json(contact), sort_keys=True))

    git("init", "-q", "-b", "main")
    git("config", "gc.auto", "0")  # only the explicit gc below: no background gc racing it
    for gid, group in network_to_json(state)["groups"].items():  # a directory per group, a file per contact
        (repo / gid).mkdir()
        (repo / gid / "group.json").write_text(json.dumps({**group, "contacts": None}, sort_keys=True, indent=1))
        for cid, contact in state.groups[gid].contacts.items():
            write_contact(gid, cid, contact)
    git("add", "-A")
    git("commit", "-qm", "state")
    git("gc", "-q")
    git("init", "-q", "--bare", str(remote), cwd=workdir)
    git("remote", "add", "dst", str(remote))
    start = time.perf_counter()
    git("push", "-q", "dst", "main")
    full_s = time.perf_counter() - start
    full_bytes = sum(p.stat().st_size for p in (remote / "objects").rglob("*") if p.is_file())
    for gid, cid, value in changes:
        state.groups[gid].contacts[cid].content = value
        write_contact(gid, cid, state.groups[gid].contacts[cid])
    git("commit", "-qam", "step")
    # what `git push` sends: the thin pack of what the remote lacks (the receiver then completes it with
    # the bases it has, so its disk grows by more than was sent)
    thin_pack = subprocess.run(
        ["git", "pack-objects", "--revs", "--thin", "--stdout", "-q"],
        cwd=repo,
        env=env,
        input=b"main\n^dst/main\n",
        capture_output=True,
        check=True,
    ).stdout
    start = time.perf_counter()
    git("push", "-q", "dst", "main")
    elapsed = time.perf_counter() - start
    return {
        "git_push_ms": round(elapsed * 1000, 1),
        "git_push_bytes": len(thin_pack),
        "git_full_push_s": round(full_s, 2),
        "git_full_bytes": full_bytes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    state = make_state(args.contacts)
    result: dict[str, Any] = {"contacts": args.contacts}

    with tempfile.TemporaryDirectory(prefix="casstore-bench-sync-") as tmp, mock_aws():
        work = Path(tmp)
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        src = casstore.NetworkStore(LmdbStore(work / "src"))
        lmdb_dst = casstore.NetworkStore(LmdbStore(work / "dst"))
        s3 = S3Store(BUCKET, "bench", cache=False, workers=1)
        s3_dst = casstore.NetworkStore(s3)
        src.save_network_state("bench", state)
        src.save_snapshot("bench", "imported")

        ms, report = timed_push(src, lmdb_dst)
        result["clone_lmdb"] = figures(ms, report)
        result["tree_depth"] = report.levels
        s3.client.requests.clear()
        ms, report = timed_push(src, s3_dst)
        result["clone_s3"] = figures(ms, report) | {"requests": dict(s3.client.requests)}

        before = set(src.blobs.iter_hashes())
        changes = one_step(src, state, seed=7)
        created = [d for d in src.blobs.iter_hashes() if d not in before]
        result["step_created_objects"] = len(created)
        result["step_created_bytes"] = sum(len(f or b"") for f in src.blobs.get_frames(created))

        ms, report = timed_push(src, lmdb_dst)
        result["incremental_lmdb"] = figures(ms, report)
        s3.client.requests.clear()
        ms, report = timed_push(src, s3_dst)
        result["incremental_s3"] = figures(ms, report) | {"requests": dict(s3.client.requests)}
        ms, noop = timed_push(src, lmdb_dst)
        result["noop_lmdb"] = figures(ms, noop)
        s3.client.requests.clear()
        ms, noop_s3 = timed_push(src, s3_dst)
        result["noop_s3"] = figures(ms, noop_s3) | {"requests": dict(s3.client.requests)}
        for dst in (lmdb_dst, s3_dst):
            assert dst.load_network_state("bench") == src.load_network_state("bench")
            assert dst.refs.get("networks/bench/head") == src.refs.get("networks/bench/head")
        for store in (src, lmdb_dst, s3_dst):
            store.close()
        git = git_step(work, state, changes)

    inc = result["incremental_lmdb"]
    result["incremental_push_bytes"] = inc["bytes"]
    result["push_bytes_ratio"] = round(inc["bytes"] / result["step_created_bytes"], 3)
    result["push_round_trips"] = inc["round_trips"]
    result["noop_push_round_trips"] = result["noop_lmdb"]["round_trips"]
    result["incremental_push_ms_lmdb"] = inc["ms"]
    result["naive_bytes_ratio"] = round(inc["bytes"] / result["clone_lmdb"]["bytes"], 4)
    if git is not None:
        result.update(git)

    print(f"casstore sync benchmark: {args.contacts:,} contacts, one 1%-churn step")
    for key in ("clone_lmdb", "clone_s3", "incremental_lmdb", "incremental_s3", "noop_lmdb", "noop_s3"):
        row = result[key]
        extra = f"  ({row['deltas']:,} as deltas)" if row["deltas"] else ""
        if "requests" in row:
            extra += f"  S3 requests {sum(row['requests'].values())} {row['requests']}"
        print(
            f"  {key:<17} {row['objects']:>8,} objects {row['bytes']:>12,} B "
            f"{row['round_trips']:>3} round trips {row['ms']:>9.1f} ms{extra}"
        )
    print(f"  the step created {result['step_created_objects']:,} objects, {result['step_created_bytes']:,} B")
    print(f"  naive (copy the whole state): {result['clone_lmdb']['bytes']:,} B in {result['clone_lmdb']['ms']:.0f} ms")
    if git is not None:
        print(f"  git push of the same step: {git['git_push_bytes']:,} B in {git['git_push_ms']:.0f} ms")
        print(f"  git push of the whole state: {git['git_full_bytes']:,} B in {git['git_full_push_s']:.2f} s")
    else:
        print("  git push: skipped (git not installed)")
    depth = result["tree_depth"]
    targets = [
        ("push_bytes_ratio <= 2", result["push_bytes_ratio"] <= 2),
        ("incremental_push_bytes < git's 559 KB quoted in the issue", inc["bytes"] < 559_000),
        (
            f"push_round_trips <= tree_depth + 3 ({depth + 3})",
            inc["round_trips"] <= depth + 3,
        ),
        ("noop_push_round_trips <= 2", result["noop_push_round_trips"] <= 2),
        ("incremental_push_ms_lmdb <= 100", inc["ms"] <= 100),
    ]
    if git is not None:
        targets.append(("incremental_push_bytes < this run's git push", inc["bytes"] < git["git_push_bytes"]))
    print_targets(targets)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
