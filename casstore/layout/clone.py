"""A tree without its store (a ``git clone``, a copy): on open, the store is rebuilt from the files.

When a ``filesystem://`` store opens, every network directory under
``P/networks/`` that neither the store (no head) nor the tree's bookkeeping
knows is read whole and saved as that network, with the times its
``metadata.json`` gives, so it gets back the very root it had; then the
snapshot files of every network are restored where the store holds their
state, and for a network just rebuilt, where the git history of the files does
(:mod:`casstore.layout.snapshots`; ``commit`` searches git again).  A directory whose files do not read (a
malformed file) is left as it is: ``status`` lists its files and ``commit``
names the file and line.
"""

from __future__ import annotations

from casstore.layout.errors import InvalidLayout
from casstore.layout.keeper import layout_state, on_open
from casstore.layout.parse import read_network
from casstore.layout.render import network_dir
from casstore.layout.snapshots import restore_snapshots
from casstore.layout.transfer import layout_networks
from casstore.model.network import NetworkStore
from casstore.model.refs import NETWORKS_PREFIX, network_heads
from casstore.store.filesystem import FilesystemStore

__all__ = ["rebuild_from_files"]


def rebuild_from_files(fs: FilesystemStore) -> list[str]:
    """Save every network directory the store and the bookkeeping do not know; returns their ids."""
    state = layout_state(fs)
    try:
        found = layout_networks(state.base)
    except InvalidLayout:
        return []
    heads = network_heads(fs.refs.list(NETWORKS_PREFIX))
    tracked = set(state.manifest.networks())
    rebuilt = []
    store: NetworkStore | None = None
    for network_id in found:
        if network_id in heads or network_id in tracked:
            continue
        if store is None:
            store = NetworkStore(fs)  # not closed: closing it would close ``fs``
        root = state.base / network_dir(network_id)
        try:
            network = read_network(root, network_dir(network_id))
        except InvalidLayout:
            continue
        with fs.forcing():  # the files are the state being saved, not edits to keep
            store.save_network_state(network_id, network, keep_times=True)
        rebuilt.append(network_id)
    return rebuilt


def _on_open(fs: FilesystemStore) -> None:
    rebuilt = set(rebuild_from_files(fs))
    for network_id in sorted(network_heads(fs.refs.list(NETWORKS_PREFIX))):  # the git history: first open only
        restore_snapshots(fs, network_id, use_git=network_id in rebuilt)


on_open(_on_open)
