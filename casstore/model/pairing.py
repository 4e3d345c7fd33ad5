"""Pairing a write's new objects with the ones they replace: the delta bases at rest.

After a transaction has built its new network root, :func:`pair_replacements`
descends the new root and the old one side by side (as sync's pack builder
does, with :func:`~casstore.model.walk.paired_children`), only into objects the
write created, and records each new object's predecessor in
``PendingWrites.bases``.  A rewritten prolly leaf is then stored as a delta
against the leaf it replaced (see :mod:`casstore.store.deltas`).  Leaves that
link to nothing are paired without being read; old versions of the objects
that do link are read in one batch per level, except those the tree update
already holds (``PendingWrites.base_data``).  What the write engine paired as it
wrote (a tree update's rewritten paths, group bodies, large contents) is not
descended again.
"""

from __future__ import annotations

from collections.abc import Callable

from casstore.codec import hash_bytes
from casstore.errors import StorageError
from casstore.model.walk import LARGE_CONTENT_KEY, LEAF_PREFIX, Kind, paired_children
from casstore.store.base import BlobStore, PendingWrites

__all__ = ["pair_replacements"]


def _has_children(kind: Kind, data: bytes) -> bool:
    if kind == "net":
        return True
    if not kind.startswith("tree:"):
        return False
    if not data.startswith(LEAF_PREFIX):
        return True
    return kind == "tree:groups" or (kind == "tree:contacts" and LARGE_CONTENT_KEY in data)


def _held(
    pending: PendingWrites, held: Callable[[bytes, Kind], bytes | None] | None, digest: bytes, kind: Kind
) -> bytes | None:
    """An old object's canonical bytes without a read: from the write itself, else from the caller (re-hashed)."""
    data = pending.base_data(digest)
    if data is None and held is not None:
        data = held(digest, kind)
        if data is not None and hash_bytes(data) != digest:
            data = None
    return data


def pair_replacements(
    blobs: BlobStore,
    pending: PendingWrites,
    old_root: bytes | None,
    new_root: bytes,
    held: Callable[[bytes, Kind], bytes | None] | None = None,
) -> None:
    """Record in ``pending.bases`` the object each new object of the write replaces (old → new roots).

    ``held(digest, kind)``: the canonical bytes of an old object the caller holds decoded (a reader's
    cached root or node; re-hashed here), which is then not read."""
    if old_root is None or old_root == new_root or new_root not in pending:
        return
    # what the write engine paired as it wrote (a tree update's rewritten paths, group bodies, large
    # contents) is not descended again: everything below it that the write replaced it paired too
    paired = set(pending.bases)
    level: list[tuple[bytes, Kind, bytes]] = [(new_root, "net", old_root)]
    while level:
        descend: list[tuple[bytes, Kind, bytes, bytes]] = []
        for new, kind, old in level:
            if new in paired and kind.startswith("tree:"):
                continue
            pending.replaces(new, old)
            data = pending.get(new)
            if data is not None and _has_children(kind, data):
                descend.append((new, kind, old, data))
        if not descend:
            return
        olds_held = {old: data for _, kind, old, _ in descend if (data := _held(pending, held, old, kind)) is not None}
        unread = list(dict.fromkeys(old for _, _, old, _ in descend if old not in olds_held))
        try:
            olds_held.update(zip(unread, blobs.get_many(unread) if unread else [], strict=True))
        except StorageError:  # an old version that cannot be read is no base; the objects are stored whole
            return
        olds = [olds_held[old] for _, _, old, _ in descend]
        level = []
        for (_, kind, _, data), old_data in zip(descend, olds, strict=True):
            try:
                pairs = list(paired_children(kind, data, old_data))
            except (StorageError, KeyError, TypeError, ValueError):
                continue
            level += [(c, k, o) for c, k, o in pairs if o is not None and c != o and c in pending]
