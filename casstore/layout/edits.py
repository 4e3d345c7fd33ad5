"""``commit``: a network's hand-edited files applied to its store as one batch (one new head).

Every changed, added or removed file (:func:`~casstore.layout.keeper.network_status`)
is read and checked first; a malformed one raises
:class:`~casstore.layout.errors.InvalidLayout` naming the file and line, and
nothing is applied.  Then, in one batch: a contact file changed or added saves
that contact whole, one removed deletes it; a group whose ``structure.json`` or
``attributes.json`` changed is saved whole from its directory, one whose
``structure.json`` is gone is deleted; a changed ``metadata`` in
``metadata.json`` replaces the network's metadata (any other change there, or a
network the store does not hold yet — a fresh ``git clone`` — reads the whole
directory as the network's state).  Snapshot files are the store's: edits to
them are reverted.  Afterwards every file named by the edits is rewritten from
the new head (in canonical form) so the tree is clean; with a label, a snapshot
of the new head is taken too.  Snapshot files the store lacks (a clone's) are
restored where their state can be found (:mod:`casstore.layout.snapshots`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from casstore import codec
from casstore.errors import StorageError
from casstore.layout.errors import InvalidLayout
from casstore.layout.keeper import bring_in_step, layout_state, network_status, tree_writer
from casstore.layout.manifest import Entry
from casstore.layout.names import decode_name, encode_name
from casstore.layout.parse import NetworkFields, group_id_of, read_contact, read_group_dir, read_network
from casstore.layout.render import canonical, contact_doc, network_dir, render_group
from casstore.layout.snapshots import restore_snapshots
from casstore.layout.writer import METADATA, metadata_file, snapshot_files
from casstore.model import records
from casstore.model.network import NetworkStore
from casstore.model.reads import NetworkReader
from casstore.model.refs import head_ref
from casstore.model.types import Contact, GroupState
from casstore.store.filesystem import FilesystemStore

__all__ = ["CommitReport", "commit", "commit_networks", "filesystem_store"]


@dataclass
class CommitReport:
    """What a commit applied: the paths read, and the snapshot taken (if labelled)."""

    network_id: str
    paths: list[str] = field(default_factory=list)
    snapshot: str | None = None
    whole: bool = False  # the whole directory was read as the network's state
    #: snapshot files restored as snapshots, and those not (path → why)
    restored: list[str] = field(default_factory=list)
    unrestored: dict[str, str] = field(default_factory=dict)


def filesystem_store(store: NetworkStore) -> FilesystemStore:
    objects = store.objects
    while not isinstance(objects, FilesystemStore) and hasattr(objects, "inner"):
        objects = objects.inner
    if not isinstance(objects, FilesystemStore):
        raise StorageError(f"{store.url} is not a filesystem:// store: status and commit need one")
    return objects


@dataclass
class _Plan:
    contacts: list[tuple[str, Contact]] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    groups: dict[str, GroupState] = field(default_factory=dict)
    deleted_groups: list[str] = field(default_factory=list)
    metadata: NetworkFields | None = None
    whole: bool = False
    #: the contact files read (path → bytes, and the mtime and size taken just before the read)
    read: dict[str, tuple[bytes, int, int]] = field(default_factory=dict)


def commit(store: NetworkStore, network_id: str, label: str | None = None) -> CommitReport:
    """Apply the hand edits of one network's files (see the module docstring)."""
    return commit_networks(store, [network_id], label)[0]


def commit_networks(store: NetworkStore, network_ids: list[str], label: str | None = None) -> list[CommitReport]:
    """Apply the hand edits of several networks' files, one write each: every edited file of every
    network is read and checked first, so a malformed one applies nothing to any of them."""
    fs = filesystem_store(store)
    prepared = [_prepare(store, fs, network_id, label) for network_id in network_ids]
    return [_finish(store, fs, pending, label) for pending in prepared]


@dataclass
class _Prepared:
    report: CommitReport
    status: Any
    exists: bool
    plan: _Plan | None  # None: no edit to apply (only snapshot files to restore, if any)


def _prepare(store: NetworkStore, fs: FilesystemStore, network_id: str, label: str | None) -> _Prepared:
    status = network_status(fs, network_id)
    exists = fs.refs.get(head_ref(network_id)) is not None
    report = CommitReport(network_id)
    if not status and not (label and exists):
        return _Prepared(report, status, exists, None)
    report.paths = status.paths
    return _Prepared(report, status, exists, _plan(store, fs, network_id, status.paths, exists))


