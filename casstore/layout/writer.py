"""Writing a network's tree: every file from a state, or only what changed between two roots.

:func:`full_files` renders every file of a head; :func:`changed_files` renders
only those the diff between two roots touches (contacts changed, groups whose
own fields or wires changed, ``metadata.json``) and lists the removed ones.
:class:`TreeWriter` writes every file atomically (a whole temp file swapped in
for its target, new files too; :mod:`casstore.layout.place`), skips those whose
bytes the bookkeeping already records, and returns the bookkeeping changes.
``metadata.json`` is written last.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import blake3

from casstore import codec
from casstore.layout.manifest import Entry, Paths
from casstore.layout.place import Placer
from casstore.layout.render import (
    canonical,
    contact_doc,
    contact_path,
    group_dir,
    metadata_doc,
    network_dir,
    render_group,
    snapshot_doc,
    snapshot_name,
)
from casstore.model import records
from casstore.model.diff import tree_pair
from casstore.model.reads import NetworkReader
from casstore.model.snapshots import list_snapshots
from casstore.model.types import GroupState, NetworkState

__all__ = [
    "METADATA",
    "TreeWriter",
    "changed_files",
    "clear_staging",
    "file_hash",
    "full_files",
    "metadata_file",
    "snapshot_files",
    "sync_filesystem",
]

METADATA = "metadata.json"
#: From this many files, :meth:`TreeWriter.write_all` writes them on :data:`WRITERS` threads.
PARALLEL_FROM = 64
WRITERS = 8


def file_hash(data: bytes) -> str:
    return blake3.blake3(data).hexdigest(16)


def _network_fields(network_id: str, root: dict[str, Any], head: bytes) -> bytes:
    created, updated = records.root_times(root)
    extra = codec.decode_value(root["x"]) if "x" in root else {}
    state = NetworkState({}, root["current"], root["rootGroup"], extra, records.root_metadata(root), created, updated)
    return canonical(metadata_doc(network_id, state, codec.format_id(head)))


def metadata_file(reader: NetworkReader, network_id: str, head: bytes) -> bytes:
    return _network_fields(network_id, reader.network_root(head), head)


def full_files(reader: NetworkReader, network_id: str, head: bytes) -> dict[str, bytes]:
    """Every file of a network's tree at ``head`` (paths relative to its directory; metadata last)."""
    state = reader.state_at(head)
    files: dict[str, bytes] = {}
    for group_state in state.groups.values():
        files.update(render_group(group_state))
    files.update(snapshot_files(reader, network_id))
    files[METADATA] = metadata_file(reader, network_id, head)
    return files


def snapshot_files(reader: NetworkReader, network_id: str) -> dict[str, bytes]:
    """``snapshots/{timestamp}-{label}.json`` for every snapshot (a clash of names adds the short id)."""
    out: dict[str, bytes] = {}
    infos = sorted(list_snapshots(reader, network_id), key=lambda info: (info.created_at, info.id))
    for info in infos:
        digest = codec.parse_id(info.id)
        parent = records.decode_snapshot(reader.blobs.get(digest)).get("parent")
        name = snapshot_name(info.id, info.label, info.created_at)
        if f"snapshots/{name}.json" in out:
            name = f"{name}-{info.id[:16]}"
        doc = snapshot_doc(
            info.id, info.root, parent, info.label, info.created_at, info.size, info.automatic, info.parents
        )
        out[f"snapshots/{name}.json"] = canonical(doc)
    return out


def changed_files(
    reader: NetworkReader, network_id: str, old_head: bytes, new_head: bytes
) -> tuple[dict[str, bytes], set[str]]:
    """Files the change from ``old_head`` to ``new_head`` rewrites, and the group directories it removes.

    Removed contact files are in the first map with ``b""`` as their bytes.
    """
    old_root, new_root = reader.network_root(old_head), reader.network_root(new_head)
    trees = reader.trees
    files: dict[str, bytes] = {}
    removed_groups: set[str] = set()
    touched: dict[str, bytes | None] = {}  # group id → its new record (None: removed; b"": look it up)
    for gid, _, new in trees["groups"].diff(*tree_pair(reader, "groups", old_root, new_root)):
        touched[gid] = new
    for key, _, _ in trees["wires"].diff(*tree_pair(reader, "wires", old_root, new_root)):
        touched.setdefault(records.split_member_key(key)[0], b"")
    fetch = reader.blobs.get
    for key, _, new in trees["contacts"].diff(*tree_pair(reader, "contacts", old_root, new_root)):
        gid, cid = records.split_member_key(key)
        path = contact_path(gid, cid)
        if new is None:
            files[path] = b""
        else:
            files[path] = canonical(contact_doc(records.decode_contact(new, cid, gid, fetch)))
    lookup = [gid for gid, record in touched.items() if record == b""]
    touched.update(trees["groups"].get_many(new_root["groups"], lookup))
    for gid, record in touched.items():
        if not record:
            removed_groups.add(group_dir(gid))
            continue
        body = reader.body(records.decode_group_record(record))
        prefix_len = len(records.member_prefix(gid))
        wires = {
            key[prefix_len:]: records.decode_wire(value, key[prefix_len:], gid)
            for key, value in trees["wires"].items_with_prefix(new_root["wires"], records.member_prefix(gid))
        }
        state = GroupState(records.decode_group(body, gid), {}, wires, body.get("X", {}))
        files.update(render_group(state, contacts=False))
    files[METADATA] = _network_fields(network_id, new_root, new_head)
    return files, removed_groups


