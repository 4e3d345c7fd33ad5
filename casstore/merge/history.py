"""The snapshot graph of a network: which snapshots name a head, ancestry, and the merge base.

Snapshots are commits whose ``parents`` (``parent`` for single-parent ones)
are weak references: a deleted snapshot ends the walk there.  Heads are
network roots, so a head's place in the graph is the snapshots naming it.
One listing of the network's snapshot refs and one batched read of the
commits build the graph (:class:`SnapshotGraph`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from casstore import codec
from casstore.model import records
from casstore.model.refs import snapshots_prefix
from casstore.store.base import ObjectStore

__all__ = ["EPOCH", "SnapshotGraph", "SnapshotNode"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class SnapshotNode:
    id: str
    root: bytes
    parents: tuple[str, ...]
    time: datetime


class SnapshotGraph:
    """Every snapshot of one network in one store, by id, with the snapshots naming each root."""

    def __init__(
        self,
        store: ObjectStore,
        network_id: str,
        extra: dict[str, bytes] | None = None,
        other: tuple[ObjectStore, dict[str, bytes]] | None = None,
        tips: dict[bytes, bytes] | None = None,
    ) -> None:
        """The graph of ``store``'s snapshots of ``network_id``, plus ``extra`` (id → digest, held in
        ``store`` without a ref) and ``other``'s (a second store and snapshot refs this one lacks).

        ``tips`` maps a store's current head to that store's snapshot tip: a head no snapshot names
        stands just after its store's newest snapshot (the writes since it; docs/merge.md).
        """
        self.tips = {head: codec.format_id(tip) for head, tip in (tips or {}).items()}
        refs = store.refs.list(snapshots_prefix(network_id))
        start = len(snapshots_prefix(network_id))
        names = {name[start:]: digest for name, digest in refs.items()}
        for snapshot_id, digest in (extra or {}).items():
            names.setdefault(snapshot_id, digest)
        self.nodes: dict[str, SnapshotNode] = {}
        self._add(store, names)
        if other is not None:
            self._add(other[0], {i: d for i, d in other[1].items() if i not in self.nodes})
        self.by_root: dict[bytes, list[str]] = {}
        for node in sorted(self.nodes.values(), key=lambda n: (n.time, n.id), reverse=True):
            self.by_root.setdefault(node.root, []).append(node.id)

    def _add(self, store: ObjectStore, names: dict[str, bytes]) -> None:
        ids = list(names)
        if not ids:
            return
        for snapshot_id, data in zip(ids, store.blobs.get_many([names[i] for i in ids]), strict=True):
            snap = records.decode_snapshot(data)
            parents = tuple(records.snapshot_parents(snap))
            self.nodes[snapshot_id] = SnapshotNode(snapshot_id, snap["root"], parents, snap["time"])

    def naming(self, head: bytes) -> str | None:
        """The newest snapshot naming ``head`` (``None`` if none does)."""
        found = self.by_root.get(head)
        return found[0] if found else None

    def time_of(self, head: bytes) -> datetime:
        """When ``head`` was recorded: its newest snapshot's time, else the epoch (docs/merge.md)."""
        snapshot_id = self.naming(head)
        return EPOCH if snapshot_id is None else self.nodes[snapshot_id].time

    def ancestors(self, head: bytes) -> dict[str, int]:
        """Every snapshot reachable from those naming ``head`` (themselves included) → its distance.

        A head no snapshot names starts from its store's tip, if :attr:`tips` knows it.
        """
        frontier = list(self.by_root.get(head, ()))
        if not frontier and head in self.tips and self.tips[head] in self.nodes:
            frontier = [self.tips[head]]
        seen = dict.fromkeys(frontier, 0)
        depth = 0
        while frontier:
            depth += 1
            following = []
            for snapshot_id in frontier:
                node = self.nodes.get(snapshot_id)
                for parent in node.parents if node else ():
                    if parent in self.nodes and parent not in seen:
                        seen[parent] = depth
                        following.append(parent)
            frontier = following
        return seen

    def descends(self, head: bytes, ancestor: bytes, *, through_merge: bool = False) -> bool:
        """Whether ``ancestor`` (a root) is named by a snapshot in ``head``'s history (or is ``head``).

        ``through_merge``: only if that history holds a merge (a snapshot of two or more parents),
        so that between stores that never merged, sync keeps exactly its lease rule.
        """
        if head == ancestor:
            return True
        history = self.ancestors(head)
        if through_merge and not any(len(self.nodes[s].parents) > 1 for s in history):
            return False
        return any(self.nodes[s].root == ancestor for s in history)

    def common_ancestor(self, ours: bytes, theirs: bytes) -> bytes | None:
        """The root of the lowest common ancestor of two heads (nearest to both; newest on a tie), or ``None``."""
        a, b = self.ancestors(ours), self.ancestors(theirs)
        common = set(a) & set(b)
        if not common:
            return None
        best = min(common, key=lambda s: (max(a[s], b[s]), a[s] + b[s], -self.nodes[s].time.timestamp(), s))
        return self.nodes[best].root


def printable(digest: bytes | None) -> str | None:
    return None if digest is None else codec.format_id(digest)
