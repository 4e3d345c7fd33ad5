"""``file:///path`` — a plain directory, laid out like git's.

``objects/ab/cdef…`` holds one frame per file (hex digest split after two
characters), written as a temporary file, fsynced, then renamed into place, so
a reader sees a whole object or none.  ``refs/<name>`` holds a printable id;
every compare-and-swap runs under an exclusive ``fcntl`` lock on
``refs.lock``, so it holds across processes.  A commit moving several refs
writes its moves to ``refs.journal`` (fsynced) under that lock before applying
them and removes it after, and whoever takes the lock next (or opens the store)
finishes a journal it finds: the moves of one commit land all or none, whatever
process dies when.  Names and ids are validated
before they become paths.  An object's mtime is its write time (re-writing an
existing object refreshes it, as git does), which gc's grace period reads.
A write killed part-way leaves at most a ``tmp/*.tmp`` file; gc deletes those
older than its grace period, and opening the store those older than an hour.
Filesystem failures are StorageErrors (``STORAGE_PERMISSION_ERROR`` for a refused one).
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import blake3

from casstore.codec import DIGEST_SIZE, format_id, parse_id, ref_conflict
from casstore.errors import InvalidId, InvalidRefName, StorageError
from casstore.store.base import (
    BlobStats,
    BlobStore,
    ObjectStore,
    RefStore,
    RefUpdate,
    make_directory,
    os_error,
    require_store,
    validate_ref_name,
)
from casstore.store.registry import Backend, StoreLocation, register

__all__ = [
    "BACKEND",
    "FORMAT_VERSION",
    "JOURNAL",
    "JOURNAL_HEADER",
    "LONG_COMPONENT",
    "MARKER",
    "MAX_COMPONENT_BYTES",
    "NAME_SUFFIX",
    "STALE_TEMP_S",
    "FileBlobs",
    "FileRefs",
    "FileStore",
]


MARKER = "casstore-format"
#: Ref-name components longer than this (in UTF-8) are stored under a stand-in name (see FileRefs._path).
MAX_COMPONENT_BYTES = 200
LONG_COMPONENT = ".L"
NAME_SUFFIX = ".name"
FORMAT_VERSION = "1\n"
#: The moves of a multi-ref commit while it is being applied (see FileRefs.commit).
JOURNAL = "refs.journal"
JOURNAL_HEADER = "casstore refs journal 1"
#: Opening a store deletes ``tmp/*.tmp`` files older than this (gc's default grace period): a killed write's.
STALE_TEMP_S = 3600.0
_HEX = frozenset("0123456789abcdef")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(tmp_dir: Path, target: Path, data: bytes) -> None:
    """Write ``data`` to a fresh temp file, fsync it, rename it over ``target``."""
    tmp = tmp_dir / f"{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class FileBlobs(BlobStore):
    def __init__(self, root: Path) -> None:
        self._objects = root / "objects"
        self._tmp = root / "tmp"

    def _path(self, digest: bytes) -> Path:
        if len(digest) != DIGEST_SIZE:  # never turn anything but a digest into a path
            raise ValueError(f"not a {DIGEST_SIZE}-byte digest")
        text = digest.hex()
        return self._objects / text[:2] / text[2:]

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        touched: set[Path] = set()
        try:
            for digest, stored in items:
                target = self._path(digest)
                if target.exists():
                    os.utime(target)  # freshen: gc's grace period counts from the last write
                    continue
                target.parent.mkdir(exist_ok=True)
                _write_atomic(self._tmp, target, stored)
                touched.add(target.parent)
            for directory in touched:
                _fsync_dir(directory)
        except OSError as exc:
            raise os_error(exc, f"cannot store objects in {self._objects}") from None

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for digest in digests:
            try:
                out.append(self._path(digest).read_bytes())
            except FileNotFoundError:
                out.append(None)
            except OSError as exc:
                raise os_error(exc, f"cannot read object {format_id(digest)}") from None
        return out

    def remove_temp_files(self, older_than: float, dry_run: bool = False) -> int:
        """Delete the ``tmp/*.tmp`` files a killed writer left, last modified before ``older_than``
        (seconds since the epoch); returns how many there were.  Younger ones may be a live writer's."""
        removed = 0
        try:
            entries = list(os.scandir(self._tmp))
        except OSError:
            return 0
        for entry in entries:
            try:
                if entry.name.endswith(".tmp") and entry.stat().st_mtime < older_than:
                    if not dry_run:
                        os.unlink(entry.path)
                    removed += 1
            except OSError:  # gone meanwhile, or not ours to remove
                continue
        return removed

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        return {d for d in set(digests) if not self._path(d).exists()}

    def _entries(self) -> Iterator[tuple[bytes, os.DirEntry[str]]]:
        try:
            fanout = sorted(os.scandir(self._objects), key=lambda e: e.name)
        except FileNotFoundError:
            return
        for sub in fanout:
            if len(sub.name) != 2 or not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                name = sub.name + entry.name
                if len(name) == 2 * DIGEST_SIZE and _HEX.issuperset(name):
                    yield bytes.fromhex(name), entry

    def iter_hashes(self) -> Iterator[bytes]:
        for digest, _ in self._entries():
            yield digest

    def delete_many(self, digests: Iterable[bytes]) -> int:
        removed = 0
        for digest in digests:
            try:
                self._path(digest).unlink()
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as exc:
                raise os_error(exc, f"cannot delete object {format_id(digest)}") from None
        return removed

    def written_since(self, timestamp: float) -> set[bytes]:
        found = set()
        for digest, entry in self._entries():
            try:
                if entry.stat().st_mtime >= timestamp:
                    found.add(digest)
            except FileNotFoundError:
                continue
        return found

    def stats(self) -> BlobStats:
        count = size = 0
        for _, entry in self._entries():
            try:
                size += entry.stat().st_size
                count += 1
            except FileNotFoundError:
                continue
        return BlobStats(count, size)


class FileRefs(RefStore):
    def __init__(self, root: Path) -> None:
        self._root = root / "refs"
        self._lock_path = root / "refs.lock"
        self._tmp = root / "tmp"
        self._journal = root / JOURNAL
        self._thread_lock = threading.Lock()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            handle = open(self._lock_path, "a+b")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise os_error(exc, f"cannot lock the refs of {self._lock_path.parent}") from None
        with self._thread_lock, handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                if self._journal.exists():  # a commit whose writer died part-way: finish it first
                    self._apply(self._read_journal())
                    self._drop_journal()
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @contextmanager
    def _shared(self) -> Iterator[None]:
        """A shared lock on ``refs.lock``, so a listing never sees a commit half-applied (none if absent)."""
        try:
            handle = open(self._lock_path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:  # no ref was ever written
            yield
            return
        with handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def settle(self) -> None:
        """Finish a journalled commit whose writer died, if there is one and the store can be written."""
        if self._journal.exists():
            try:
                with self._locked():
                    pass
            except OSError:  # a read-only store: read the refs as they are
                pass

    # ---------------------------------------------------------------- multi-ref commits

    def commit(self, updates: Sequence[RefUpdate]) -> None:
        """Apply ref moves all or none: checked under the refs lock, journalled, applied, journal removed.

        A required update whose ref is elsewhere raises
        :class:`~casstore.errors.RefConflict` and moves nothing; an optional one is
        skipped.  Updates apply in order (a later one sees an earlier one's move).
        """
        names = [validate_ref_name(update.name) for update in updates]
        with self._locked():
            before: dict[str, bytes | None] = {}
            planned: dict[str, bytes | None] = {}
            for name, update in zip(names, updates, strict=True):
                if name not in before:
                    before[name] = self._read(self._path(name))
                actual = planned.get(name, before[name])
                if actual != update.expected:
                    if update.required:
                        raise ref_conflict(name, update.expected, actual)
                    continue
                planned[name] = update.new
            moves = [(name, new) for name, new in planned.items() if new != before[name]]
            if not moves:
                return
            self._check_placeable([name for name, new in moves if new is not None])
            if len(moves) > 1:  # one ref moves by one rename: atomic without a journal
                self._write_journal(moves)
            try:
                self._apply(moves)
            except OSError as exc:  # the journal stays: the next lock holder finishes the commit
                raise os_error(exc, "cannot move refs (the commit will be completed by the next writer)") from None
            if len(moves) > 1:
                self._drop_journal()

    def _check_placeable(self, names: list[str]) -> None:
        """Refuse, before anything moves, a ref whose path clashes with another ref's (one is a prefix)."""
        wanted = set(names)
        for name in names:
            parts = name.split("/")
            if any("/".join(parts[:i]) in wanted for i in range(1, len(parts))):
                raise InvalidRefName(f"ref {name!r} clashes with another ref's path (one is a prefix)")
            path = self._path(name, create=True)
            if path.is_dir() or any(parent.exists() and not parent.is_dir() for parent in path.parents):
                raise InvalidRefName(f"ref {name!r} clashes with another ref's path (one is a prefix)")

    def _write_journal(self, moves: list[tuple[str, bytes | None]]) -> None:
        lines = [JOURNAL_HEADER]
        lines += [f"del {name}" if new is None else f"set {name} {format_id(new)}" for name, new in moves]
        lines.append("end\n")
        _write_atomic(self._tmp, self._journal, "\n".join(lines).encode("ascii"))
        _fsync_dir(self._journal.parent)  # the journal is durable before the first ref moves

    def _read_journal(self) -> list[tuple[str, bytes | None]]:
        try:
            lines = self._journal.read_text("ascii").splitlines()
            if lines[:1] != [JOURNAL_HEADER] or lines[-1:] != ["end"]:
                raise ValueError("no header or no end")
            moves: list[tuple[str, bytes | None]] = []
            for line in lines[1:-1]:
                verb, name, *target = line.split(" ")
                if verb == "del" and not target:
                    moves.append((validate_ref_name(name), None))
                elif verb == "set" and len(target) == 1:
                    moves.append((validate_ref_name(name), parse_id(target[0])))
                else:
                    raise ValueError(f"bad line {line!r}")
        except (OSError, UnicodeDecodeError, ValueError, InvalidId, InvalidRefName) as exc:
            raise StorageError(
                f"refs journal {self._journal} is damaged ({exc}); it lists a commit's ref moves:"
                " apply or remove it by hand"
            ) from None
        return moves

    def _apply(self, moves: list[tuple[str, bytes | None]]) -> None:
        """Set or delete each ref (idempotent: a journal is replayed from its start), then fsync their directories."""
        touched: set[Path] = set()
        for name, new in moves:
            path = self._path(name, create=new is not None)
            if new is None:
                try:
                    path.unlink()
                except (FileNotFoundError, NotADirectoryError):
                    continue
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_atomic(self._tmp, path, (format_id(new) + "\n").encode("ascii"))
            touched.add(path.parent)
        for directory in touched:
            _fsync_dir(directory)

    def _drop_journal(self) -> None:
        self._journal.unlink()
        _fsync_dir(self._journal.parent)  # gone for good before the lock is let go: never replayed over later moves

    def _read(self, path: Path) -> bytes | None:
        try:
            text = path.read_text("ascii")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(f"ref file {path} is unreadable: {exc}") from None
        return parse_id(text.strip())

    def _path(self, name: str, create: bool = False) -> Path:
        """Where a ref lives: a component too long for a file name becomes ``.L<hash>`` (never a real
        component: those cannot start with a dot) with the component itself in ``.L<hash>.name`` beside it."""
        path = self._root
        for component in name.split("/"):
            if len(component.encode()) <= MAX_COMPONENT_BYTES:
                path = path / component
                continue
            stand_in = LONG_COMPONENT + blake3.blake3(component.encode()).hexdigest()[:40]
            if create and not (path / (stand_in + NAME_SUFFIX)).exists():
                path.mkdir(parents=True, exist_ok=True)
                _write_atomic(self._tmp, path / (stand_in + NAME_SUFFIX), component.encode())
            path = path / stand_in
        return path

    def _real_name(self, directory: str, entry: str) -> str | None:
        """The ref-name component a directory entry stands for (``None``: not a ref, e.g. a ``.name`` file)."""
        if not entry.startswith(LONG_COMPONENT):
            return entry
        if entry.endswith(NAME_SUFFIX):
            return None
        try:
            return (Path(directory) / (entry + NAME_SUFFIX)).read_bytes().decode()
        except (OSError, UnicodeDecodeError):
            return None

    def _get(self, name: str) -> bytes | None:
        self.settle()
        return self._read(self._path(name))

    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        with self._locked():
            path = self._path(name, create=new is not None)
            actual = self._read(path)
            if actual != expected:
                raise ref_conflict(name, expected, actual)
            try:
                if new is None:
                    if actual is not None:
                        path.unlink()
                    return
                path.parent.mkdir(parents=True, exist_ok=True)
                _write_atomic(self._tmp, path, (format_id(new) + "\n").encode("ascii"))
                _fsync_dir(path.parent)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST):
                    raise InvalidRefName(f"ref {name!r} clashes with another ref's path (one is a prefix)") from None
                raise os_error(exc, f"cannot write ref {name!r}") from None

    def _list(self, prefix: str) -> dict[str, bytes]:
        self.settle()
        with self._shared():
            return self._walk(prefix)

    def _walk(self, prefix: str) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        bases = {str(self._root): ""}  # directory -> the ref-name prefix it stands for
        for directory, subdirs, files in os.walk(self._root):
            base = bases.pop(directory)
            if not (base.startswith(prefix) or prefix.startswith(base)):
                subdirs.clear()
                continue
            kept = []
            for sub in subdirs:
                real = self._real_name(directory, sub)
                if real is not None:
                    bases[os.path.join(directory, sub)] = base + real + "/"
                    kept.append(sub)
            subdirs[:] = kept
            for filename in files:
                real = self._real_name(directory, filename)
                if real is None:
                    continue
                name = base + real
                if name.startswith(prefix):
                    value = self._read(Path(directory) / filename)
                    if value is not None:
                        out[name] = value
        return out


class FileStore(ObjectStore):
    """A directory holding both protocols."""

    blobs: FileBlobs
    refs: FileRefs

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self.url = f"file://{self.path.resolve()}"
        marker = self.path / MARKER
        if not create:
            require_store(marker.exists(), self.url)
        if self.path.exists() and not self.path.is_dir():
            raise StorageError(f"{self.path} exists and is not a directory")
        for sub in ("objects", "refs", "tmp"):
            make_directory(self.path / sub)
        if not marker.exists():
            try:
                marker.write_text(FORMAT_VERSION)
            except OSError as exc:
                raise os_error(exc, f"cannot create a store at {self.path}") from None
        self.blobs = FileBlobs(self.path)
        self.refs = FileRefs(self.path)
        self.refs.settle()
        self.remove_temp_files(time.time() - STALE_TEMP_S)

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        """Store ``frames``, then apply every ref move all or none (:meth:`FileRefs.commit`).

        The objects stay stored when a ref conflicts (they are unreferenced until
        gc); the ref moves never land in part, across processes and crashes.
        """
        self.blobs.put_frames_in_batches(frames)
        self.refs.commit(updates)

    def remove_temp_files(self, older_than: float, dry_run: bool = False) -> int:
        """Delete the temporary files of killed writes older than ``older_than``; returns how many.

        gc calls this with its grace period; opening a store does with :data:`STALE_TEMP_S`.
        """
        return self.blobs.remove_temp_files(older_than, dry_run)


def _open(location: StoreLocation, create: bool) -> FileStore:
    return FileStore(location.where, create=create)


BACKEND = register(Backend(("file",), _open, summary="a plain directory of objects"))
