"""``lmdb:///path`` — the embedded default.

One LMDB environment with named databases: objects in segments with an index
(:mod:`casstore.store.lmdbsegments`; ``blobs``, digest → frame, in stores
written before segments), ``refs`` (name → digest), ``log`` (write time →
digests written then, for gc's grace period) and ``meta``.  Several processes
may open the same directory: LMDB's own locks serialise writers, and a ref's
compare-and-swap runs inside one write transaction.  When the map is full it is doubled and the transaction
retried; when another process grew it, this one adopts the new size.  A directory
this process cannot write is opened read-only (reads work, writes raise ``READ_ONLY``).

Durability (``?sync=``, see :data:`SYNC_MODES`): ``full`` (the default) flushes
data and meta pages to disk before a commit returns; ``data`` skips the meta
page's flush (LMDB's ``NOMETASYNC``); ``off`` leaves flushing to the OS
(``NOSYNC``).  A process crash loses no acknowledged commit in any mode (the
OS holds what was written); a system crash or power loss may roll back the last
commit (``data``) or the recent ones (``off``).  The database stays intact in
every mode (no ``WRITEMAP``).
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import blake3
import lmdb

from casstore.codec import DIGEST_SIZE, ref_conflict
from casstore.errors import InvalidStoreURL, RefConflict, StorageError, StoreReadOnly
from casstore.store import lmdbsegments as segments
from casstore.store.base import (
    BlobStats,
    BlobStore,
    ObjectStore,
    RefStore,
    RefUpdate,
    make_directory,
    require_store,
    validate_ref_name,
)
from casstore.store.registry import Backend, StoreLocation, register

__all__ = [
    "BACKEND",
    "DEFAULT_MAP_SIZE",
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "LOG_RETENTION_S",
    "LONG_KEY",
    "MAX_KEY_BYTES",
    "SYNC_MODES",
    "WRITE_SEGMENTS",
    "LmdbBlobs",
    "LmdbRefs",
    "LmdbStore",
    "T",
]


T = TypeVar("T")
#: lmdb's stubs type every value as ``bytes | memoryview``; we never open buffer transactions,
#: so values are always bytes.
Txn = Any

DEFAULT_MAP_SIZE = 1 << 28  # 256 MiB; grown by doubling as needed
FORMAT_KEY = b"casstore.format"
FORMAT_VERSION = b"1"
#: Write-log entries older than this are pruned by writers; gc's grace period cannot exceed it.
LOG_RETENTION_S = 7 * 24 * 3600
_SCAN_BATCH = 8192
#: New frames go to segments (:mod:`casstore.store.lmdbsegments`); ``False`` writes the layout before
#: them, one ``blobs`` entry per object, for benchmarks' same-run baselines and compatibility tests.
WRITE_SEGMENTS = True
#: ``?sync=`` mode → ``lmdb.open`` flags (see the module docstring for what each mode keeps on a crash).
SYNC_MODES: dict[str, dict[str, bool]] = {
    "full": {"sync": True, "metasync": True},
    "data": {"sync": True, "metasync": False},
    "off": {"sync": False, "metasync": False},
}


class _SharedExclusiveLock:
    """Many transactions at once, or one map resize alone (LMDB requires none open then).

    ``acquire_shared``/``release_shared`` are plain calls rather than a context manager: they wrap
    every transaction, and at one small read each the generator machinery was most of their cost.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0
        self._exclusive = False

    def acquire_shared(self) -> None:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._active += 1

    def release_shared(self) -> None:
        with self._cond:
            self._active -= 1
            if self._exclusive and not self._active:
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._exclusive = True
            while self._active:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class _Env:
    """The environment plus the resize-and-retry discipline around every transaction.

    ``read_only`` opens it with ``readonly=True`` (and without LMDB's lock file if that
    cannot be written), and every write transaction raises :class:`StoreReadOnly`.
    """

    def __init__(self, path: Path, map_size: int, read_only: bool = False, sync: str = "full") -> None:
        self.path = path
        self.read_only = read_only
        lock = not read_only or _writable(path / "lock.mdb") or _writable(path)
        try:
            self.env = lmdb.open(
                str(path),
                map_size=map_size,
                max_dbs=8,
                max_readers=512,
                subdir=True,
                readonly=read_only,
                lock=lock,
                **SYNC_MODES[sync],
            )
            while True:
                try:
                    self._open_dbs()
                    break
                except lmdb.MapResizedError:  # another process grew the map meanwhile: adopt its size
                    self.env.set_mapsize(0)
                except StorageError:
                    self.env.close()
                    raise
        except lmdb.Error as exc:
            raise StorageError(f"cannot open LMDB store at {path}: {exc}") from None
        self._lock = _SharedExclusiveLock()
        self.closed = False

    def _open_dbs(self) -> None:
        if self.env.info()["last_txnid"] > 0:  # a store something was committed to has its first tables
            with self.env.begin() as txn:
                for name in (b"blobs", b"refs"):
                    try:
                        self.env.open_db(name, txn=txn, create=False)
                    except lmdb.NotFoundError:
                        raise StorageError(
                            f"LMDB store at {self.path} is damaged: its {name.decode()!r} table is gone "
                            f"(after {self.env.info()['last_txnid']} transactions); restore it from a copy"
                        ) from None
        self.blobs = self.env.open_db(b"blobs")
        self.refs = self.env.open_db(b"refs")
        self.log = self.env.open_db(b"log")
        self.meta = self.env.open_db(b"meta")
        index: Any
        held: Any
        live: Any
        try:
            index, held, live = (self.env.open_db(name) for name in (b"index", b"segments", b"seglive"))
        except (lmdb.NotFoundError, lmdb.ReadonlyError):  # a read-only store written before the segment layout
            if not self.read_only:
                raise
            index = held = live = None
        self.layout = segments.Layout(self.blobs, index, held, live)

    def read(self, fn: Callable[[Txn], T], buffers: bool = False) -> T:
        """Run ``fn`` in a read transaction; with ``buffers`` its values are memoryviews valid only inside it."""
        return self._run(fn, write=False, buffers=buffers)

    def write(self, fn: Callable[[Txn], T]) -> T:
        if self.read_only:
            raise StoreReadOnly(
                f"lmdb://{self.path.resolve()} is read-only (its directory or data.mdb is not writable): write refused"
            )
        return self._run(fn, write=True)

    def _run(self, fn: Callable[[Txn], T], write: bool, buffers: bool = False) -> T:
        while True:
            try:
                self._lock.acquire_shared()
                try:
                    if self.closed:
                        raise StorageError(f"LMDB store at {self.path} is closed")
                    with self.env.begin(write=write, buffers=buffers) as txn:  # type: ignore[call-overload]
                        return fn(txn)
                finally:
                    self._lock.release_shared()
            except lmdb.MapFullError:
                self._resize(grow=True)
            except lmdb.MapResizedError:
                self._resize(grow=False)
            except lmdb.Error as exc:  # a damaged page, a bad reader slot…: LMDB's own report, no traceback
                raise StorageError(f"LMDB store at {self.path} cannot be read: {exc}") from None

    def _resize(self, grow: bool) -> None:
        with self._lock.exclusive():
            if grow:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
            else:  # another process grew the map: adopt its size
                self.env.set_mapsize(0)

    def close(self) -> None:
        with self._lock.exclusive():
            if not self.closed:
                self.closed = True
                self.env.close()


