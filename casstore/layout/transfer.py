"""The layout to and from any store: ``export`` writes ``DIR/networks/{id}/…``, ``import`` reads it back.

An export writes every file of a network's head (plus its snapshots' small
files) and removes layout files a previous export left that no longer belong;
an import reads a network's directory whole and saves it as one new head,
keeping the times ``metadata.json`` gives, so a state round-trips exactly
(the same root) through the files from any backend to any other.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from casstore.errors import NetworkNotFound
from casstore.layout.errors import InvalidLayout
from casstore.layout.names import decode_name
from casstore.layout.parse import read_metadata, read_network
from casstore.layout.render import network_dir
from casstore.layout.status import layout_files
from casstore.layout.writer import TreeWriter, full_files
from casstore.model.network import NetworkStore
from casstore.model.reads import NetworkReader
from casstore.model.refs import head_ref

__all__ = ["export_layout", "import_layout", "import_layouts", "layout_networks"]


def export_layout(store: NetworkStore, network_id: str, directory: Path) -> int:
    """Write one network's files under ``directory/networks/{id}/``; returns how many files it holds."""
    head = store.refs.get(head_ref(network_id))
    if head is None:
        raise NetworkNotFound(f"network {network_id!r} not found")
    files = full_files(NetworkReader(store.blobs, store.refs), network_id, head)
    writer = TreeWriter(directory, network_id, {})
    for path, _ in list(layout_files(writer.root)):
        if path not in files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(writer.root / path)
    writer.write_all(files)  # temp files beside their targets, renamed over them
    return len(files)


def layout_networks(directory: Path) -> list[str]:
    """The networks a layout directory holds (by their directory names)."""
    networks = directory / "networks"
    if not networks.is_dir():
        return []
    found = []
    for entry in sorted(networks.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            network_id = decode_name(entry.name)
            if network_id is None:  # a shortened long id: its metadata.json names it
                network_id = read_metadata(entry, f"networks/{entry.name}").id
            found.append(network_id)
    return found


def import_layout(store: NetworkStore, directory: Path, network_id: str, as_id: str | None = None) -> str:
    """Read ``directory/networks/{network_id}/`` into network ``as_id`` (default: the same id); returns it."""
    return import_layouts(store, directory, [network_id], as_id)[0]


def import_layouts(store: NetworkStore, directory: Path, network_ids: list[str], as_id: str | None = None) -> list[str]:
    """Read several networks' directories, all before any is saved (a malformed file saves none of them),
    then save each as one new head; ``as_id`` renames a single network.  Returns the ids written."""
    if as_id is not None and len(network_ids) != 1:
        raise InvalidLayout(f"{directory}:1: a new id (as_id) renames one network, not {len(network_ids)}")
    states = {}
    for network_id in network_ids:
        root = directory / network_dir(network_id)
        if not root.is_dir():
            raise InvalidLayout(f"{root}:1: no such network directory")
        states[network_id if as_id is None else as_id] = read_network(root, str(root))
    store.save_network_states(states, keep_times=True)
    return list(states)
