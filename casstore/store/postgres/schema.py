"""The PostgreSQL backend's tables: created on first open, versioned, migrated idempotently.

Everything lives in one schema (``?schema=``, default ``casstore``)::

    schema_version (version int primary key, applied_at timestamptz, description text)
    objects (id bytea primary key, frame bytea STORAGE EXTERNAL, written_at timestamptz)
    refs    (name text COLLATE "C", value bytea, key bytea primary key = sha256(name))

Frames are zstd-compressed already, so ``frame`` is stored ``EXTERNAL``
(out of line, not compressed again).  A ref is found by ``key``, the SHA-256
of its name (generated), since a btree entry holds at most ~2,700 bytes and a
name may have 4,096; ``refs.name`` uses the ``C`` collation and its first 1,000
characters are indexed, so a prefix listing is an index range scan.  Opening checks the recorded
version (one query, no lock, when it is current); otherwise it takes a
transaction-scoped advisory lock on the schema's name, re-reads the version
and applies each missing step of :data:`MIGRATIONS` with its row in
``schema_version``, all in one transaction: concurrent first opens create the
tables once, and a step is never applied twice.  A later version appends a
step (the SQL view tables, the notify trigger); nothing edits an old one.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from casstore.errors import InvalidStoreURL, StorageError, StoreNotFound

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "ensure_schema", "quote_schema"]

#: ``(version, description, statements)``; ``{s}`` is the quoted schema name.
MIGRATIONS: list[tuple[int, str, tuple[str, ...]]] = [
    (
        1,
        "objects and refs",
        (
            "CREATE TABLE IF NOT EXISTS {s}.objects ("
            " id bytea PRIMARY KEY, frame bytea NOT NULL, written_at timestamptz NOT NULL DEFAULT now())",
            "ALTER TABLE {s}.objects ALTER COLUMN frame SET STORAGE EXTERNAL",
            'CREATE TABLE IF NOT EXISTS {s}.refs (name text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)',
        ),
    ),
    (
        2,
        "refs keyed by the SHA-256 of the name (a btree entry holds ~2,700 bytes; names may have 4,096)",
        (
            # convert_to is STABLE only because of the server encoding, which a database never changes
            "CREATE OR REPLACE FUNCTION {s}.ref_key(text) RETURNS bytea IMMUTABLE STRICT PARALLEL SAFE"
            " LANGUAGE sql AS $$ SELECT sha256(convert_to($1, 'UTF8')) $$",
            "ALTER TABLE {s}.refs ADD COLUMN IF NOT EXISTS key bytea GENERATED ALWAYS AS ({s}.ref_key(name)) STORED",
            "ALTER TABLE {s}.refs DROP CONSTRAINT IF EXISTS refs_pkey",
            "ALTER TABLE {s}.refs ADD CONSTRAINT refs_key PRIMARY KEY (key)",
            "CREATE INDEX IF NOT EXISTS refs_name_prefix ON {s}.refs (substr(name, 1, 1000))",
        ),
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
#: The first key of the advisory lock taken while creating or migrating a schema (the second: its name's hash).
LOCK_CLASS = 0x6361  # "ca"
_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def quote_schema(name: str) -> str:
    """``name`` as a quoted SQL identifier, after checking it is a plain one (letters, digits, ``_``)."""
    if not isinstance(name, str) or not _SCHEMA_NAME.fullmatch(name):
        raise InvalidStoreURL(f"schema must be 1-63 letters, digits or _ (not starting with a digit), not {name!r}")
    return f'"{name}"'


def _version(conn: psycopg.Connection[Any], schema: str) -> int | None:
    """The schema's recorded version, or ``None`` when it has no version table (a new store)."""
    row = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".schema_version',)).fetchone()
    if row is None or row[0] is None:
        return None
    found = conn.execute(f'SELECT max(version) FROM "{schema}".schema_version').fetchone()
    return int(found[0]) if found and found[0] is not None else 0


def ensure_schema(conn: psycopg.Connection[Any], schema: str, *, create: bool, where: str) -> int:
    """Create or migrate ``schema`` to :data:`SCHEMA_VERSION` (see the module docstring); returns the version."""
    quoted = quote_schema(schema)
    current = _version(conn, schema)
    if current == SCHEMA_VERSION:
        return current
    if current is None and not create:
        raise StoreNotFound(f"no casstore store in schema {schema!r} of {where} (create one with `casstore init`)")
    if current is not None and current > SCHEMA_VERSION:
        raise StorageError(
            f"schema {schema!r} of {where} is at version {current}, newer than this casstore knows ({SCHEMA_VERSION})"
        )
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_CLASS, schema))
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quoted}.schema_version ("
            " version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), description text NOT NULL)"
        )
        current = _version(conn, schema) or 0
        for version, description, statements in MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                conn.execute(statement.format(s=quoted))
            conn.execute(
                f"INSERT INTO {quoted}.schema_version (version, description) VALUES (%s, %s)", (version, description)
            )
    return SCHEMA_VERSION