class LmdbBlobs(BlobStore):
    def __init__(self, env: _Env) -> None:
        self._env = env
        self._seq = 0

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        if items:
            self._env.write(self.writer(items))

    def writer(self, items: Sequence[tuple[bytes, bytes]]) -> Callable[[Txn], None]:
        """A transaction body storing ``items`` and logging their write time."""
        env = self._env
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        now = time.time()
        log_key = struct.pack(">dII", now, os.getpid() & 0xFFFFFFFF, self._seq)
        log_value = b"".join(digest for digest, _ in items)

        def txn_fn(txn: Txn) -> None:
            if not items:
                return
            layout = env.layout
            if not WRITE_SEGMENTS:
                txn.cursor(env.blobs).putmulti(items, overwrite=False)
            else:
                stored = segments.held(txn, layout, [digest for digest, _ in items])
                fresh: dict[bytes, bytes] = {}
                for digest, frame in items:  # the first frame of a digest stands, as the store's own does
                    if digest not in stored and digest not in fresh:
                        fresh[digest] = frame
                if fresh:
                    segments.append(txn, layout, fresh)
            txn.put(log_key, log_value, db=env.log)
            _prune_log(txn, env.log, now - LOG_RETENTION_S)

        return txn_fn

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        if not digests:
            return []
        layout = self._env.layout
        return self._env.read(lambda txn: segments.get_many(txn, layout, digests), buffers=True)

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        wanted = list(digests)
        layout = self._env.layout
        return self._env.read(lambda txn: set(wanted) - segments.held(txn, layout, wanted), buffers=True)

    def iter_hashes(self) -> Iterator[bytes]:
        layout = self._env.layout
        for db in (layout.index, layout.legacy):
            if db is not None:
                yield from self._keys(db)

    def _keys(self, db: Any) -> Iterator[bytes]:
        after: bytes | None = None
        while True:

            def txn_fn(txn: Txn, start: bytes | None = after) -> list[bytes]:
                cursor = txn.cursor(db)
                if start is None:
                    if not cursor.first():
                        return []
                elif not cursor.set_range(start):
                    return []
                keys = []
                for key in cursor.iternext(keys=True, values=False):
                    if key != start:
                        keys.append(key)
                        if len(keys) >= _SCAN_BATCH:
                            break
                return keys

            batch = self._env.read(txn_fn)
            if not batch:
                return
            yield from batch
            after = batch[-1]

    def delete_many(self, digests: Iterable[bytes]) -> int:
        doomed = list(digests)
        layout = self._env.layout
        return self._env.write(lambda txn: segments.delete(txn, layout, doomed))

    def written_since(self, timestamp: float) -> set[bytes]:
        db = self._env.log

        def txn_fn(txn: Txn) -> set[bytes]:
            cursor = txn.cursor(db)
            found: set[bytes] = set()
            if cursor.set_range(struct.pack(">d", timestamp)):
                for value in cursor.iternext(keys=False, values=True):
                    found.update(value[i : i + DIGEST_SIZE] for i in range(0, len(value), DIGEST_SIZE))
            return found

        return self._env.read(txn_fn)

    def stats(self) -> BlobStats:
        def txn_fn(txn: Txn) -> BlobStats:
            figures = segments.layout_stats(txn, self._env.layout)
            extra: dict[str, int | str] = {
                "file_bytes": _file_size(self._env.path),
                "map_size": self._env.env.info()["map_size"],
            }
            extra.update((key, figures[key]) for key in ("segments", "segment_live_bytes", "segment_dead_bytes"))
            extra["legacy_objects"] = figures["legacy_objects"]
            return BlobStats(figures["objects"], figures["stored_bytes"], extra)

        return self._env.read(txn_fn)


