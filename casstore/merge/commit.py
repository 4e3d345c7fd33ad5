"""A merge as one write: find the base, merge the roots, and commit the merged head with its snapshot.

:func:`merge_network` merges a head ``theirs`` (a root this store holds, e.g.
fetched from a remote) into the local head of a network.  The merged head's
snapshot has both heads' snapshots as parents (each side's newest snapshot
naming its head, or one written for it), so history keeps both lines; the new
objects, the snapshot refs, the tip, the agreed head with the remote (when
merging a remote's head) and the head itself move in one ``commit``, the head
by compare-and-swap from the head the merge read: if it moved meanwhile,
:class:`~casstore.errors.RefConflict` and the head stays where it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from casstore import codec
from casstore.collector import collector_paused
from casstore.errors import NetworkNotFound, ObjectNotFound, SnapshotNotFound, StorageError
from casstore.merge.history import SnapshotGraph, printable
from casstore.merge.network import merge_roots
from casstore.model import records
from casstore.model.conflicts import Conflict
from casstore.model.network import NetworkStore
from casstore.model.refs import fetched_ref, fetched_tip_ref, head_ref, snapshot_ref, tip_ref, tracking_ref
from casstore.store.base import RefUpdate

__all__ = ["AUTO", "BaseSource", "MergeOutcome", "MergeResult", "merge_network", "resolve_other"]

MergeOutcome = Literal["up-to-date", "fast-forward", "merged"]
BaseSource = Literal["agreed", "ancestor", "none", "given"]


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


#: ``base=AUTO``: the agreed head with ``remote``, else the lowest common ancestor, else the empty network.
AUTO = _Auto()


@dataclass
class MergeResult:
    """What :func:`merge_network` did (or, with ``dry_run``, would do).

    Fields:
        network_id: the network.
        outcome: ``"up-to-date"`` (theirs is already in ours' history), ``"fast-forward"`` (ours is
            in theirs' history: the head moved to theirs) or ``"merged"`` (a new head).
        ours, theirs, base: printable ids of the heads (``base`` ``None``: merged from the empty network).
        base_source: where the base came from: ``"agreed"`` (the head last agreed with the remote),
            ``"ancestor"`` (lowest common ancestor in the snapshot graph), ``"none"`` (no common
            ancestor: a two-way merge from the empty network) or ``"given"``.
        head: the printable id of the head after the merge.
        snapshot: the merge snapshot's id (``None`` unless ``outcome`` is ``"merged"``).
        conflicts: the conflicts this merge recorded.
        dry_run: nothing was written.
    """

    network_id: str
    outcome: MergeOutcome
    ours: str
    theirs: str
    base: str | None
    base_source: BaseSource
    head: str
    snapshot: str | None = None
    conflicts: list[Conflict] = field(default_factory=list)
    dry_run: bool = False


def resolve_other(store: NetworkStore, network_id: str, text: str) -> tuple[bytes, str | None]:
    """The head OTHER names and the remote it is a head of: ``<remote>/<network>`` (a fetched head),
    ``<remote>`` alone (its fetched head of ``network_id``), or a snapshot id or unique prefix."""
    remote, _, net = text.partition("/")
    for name, network in ((remote, net or network_id), (text, network_id)):
        if not name or "/" in name:
            continue
        try:
            digest = store.refs.get(fetched_ref(name, network))
        except StorageError:  # not a valid ref name: not a remote's head
            digest = None
        if digest is not None and network == network_id:
            return digest, name
    try:
        _, snap = store.find_snapshot(network_id, text)
    except SnapshotNotFound:
        raise SnapshotNotFound(
            f"{text!r} is neither a fetched remote head of {network_id!r} (REMOTE/{network_id}, after "
            f"`casstore fetch`) nor one of its snapshots"
        ) from None
    return snap["root"], None


def merge_network(
    store: NetworkStore,
    network_id: str,
    theirs: bytes,
    *,
    base: bytes | _Auto | None = AUTO,
    remote: str | None = None,
    dry_run: bool = False,
    extra_snapshots: dict[str, bytes] | None = None,
) -> MergeResult:
    """Merge head ``theirs`` (a network root held here) into ``network_id``'s head, by blend mode.

    ``remote``: the remote ``theirs`` came from; its agreed head is the default base and moves to
    ``theirs`` with the merge, so the next push moves the remote without ``--force``.
    ``extra_snapshots`` (id → digest) are snapshot commits held here but not (yet) under a ref
    (a pull's). See docs/merge.md for every rule.
    """
    ours = store.refs.get(head_ref(network_id))
    if ours is None:
        raise NetworkNotFound(f"network {network_id!r} not found")
    if theirs not in store.blobs:
        raise ObjectNotFound(f"head {codec.format_id(theirs)} of {network_id!r} is not in this store: fetch it first")
    tips = {ours: store.refs.get(tip_ref(network_id))}
    if remote:
        tips.setdefault(theirs, store.refs.get(fetched_tip_ref(remote, network_id)))
    graph = SnapshotGraph(store, network_id, extra_snapshots, tips={h: t for h, t in tips.items() if t is not None})
    agreed = store.refs.get(tracking_ref(remote, network_id)) if remote else None

    def result(outcome: MergeOutcome, head: bytes, base_: bytes | None, source: BaseSource) -> MergeResult:
        return MergeResult(
            network_id, outcome, codec.format_id(ours), codec.format_id(theirs), printable(base_), source,
            codec.format_id(head), dry_run=dry_run,
        )  # fmt: skip

    if graph.descends(ours, theirs):
        return result("up-to-date", ours, theirs, "ancestor")
    if graph.descends(theirs, ours):
        if not dry_run:
            updates = [RefUpdate(head_ref(network_id), ours, theirs)]
            if remote:
                updates.append(RefUpdate(tracking_ref(remote, network_id), agreed, theirs, required=False))
            store.commit([], updates)
            store.head_moved(network_id, ours, theirs)
        return result("fast-forward", theirs, ours, "ancestor")
    source: BaseSource
    if not isinstance(base, _Auto):
        merge_base, source = base, "given"
    elif agreed is not None and agreed != ours and agreed in store.blobs:
        merge_base, source = agreed, "agreed"
    else:
        merge_base = graph.common_ancestor(ours, theirs)
        source = "ancestor" if merge_base is not None else "none"
    ours_rank = (graph.time_of(ours), codec.format_id(ours))
    theirs_rank = (graph.time_of(theirs), codec.format_id(theirs))
    with collector_paused():  # see casstore.collector: full collections find nothing a merge makes
        merged = merge_roots(store.reader, merge_base, ours, theirs, theirs_later=theirs_rank > ours_rank)
    out = result("merged", merged.digest, merge_base, source)
    out.conflicts = merged.conflicts
    if dry_run:
        return out
    pending = merged.pending
    updates = []
    parents = []
    for head in (ours, theirs):
        snapshot_id = graph.naming(head)
        if snapshot_id is None:  # a head written since its store's last snapshot: it follows that tip
            size = store.network_root(head)["size"]
            label = "merge: ours" if head == ours else "merge: theirs"
            tip_digest = tips.get(head)
            parent = codec.format_id(tip_digest) if tip_digest is not None else None
            digest = pending.add(records.encode_snapshot(network_id, head, parent, label, size))
            snapshot_id = codec.format_id(digest)
            updates.append(RefUpdate(snapshot_ref(network_id, snapshot_id), None, digest, required=False))
        elif extra_snapshots and snapshot_id in extra_snapshots:
            digest = extra_snapshots[snapshot_id]
            if store.refs.get(snapshot_ref(network_id, snapshot_id)) is None:
                updates.append(RefUpdate(snapshot_ref(network_id, snapshot_id), None, digest, required=False))
        parents.append(snapshot_id)
    size = store.network_root(merged.digest)["size"] if merged.digest != ours else store.network_root(ours)["size"]
    label = f"merge {codec.format_id(theirs)[:12]}" + (f" from {remote}" if remote else "")
    snap_digest = pending.add(records.encode_snapshot(network_id, merged.digest, None, label, size, parents=parents))
    snap_id = codec.format_id(snap_digest)
    tip = store.refs.get(tip_ref(network_id))
    updates += [
        RefUpdate(snapshot_ref(network_id, snap_id), None, snap_digest),
        RefUpdate(tip_ref(network_id), tip, snap_digest, required=False),
    ]
    if remote:
        updates.append(RefUpdate(tracking_ref(remote, network_id), agreed, theirs, required=False))
    # the head first: where a commit is not one transaction, a merge that loses the race moves nothing
    # whole frames (compressed on two threads): measured 10-15 ms quicker per 1% merge than deltas at rest,
    # whose framing is single-threaded Python; the next write's rewrites delta against these again
    with collector_paused():
        frames = pending.frames()
        store.commit(frames, [RefUpdate(head_ref(network_id), ours, merged.digest), *updates])
    store.head_moved(network_id, ours, merged.digest)
    out.snapshot = snap_id
    return out
