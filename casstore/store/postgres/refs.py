"""Refs in ``refs (name text primary key, value bytea)``, each move one conditional statement.

create = ``INSERT … ON CONFLICT DO NOTHING``, move = ``UPDATE … WHERE name = %s
AND value = %s``, delete = ``DELETE … WHERE name = %s AND value = %s``: the
move happened iff one row changed.  Under READ COMMITTED a concurrent move of
the same row makes the second statement wait for the first, then re-check its
``WHERE`` against the committed row, so exactly one of two racing moves from
the same value wins.  No ``SELECT … FOR UPDATE`` (it locks nothing when the row
is absent).  A failed move reads the ref once more, for the conflict's message.

A btree index entry holds at most ~2,700 bytes, so ref names longer than
:data:`MAX_NAME_BYTES` UTF-8 bytes are refused with
:class:`~casstore.errors.InvalidRefName` before any statement (reading one
answers "absent": it cannot exist).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from casstore.codec import ref_conflict
from casstore.errors import InvalidRefName
from casstore.store.base import RefStore
from casstore.store.postgres.connection import Database
from casstore.store.postgres.derived import Move

__all__ = ["MAX_NAME_BYTES", "PostgresRefs"]

#: The longest ref name stored (the primary key's btree limit is 2,704 bytes per entry, less overhead).
MAX_NAME_BYTES = 2600


def _check_length(name: str) -> None:
    size = len(name.encode())
    if size > MAX_NAME_BYTES:
        raise InvalidRefName(
            f"ref name of {size:,} bytes is over PostgreSQL's limit of {MAX_NAME_BYTES:,} (its btree index)"
        )


#: What runs in a ref move's transaction after the move (the store's notify and derived tables).
AfterMoves = Callable[[psycopg.Connection[Any], Mapping[bytes, bytes], Sequence[Move]], None]


class PostgresRefs(RefStore):
    def __init__(self, db: Database, schema: str) -> None:
        self._db = db
        #: Set by the store: called in the same transaction after every move (see :mod:`.derived`).
        self.after_moves: AfterMoves | None = None
        #: The store's derived tables, when on (read by the SQL view's query hook).
        self.derived: Any = None
        t = f"{schema}.refs"
        self._get_sql = f"SELECT value FROM {t} WHERE name = %s"
        self._create = f"INSERT INTO {t} (name, value) VALUES (%s, %b) ON CONFLICT (name) DO NOTHING"
        self._move = f"UPDATE {t} SET value = %b WHERE name = %s AND value = %b"
        self._remove = f"DELETE FROM {t} WHERE name = %s AND value = %b"
        self._list_all = f"SELECT name, value FROM {t}"
        self._list_prefix = f"SELECT name, value FROM {t} WHERE name LIKE %s"

    def _get(self, name: str) -> bytes | None:
        if len(name) > MAX_NAME_BYTES // 4 and len(name.encode()) > MAX_NAME_BYTES:
            return None
        return self._db.run("refs.get", lambda conn: self.read(conn, name))

    def read(self, conn: psycopg.Connection[Any], name: str) -> bytes | None:
        with conn.cursor(binary=True) as cur:
            cur.execute(self._get_sql, (name,))
            row = cur.fetchone()
        return None if row is None else bytes(row[0])

    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        after = self.after_moves
        if after is None:
            self._db.run("refs.compare_and_swap", lambda conn: self.swap(conn, name, expected, new))
            return

        def body(conn: psycopg.Connection[Any]) -> None:
            self.swap(conn, name, expected, new)
            if expected != new:
                after(conn, {}, [(name, expected, new)])

        self._db.run("refs.compare_and_swap", body, transaction=True)

    def swap(self, conn: psycopg.Connection[Any], name: str, expected: bytes | None, new: bytes | None) -> None:
        """Compare-and-swap on ``conn`` (inside the caller's transaction, if any); RefConflict if it did not move."""
        _check_length(name)
        with conn.cursor() as cur:
            if expected is None and new is None:  # "delete if absent": nothing to do unless it exists
                changed = self.read(conn, name) is None
            else:
                if expected is None:
                    cur.execute(self._create, (name, new))
                elif new is None:
                    cur.execute(self._remove, (name, expected))
                else:
                    cur.execute(self._move, (new, name, expected))
                changed = cur.rowcount == 1
        if not changed:
            raise ref_conflict(name, expected, self.read(conn, name))

    def run_query(self, what: str, body: Callable[[psycopg.Connection[Any]], Any]) -> Any:
        """``body(conn)`` on a pooled connection: for the layers above that read the derived tables."""
        return self._db.run(what, body)

    def _list(self, prefix: str) -> dict[str, bytes]:
        def body(conn: psycopg.Connection[Any]) -> dict[str, bytes]:
            with conn.cursor(binary=True) as cur:
                if prefix:
                    cur.execute(self._list_prefix, (_like_prefix(prefix),))
                else:
                    cur.execute(self._list_all)
                return {_text(name): bytes(value) for name, value in cur.fetchall()}

        return self._db.run("refs.list", body)


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern matching names that start with ``prefix`` (its ``\\``, ``%`` and ``_`` escaped)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _text(value: Any) -> str:
    return bytes(value).decode() if isinstance(value, bytes | memoryview) else str(value)