def _prune_log(txn: Txn, db: Any, before: float, limit: int = 64) -> None:
    cursor = txn.cursor(db)
    cutoff = struct.pack(">d", before)
    removed = 0
    while removed < limit and cursor.first() and cursor.key() < cutoff:
        cursor.delete()
        removed += 1


def _file_size(path: Path) -> int:
    try:
        return (path / "data.mdb").stat().st_size
    except OSError:
        return 0


#: LMDB's largest key. A longer ref name is kept under ``LONG_KEY + blake3(name)`` with the name after
#: the digest in the value; such keys sort after every printable name.
MAX_KEY_BYTES = 511
LONG_KEY = b"\xff"


def _ref_key(name: str) -> tuple[bytes, bytes]:
    """The LMDB key of a ref name, and what follows the digest in its value (the name, for long names)."""
    raw = name.encode()
    if len(raw) <= MAX_KEY_BYTES:
        return raw, b""
    return LONG_KEY + blake3.blake3(raw).digest(), raw


class LmdbRefs(RefStore):
    def __init__(self, env: _Env) -> None:
        self._env = env

    def _get(self, name: str) -> bytes | None:
        key, _ = _ref_key(name)
        value: bytes | None = self._env.read(lambda txn: txn.get(key, db=self._env.refs))
        return None if value is None else value[:DIGEST_SIZE]

    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        self._env.write(lambda txn: self.swap(txn, name, expected, new))

    def swap(self, txn: Txn, name: str, expected: bytes | None, new: bytes | None) -> None:
        """Compare-and-swap inside the caller's write transaction."""
        key, suffix = _ref_key(name)
        db = self._env.refs
        stored = txn.get(key, db=db)
        actual = None if stored is None else stored[:DIGEST_SIZE]
        if actual != expected:
            raise ref_conflict(name, expected, actual)
        if new is None:
            txn.delete(key, db=db)
        else:
            txn.put(key, new + suffix, db=db)

    def _list(self, prefix: str) -> dict[str, bytes]:
        start = prefix.encode()
        db = self._env.refs

        def txn_fn(txn: Txn) -> dict[str, bytes]:
            cursor = txn.cursor(db)
            out: dict[str, bytes] = {}
            if cursor.set_range(start):
                for key, value in cursor.iternext():
                    if not key.startswith(start) or key.startswith(LONG_KEY):
                        break
                    out[key.decode()] = value
            if cursor.set_range(LONG_KEY):
                for value in cursor.iternext(keys=False, values=True):
                    name = bytes(value[DIGEST_SIZE:]).decode()
                    if name.startswith(prefix):
                        out[name] = bytes(value[:DIGEST_SIZE])
            return out

        return self._env.read(txn_fn)


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def _read_only_directory(path: Path) -> bool:
    """Whether an existing store's directory, or its ``data.mdb``, cannot be written by this process."""
    data = path / "data.mdb"
    return path.is_dir() and data.exists() and not (_writable(path) and _writable(data))


