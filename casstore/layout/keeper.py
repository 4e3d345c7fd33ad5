"""Keeping a ``filesystem://`` store's files in step with its heads (the hooks of :mod:`casstore.store.filesystem`).

After every ref move the networks it touched are brought in step under one
file lock (``P/.casstore/layout.lock``): the files are rewritten from the diff
between the root the tree records and the network's head as it is now (so
concurrent writers converge), only changed files are written, then the
bookkeeping records the new root.  Before a head move the network's files are
scanned for hand edits, and the move is refused (:class:`UncommittedEdits`)
unless the store is forced.  On open every network is repaired: a tree whose
recorded root is not its head (a crash between the head move and the tree
update) is brought in step, temp files a killed writer left in the staging
directory (``P/.casstore/staging/``) are removed, and the spares
(``P/.casstore/spares/``, :mod:`casstore.layout.place`) are trimmed to their cap.  (A file an interrupted update
rewrote with the bytes the bookkeeping records is no edit: status compares hashes.)
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from casstore import codec
from casstore.errors import ObjectNotFound
from casstore.layout.errors import UncommittedEdits
from casstore.layout.manifest import Entry, Manifest
from casstore.layout.place import trim_spares
from casstore.layout.render import network_dir
from casstore.layout.status import Status, scan
from casstore.layout.writer import TreeWriter, changed_files, clear_staging, full_files, snapshot_files
from casstore.model.network import NetworkStore
from casstore.model.reads import NetworkReader
from casstore.model.refs import NETWORKS_PREFIX, head_ref, network_heads
from casstore.store.filesystem import STORE_DIR, FilesystemStore, install_layout
from casstore.store.wrappers.base import innermost

__all__ = [
    "LayoutState",
    "bring_in_step",
    "layout_state",
    "network_status",
    "on_open",
    "repair",
    "share_node_cache",
    "tree_writer",
]


@dataclass
class LayoutState:
    """What the layout keeps for one open filesystem store."""

    base: Path
    manifest: Manifest
    reader: NetworkReader
    lock_path: Path
    #: where temp files are written before their rename into the tree (cleared on open)
    staging: Path
    #: the files swapped out of the tree, recycled as the next updates' temp files (:mod:`casstore.layout.place`)
    spares: Path
    #: whether each tree update is made durable (one ``syncfs``) before the bookkeeping records it
    durable: bool
    #: per network, paths a commit found edited: a file there already holding the bytes to write is kept
    adopt: dict[str, set[str]] = field(default_factory=dict)
    #: per network, the edited files as a commit read them (path → bytes, mtime ns, size): not read again
    read: dict[str, dict[str, tuple[bytes, int, int]]] = field(default_factory=dict)

    @contextmanager
    def locked(self) -> Iterator[None]:
        with open(self.lock_path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def layout_state(store: FilesystemStore) -> LayoutState:
    state = store.layout_state
    assert isinstance(state, LayoutState)
    return state


def _networks_of(names: Sequence[str]) -> tuple[set[str], set[str]]:
    """The networks whose heads these refs are, and those whose snapshots they are."""
    heads, snapshots = set(), set()
    for name in names:
        parts = name.split("/")
        if len(parts) < 3 or name.startswith(NETWORKS_PREFIX) is False:
            continue
        network_id = unquote(parts[1])
        if len(parts) == 3 and parts[2] == "head":
            heads.add(network_id)
        elif parts[2] in ("snapshot-tip", "snapshots"):
            snapshots.add(network_id)
    return heads, snapshots


def network_status(store: FilesystemStore, network_id: str, full: bool = False) -> Status:
    """Hand edits in one network's files since they were last written."""
    state = layout_state(store)
    return scan(state.base / network_dir(network_id), state.manifest.by_directory(network_id), full)


def tree_writer(state: LayoutState, network_id: str, entries: Mapping[str, Entry]) -> TreeWriter:
    """A writer of the network's files that stages temp files and syncs as the store says."""
    return TreeWriter(
        state.base,
        network_id,
        entries,
        staging=state.staging,
        spares=state.spares,
        durable=state.durable,
        adopt=state.adopt.get(network_id, ()),
        read=state.read.get(network_id, {}),
    )