def _finish(store: NetworkStore, fs: FilesystemStore, pending: _Prepared, label: str | None) -> CommitReport:
    report, status, plan, network_id = pending.report, pending.status, pending.plan, pending.report.network_id
    if plan is None:
        if pending.exists and status.unrestored:
            restored = restore_snapshots(fs, network_id)
            report.restored, report.unrestored = restored.restored, restored.absent
        return report
    entries = layout_state(fs).manifest.entries(network_id)
    before = {path: entries.get(path) for path in status.paths}
    adopt, read = layout_state(fs).adopt, layout_state(fs).read
    adopt[network_id] = set(status.modified) | set(status.added)
    read[network_id] = plan.read
    try:
        _apply(store, fs, network_id, plan, status.paths, pending.exists, before, report, label)
    finally:
        adopt.pop(network_id, None)
        read.pop(network_id, None)
    if status.unrestored:
        restored = restore_snapshots(fs, network_id)
        report.restored, report.unrestored = restored.restored, restored.absent
    return report


def _apply(
    store: NetworkStore,
    fs: FilesystemStore,
    network_id: str,
    plan: _Plan,
    paths: list[str],
    exists: bool,
    before: dict[str, Entry | None],
    report: CommitReport,
    label: str | None,
) -> None:
    with fs.forcing():
        if plan.whole:
            report.whole = True
            root = layout_state(fs).base / network_dir(network_id)
            whole = read_network(root, f"networks/{encode_name(network_id)}")
            store.save_network_state(network_id, whole, keep_times=not exists)
        elif paths:
            with store.batch(network_id) as batch:
                for gid in plan.deleted_groups:
                    batch.delete_group(network_id, gid)
                for gid, state in plan.groups.items():
                    batch.save_group_state(network_id, gid, state)
                for gid, contact in plan.contacts:
                    batch.save_contact(network_id, gid, contact)
                for gid, cid in plan.deleted:
                    batch.delete_contact(network_id, gid, cid)
                if plan.metadata is not None:
                    batch.save_network_metadata(network_id, plan.metadata.metadata)
        _refresh(fs, network_id, paths, before)
        if label:
            report.snapshot = store.save_snapshot(network_id, label)


def _plan(store: NetworkStore, fs: FilesystemStore, network_id: str, paths: list[str], exists: bool) -> _Plan:
    """Read and check every edited file before anything is applied."""
    plan = _Plan()
    root = layout_state(fs).base / network_dir(network_id)
    display = f"networks/{encode_name(network_id)}"
    if not exists or (METADATA in paths and _network_fields_changed(store, network_id, root, display)):
        read_network(root, display)  # every file checked now
        plan.whole = True
        return plan
    reader = layout_state(fs).reader
    head = fs.refs.get(head_ref(network_id))
    assert head is not None
    root_obj = reader.network_root(head)
    # a group file (structure.json, attributes.json) edited: the group is read whole
    whole_groups = {path.split("/")[1] for path in paths if path.startswith("groups/") and path.count("/") == 2}
    for name in sorted(whole_groups):
        directory = root / "groups" / name
        shown = f"{display}/groups/{name}"
        if (directory / "structure.json").exists():
            state = read_group_dir(directory, shown)
            plan.groups[state.group.id] = state
        else:
            gid = _group_id(reader, root_obj, name)
            if gid is not None:
                plan.deleted_groups.append(gid)
    gids: dict[str, str | None] = {}
    base = str(root)
    for path in paths:
        parts = path.split("/")
        if len(parts) != 4 or parts[1] in whole_groups:
            continue
        name, stem = parts[1], parts[3][: -len(".json")]
        shown = f"{display}/{path}"
        if name not in gids:
            structure = root / "groups" / name / "structure.json"
            decoded = decode_name(name)
            if decoded is not None:  # the directory's name gives the id: structure.json is not read
                gids[name] = decoded if structure.exists() or _group_exists(reader, root_obj, decoded) else None
            elif structure.exists():
                gids[name] = group_id_of(shown, name, structure.read_bytes())
            else:
                gids[name] = _group_id(reader, root_obj, name)
        gid = gids[name]
        if gid is None:
            raise InvalidLayout(f"{shown}:1: its group directory has no structure.json and no such group is stored")
        try:
            with open(f"{base}/{path}", "rb") as handle:
                st = os.fstat(handle.fileno())
                data = handle.read()
        except (FileNotFoundError, IsADirectoryError):  # removed (or no longer a file)
            cid = _contact_id(reader, root_obj, gid, stem)
            if cid is not None:
                plan.deleted.append((gid, cid))
            continue
        plan.contacts.append((gid, read_contact(shown, data, stem, gid)))
        plan.read[path] = (data, st.st_mtime_ns, st.st_size)
    if METADATA in paths:
        plan.metadata = NetworkFields(f"{display}/{METADATA}", (root / METADATA).read_bytes())
    return plan


