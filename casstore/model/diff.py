"""Differences between two network roots: Bassline's ``Change`` list, and which groups changed.

Each tree is compared by descending only where hashes differ (see
:meth:`casstore.prolly.ProllyTree.diff`), so the cost follows the size of the
change, not of the network.  An absent network compares as empty trees.
"""

from __future__ import annotations

from typing import Any

from casstore.model import records
from casstore.model.reads import NetworkReader
from casstore.model.types import Change

__all__ = ["changed_groups", "diff_roots", "group_change", "tree_pair"]


def diff_roots(reader: NetworkReader, old_root: dict[str, Any] | None, new_root: dict[str, Any] | None) -> list[Change]:
    """Changes from one decoded network root to another (``None``: no network).

    Groups first, for group-level changes, then contacts and wires (a group's
    members joining or leaving are reported as their own added/removed changes).
    """
    changes: list[Change] = []

    def roots(kind: str) -> tuple[bytes, bytes]:
        return tree_pair(reader, kind, old_root, new_root)

    for gid, old, new in reader.trees["groups"].diff(*roots("groups")):
        change = group_change(reader, gid, old, new)
        if change is not None:
            changes.append(change)
    fetch = reader.blobs.get
    for key, old, new in reader.trees["contacts"].diff(*roots("contacts")):
        gid, cid = records.split_member_key(key)
        old_c = records.decode_contact(old, cid, gid, fetch) if old else None
        new_c = records.decode_contact(new, cid, gid, fetch) if new else None
        kind = "contact-added" if old_c is None else "contact-removed" if new_c is None else "contact-updated"
        changes.append(Change(kind, gid, cid, old_c, new_c))  # type: ignore[arg-type]
    for key, old, new in reader.trees["wires"].diff(*roots("wires")):
        gid, wid = records.split_member_key(key)
        old_w = records.decode_wire(old, wid, gid) if old else None
        new_w = records.decode_wire(new, wid, gid) if new else None
        kind = "wire-added" if old_w is None else "wire-removed" if new_w is None else "wire-updated"
        changes.append(Change(kind, gid, wid, old_w, new_w))  # type: ignore[arg-type]
    return changes


def tree_pair(
    reader: NetworkReader, kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> tuple[bytes, bytes]:
    """The roots of one tree in two network roots (an absent network has empty trees)."""
    empty = reader.trees[kind].empty(write=False)
    return (old[kind] if old else empty), (new[kind] if new else empty)


def changed_groups(reader: NetworkReader, old_head: bytes | None, new_head: bytes) -> list[str]:
    """Ids of the groups whose own fields, contacts or wires differ between two network roots."""
    old_root, new_root = (reader.network_root(old_head) if old_head else None), reader.network_root(new_head)
    found = {gid for gid, _, _ in reader.trees["groups"].diff(*tree_pair(reader, "groups", old_root, new_root))}
    for kind in ("contacts", "wires"):
        for key, _, _ in reader.trees[kind].diff(*tree_pair(reader, kind, old_root, new_root)):
            found.add(records.split_member_key(key)[0])
    return sorted(found)


def group_change(reader: NetworkReader, gid: str, old: bytes | None, new: bytes | None) -> Change | None:
    """The group-level change between two group records, or ``None`` if only its members changed."""
    old_body = reader.body(records.decode_group_record(old)) if old else None
    new_body = reader.body(records.decode_group_record(new)) if new else None
    if old_body is None:
        assert new_body is not None
        return Change("group-added", gid, gid, None, records.decode_group(new_body, gid))
    if new_body is None:
        return Change("group-removed", gid, gid, records.decode_group(old_body, gid), None)
    if records.own_fields(old_body) != records.own_fields(new_body):
        return Change(
            "group-updated", gid, gid, records.decode_group(old_body, gid), records.decode_group(new_body, gid)
        )
    return None