class LmdbStore(ObjectStore):
    """An LMDB environment directory holding both protocols.

    A store whose directory or ``data.mdb`` this process cannot write (or one opened
    with ``read_only=True``) is opened read-only: every read works, every write raises
    :class:`~casstore.errors.StoreReadOnly` (``READ_ONLY``).
    """

    blobs: LmdbBlobs
    refs: LmdbRefs
    atomic_commit = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
        read_only: bool = False,
        sync: str = "full",
    ) -> None:
        if type(map_size) is not int or map_size <= 0:
            raise InvalidStoreURL(f"LMDB map_size must be a positive whole number of bytes, not {map_size!r}")
        if sync not in SYNC_MODES:
            raise InvalidStoreURL(f"LMDB sync must be one of {', '.join(SYNC_MODES)}, not {sync!r}")
        self.sync = sync
        self.path = Path(path)
        self.url = f"lmdb://{self.path.resolve()}"
        exists = (self.path / "data.mdb").exists()
        if not create or (read_only and not exists):
            require_store(exists, self.url)
        if self.path.exists() and not self.path.is_dir():
            raise StorageError(f"{self.path} exists and is not a directory")
        self.read_only = read_only or _read_only_directory(self.path)
        if self.read_only:
            self._env = _Env(self.path, map_size, read_only=True)
        else:
            make_directory(self.path)
            self._env = _Env(self.path, map_size, sync=sync)
            self._env.write(lambda txn: txn.put(FORMAT_KEY, FORMAT_VERSION, db=self._env.meta, overwrite=False))
        self.blobs = LmdbBlobs(self._env)
        self.refs = LmdbRefs(self._env)

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        """Objects and ref moves in one write transaction: all or nothing, one commit."""
        names = [(u, validate_ref_name(u.name)) for u in updates]
        store_objects = self.blobs.writer(frames)

        def txn_fn(txn: Txn) -> None:
            store_objects(txn)
            for update, name in names:
                try:
                    self.refs.swap(txn, name, update.expected, update.new)
                except RefConflict:
                    if update.required:
                        raise

        self._env.write(txn_fn)

    def close(self) -> None:
        self._env.close()


def _open(location: StoreLocation, create: bool) -> LmdbStore:
    return LmdbStore(
        location.where,
        create=create,
        map_size=location.int_option("map_size", DEFAULT_MAP_SIZE),
        sync=location.str_option("sync") or "full",
    )


BACKEND = register(Backend(("lmdb",), _open, frozenset({"map_size", "sync"}), summary="embedded LMDB (the default)"))
