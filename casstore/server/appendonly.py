"""Append-only mode: nothing is ever lost through the server.

Ref deletes and object deletes are refused (403; gc runs only locally, on
the server's own store), and before a network head is moved the head it
replaces is recorded as a snapshot (label ``auto: replaced <time>``), so even a
forced push can be undone with ``casstore snapshots``/``restore``.  On a store
whose commit is one transaction the snapshot goes in the same commit as the
move, so a move that loses its compare-and-swap records nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from casstore import codec
from casstore.model import records
from casstore.model.refs import head_ref, network_heads, snapshot_ref, tip_ref
from casstore.server.errors import HttpError
from casstore.store.base import ObjectStore, PendingWrites, RefUpdate

__all__ = ["keep_replaced_heads", "refuse_deletes"]


def refuse_deletes(updates: Sequence[RefUpdate]) -> None:
    for update in updates:
        if update.new is None:
            raise HttpError(403, "APPEND_ONLY", f"the server is append-only: ref {update.name!r} cannot be deleted")


def keep_replaced_heads(store: ObjectStore, updates: Sequence[RefUpdate]) -> list[RefUpdate]:
    """Snapshot every network head that ``updates`` replace; returns ref moves to commit with them.

    Only a head still at the ``expected`` the client sent is kept (a move from a stale head loses its
    compare-and-swap and replaces nothing).  The snapshot objects are stored now; on a store whose
    commit is one transaction the snapshot refs are returned to go in the same commit as the head
    moves, so a move that loses records nothing; elsewhere they are committed first, before the
    head can move (a move that then loses leaves a snapshot of the head that is still current).
    """
    moved = {u.name: u.expected for u in updates if u.expected is not None and u.new is not None}
    replaced = network_heads(moved)
    if not replaced:
        return []
    pending = PendingWrites()
    moves: list[RefUpdate] = []
    for network_id, head in replaced.items():
        if store.refs.get(head_ref(network_id)) != head:  # already moved on: this move will fail
            continue
        tip = store.refs.get(tip_ref(network_id))
        try:
            size = records.decode_network_root(store.blobs.get(head))["size"]
        except Exception:  # not a network root (or absent): the move itself will fail or is not ours to keep
            continue
        label = "auto: replaced through the server"
        digest = pending.add(
            records.encode_snapshot(network_id, head, None if tip is None else codec.format_id(tip), label, size)
        )
        moves.append(RefUpdate(snapshot_ref(network_id, codec.format_id(digest)), None, digest))
        moves.append(RefUpdate(tip_ref(network_id), tip, digest, required=False))
    if not moves:
        return []
    if store.atomic_commit:
        store.blobs.put_frames(pending.frames())
        return moves
    store.commit(pending.frames(), moves)
    return []
