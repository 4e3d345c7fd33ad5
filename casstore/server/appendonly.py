"""Append-only mode: nothing is ever lost through the server.

Ref deletes and object deletes are refused (403; gc runs only locally, on
the server's own store), and before a network head is moved the head it
replaces is recorded as a snapshot (label ``auto: replaced <time>``), so even a
forced push can be undone with ``casstore snapshots``/``restore``.  A move
that then loses its compare-and-swap leaves a snapshot of the head that is
still current: harmless.
"""

from __future__ import annotations

from collections.abc import Sequence

from casstore import codec
from casstore.model import records
from casstore.model.refs import network_heads, snapshot_ref, tip_ref
from casstore.server.errors import HttpError
from casstore.store.base import ObjectStore, PendingWrites, RefUpdate

__all__ = ["keep_replaced_heads", "refuse_deletes"]


def refuse_deletes(updates: Sequence[RefUpdate]) -> None:
    for update in updates:
        if update.new is None:
            raise HttpError(403, "APPEND_ONLY", f"the server is append-only: ref {update.name!r} cannot be deleted")


def keep_replaced_heads(store: ObjectStore, updates: Sequence[RefUpdate]) -> None:
    """Snapshot every network head that ``updates`` replace (one commit)."""
    moved = {u.name: u.expected for u in updates if u.expected is not None and u.new is not None}
    replaced = network_heads(moved)
    if not replaced:
        return
    pending = PendingWrites()
    moves: list[RefUpdate] = []
    for network_id, head in replaced.items():
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
    if moves:
        store.commit(pending.frames(), moves)
