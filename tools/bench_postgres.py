"""The PostgreSQL benchmark, with LMDB measured in the same run as the baseline.

Three parts, each on both backends:

* upstream Bassline's shape (1,000 groups / 5,000 contacts): ``save_5k_ms``,
  ``load_5k_ms``, ``snapshot_5k_ms``, ``query_tag_5k_ms``, ``query_attr_5k_ms``,
  ``concurrent_100_writes_ms`` (100 contact writes from 10 threads at once);
  upstream's own figures (other hardware): 46, 8, 24, 6, 3, 23 ms;
* the 100,000-contact workload of ``tools/bench_network.py`` (its workload
  functions): ``import_contacts_per_s``, ``step_ms_median`` (1% churn in one
  batch + a snapshot), ``snapshot_ms``, ``cold_load_s``, ``query_selective_ms``
  (one type: through the SQL view's GIN index on PostgreSQL, the attribute
  index on LMDB) against ``query_scan_ms``; all with the SQL view on (the
  default), and ``tables_off_import_contacts_per_s`` / ``tables_off_step_ms_median``
  with ``?tables=off``;
* ``put_objects_per_s``: 100,000 ~100-byte objects, with each insert method
  (``unnest``, the default; ``copy`` into a temporary table; and plain
  ``executemany``, rejected) measured.

The server is ``--url``, else ``$CASSTORE_PG_URL``, else a throwaway cluster
started for the run.  Each run uses a schema of its own, dropped at the end.

    python tools/bench_postgres.py [--url URL] [--contacts 100000] [--steps 20] [--objects 100000] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_network import AUTHORS, TAGS, TYPES, emit, make_state, small_value, timed

import casstore
from casstore import codec
from casstore.model import NetworkState
from casstore.sqlview import share_node_cache
from casstore.store import open_object_store
from casstore.store.base import ObjectStore
from casstore.store.lmdb import LmdbStore

UPSTREAM_MS = {
    "save_5k_ms": 46,
    "load_5k_ms": 8,
    "snapshot_5k_ms": 24,
    "query_tag_5k_ms": 6,
    "query_attr_5k_ms": 3,
    "concurrent_100_writes_ms": 23,
}


def upstream_state(groups: int = 1000, per_group: int = 5, seed: int = 1) -> NetworkState:
    """Upstream's benchmark shape: ``groups`` groups of ``per_group`` contacts, wired, with type/author/tags."""
    return make_state(groups * per_group, seed, per_group)


def median_ms(fn: Callable[[], Any], runs: int) -> float:
    return round(statistics.median(timed(fn)[0] * 1000 for _ in range(runs)), 3)


