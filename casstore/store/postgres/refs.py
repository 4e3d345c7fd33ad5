"""Refs in ``refs (name text, value bytea, key bytea primary key)``, each move one conditional statement.

create = ``INSERT … ON CONFLICT DO NOTHING``, move = ``UPDATE … WHERE name = %s
AND value = %s``, delete = ``DELETE … WHERE name = %s AND value = %s``: the
move happened iff one row changed.  Under READ COMMITTED a concurrent move of
the same row makes the second statement wait for the first, then re-check its
``WHERE`` against the committed row, so exactly one of two racing moves from
the same value wins.  No ``SELECT … FOR UPDATE`` (it locks nothing when the row
is absent).  A failed move reads the ref once more, for the conflict's message.

A row is found by ``key``, the SHA-256 of its name (a generated column, the
primary key): a btree entry holds at most ~2,700 bytes and a name may have
4,096.  A prefix listing scans the index on the name's first 1,000 characters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg

from casstore.codec import ref_conflict
from casstore.store.base import RefStore
from casstore.store.postgres.connection import Database
from casstore.store.postgres.derived import Move

__all__ = ["PostgresRefs", "like_prefix"]


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
        key = f"key = {schema}.ref_key(%s)"
        self._get_sql = f"SELECT value FROM {t} WHERE {key}"
        self._create = f"INSERT INTO {t} (name, value) VALUES (%s, %b) ON CONFLICT (key) DO NOTHING"
        self._move = f"UPDATE {t} SET value = %b WHERE {key} AND value = %b"
        self._remove = f"DELETE FROM {t} WHERE {key} AND value = %b"
        self._list_all = f"SELECT name, value FROM {t}"
        self._list_prefix = f"SELECT name, value FROM {t} WHERE substr(name, 1, 1000) LIKE %s AND name LIKE %s"

    def _get(self, name: str) -> bytes | None:
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
                    cur.execute(self._list_prefix, (like_prefix(prefix[:1000]), like_prefix(prefix)))
                else:
                    cur.execute(self._list_all)
                return {_text(name): bytes(value) for name, value in cur.fetchall()}

        return self._db.run("refs.list", body)


def like_prefix(prefix: str) -> str:
    """A LIKE pattern matching names that start with ``prefix`` (its ``\\``, ``%`` and ``_`` escaped)."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _text(value: Any) -> str:
    return bytes(value).decode() if isinstance(value, bytes | memoryview) else str(value)