class TreeWriter:
    """Writes one network's files under ``base/networks/{id}/`` against its bookkeeping entries.

    Every file is written whole to a file outside the tree and only then put at its path, new files
    included, so no reader and no crash ever sees a half-written file: with ``spares`` (a directory on
    the tree's filesystem) by a :class:`~casstore.layout.place.Placer` (swapped in, old inodes
    recycled), else, and for a network's first write (nothing to swap out; measured 1.38 x the
    naive write through the placer, 0.99 x so), as a temp file (in ``staging``, or beside its target as
    ``.NAME.PID.N.tmp``) renamed over its target.  With ``durable``, :meth:`write_all` makes the whole batch durable
    (one :func:`sync_filesystem`) before returning the bookkeeping changes, so these are never
    recorded ahead of the disk.
    """

    def __init__(
        self,
        base: Path,
        network_id: str,
        entries: Mapping[str, Entry],
        *,
        staging: Path | None = None,
        spares: Path | None = None,
        durable: bool = False,
        adopt: Iterable[str] = (),
        read: Mapping[str, tuple[bytes, int, int]] | None = None,
    ) -> None:
        self.root = base / network_dir(network_id)
        self.entries = entries
        self.changes: dict[str, Entry | None] = {}
        self.staging = None if staging is None else str(staging)
        self.spares = None if spares is None else str(spares)
        self._placer: Placer | None = None
        self.durable = durable
        #: paths whose files may already hold the bytes to write (hand-edited ones): read and kept if so
        self.adopt = frozenset(adopt)
        #: adopted paths' bytes as already read, with the file's mtime and size taken before the read
        self.read = read or {}
        self._root = str(self.root)
        self._dirs: set[str] = set()
        self._names = itertools.count()
        self.written = 0
        #: files may be there that the bookkeeping does not know (an earlier export, a checkout)
        self._untracked = not entries and self.root.exists()

    def write_all(
        self, files: Mapping[str, bytes], prune: bool = False, remove: Iterable[str] = ()
    ) -> dict[str, Entry | None]:
        """Write the files whose bytes differ from the bookkeeping (``b""``: remove the file); remove ``remove``.

        With ``prune``, files the bookkeeping lists that are not in ``files`` are removed too.
        ``metadata.json`` is written last, once every other file is in place.
        """
        jobs: list[tuple[str, bytes, str]] = []
        removals = [path for path in remove if path in self.entries or path in self.changes]
        last: tuple[str, bytes, str] | None = None
        for path, data in files.items():
            if not data:
                if path in self.entries or path in self.changes:
                    removals.append(path)
                else:
                    self._unlink(path)
                continue
            digest = file_hash(data)
            known = self.entries.get(path)
            if known is not None and known.hash == digest and self._unchanged(path, known):
                continue
            if ((self._untracked and known is None) or path in self.adopt) and self._same_bytes(path, data, digest):
                continue  # already there (an export, a clone, a canonical hand edit): adopted, not rewritten
            if path == METADATA:
                last = (path, data, digest)
            else:
                jobs.append((path, data, digest))
        if prune:
            removals.extend(p for p in self.entries if p not in files and p not in self.changes)
        if last is not None:
            jobs.append(last)
        if not jobs and not removals:
            return self.changes
        if self.spares is not None and self.entries:  # a first write has no file to swap out: temp files
            self._placer = Placer(self.spares)
        try:
            for path in removals:
                self._unlink(path)
                self.changes[path] = None
            body = jobs[:-1] if last is not None else jobs
            # new files (no spare left to recycle) on threads: their syscalls release the GIL and overlap
            fresh = len(body) - (self._placer.available if self._placer is not None else 0)
            if fresh < PARALLEL_FROM:
                entries = [self._write(*job) for job in body]
            else:
                # one contiguous run of files per thread: a future per file costs more than its write
                step = -(-len(body) // WRITERS)
                runs = [body[at : at + step] for at in range(0, len(body), step)]
                with ThreadPoolExecutor(WRITERS) as pool:
                    done = pool.map(lambda run: [self._write(*job) for job in run], runs)
                    entries = [entry for run in done for entry in run]
            if last is not None:
                entries.append(self._write(*last))
        finally:
            if self._placer is not None:
                self._placer.finish()
                self._placer = None
        for job, entry in zip(jobs, entries, strict=True):
            self.changes[job[0]] = entry
        self.written += len(jobs)
        if self.durable:
            sync_filesystem(self._root)
        return self.changes

    def _unchanged(self, path: str, known: Entry) -> bool:
        try:
            st = os.stat(os.path.join(self._root, path))
        except FileNotFoundError:
            return False
        return st.st_mtime_ns == known.mtime_ns and st.st_size == known.size

    def _same_bytes(self, path: str, data: bytes, digest: str) -> bool:
        already = self.read.get(path)
        if already is not None:  # a later change of the file moves its mtime: status sees it
            same = already[0] == data
            if same:
                self.changes[path] = Entry(digest, already[1], already[2])
            return same
        target = os.path.join(self._root, path)
        try:
            with open(target, "rb") as handle:
                same = handle.read(len(data) + 1) == data
            if same:
                st = os.stat(target)
                self.changes[path] = Entry(digest, st.st_mtime_ns, st.st_size)
            return same
        except OSError:
            return False

    def _write(self, path: str, data: bytes, digest: str) -> Entry:
        """Write one file: a whole temp file put at its path, so nobody sees it half-written."""
        target = os.path.join(self._root, path)
        parent, name = os.path.split(target)
        if parent not in self._dirs:
            # a directory the bookkeeping lists files in exists (else the placer's write below makes it)
            listed = isinstance(self.entries, Paths) and path[: path.rfind("/") + 1] in self.entries.grouped
            if not (listed and self._placer is not None):
                os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        placer = self._placer
        if placer is not None:
            try:
                st = placer.put(target, data)
            except FileNotFoundError:
                os.makedirs(parent, exist_ok=True)  # removed by hand since the tree was written
                st = placer.put(target, data)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._placer = self.spares = None  # the spares are on another filesystem: temp files instead
                return self._write(path, data, digest)
            return Entry(digest, st.st_mtime_ns, st.st_size)
        if self.staging is not None:
            temp = os.path.join(self.staging, f"{os.getpid()}-{next(self._names)}.tmp")
        else:
            temp = os.path.join(parent, f".{name}.{os.getpid()}.{next(self._names)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        try:
            os.replace(temp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            if exc.errno != errno.EXDEV or self.staging is None:
                raise
            self.staging = None  # the staging directory is on another filesystem: temp files beside their targets
            return self._write(path, data, digest)
        return Entry(digest, st.st_mtime_ns, st.st_size)

    def _unlink(self, path: str) -> None:
        if self._placer is not None:
            self._placer.remove(os.path.join(self._root, path))
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self._root, path))

    def remove_dirs(self, prefixes: Iterable[str]) -> list[str]:
        """The files the bookkeeping lists under these group directories (to remove with :meth:`write_all`)."""
        starts = tuple(prefix + "/" for prefix in prefixes)
        if not starts:
            return []
        if isinstance(self.entries, Paths):
            return [path for start in starts for path in self.entries.under(start)]
        return [p for p in self.entries if p.startswith(starts)]

    def remove_empty_dirs(self, prefixes: Iterable[str]) -> None:
        """Remove these group directories once empty (after :meth:`write_all` removed their files)."""
        for prefix in prefixes:
            for directory in (self.root / prefix / "contacts", self.root / prefix):
                with contextlib.suppress(OSError):
                    directory.rmdir()


def sync_filesystem(path: str) -> None:
    """Make every write on the filesystem holding ``path`` durable: one ``syncfs`` (Linux), else ``os.sync``."""
    syncfs = _syncfs()
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            raise OSError(ctypes.get_errno(), "syncfs failed", path)
    finally:
        os.close(fd)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def clear_staging(staging: Path) -> None:
    """Remove the temp files a killed writer left in a staging directory (call under the layout lock)."""
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(staging):
            if entry.name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
