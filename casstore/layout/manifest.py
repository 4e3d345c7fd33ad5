"""The tree's bookkeeping: which root each network's files reflect, and each file's hash and stat.

Kept in one SQLite database (``P/.casstore/layout.sqlite``): ``trees`` (network
→ the printable id of the root its files reflect, and a version bumped on every
save), ``tree_files`` (network, directory, name → BLAKE3 hash of the bytes
written, their mtime in ns and size) and ``tree_log`` (the changes saved since,
in order; a removed path has no hash).  A save is one SQLite transaction, made after the files
are written, so the recorded root is never ahead of the files: a crash between
the head move and the end of the tree update leaves the old root recorded, and
the next open brings the files in step again.  A save appends its changes to
the log (a few pages, where updating ``tree_files`` in place would rewrite a
page per changed path, ~860 for a 1% step of 100,000 files, and checkpoint the
WAL on almost every save); once the log holds :data:`FOLD_AT` rows a save folds
it into ``tree_files`` (a save of that many changes, a first write, goes there
directly).  A process caches one network's
entries grouped by directory (as ``status`` scans them; :class:`Paths` views
them by path) and re-reads them when the version moved; a save replaces only
the directories it changed.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Entry", "Manifest", "Paths"]


class Entry(NamedTuple):
    """What was written at one path: the bytes' hash, and the file's mtime (ns) and size then."""

    hash: str
    mtime_ns: int
    size: int


def _first(row: tuple[str, ...]) -> str:
    return row[0]


def _split(path: str) -> tuple[str, str]:
    """A path as (its directory with the trailing ``/``, its name)."""
    cut = path.rfind("/") + 1
    return path[:cut], path[cut:]


_entry = functools.partial(tuple.__new__, Entry)


class Paths(Mapping[str, Entry]):
    """A read-only view of entries grouped by directory, by full path (``groups/g/contacts/c.json``)."""

    __slots__ = ("grouped",)

    def __init__(self, grouped: Mapping[str, Mapping[str, Entry]]) -> None:
        self.grouped = grouped

    def __getitem__(self, path: str) -> Entry:
        cut = path.rfind("/") + 1
        return self.grouped[path[:cut]][path[cut:]]

    def get(self, path: str, default: Any = None) -> Any:
        cut = path.rfind("/") + 1
        names = self.grouped.get(path[:cut])
        return default if names is None else names.get(path[cut:], default)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and self.get(path) is not None

    def __iter__(self) -> Iterator[str]:
        for directory, names in self.grouped.items():
            for name in names:
                yield directory + name

    def __len__(self) -> int:
        return sum(len(names) for names in self.grouped.values())

    def __bool__(self) -> bool:
        return any(self.grouped.values())

    def under(self, prefix: str) -> list[str]:
        """The paths in directories starting with ``prefix`` (``groups/g/``: the group's files and contacts)."""
        return [d + name for d, names in self.grouped.items() if d.startswith(prefix) for name in names]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS trees (network TEXT PRIMARY KEY, root TEXT, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tree_files (
    network TEXT NOT NULL, dir TEXT NOT NULL, name TEXT NOT NULL,
    hash TEXT NOT NULL, mtime INTEGER NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (network, dir, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tree_log (
    seq INTEGER PRIMARY KEY, network TEXT NOT NULL, dir TEXT NOT NULL, name TEXT NOT NULL,
    hash TEXT, mtime INTEGER, size INTEGER
);
"""
_LOG_ROW = "INSERT INTO tree_log (network, dir, name, hash, mtime, size) VALUES (?, ?, ?, ?, ?, ?)"
#: A save folds the log into ``tree_files`` once it holds this many rows (of every network).
FOLD_AT = 30_000
#: The first layout of the bookkeeping (one ``path`` column): dropped on open, so every network's files
#: are compared again once (and adopted where they are the head's bytes).
_OLD_SCHEMA = """
BEGIN IMMEDIATE;
DROP TABLE IF EXISTS files;
DELETE FROM trees;
COMMIT;
"""


class Manifest:
    """The bookkeeping database of one layout directory (thread-safe; several processes may share it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'files'").fetchone():
            self._db.executescript(_OLD_SCHEMA)
        self._cache: dict[str, tuple[int, dict[str, dict[str, Entry]]]] = {}

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def networks(self) -> list[str]:
        with self._lock:
            return sorted(row[0] for row in self._db.execute("SELECT network FROM trees"))

    def state(self, network_id: str) -> tuple[str | None, int]:
        """The root the network's files reflect (``None``: no tree) and the bookkeeping's version."""
        with self._lock:
            row = self._db.execute("SELECT root, version FROM trees WHERE network = ?", (network_id,)).fetchone()
        return (None, 0) if row is None else (row[0], row[1])

    def root(self, network_id: str) -> str | None:
        return self.state(network_id)[0]

    def entries(self, network_id: str) -> Paths:
        """Every file of the network's tree, by path relative to the network's directory (read-only)."""
        return Paths(self.by_directory(network_id))

    def by_directory(self, network_id: str) -> dict[str, dict[str, Entry]]:
        """The entries grouped by directory (``""``, ``snapshots/``, ``groups/g/``…) → file name → entry.

        Loaded in one query that splits the paths in SQLite (do not mutate: a save replaces the
        directories it changes and keeps the rest).
        """
        with self._lock:
            _, version = self.state(network_id)
            cached = self._cache.get(network_id)
            if cached is not None and cached[0] == version:
                return cached[1]
            # in primary-key order: each directory's rows together
            rows = self._db.execute(
                "SELECT dir, name, hash, mtime, size FROM tree_files WHERE network = ?", (network_id,)
            )
            grouped: dict[str, dict[str, Entry]] = {}
            for directory, group in itertools.groupby(rows, key=_first):
                grouped[directory] = {name: _entry((h, m, s)) for _, name, h, m, s in group}
            logged = self._db.execute(
                "SELECT dir, name, hash, mtime, size FROM tree_log WHERE network = ? ORDER BY seq", (network_id,)
            )
            for directory, name, h, m, s in logged:
                names = grouped.setdefault(directory, {})
                if h is None:
                    names.pop(name, None)
                else:
                    names[name] = _entry((h, m, s))
            for directory in [d for d, names in grouped.items() if not names]:
                del grouped[directory]
            self._cache[network_id] = (version, grouped)
            return grouped

    def save(self, network_id: str, root: str | None, changes: Mapping[str, Entry | None]) -> None:
        """Record ``root`` and the changed paths (``None``: removed) in one transaction."""
        with self._lock:
            before = self.by_directory(network_id)
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                first, last = db.execute("SELECT min(seq), max(seq) FROM tree_log").fetchone()
                logged = 0 if first is None else last - first + 1
                if len(changes) >= FOLD_AT:  # a big save (a first write) goes to the table itself
                    if logged:
                        _fold(db)
                    gone = [(network_id, *_split(path)) for path, entry in changes.items() if entry is None]
                    kept = [(network_id, *_split(p), *entry) for p, entry in changes.items() if entry is not None]
                    db.executemany("DELETE FROM tree_files WHERE network = ? AND dir = ? AND name = ?", gone)
                    db.executemany("INSERT OR REPLACE INTO tree_files VALUES (?, ?, ?, ?, ?, ?)", kept)
                else:
                    rows = [
                        (network_id, *_split(path), *(entry if entry is not None else (None, None, None)))
                        for path, entry in changes.items()
                    ]
                    db.executemany(_LOG_ROW, rows)
                    if logged + len(rows) >= FOLD_AT:
                        _fold(db)
                _, version = self.state(network_id)
                db.execute("INSERT OR REPLACE INTO trees VALUES (?, ?, ?)", (network_id, root, version + 1))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            grouped = dict(before)  # kept in step, copying only the touched directories
            copied: set[str] = set()
            for path, entry in changes.items():
                cut = path.rfind("/") + 1
                directory, name = path[:cut], path[cut:]
                if directory not in copied:
                    grouped[directory] = dict(grouped.get(directory, {}))
                    copied.add(directory)
                if entry is None:
                    grouped[directory].pop(name, None)
                else:
                    grouped[directory][name] = entry
            for directory in copied:
                if not grouped[directory]:
                    del grouped[directory]
            self._cache[network_id] = (version + 1, grouped)

    def forget(self, network_id: str) -> None:
        """Drop a network's bookkeeping (its tree is gone)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM tree_files WHERE network = ?", (network_id,))
            db.execute("DELETE FROM tree_log WHERE network = ?", (network_id,))
            db.execute("DELETE FROM trees WHERE network = ?", (network_id,))
            db.execute("COMMIT")
            self._cache.pop(network_id, None)


def _fold(db: sqlite3.Connection) -> None:
    """Apply the log to ``tree_files`` and empty it (inside the caller's transaction): each path's last row wins."""
    last = "seq IN (SELECT max(seq) FROM tree_log GROUP BY network, dir, name)"
    db.execute(
        "DELETE FROM tree_files WHERE (network, dir, name) IN "
        f"(SELECT network, dir, name FROM tree_log WHERE {last} AND hash IS NULL)"
    )
    db.execute(
        "INSERT OR REPLACE INTO tree_files "
        f"SELECT network, dir, name, hash, mtime, size FROM tree_log WHERE {last} AND hash IS NOT NULL"
    )
    db.execute("DELETE FROM tree_log")