def bring_in_step(store: FilesystemStore, network_id: str, snapshots: bool = False) -> int:
    """Rewrite what differs between a network's files and its head; returns the number of files written."""
    state = layout_state(store)
    with state.locked():
        head = store.inner.refs.get(head_ref(network_id))
        recorded, _ = state.manifest.state(network_id)
        entries = state.manifest.entries(network_id)
        writer = tree_writer(state, network_id, entries)
        if head is None:
            if recorded is None and not entries:
                return 0
            writer.write_all({}, remove=list(entries))
            _remove_empty_dirs(writer.root)
            state.manifest.forget(network_id)
            return writer.written
        head_id = codec.format_id(head)
        if recorded == head_id and not snapshots:
            return 0
        removed_groups: set[str] = set()
        if recorded is None:
            files = full_files(state.reader, network_id, head)
            writer.write_all(files, prune=True)
        else:
            files = {}
            if recorded != head_id:
                try:
                    files, removed_groups = changed_files(state.reader, network_id, codec.parse_id(recorded), head)
                except ObjectNotFound:  # the recorded root was collected: compare every file instead
                    files, removed_groups = full_files(state.reader, network_id, head), set()
                    snapshots = False
                    writer.write_all(files, prune=True)
                    files = {}
            removals = writer.remove_dirs(removed_groups)
            if snapshots:
                current = snapshot_files(state.reader, network_id)
                tracked = state.manifest.by_directory(network_id).get("snapshots/", {})
                removals += [f"snapshots/{name}" for name in tracked if f"snapshots/{name}" not in current]
                files = {**current, **files}  # metadata.json stays last
            if files or removals:
                writer.write_all(files, remove=removals)
            writer.remove_empty_dirs(removed_groups)
        state.manifest.save(network_id, head_id, writer.changes)
        return writer.written


def repair(store: FilesystemStore) -> None:
    """After a kill: clear the staging directory and bring every network in step with its head."""
    state = layout_state(store)
    with state.locked():
        clear_staging(state.staging)
        trim_spares(str(state.spares))
    heads = network_heads(store.inner.refs.list(NETWORKS_PREFIX))
    for network_id in sorted(set(heads) | set(state.manifest.networks())):
        bring_in_step(store, network_id, snapshots=True)


def _remove_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for directory, _, _ in sorted(os.walk(root), key=lambda item: -len(item[0])):
        with suppress(OSError):
            os.rmdir(directory)


def share_node_cache(store: NetworkStore) -> NetworkStore:
    """Let a ``filesystem://`` store's tree updates read nodes through ``store``'s node cache (``open_store`` does).

    Nodes are immutable, so sharing is always right: the diff after a write then finds the nodes the
    write just built and read already decoded.  Returns ``store``.
    """
    objects = innermost(store.objects)
    if isinstance(objects, FilesystemStore) and isinstance(objects.layout_state, LayoutState):
        reader = objects.layout_state.reader
        reader.cache = store.cache
        for tree in reader.trees.values():
            tree.cache = store.cache
    return store


_open_steps: list[Callable[[FilesystemStore], None]] = []


def on_open(step: Callable[[FilesystemStore], None]) -> None:
    """Run ``step`` on every writable filesystem store once it is repaired (:mod:`casstore.layout.clone` does)."""
    _open_steps.append(step)


class _Hooks:
    """The :class:`~casstore.store.filesystem.LayoutHooks` this package installs."""

    def opened(self, store: FilesystemStore) -> None:
        store_dir = store.base / STORE_DIR
        reader = NetworkReader(store.inner.blobs, store.inner.refs)
        staging, spares = store_dir / "staging", store_dir / "spares"
        if not store.inner.read_only:
            staging.mkdir(exist_ok=True)
            spares.mkdir(exist_ok=True)
        store.layout_state = LayoutState(
            store.base,
            Manifest(store_dir / "layout.sqlite"),
            reader,
            store_dir / "layout.lock",
            staging,
            spares,
            store.durable,
        )
        if not store.inner.read_only:
            repair(store)
            for step in _open_steps:
                step(store)

    def before_moves(self, store: FilesystemStore, names: Sequence[str]) -> None:
        if store.forced:
            return
        heads, _ = _networks_of(names)
        for network_id in sorted(heads):
            with layout_state(store).locked():  # not in the middle of another writer's tree update
                status = network_status(store, network_id)
            if status:
                paths = status.paths
                shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
                where = store.base / network_dir(network_id)
                raise UncommittedEdits(
                    f"network {network_id!r} has uncommitted hand edits in {where} ({shown}): "
                    f"commit them (`casstore commit`) or force the write",
                    paths,
                )

    def after_moves(self, store: FilesystemStore, names: Sequence[str]) -> None:
        heads, snapshots = _networks_of(names)
        for network_id in sorted(heads | snapshots):
            bring_in_step(store, network_id, snapshots=network_id in snapshots)

    def closing(self, store: FilesystemStore) -> None:
        state = store.layout_state
        if isinstance(state, LayoutState):
            state.manifest.close()


install_layout(_Hooks())