def _group_id(reader: NetworkReader, root_obj: dict[str, Any], dir_name: str) -> str | None:
    """The stored group a directory name stands for (a shortened long id: found among the stored ones)."""
    decoded = decode_name(dir_name)
    if decoded is not None:
        return decoded
    for gid, _ in reader.trees["groups"].items(root_obj["groups"]):
        if encode_name(gid) == dir_name:
            return gid
    return None


def _group_exists(reader: NetworkReader, root_obj: dict[str, Any], gid: str) -> bool:
    return reader.trees["groups"].get(root_obj["groups"], gid) is not None


def _contact_id(reader: NetworkReader, root_obj: dict[str, Any], gid: str, stem: str) -> str | None:
    """The stored contact of group ``gid`` a file name stands for (a shortened long id: searched for)."""
    decoded = decode_name(stem)
    if decoded is not None:
        return decoded
    prefix = records.member_prefix(gid)
    for key, _ in reader.trees["contacts"].items_with_prefix(root_obj["contacts"], prefix):
        if encode_name(key[len(prefix) :]) == stem:
            return key[len(prefix) :]
    return None


def _network_fields_changed(store: NetworkStore, network_id: str, root: Path, display: str) -> bool:
    """Whether ``metadata.json`` changes more than the metadata (or is gone): then the whole directory is read."""
    path = root / METADATA
    if not path.exists():
        return True
    fields = NetworkFields(f"{display}/{METADATA}", path.read_bytes())
    head = store.refs.get(head_ref(network_id))
    if head is None:
        return True
    root_obj = store.network_root(head)
    extra = codec.decode_value(root_obj["x"]) if "x" in root_obj else {}
    stored = (root_obj["current"], root_obj["rootGroup"], extra)
    return (fields.current_group_id, fields.root_group_id, fields.extra) != stored


def _refresh(fs: FilesystemStore, network_id: str, edited: list[str], before: dict[str, Entry | None]) -> None:
    """Rewrite every edited path from the head (canonical bytes; removed if the head lacks it).

    Paths the tree update after the commit rewrote (their bookkeeping entry moved) are from the head already.
    """
    state = layout_state(fs)
    bring_in_step(fs, network_id, snapshots=True)
    head = fs.refs.get(head_ref(network_id))
    if head is None:
        return
    with state.locked():
        entries = state.manifest.entries(network_id)
        paths = [path for path in edited if entries.get(path) == before.get(path)]
        if not paths:
            return
        writer = tree_writer(state, network_id, entries)
        reader = state.reader
        root_obj = reader.network_root(head)
        wanted: dict[str, bytes] = {}
        groups: dict[str, dict[str, bytes]] = {}
        snapshots = snapshot_files(reader, network_id) if any(p.startswith("snapshots/") for p in paths) else {}
        for path in paths:
            parts = path.split("/")
            if path == METADATA:
                wanted[path] = metadata_file(reader, network_id, head)
            elif parts[0] == "snapshots":
                wanted[path] = snapshots.get(path, b"")
            else:
                gid = _group_id(reader, root_obj, parts[1])
                if gid is None:
                    wanted[path] = b""
                elif len(parts) == 3:
                    if gid not in groups:
                        group_state = reader.load_group_state(network_id, gid)
                        groups[gid] = render_group(group_state, contacts=False) if group_state else {}
                    wanted[path] = groups[gid].get(path, b"")
                else:
                    wanted[path] = _contact_bytes(reader, root_obj, gid, parts[3][: -len(".json")])
        writer.write_all(wanted)
        state.manifest.save(network_id, codec.format_id(head), writer.changes)


def _contact_bytes(reader: NetworkReader, root_obj: dict[str, Any], gid: str, stem: str) -> bytes:
    cid = _contact_id(reader, root_obj, gid, stem)
    if cid is None:
        return b""
    record = reader.trees["contacts"].get(root_obj["contacts"], records.member_key(gid, cid))
    if record is None:
        return b""
    return canonical(contact_doc(records.decode_contact(record, cid, gid, reader.blobs.get)))
