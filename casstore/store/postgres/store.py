"""The PostgreSQL store: both protocols over one pool, commit in one transaction.

:class:`PostgresStore` connects once outside the pool to create or migrate the
schema (:mod:`.schema`), then opens the pool that every call runs on.
:meth:`PostgresStore.commit` stores the objects and applies every ref move in
one transaction, so a required conflict leaves no trace (``atomic_commit``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg

from casstore.errors import InvalidStoreURL, RefConflict
from casstore.store.base import ObjectStore, RefUpdate, validate_ref_name
from casstore.store.postgres.blobs import INSERT_METHODS, PostgresBlobs
from casstore.store.postgres.connection import Database, is_transient_error
from casstore.store.postgres.refs import PostgresRefs
from casstore.store.postgres.schema import ensure_schema, quote_schema
from casstore.store.registry import redact_url

__all__ = ["DEFAULT_POOL_SIZE", "DEFAULT_SCHEMA", "PostgresStore"]

DEFAULT_SCHEMA = "casstore"
DEFAULT_POOL_SIZE = 4


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
        libpq: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = redact_url(url)
        quoted = quote_schema(schema)
        if insert not in INSERT_METHODS:
            raise InvalidStoreURL(f"insert in {self.url} must be one of {', '.join(INSERT_METHODS)}, not {insert!r}")
        self.schema = schema
        self.synchronous_commit = synchronous_commit
        self.db = Database(
            url, libpq or {}, pool_size=pool_size, pool_timeout=pool_timeout, synchronous_commit=synchronous_commit
        )
        with self.db.connect() as conn:
            try:
                self.schema_version = ensure_schema(conn, schema, create=create, where=self.db.where)
            except psycopg.Error as exc:
                raise self.db.translate(exc, f"opening schema {schema!r}") from exc
        self.db.open_pool()
        self.blobs = PostgresBlobs(self.db, quoted, insert)
        self.refs = PostgresRefs(self.db, quoted)

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        """Objects and ref moves in one transaction: all or nothing."""
        names = [(u, validate_ref_name(u.name)) for u in updates]
        store_objects = self.blobs.writer(dict(frames)) if frames else None

        def body(conn: psycopg.Connection[Any]) -> None:
            if store_objects is not None:
                store_objects(conn)
            for update, name in names:
                try:
                    self.refs.swap(conn, name, update.expected, update.new)
                except RefConflict:
                    if update.required:
                        raise

        self.db.run("commit", body, transaction=True)

    def is_transient(self, exc: BaseException) -> bool:
        """Lost connections, pool timeouts, 40001, 40P01, 57P01 to 57P03 (see :func:`.is_transient_error`)."""
        return is_transient_error(exc)

    def close(self) -> None:
        self.db.close()
