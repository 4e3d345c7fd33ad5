"""Writing a network's tree: every file from a state, or only what changed between two roots.

:func:`full_files` renders every file of a head; :func:`changed_files` renders
only those the diff between two roots touches (contacts changed, groups whose
own fields or wires changed, ``metadata.json``) and lists the removed ones.
:class:`TreeWriter` replaces files atomically (a temp file in the same directory,
then a rename; a new file is created in place), skips those whose bytes the bookkeeping already records, and
returns the bookkeeping changes.  ``metadata.json`` is written last.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import blake3

from casstore import codec
from casstore.layout.manifest import Entry
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

__all__ = ["METADATA", "TreeWriter", "changed_files", "file_hash", "full_files", "metadata_file", "snapshot_files"]

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
        doc = snapshot_doc(info.id, info.root, parent, info.label, info.created_at, info.size)
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
    """Writes one network's files under ``base/networks/{id}/`` against its bookkeeping entries."""

    def __init__(self, base: Path, network_id: str, entries: Mapping[str, Entry]) -> None:
        self.root = base / network_dir(network_id)
        self.entries = entries
        self.changes: dict[str, Entry | None] = {}
        self._root = str(self.root)
        self._dirs: set[str] = set()
        self.written = 0
        #: files may be there that the bookkeeping does not know (an earlier export, a checkout)
        self._untracked = not entries and self.root.exists()
        self._jobs: list[tuple[str, bytes, str, bool]] | None = None  # files to write, collected by write_all

    def write_all(self, files: Mapping[str, bytes], prune: bool = False) -> dict[str, Entry | None]:
        """Write the files whose bytes differ from the bookkeeping (``b""``: remove the file).

        With ``prune``, files the bookkeeping lists that are not in ``files`` are removed.
        """
        self._jobs = []
        try:
            for path, data in files.items():
                if path != METADATA:
                    self.put(path, data)
            jobs, self._jobs = self._jobs, None
            if len(jobs) < PARALLEL_FROM:
                entries = [self._write(*job) for job in jobs]
            else:  # the syscalls (open, write, rename) release the GIL: the filesystem's latency overlaps
                with ThreadPoolExecutor(WRITERS) as pool:
                    entries = list(pool.map(lambda job: self._write(*job), jobs))
            for job, entry in zip(jobs, entries, strict=True):
                self.changes[job[0]] = entry
            self.written += len(jobs)
        finally:
            self._jobs = None
        if prune:
            for path in [p for p in self.entries if p not in files]:
                self.remove(path)
        if METADATA in files:
            self.put(METADATA, files[METADATA])
        return self.changes

    def put(self, path: str, data: bytes) -> None:
        if not data:
            self.remove(path)
            return
        digest = file_hash(data)
        known = self.entries.get(path)
        if known is not None and known.hash == digest and self._unchanged(path, known):
            return
        job = (path, data, digest, known is not None or self._untracked)
        if self._jobs is not None:
            self._jobs.append(job)
        else:
            self.changes[path] = self._write(*job)
            self.written += 1

    def _unchanged(self, path: str, known: Entry) -> bool:
        try:
            st = os.stat(os.path.join(self._root, path))
        except FileNotFoundError:
            return False
        return st.st_mtime_ns == known.mtime_ns and st.st_size == known.size

    def _write(self, path: str, data: bytes, digest: str, replace: bool) -> Entry:
        """Write one file: a file the tree holds is replaced atomically (temp file, then rename), so
        nobody ever sees it half-written; a new one is created in place (until the bookkeeping
        records the new root, a crash leaves it to the next open's repair, which rewrites it)."""
        target = os.path.join(self._root, path)
        parent, name = os.path.split(target)
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        temp = os.path.join(parent, f".{name}.{os.getpid()}.tmp") if replace else target
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(temp, target)
        return Entry(digest, st.st_mtime_ns, st.st_size)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / path)
        if path in self.entries or path in self.changes:
            self.changes[path] = None

    def remove_dirs(self, prefixes: Iterable[str]) -> None:
        """Remove group directories: every file the bookkeeping lists under them, then the empty directories."""
        for prefix in prefixes:
            start = prefix + "/"
            for path in [p for p in self.entries if p.startswith(start)]:
                self.remove(path)
            for directory in (self.root / prefix / "contacts", self.root / prefix):
                with contextlib.suppress(OSError):
                    directory.rmdir()

    def remove_temp_files(self) -> None:
        """Remove temp files a killed writer left (their names start with ``.`` and end ``.tmp``)."""
        if not self.root.is_dir():
            return
        for directory, _, names in os.walk(self.root):
            for name in names:
                if name.startswith(".") and name.endswith(".tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(directory, name))
