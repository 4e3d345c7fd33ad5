"""One flush of a live image: its changes as one head compare-and-swap, and what another writer changed.

:func:`commit_changes` writes a dirty map taken from the image through
:meth:`NetworkStore.transact <casstore.model.network.NetworkStore.transact>`:
whole groups first (put or deleted), then each dirty contact's content as a
blind write, all in one transaction on the head it read, committed by one
compare-and-swap; on a conflict the same writes are applied again to the new
head (so the image's changes land on top of another writer's, contact by
contact).  A value outside the data model, or a contact whose group is gone,
is left out and reported; the rest are written.

:func:`copy_group` copies a group the image goes on changing while a flush encodes it.

:func:`read_changes` reads, pinned to the current head, the groups that differ
between the head the image last knew and that head, so the image can take in
another writer's changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from casstore import codec
from casstore.errors import GroupNotFound, InvalidId, NetworkNotFound, SerializationError
from casstore.model import GroupState, NetworkStore
from casstore.model.transactions import NetworkTransaction
from casstore.store.base import RefUpdate

__all__ = ["CommitResult", "Rejected", "commit_changes", "copy_group", "read_changes"]

#: What makes one write unwritable (its own fault, not the backend's): it is reported and left out.
REJECTABLE = (SerializationError, InvalidId, GroupNotFound, NetworkNotFound)


@dataclass(frozen=True)
class Rejected:
    """A change a flush left out, and why (``contact_id`` is ``None`` for a whole group)."""

    group_id: str
    contact_id: str | None
    reason: str


@dataclass
class CommitResult:
    """What one flush committed: the head it was built on, the head it moved to, and what it left out."""

    start_head: str | None
    end_head: str | None
    rejected: list[Rejected] = field(default_factory=list)


def copy_group(state: GroupState) -> GroupState:
    """A copy a flush can encode while the image goes on changing the original."""
    group = dataclasses.replace(
        state.group,
        contact_ids=list(state.group.contact_ids),
        wire_ids=list(state.group.wire_ids),
        subgroup_ids=list(state.group.subgroup_ids),
        boundary_contact_ids=list(state.group.boundary_contact_ids),
    )
    contacts = {cid: dataclasses.replace(c) for cid, c in state.contacts.items()}
    return GroupState(group, contacts, dict(state.wires), dict(state.extra))


def commit_changes(
    store: NetworkStore,
    network_id: str,
    groups: dict[str, GroupState | None],
    contents: dict[tuple[str, str], Any],
    also: Sequence[RefUpdate] = (),
    each_attempt: Callable[[], tuple[dict[tuple[str, str], Any], Sequence[RefUpdate]]] | None = None,
) -> CommitResult:
    """Write ``groups`` (``None``: deleted) then ``contents`` ((group, contact) → value) as one new head.

    ``also``: ref moves committed with the head (a journal's folded entries, deleted).
    ``each_attempt``, if given, gives ``(contents, also)`` afresh for each attempt of the
    compare-and-swap (what a fold takes in depends on which entries are still there).  Raises what
    the backend raises (nothing is then written); never raises for a rejected change.
    """
    views: list[NetworkTransaction] = []

    def write(tx: NetworkTransaction) -> list[Rejected]:
        views.append(tx)
        now, moves = (contents, also) if each_attempt is None else each_attempt()
        touched = {gid for gid, _ in now}
        tx.also_update(moves)
        rejected: list[Rejected] = []
        for gid, state in groups.items():
            try:
                if state is None:
                    tx.delete_group(network_id, gid)
                else:
                    tx.save_group_state(network_id, gid, state)
            except REJECTABLE as exc:
                rejected.append(Rejected(gid, None, f"{type(exc).__name__}: {exc}"))
        tx.prefetch_groups(network_id, touched)  # one pass over the groups tree, not one lookup per contact
        for (gid, cid), value in now.items():
            try:
                tx.save_contact_content(network_id, gid, cid, value)
            except REJECTABLE as exc:
                rejected.append(Rejected(gid, cid, f"{type(exc).__name__}: {exc}"))
        return rejected

    rejected = store.transact(network_id, write)
    view = views[-1]
    return CommitResult(view.start_head, view.end_head, rejected)


def read_changes(store: NetworkStore, network_id: str, known_head: str | None) -> tuple[str | None, dict[str, Any]]:
    """The current head, and each group that differs from ``known_head`` there (``None``: gone)."""
    with store.transaction(network_id) as view:
        head = view.start_head
        if head is None or head == known_head:
            return head, {}
        old = None if known_head is None else codec.parse_id(known_head)
        changed = store.changed_groups(old, codec.parse_id(head))
        return head, {gid: view.load_group_state(network_id, gid) for gid in changed}
