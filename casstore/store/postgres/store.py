"""The PostgreSQL store: both protocols over one pool, commit in one transaction.

:class:`PostgresStore` connects once outside the pool to create or migrate the
schema (:mod:`.schema`), then opens the pool that every call runs on.
:meth:`PostgresStore.commit` stores the objects and applies every ref move in
one transaction, so a required conflict leaves no trace (``atomic_commit``).

Every transaction that moves refs also sends ``pg_notify`` on the schema's
channel (:func:`notify_channel`), its payload the moved ref names one per line
(or empty when they would not fit PostgreSQL's 8,000-byte limit: "re-list"),
and, with tables on, updates the derived tables (:mod:`.derived`): both commit
or roll back with the moves.  :meth:`PostgresStore.watch_refs` listens there
(:mod:`.listen`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from casstore.errors import InvalidStoreURL, RefConflict
from casstore.store.base import ObjectStore, RefUpdate, validate_ref_name
from casstore.store.postgres.blobs import INSERT_METHODS, PostgresBlobs
from casstore.store.postgres.connection import Database, is_transient_error
from casstore.store.postgres.derived import DerivedTables, Move, derived_tables_factory
from casstore.store.postgres.refs import PostgresRefs
from casstore.store.postgres.schema import ensure_schema, quote_schema
from casstore.store.registry import redact_url
from casstore.store.watch import RefChanges

__all__ = ["DEFAULT_POOL_SIZE", "DEFAULT_SCHEMA", "NOTIFY_LIMIT", "PostgresStore", "notify_channel"]

DEFAULT_SCHEMA = "casstore"
DEFAULT_POOL_SIZE = 4
#: The longest notify payload sent (PostgreSQL's limit is 8,000 bytes); longer lists send "" (re-list).
NOTIFY_LIMIT = 7900


def notify_channel(schema: str) -> str:
    """The channel a schema's ref moves are announced on (``pg_notify``; LISTEN it quoted).

    A channel is an identifier of at most 63 bytes: a schema name too long for ``casstore_`` in
    front is named by a hash of it instead (every process derives the same one)."""
    channel = f"casstore_{schema}"
    if len(channel.encode()) <= 63:
        return channel
    return f"casstore_{hashlib.blake2b(schema.encode(), digest_size=16).hexdigest()}"


class PostgresStore(ObjectStore):
    """The tables of one schema of one PostgreSQL database, holding both protocols."""

    blobs: PostgresBlobs
    refs: PostgresRefs
    atomic_commit = True

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        schema: str = DEFAULT_SCHEMA,
        pool_size: int = DEFAULT_POOL_SIZE,
        pool_timeout: float = 30.0,
        synchronous_commit: bool = True,
        insert: str = "unnest",
        tables: bool = True,
        libpq: Mapping[str, Any] | None = None,
    ) -> None:
        self._stop_watchers: list[Callable[[], None]] = []
        self.url = redact_url(url)
        quoted = quote_schema(schema)
        if insert not in INSERT_METHODS:
            raise InvalidStoreURL(f"insert in {self.url} must be one of {', '.join(INSERT_METHODS)}, not {insert!r}")
        self.schema = schema
        self.quoted = quoted
        self.synchronous_commit = synchronous_commit
        self.db = Database(
            url, libpq or {}, pool_size=pool_size, pool_timeout=pool_timeout, synchronous_commit=synchronous_commit
        )
        with self.db.connect() as conn:
            try:
                self.schema_version = ensure_schema(conn, schema, create=create, where=self.db.where)
            except psycopg.Error as exc:
                raise self.db.translate(exc, f"opening schema {schema!r}") from exc
        self.channel = notify_channel(schema)
        self.blobs = PostgresBlobs(self.db, quoted, insert)
        self.refs = PostgresRefs(self.db, quoted)
        factory = derived_tables_factory()
        self.derived: DerivedTables | None = factory(self) if tables and factory is not None else None
        if self.derived is not None:
            with self.db.connect() as conn:
                try:
                    self.derived.prepare(conn)
                except psycopg.Error as exc:
                    raise self.db.translate(exc, f"creating the SQL view in schema {schema!r}") from exc
        self.db.open_pool()
        self.refs.after_moves = self.after_moves
        self.refs.derived = self.derived

    def after_moves(self, conn: psycopg.Connection[Any], frames: Mapping[bytes, bytes], moves: Sequence[Move]) -> None:
        """In a write's transaction, after its ref moves: announce them, keep the derived tables."""
        if not moves:
            return
        payload = "\n".join(name for name, _, _ in moves)
        if len(payload.encode()) > NOTIFY_LIMIT:
            payload = ""
        conn.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
        if self.derived is not None:
            self.derived.apply(conn, frames, moves)

    def watch_refs(self, prefix: str, callback: Callable[[RefChanges], None]) -> Callable[[], None]:
        """Report ref moves under ``prefix`` by any process, through LISTEN/NOTIFY (see :mod:`.listen`).

        Returns once listening; the stop function is idempotent.
        """
        from casstore.store.postgres.listen import RefWatcher

        watcher = RefWatcher(self.db.conninfo, self.quoted, self.channel, prefix, callback, self.db.translate)
        self._stop_watchers.append(watcher.stop)
        return watcher.stop

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        """Objects and ref moves in one transaction: all or nothing."""
        names = [(u, validate_ref_name(u.name)) for u in updates]
        store_objects = self.blobs.writer(dict(frames)) if frames else None

        def body(conn: psycopg.Connection[Any]) -> None:
            if store_objects is not None:
                store_objects(conn)
            moved: list[Move] = []
            for update, name in names:
                try:
                    self.refs.swap(conn, name, update.expected, update.new)
                except RefConflict:
                    if update.required:
                        raise
                    continue
                if update.expected != update.new:
                    moved.append((name, update.expected, update.new))
            self.after_moves(conn, dict(frames) if self.derived is not None else {}, moved)

        self.db.run("commit", body, transaction=True)

    def is_transient(self, exc: BaseException) -> bool:
        """Lost connections, pool timeouts, 40001, 40P01, 57P01 to 57P03 (see :func:`.is_transient_error`)."""
        return is_transient_error(exc)

    def close(self) -> None:
        for stop in self._stop_watchers:
            stop()
        self._stop_watchers.clear()
        self.db.close()