def bench_upstream_shape(open_store: Callable[[], ObjectStore]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    states = [upstream_state(seed=seed) for seed in (1, 2, 3)]
    store = share_node_cache(casstore.NetworkStore(open_store()))  # as casstore.open_store does
    out["save_5k_ms"] = round(statistics.median(timed(store.save_network_state, f"up-{i}", s)[0] * 1000
                                                for i, s in enumerate(states)), 3)  # fmt: skip
    out["load_5k_ms"] = median_ms(lambda: casstore.NetworkStore(store.objects).load_network_state("up-0"), 5)
    out["snapshot_5k_ms"] = median_ms(lambda: store.save_snapshot("up-0"), 20)
    out["query_tag_5k_ms"] = median_ms(
        lambda: casstore.NetworkStore(store.objects).query_groups("up-0", tags=[TAGS[3]]), 5
    )
    out["query_attr_5k_ms"] = median_ms(
        lambda: casstore.NetworkStore(store.objects).query_groups("up-0", attributes={"bassline.author": AUTHORS[3]}), 5
    )
    gids = sorted(states[0].groups)

    def write(i: int) -> None:
        gid = gids[(i * 37) % len(gids)]
        store.save_contact_content("up-0", gid, f"{gid}/c{i % 5}", {"write": i})

    runs = []
    for run in range(3):
        with ThreadPoolExecutor(max_workers=10) as pool:
            start = time.perf_counter()
            list(pool.map(write, range(run * 100, run * 100 + 100)))
            runs.append((time.perf_counter() - start) * 1000)
    out["concurrent_100_writes_ms"] = round(statistics.median(runs), 2)
    store.close()
    return out


def bench_100k(open_store: Callable[[], ObjectStore], contacts: int, steps: int) -> dict[str, Any]:
    state = make_state(contacts)
    store = share_node_cache(casstore.NetworkStore(open_store()))
    out: dict[str, Any] = {}
    import_s, _ = timed(store.save_network_state, "bench", state)
    out["import_contacts_per_s"] = round(contacts / import_s)
    rnd = random.Random(99)
    all_contacts = [(gid, cid) for gid, gs in state.groups.items() for cid in gs.contacts]
    step_ms = []
    for step in range(steps):
        changes = [(gid, cid, small_value(rnd)) for gid, cid in rnd.sample(all_contacts, max(1, contacts // 100))]
        start = time.perf_counter()
        with store.batch("bench") as batch:
            for gid, cid, value in changes:
                batch.save_contact_content("bench", gid, cid, value)
        store.save_snapshot("bench", f"step {step}")
        step_ms.append((time.perf_counter() - start) * 1000)
    out["step_ms_median"] = round(statistics.median(step_ms), 2)
    out["snapshot_ms"] = median_ms(lambda: store.save_snapshot("bench"), 20)
    store.close()
    store = casstore.NetworkStore(open_store())  # a new process's view: nothing cached
    cold_s, loaded = timed(store.load_network_state, "bench")
    assert loaded is not None and len(loaded.groups) == len(state.groups)
    out["cold_load_s"] = round(cold_s, 3)
    selective_s, found = timed(lambda: casstore.NetworkStore(store.objects).query_groups("bench", type=TYPES[7]))
    scan_s, everything = timed(lambda: casstore.NetworkStore(store.objects).query_groups("bench"))
    assert found and len(everything) == len(state.groups)
    out["query_selective_ms"] = round(selective_s * 1000, 2)
    out["query_scan_ms"] = round(scan_s * 1000, 2)
    store.close()
    return out


def small_frames(count: int) -> list[tuple[bytes, bytes]]:
    rnd = random.Random(5)
    return codec.frame_many([codec.encode_value({"i": i, "pad": rnd.randbytes(60).hex()[:80]}) for i in range(count)])


def bench_put(store: ObjectStore, frames: list[tuple[bytes, bytes]]) -> float:
    start = time.perf_counter()
    for at in range(0, len(frames), 20_000):  # as PendingWrites hands them over: big batches
        store.blobs.put_frames(frames[at : at + 20_000])
    return round(len(frames) / (time.perf_counter() - start))


def bench_executemany(url: str, frames: list[tuple[bytes, bytes]]) -> float:
    """The rejected method: one ``INSERT … ON CONFLICT`` per object through ``executemany`` (pipelined by psycopg)."""
    import psycopg

    from casstore.store.postgres.store import PostgresStore

    store = PostgresStore(url, schema=f"bench_em_{uuid.uuid4().hex[:8]}")
    table = f'"{store.schema}".objects'
    try:
        with psycopg.connect(store.db.conninfo) as conn, conn.cursor() as cur:
            start = time.perf_counter()
            cur.executemany(
                f"INSERT INTO {table} (id, frame, written_at) VALUES (%b, %b, now())"
                " ON CONFLICT (id) DO UPDATE SET written_at = now()",
                frames,
            )
            conn.commit()
            return round(len(frames) / (time.perf_counter() - start))
    finally:
        drop_schema(url, store.schema)
        store.close()


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    from casstore.store.postgres.connection import Database

    with psycopg.connect(Database(url).conninfo, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def postgres_url(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    from casstore.store.postgres.throwaway import start_cluster

    cluster = start_cluster()
    try:
        yield cluster.url()
    finally:
        cluster.stop()


def with_options(url: str, **options: str) -> str:
    return url + ("&" if "?" in url else "?") + "&".join(f"{k}={v}" for k, v in options.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("CASSTORE_PG_URL"), help="default: $CASSTORE_PG_URL")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    result: dict[str, Any] = {"contacts": args.contacts, "objects": args.objects}
    with postgres_url(args.url) as base, tempfile.TemporaryDirectory(prefix="casstore-bench-pg-") as tmp:
        schemas: list[str] = []

        def pg_opener(**options: str) -> Callable[[], ObjectStore]:
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            schemas.append(schema)
            return lambda: open_object_store(with_options(base, schema=schema, **options))

        def lmdb_opener(name: str) -> Callable[[], ObjectStore]:
            return lambda: LmdbStore(Path(tmp) / name)

        try:
            for prefix, opener in (("", pg_opener()), ("lmdb_", lmdb_opener("up"))):
                result.update({prefix + k: v for k, v in bench_upstream_shape(opener).items()})
            for prefix, opener in (("", pg_opener()), ("lmdb_", lmdb_opener("100k"))):
                result.update({prefix + k: v for k, v in bench_100k(opener, args.contacts, args.steps).items()})
            off = bench_100k(pg_opener(tables="off"), args.contacts, args.steps)  # the SQL view's cost
            result.update({f"tables_off_{k}": off[k] for k in ("import_contacts_per_s", "step_ms_median")})
            frames = small_frames(args.objects)
            for method in ("unnest", "copy"):
                with pg_opener(insert=method)() as store:
                    result[f"put_objects_per_s_{method}"] = bench_put(store, frames)
            result["put_objects_per_s_executemany"] = bench_executemany(base, frames[: max(1, args.objects // 5)])
            result["put_objects_per_s"] = result["put_objects_per_s_unnest"]
            with lmdb_opener("put")() as store:
                result["lmdb_put_objects_per_s"] = bench_put(store, frames)
        finally:
            for schema in schemas:
                drop_schema(base, schema)

    print(f"casstore PostgreSQL benchmark (LMDB in the same run); {args.contacts:,}-contact workload")
    width = max(map(len, result))
    for key, value in result.items():
        print(f"  {key:<{width}} {value:>14,}" if isinstance(value, int) else f"  {key:<{width}} {value:>14}")
    print("against upstream Bassline's PostgreSQL figures (other hardware):")
    for key, bound in UPSTREAM_MS.items():
        print(f"  {key:<26} {result[key]:>9} ms   upstream {bound} ms: {'met' if result[key] <= bound else 'NOT met'}")
    checks = [
        ("import_contacts_per_s >= 50,000", result["import_contacts_per_s"] >= 50_000),
        ("import_contacts_per_s >= 0.5 x LMDB's",
         result["import_contacts_per_s"] >= 0.5 * result["lmdb_import_contacts_per_s"]),
        ("step_ms_median <= 150", result["step_ms_median"] <= 150),
        ("snapshot_ms <= 5", result["snapshot_ms"] <= 5),
        ("query_selective_ms < query_scan_ms", result["query_selective_ms"] < result["query_scan_ms"]),
    ]  # fmt: skip
    for label, ok in checks:
        print(f"  {label}: {'met' if ok else 'NOT met'}")
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
