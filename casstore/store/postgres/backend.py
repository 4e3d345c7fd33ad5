"""The registry's declaration of ``postgresql://`` (and ``postgres://``); imports psycopg only on open.

Options: ``schema`` (default ``casstore``), ``pool_size`` (default 4),
``pool_timeout`` (seconds to wait for a pooled connection, default 30),
``synchronous_commit`` (default on; ``off`` trades the last ~600 ms of
acknowledged commits on a server crash for speed, see docs/backends.md),
``insert`` (``unnest`` or ``copy``), ``tables`` (default on: keep the SQL view of
every network, see :mod:`casstore.sqlview`; ``off`` neither creates nor maintains it),
and every libpq connection parameter (``host``, ``port``, ``user``, ``password``, ``sslmode``, …), applied with
libpq's own semantics, ``PG*`` environment variables included.
"""

from __future__ import annotations

from casstore.errors import StorageError
from casstore.store.base import ObjectStore
from casstore.store.postgres.options import LIBPQ_OPTIONS, STORE_OPTIONS
from casstore.store.registry import Backend, StoreLocation, register

__all__ = ["BACKEND", "LIBPQ_OPTIONS", "STORE_OPTIONS"]


def _open(location: StoreLocation, create: bool) -> ObjectStore:
    try:
        from casstore.store.postgres.store import DEFAULT_POOL_SIZE, DEFAULT_SCHEMA, PostgresStore
    except ImportError as exc:
        raise StorageError(
            f"the PostgreSQL backend needs psycopg 3 and psycopg_pool: pip install 'casstore[postgres]' ({exc})"
        ) from None
    libpq = {name: value for name, value in location.options.items() if name in LIBPQ_OPTIONS}
    return PostgresStore(
        location.url,
        create=create,
        schema=location.str_option("schema") or DEFAULT_SCHEMA,
        pool_size=location.int_option("pool_size", DEFAULT_POOL_SIZE),
        pool_timeout=location.float_option("pool_timeout", 30.0),
        synchronous_commit=location.bool_option("synchronous_commit", True),
        insert=location.str_option("insert") or "unnest",
        tables=location.bool_option("tables", True),
        libpq=libpq,
    )


BACKEND = register(
    Backend(
        ("postgresql", "postgres"),
        _open,
        STORE_OPTIONS | LIBPQ_OPTIONS,
        needs_location=False,
        summary="PostgreSQL tables (psycopg 3; pip install 'casstore[postgres]')",
    )
)
