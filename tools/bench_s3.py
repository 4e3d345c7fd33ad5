"""S3 request counts and bytes for the network workload, against moto's in-process S3.

Same workload as tools/bench_network.py (100,000 contacts, 20 steps of 1% churn with a
snapshot each), run on an S3 store (requests counted by type with botocore event hooks)
and, in the same run, on LMDB for the stored-bytes baseline.  Then an archive of the
last snapshot to S3 (a CAR image, multipart upload) and its restore into a fresh LMDB
store, with their requests and times; the baseline for those is the same image
written to and read from a local file.

    python tools/bench_s3.py [--contacts 100000] [--steps 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
from bench_network import emit, make_state, print_targets, small_value
from moto import mock_aws

import casstore
from casstore import archive
from casstore.store.lmdb import LmdbStore
from casstore.store.s3 import S3Store

BUCKET = "casstore-bench"


def run(store: casstore.NetworkStore, state: Any, steps: int, counter: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def requests() -> Counter[str]:
        return Counter(counter.requests) if counter is not None else Counter()

    before = requests()
    start = time.perf_counter()
    store.save_network_state("bench", state)
    out["import_s"] = round(time.perf_counter() - start, 3)
    out["import_requests_by_type"] = dict(requests() - before)
    out["import_requests"] = sum((requests() - before).values())
    rnd = random.Random(99)
    pairs = [(g, c) for g, gs in state.groups.items() for c in gs.contacts]
    step_requests, step_ms = [], []
    churn = max(1, len(pairs) // 100)
    for step in range(steps):
        changes = [(g, c, small_value(rnd)) for g, c in rnd.sample(pairs, churn)]
        before = requests()
        start = time.perf_counter()
        with store.batch("bench") as batch:
            for g, c, value in changes:
                batch.save_contact_content("bench", g, c, value)
        store.save_snapshot("bench", f"step {step}")
        step_ms.append(round((time.perf_counter() - start) * 1000, 1))
        step_requests.append(sum((requests() - before).values()))
        out.setdefault("step_requests_by_type", []).append(dict(requests() - before))
    out["step_ms"] = step_ms
    out["step_requests"] = step_requests
    out["step_requests_max"] = max(step_requests, default=0)
    return out


def images(store: casstore.NetworkStore, s3: S3Store, tmp: Path) -> dict[str, Any]:
    """Archive the benchmark network's latest snapshot to S3, restore it into a fresh LMDB store; then locally."""
    out: dict[str, Any] = {}
    requests: Counter[str] = Counter()  # requests of the clients archive/restore make for the image itself

    def count(model: Any, **_: Any) -> None:
        requests[model.name] += 1

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call.s3", count)  # type: ignore[union-attr]
    snapshot = store.list_snapshots("bench")[0].id
    remote, local = f"s3://{BUCKET}/images/bench.car.zst", str(tmp / "image.car.zst")
    for where, target in (("", remote), ("_local", local)):
        before = Counter(s3.client.requests) + requests
        start = time.perf_counter()
        report = archive.archive(store, "bench", target, snapshot)
        out[f"archive{where}_s"] = round(time.perf_counter() - start, 3)
        if where == "":
            out["archive_requests_by_type"] = dict(Counter(s3.client.requests) + requests - before)
            out["archive_requests"] = sum(out["archive_requests_by_type"].values())
            out["image_objects"] = report.objects
    out["image_bytes"] = Path(local).stat().st_size
    for where, source in (("", remote), ("_local", local)):
        before = Counter(requests)
        with casstore.NetworkStore(LmdbStore(tmp / f"restored{where}")) as into:
            start = time.perf_counter()
            archive.restore(into, source)
            out[f"restore{where}_s"] = round(time.perf_counter() - start, 3)
        if where == "":
            out["restore_requests_by_type"] = dict(requests - before)
            out["restore_requests"] = sum(out["restore_requests_by_type"].values())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "bench")
    state = make_state(args.contacts)
    result: dict[str, Any] = {"contacts": args.contacts, "steps": args.steps}

    with tempfile.TemporaryDirectory(prefix="casstore-bench-s3-") as tmp:
        with casstore.NetworkStore(LmdbStore(Path(tmp) / "lmdb")) as lmdb_store:
            run(lmdb_store, state, args.steps)
            lmdb_stats = lmdb_store.blobs.stats()
        result["lmdb_bytes_stored"] = (lmdb_stats.extra or {}).get("file_bytes", lmdb_stats.stored_bytes)

        with mock_aws():
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
            s3 = S3Store(BUCKET, "bench", cache=False, workers=1)
            with casstore.NetworkStore(s3) as store:
                result.update(run(store, state, args.steps, s3.client))
                stats = s3.blobs.stats()
                result["bytes_stored"] = stats.stored_bytes
                result["packs"] = (stats.extra or {}).get("packs")
            cold = S3Store(BUCKET, "bench", cache=False, workers=1)  # a fresh process's view: nothing cached
            start = time.perf_counter()
            with casstore.NetworkStore(cold) as store:
                loaded = store.load_network_state("bench")
                result["cold_load_s"] = round(time.perf_counter() - start, 3)
                result["cold_load_requests_by_type"] = dict(cold.client.requests)
                result["cold_load_requests"] = sum(cold.client.requests.values())
                assert loaded is not None and len(loaded.groups) == len(state.groups)
                result.update(images(store, cold, Path(tmp)))

    result["bytes_ratio_to_lmdb"] = round(result["bytes_stored"] / result["lmdb_bytes_stored"], 3)
    targets = [
        ("import_requests", result["import_requests"], 100),
        ("step_requests_max", result["step_requests_max"], 10),
        ("cold_load_requests", result["cold_load_requests"], 50),
        ("bytes_ratio_to_lmdb", result["bytes_ratio_to_lmdb"], 1.2),
    ]
    print(f"casstore S3 benchmark (moto in-process): {args.contacts:,} contacts, {args.steps} steps")
    print(f"  import        {result['import_requests']:>6} requests {result['import_requests_by_type']}")
    print(f"  steps         {result['step_requests']} requests, max {result['step_requests_max']}")
    print(f"  cold load     {result['cold_load_requests']:>6} requests {result['cold_load_requests_by_type']}")
    print(f"  bytes stored  {result['bytes_stored']:,} (LMDB {result['lmdb_bytes_stored']:,})")
    for key in ("archive", "restore"):
        print(
            f"  {key:<13} {result[key + '_requests']:>6} requests {result[key + '_requests_by_type']}, "
            f"{result[key + '_s']:.2f} s (local file: {result[key + '_local_s']:.2f} s)"
        )
    print(f"  image         {result['image_objects']:,} objects, {result['image_bytes']:,} B compressed")
    print_targets([(f"{key} <= {bound} ({value})", value <= bound) for key, value, bound in targets])
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
