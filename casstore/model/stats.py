"""Per-network figures: :class:`NetworkStats` (groups, contacts, wires, logical bytes, snapshots, times).

Everything comes from the network root (its ``size``, the logical bytes, is kept
up to date by every write), the snapshot refs and records, and counts of the
groups, contacts and wires trees.  A tree's count is the number of keys in its
leaves, read level by level in batches: every leaf of the three trees is read
once, so the cost follows the size of the current state (not of its history).

The network root records no time, so the last change is known only when the
state is the newest snapshot's (its time); after a write that no snapshot has
recorded yet, :attr:`NetworkStats.last_change_at` is ``None`` and
:attr:`NetworkStats.changed_since_snapshot` says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from casstore import codec
from casstore.errors import NetworkNotFound
from casstore.model.reads import NetworkReader
from casstore.model.refs import head_ref
from casstore.model.snapshots import list_snapshots

__all__ = ["NetworkStats", "count_entries", "network_stats"]


@dataclass(frozen=True)
class NetworkStats:
    """What one network holds.

    Fields:
        network_id: the network.
        head: the printable id of its current network root.
        groups, contacts, wires: how many of each the current state holds.
        logical_bytes: the current state's logical size (keys, records, contents; as ``SnapshotInfo.size``).
        snapshots: how many snapshots it has.
        current_group_id, root_group_id: as in ``NetworkState``.
        last_snapshot_at: the newest snapshot's time (UTC), ``None`` without snapshots.
        changed_since_snapshot: whether the current state differs from the newest snapshot's (``True``
            without snapshots).
    """

    network_id: str
    head: str
    groups: int
    contacts: int
    wires: int
    logical_bytes: int
    snapshots: int
    current_group_id: str
    root_group_id: str
    last_snapshot_at: datetime | None
    changed_since_snapshot: bool

    @property
    def last_change_at(self) -> datetime | None:
        """When the current state was last changed, where known: the newest snapshot's time if the state
        has not changed since, else ``None`` (it changed after ``last_snapshot_at``)."""
        return None if self.changed_since_snapshot else self.last_snapshot_at


def count_entries(reader: NetworkReader, kind: str, root: bytes) -> int:
    """How many entries a tree holds: the keys of its leaves, read level by level in batches."""
    return sum(len(node.keys) for _, node in reader.trees[kind].node_digests(root) if node.level == 0)


def network_stats(reader: NetworkReader, network_id: str) -> NetworkStats:
    """The figures of one network; :class:`~casstore.errors.NetworkNotFound` if it does not exist."""
    head = reader.refs.get(head_ref(network_id))
    if head is None:
        raise NetworkNotFound(f"network {network_id!r} not found")
    root = reader.network_root(head)
    snapshots = list_snapshots(reader, network_id)
    newest = snapshots[0] if snapshots else None
    return NetworkStats(
        network_id=network_id,
        head=codec.format_id(head),
        groups=count_entries(reader, "groups", root["groups"]),
        contacts=count_entries(reader, "contacts", root["contacts"]),
        wires=count_entries(reader, "wires", root["wires"]),
        logical_bytes=root["size"],
        snapshots=len(snapshots),
        current_group_id=root["current"],
        root_group_id=root["rootGroup"],
        last_snapshot_at=None if newest is None else newest.created_at,
        changed_since_snapshot=newest is None or newest.root != codec.format_id(head),
    )
