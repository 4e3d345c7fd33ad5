"""Snapshot files back into a store: the snapshots a cloned (or copied) tree's files name.

A snapshot file (``snapshots/{timestamp}-{label}.json``) carries every field of
the snapshot object but the network id (id, root, parent, label, time, size;
``auto`` and a merge's ``parents`` when set), so a store that holds the state it
names (the network root ``root``) recreates the snapshot exactly: the object
is encoded again, and it must hash to the file's ``id``.  After a ``git clone``
the store is rebuilt from the files (the current state, see
:mod:`casstore.layout.keeper`): a snapshot of that state (``casstore commit -m``
takes one) is restored at once; one of an older state is restored if the git
history of the files holds that state (a commit whose ``metadata.json`` names
that root: its tree is read from git and its objects written, no head moves).
Any other is reported (``status``: not restored, and why) and left as it is; it
is not a hand edit, and writes go on.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from casstore import codec
from casstore.errors import StorageError
from casstore.layout.keeper import layout_state
from casstore.layout.names import encode_name
from casstore.layout.parse import parse_json, read_network
from casstore.layout.render import network_dir
from casstore.model import records
from casstore.model.events import Subscribers
from casstore.model.refs import snapshot_ref, snapshots_prefix, tip_ref
from casstore.model.transaction import Transaction
from casstore.model.writes import NetworkWriter, network_fields
from casstore.store.base import PendingWrites, RefUpdate
from casstore.store.filesystem import FilesystemStore

__all__ = ["RestoreReport", "SnapshotFile", "read_snapshot_file", "restore_snapshots", "unrestored_snapshot_files"]


@dataclass(frozen=True)
class SnapshotFile:
    """What a snapshot file holds (``path`` relative to its network's directory)."""

    path: str
    id: str
    root: str
    parent: str | None
    label: str | None
    time: datetime
    size: int
    automatic: bool = False
    parents: tuple[str, ...] = ()

    def encode(self, network_id: str) -> bytes:
        """The snapshot object these fields give (it must hash to :attr:`id`)."""
        data = records.encode_snapshot(
            network_id,
            codec.parse_id(self.root),
            self.parent,
            self.label,
            self.size,
            automatic=self.automatic,
            parents=list(self.parents) if len(self.parents) > 1 else None,
        )
        fields = codec.decode(data)
        fields["time"] = records.encode_time(self.time)
        return codec.encode(fields)


@dataclass
class RestoreReport:
    """Snapshot files restored as snapshots, and those that are not, with why (path → reason)."""

    restored: list[str] = field(default_factory=list)
    absent: dict[str, str] = field(default_factory=dict)


def read_snapshot_file(path: str, display: str, data: bytes) -> SnapshotFile:
    doc = parse_json(display, data)
    if not isinstance(doc, dict):
        raise StorageError(f"{display}: not a JSON object")
    try:
        parents = doc.get("parents") or []
        when = datetime.fromisoformat(doc["time"])
        if when.tzinfo is None:
            raise ValueError("a time without a zone")
        found = SnapshotFile(
            path,
            _text(doc["id"]),
            _text(doc["root"]),
            None if doc.get("parent") is None else _text(doc["parent"]),
            None if doc.get("label") is None else _text(doc["label"]),
            when.astimezone(UTC),
            int(doc["size"]),
            doc.get("auto") is True,
            tuple(_text(p) for p in parents),
        )
        codec.parse_id(found.id)
        codec.parse_id(found.root)
    except (KeyError, TypeError, ValueError, StorageError) as exc:
        raise StorageError(f"{display}: not a snapshot file ({type(exc).__name__}: {exc})") from None
    return found


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def unrestored_snapshot_files(fs: FilesystemStore, network_id: str) -> list[str]:
    """Snapshot files of the network's directory that the tree's bookkeeping does not know (the store lacks them)."""
    state = layout_state(fs)
    known = state.manifest.by_directory(network_id).get("snapshots/", {})
    directory = state.base / network_dir(network_id) / "snapshots"
    try:
        with os.scandir(directory) as entries:
            names = [
                e.name
                for e in entries
                if e.name.endswith(".json") and not e.name.startswith(".") and e.is_file(follow_symlinks=False)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(f"snapshots/{name}" for name in names if name not in known)


def restore_snapshots(
    fs: FilesystemStore, network_id: str, dry_run: bool = False, use_git: bool = True
) -> RestoreReport:
    """Recreate the snapshots the network's unrestored snapshot files name (see the module docstring).

    With ``dry_run`` nothing is written: the report says which could be restored from the store as it is.
    Without ``use_git`` the git history is not searched (an ordinary open: only a clone's first open does).
    """
    report = RestoreReport()
    paths = unrestored_snapshot_files(fs, network_id)
    if not paths:
        return report
    state = layout_state(fs)
    root_dir = state.base / network_dir(network_id)
    display = f"networks/{encode_name(network_id)}"
    present = {name[len(snapshots_prefix(network_id)) :] for name in fs.refs.list(snapshots_prefix(network_id))}
    wanted: list[SnapshotFile] = []
    for path in paths:
        try:
            snapshot = read_snapshot_file(path, f"{display}/{path}", (root_dir / path).read_bytes())
        except (OSError, StorageError) as exc:
            report.absent[path] = str(exc)
            continue
        if snapshot.id in present:
            report.absent[path] = f"a second file for snapshot {snapshot.id} (the store writes it as another name)"
            continue
        if codec.hash_bytes(snapshot.encode(network_id)) != codec.parse_id(snapshot.id):
            report.absent[path] = "its fields do not give its id (edited, or of another network)"
            continue
        wanted.append(snapshot)
    missing_roots = {s.root for s in wanted if codec.parse_id(s.root) not in fs.blobs}
    if missing_roots and use_git and not dry_run:
        _restore_states_from_git(fs, network_id, missing_roots)
    restorable = []
    for snapshot in wanted:
        if codec.parse_id(snapshot.root) in fs.blobs:
            restorable.append(snapshot)
        else:
            searched = use_git and not dry_run
            where = "neither in this store nor in the git history of the files" if searched else "not in this store"
            report.absent[snapshot.path] = f"its state (root {snapshot.root}) is {where}"
    if dry_run or not restorable:
        report.restored = [s.path for s in restorable]
        return report
    pending, updates = PendingWrites(), []
    for snapshot in restorable:
        digest = pending.add(snapshot.encode(network_id))
        updates.append(RefUpdate(snapshot_ref(network_id, snapshot.id), None, digest))
    if fs.refs.get(tip_ref(network_id)) is None:
        newest = max(restorable, key=lambda s: (s.time, s.id))
        updates.append(RefUpdate(tip_ref(network_id), None, codec.parse_id(newest.id), required=False))
    adopt = state.adopt
    adopt.setdefault(network_id, set()).update(s.path for s in restorable)  # the files are kept, not rewritten
    try:
        fs.commit(pending.frames(), updates)
    finally:
        adopt.pop(network_id, None)
    report.restored = [s.path for s in restorable]
    return report


_ROOT_LINE = re.compile(r'^\+  "root": "([^"]+)",?$')


def _restore_states_from_git(fs: FilesystemStore, network_id: str, roots: set[str]) -> None:
    """Write the objects of the states ``roots`` that git commits of the files hold (their metadata.json names them)."""
    base = layout_state(fs).base
    rel = f"{network_dir(network_id)}/metadata.json"
    try:
        log = subprocess.run(
            ["git", "-C", str(base), "log", "--all", "--format=commit %H", "-p", "--no-color", "--", rel],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return  # no git, or not a repository: nothing to restore from
    commits: dict[str, str] = {}
    current = None
    for line in log.splitlines():
        if line.startswith("commit "):
            current = line[len("commit ") :]
        elif current is not None and (match := _ROOT_LINE.match(line)) and match.group(1) in roots:
            commits.setdefault(match.group(1), current)
    for root, commit in commits.items():
        try:
            _restore_state(fs, network_id, root, commit)
        except (OSError, subprocess.CalledProcessError, StorageError, tarfile.TarError):
            continue  # left unrestored (reported by the caller)


def _restore_state(fs: FilesystemStore, network_id: str, root: str, commit: str) -> None:
    base = layout_state(fs).base
    directory = network_dir(network_id)
    archive = subprocess.run(
        ["git", "-C", str(base), "archive", "--format=tar", commit, "--", directory], capture_output=True, check=True
    ).stdout
    scratch = Path(tempfile.mkdtemp(prefix="restore-", dir=base / ".casstore"))
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(scratch, filter="data")
        state = read_network(scratch / directory, f"{commit[:12]}:{directory}")
        reader = layout_state(fs).reader
        writer = NetworkWriter(fs, reader, Subscribers(reader))
        extra, metadata, times = network_fields(state, keep_times=True)
        prepared, current, root_group = writer.prepare_network(state, flush=True)
        tx = Transaction(reader, network_id, None)
        tx.replace_network(prepared, current, root_group, extra, metadata, times)
        digest = tx.commit()
        if codec.format_id(digest) != root:
            return  # the files of that commit do not give that root (edited by hand before that commit)
        fs.commit(tx.pending.frames(), [])  # objects only: no ref moves
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
