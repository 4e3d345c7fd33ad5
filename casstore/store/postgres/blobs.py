"""Blobs in ``objects (id bytea primary key, frame bytea, written_at timestamptz)``.

Every call is batched: ``put_frames`` sends one statement per :data:`PUT_BATCH`
objects (all in one transaction when there are more), reading and asking
``missing`` send :data:`LOOKUP_BATCH` ids per ``= ANY(…)`` query, and
``delete_many`` deletes :data:`DELETE_BATCH` per statement, each its own
short transaction, so gc never holds a long lock.  ``iter_hashes`` pages
through the primary key (``WHERE id > last ORDER BY id LIMIT n``), one short
query per page, so neither a transaction nor a pooled connection is held
between pages however slowly the caller consumes them.  Results come back in
binary (bytea as raw bytes, not hex).

Two insert methods, chosen by ``?insert=``: ``unnest`` (the default: one
``INSERT … SELECT FROM unnest(ids, frames) ON CONFLICT (id) DO UPDATE SET
written_at = now()`` per batch) and ``copy`` (``COPY`` into a temporary table,
then the same upsert from it); ``tools/bench_postgres.py`` measures both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg

from casstore.store.base import BlobStats, BlobStore
from casstore.store.postgres.connection import Database

__all__ = ["DELETE_BATCH", "INSERT_METHODS", "LOOKUP_BATCH", "PUT_BATCH", "PostgresBlobs"]

PUT_BATCH = 5000
LOOKUP_BATCH = 5000
DELETE_BATCH = 1000
SCAN_PAGE = 10_000
INSERT_METHODS = ("unnest", "copy")


class PostgresBlobs(BlobStore):
    def __init__(self, db: Database, schema: str, insert: str = "unnest") -> None:
        self._db = db
        self._insert = insert
        t = f"{schema}.objects"
        self._upsert = (
            f"INSERT INTO {t} (id, frame, written_at) SELECT i, f, now() FROM unnest(%b::bytea[], %b::bytea[]) AS"
            " u(i, f) ON CONFLICT (id) DO UPDATE SET written_at = now()"
        )
        self._upsert_from_temp = (
            f"INSERT INTO {t} (id, frame, written_at) SELECT id, frame, now() FROM casstore_incoming"
            " ON CONFLICT (id) DO UPDATE SET written_at = now()"
        )
        self._select_frames = f"SELECT id, frame FROM {t} WHERE id = ANY(%b::bytea[])"
        self._select_ids = f"SELECT id FROM {t} WHERE id = ANY(%b::bytea[])"
        self._page_first = f"SELECT id FROM {t} ORDER BY id LIMIT {SCAN_PAGE}"
        self._page_after = f"SELECT id FROM {t} WHERE id > %b ORDER BY id LIMIT {SCAN_PAGE}"
        self._delete = f"DELETE FROM {t} WHERE id = ANY(%b::bytea[])"
        self._since = f"SELECT id FROM {t} WHERE written_at >= to_timestamp(%s)"
        self._stats = f"SELECT count(*), coalesce(sum(octet_length(frame)), 0) FROM {t}"
        self._relation = t

    # ---- writes

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        if not items:
            return
        unique = dict(items)  # one upsert may not touch a row twice; a digest names one frame
        write = self.writer(unique)
        self._db.run("blobs.put_frames", write, transaction=len(unique) > PUT_BATCH or self._insert == "copy")

    def writer(self, unique: dict[bytes, bytes]) -> Any:
        """A body storing ``unique`` on the caller's connection (inside the caller's transaction, if any)."""
        ids, frames = list(unique), list(unique.values())
        if self._insert == "copy":
            return lambda conn: self._copy(conn, ids, frames)

        def body(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cur:
                for start in range(0, len(ids), PUT_BATCH):
                    cur.execute(self._upsert, (ids[start : start + PUT_BATCH], frames[start : start + PUT_BATCH]))

        return body

    def _copy(self, conn: psycopg.Connection[Any], ids: list[bytes], frames: list[bytes]) -> None:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS casstore_incoming (id bytea, frame bytea) ON COMMIT DELETE ROWS"
            )
            with cur.copy("COPY casstore_incoming (id, frame) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["bytea", "bytea"])
                for row in zip(ids, frames, strict=True):
                    copy.write_row(row)
            cur.execute(self._upsert_from_temp)

    # ---- reads

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        if not digests:
            return []
        wanted = list(dict.fromkeys(digests))

        def body(conn: psycopg.Connection[Any]) -> dict[bytes, bytes]:
            found: dict[bytes, bytes] = {}
            with conn.cursor(binary=True) as cur:
                for start in range(0, len(wanted), LOOKUP_BATCH):
                    cur.execute(self._select_frames, (wanted[start : start + LOOKUP_BATCH],))
                    found.update(cur.fetchall())
            return found

        found = self._db.run("blobs.get_frames", body)
        get = found.get
        return [get(d) for d in digests]

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        wanted = list(set(digests))
        if not wanted:
            return set()

        def body(conn: psycopg.Connection[Any]) -> set[bytes]:
            present: set[bytes] = set()
            with conn.cursor(binary=True) as cur:
                for start in range(0, len(wanted), LOOKUP_BATCH):
                    cur.execute(self._select_ids, (wanted[start : start + LOOKUP_BATCH],))
                    present.update(row[0] for row in cur.fetchall())
            return present

        return set(wanted) - self._db.run("blobs.missing", body)

    def iter_hashes(self) -> Iterator[bytes]:
        after: bytes | None = None
        while True:

            def page(conn: psycopg.Connection[Any], start: bytes | None = after) -> list[bytes]:
                with conn.cursor(binary=True) as cur:
                    if start is None:
                        cur.execute(self._page_first)
                    else:
                        cur.execute(self._page_after, (start,))
                    return [row[0] for row in cur.fetchall()]

            batch = self._db.run("blobs.iter_hashes", page)
            yield from batch
            if len(batch) < SCAN_PAGE:
                return
            after = batch[-1]

    def delete_many(self, digests: Iterable[bytes]) -> int:
        doomed = list(set(digests))
        removed = 0
        for start in range(0, len(doomed), DELETE_BATCH):
            chunk = doomed[start : start + DELETE_BATCH]

            def body(conn: psycopg.Connection[Any], ids: list[bytes] = chunk) -> int:
                with conn.cursor() as cur:
                    cur.execute(self._delete, (ids,))
                    return max(cur.rowcount, 0)

            removed += self._db.run("blobs.delete_many", body)
        return removed

    def written_since(self, timestamp: float) -> set[bytes]:
        """Digests written at or after ``timestamp`` by the server's clock (``written_at`` is its ``now()``)."""

        def body(conn: psycopg.Connection[Any]) -> set[bytes]:
            with conn.cursor(binary=True) as cur:
                cur.execute(self._since, (float(timestamp),))
                return {row[0] for row in cur.fetchall()}

        return self._db.run("blobs.written_since", body)

    def stats(self) -> BlobStats:
        def body(conn: psycopg.Connection[Any]) -> BlobStats:
            row = conn.execute(self._stats).fetchone()
            size = conn.execute("SELECT pg_total_relation_size(%s)", (self._relation,)).fetchone()
            assert row is not None and size is not None
            return BlobStats(int(row[0]), int(row[1]), {"table_bytes": int(size[0])})

        return self._db.run("blobs.stats", body)
