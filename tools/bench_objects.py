"""Small-object throughput of the LMDB blob store against a raw floor measured in the same run.

casstore side: ``codec.encode_value`` + ``blobs.put_many`` (hash, frame, one LMDB
transaction per batch) and ``blobs.get_many`` (re-hash) + ``codec.decode_value``.
Raw floor, no casstore code: ``libipld.encode_dag_cbor`` + ``blake3`` + bare
``txn.put`` for puts; bare ``txn.get`` + ``blake3`` check + ``libipld.decode_dag_cbor``
for gets (the same work casstore must do, since every read re-hashes).

    python tools/bench_objects.py [--objects 200000] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import blake3
import libipld
import lmdb
from bench_network import emit

from casstore import codec
from casstore.store.lmdb import LmdbStore

BATCH = 10_000
MAP_SIZE = 1 << 31


def make_values(n: int, seed: int = 7) -> list[dict[str, object]]:
    rnd = random.Random(seed)
    words = ["alpha", "beta", "gamma", "delta", "sensor", "value", "north", "south"]
    return [
        {
            "id": f"contact-{i}",
            "reading": rnd.randint(0, 1_000_000),
            "scale": round(rnd.random(), 6),
            "label": " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 8))),
            "unit": rnd.choice(["celsius", "kilopascal", "percent"]),
            "ok": rnd.random() < 0.5,
        }
        for i in range(n)
    ]


def chunks(items: list, size: int = BATCH) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def bench_casstore(values: list, workdir: Path) -> tuple[float, float, list[bytes]]:
    store = LmdbStore(workdir / "casstore", map_size=MAP_SIZE)
    encode = codec.encode_value
    ids: list[bytes] = []
    start = time.perf_counter()
    for batch in chunks(values):
        ids.extend(store.blobs.put_many([encode(v) for v in batch]))
    put_s = time.perf_counter() - start
    order = ids[:]
    random.Random(1).shuffle(order)
    decode = codec.decode_value
    start = time.perf_counter()
    for batch in chunks(order):
        got = [decode(d) for d in store.blobs.get_many(batch)]
    get_s = time.perf_counter() - start
    assert got[-1] == values[ids.index(order[-1])], "casstore returned wrong data"
    store.close()
    return put_s, get_s, ids


def bench_raw(values: list, workdir: Path) -> tuple[float, float, list[bytes]]:
    env = lmdb.open(str(workdir / "raw"), map_size=MAP_SIZE, max_dbs=2)
    db = env.open_db(b"blobs")
    encode, hasher = libipld.encode_dag_cbor, blake3.blake3
    ids: list[bytes] = []
    start = time.perf_counter()
    for batch in chunks(values):
        with env.begin(write=True, db=db) as txn:
            put = txn.put
            for v in batch:
                data = encode(v)
                digest = hasher(data).digest()
                put(digest, data)
                ids.append(digest)
    put_s = time.perf_counter() - start
    order = ids[:]
    random.Random(1).shuffle(order)
    decode = libipld.decode_dag_cbor
    start = time.perf_counter()
    for batch in chunks(order):
        with env.begin(db=db) as txn:
            get = txn.get
            got = []
            for digest in batch:
                data = get(digest)
                if hasher(data).digest() != digest:
                    raise AssertionError("raw floor read corrupt data")
                got.append(decode(data))
    get_s = time.perf_counter() - start
    env.close()
    return put_s, get_s, ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    values = make_values(args.objects)
    sizes = [len(codec.encode_value(v)) for v in values[:2000]]
    runs: dict[str, list[float]] = {"put": [], "get": [], "raw_put": [], "raw_get": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="casstore-bench-") as tmp:
            raw_put, raw_get, raw_ids = bench_raw(values, Path(tmp))
            put, get, ids = bench_casstore(values, Path(tmp))
            assert ids == raw_ids, "casstore ids differ from blake3 of the canonical bytes"
        runs["put"].append(put)
        runs["get"].append(get)
        runs["raw_put"].append(raw_put)
        runs["raw_get"].append(raw_get)

    n = args.objects
    result = {
        "objects": n,
        "mean_encoded_bytes": round(statistics.mean(sizes), 1),
        "rounds": args.rounds,
        "put_per_s": round(n / statistics.median(runs["put"])),
        "get_per_s": round(n / statistics.median(runs["get"])),
        "raw_put_per_s": round(n / statistics.median(runs["raw_put"])),
        "raw_get_per_s": round(n / statistics.median(runs["raw_get"])),
    }
    result["put_ratio"] = round(result["put_per_s"] / result["raw_put_per_s"], 3)
    result["get_ratio"] = round(result["get_per_s"] / result["raw_get_per_s"], 3)

    print(f"{n} objects of ~{result['mean_encoded_bytes']} encoded bytes, LMDB, median of {args.rounds} rounds")
    print(
        f"  put  casstore {result['put_per_s']:>10,}/s   raw floor {result['raw_put_per_s']:>10,}/s"
        f"   ratio {result['put_ratio']:.2f}  (target >= 0.60)"
    )
    print(
        f"  get  casstore {result['get_per_s']:>10,}/s   raw floor {result['raw_get_per_s']:>10,}/s"
        f"   ratio {result['get_ratio']:.2f}  (target >= 0.60)"
    )
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
