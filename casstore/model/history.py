"""One contact, whole: its record now (:func:`load_contact`) and across the snapshot chain (:func:`contact_history`).

The history is Bassline's audit trail for one contact: walking the network's
snapshots newest first (the order ``list_snapshots`` and ``casstore log`` give),
it looks the contact's one key up in each snapshot's contacts tree and compares
the record *bytes* (canonical, so equal bytes are an equal contact).  The
lookups of a batch of snapshots go down the trees together, level by level,
each distinct node read once: snapshots that share a subtree (all but the path
a change rewrote) share its reads, so a step costs at most one path, O(log n),
and usually a few cached nodes.  The cost follows the snapshots walked, not the
size of the network.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from casstore.errors import SerializationError
from casstore.model import records
from casstore.model.reads import NetworkReader
from casstore.model.refs import head_ref, snapshots_prefix
from casstore.model.types import Contact, check_id
from casstore.prolly import ProllyTree

__all__ = ["HistoryEntry", "contact_history", "load_contact", "lookup_across"]

#: Snapshots looked up together in the first batch; each later batch is twice as large, up to the cap.
FIRST_BATCH, MAX_BATCH = 16, 1024


@dataclass(frozen=True)
class HistoryEntry:
    """One value a contact had: its record as of a snapshot, or as of the current state.

    Fields:
        snapshot_id: the snapshot where the contact took this value (the oldest of the consecutive
            snapshots holding it); ``None`` for the current state when it differs from every snapshot
            after it (not yet in any snapshot).
        created_at: that snapshot's time (UTC); ``None`` for the current state.
        label: that snapshot's label, if any.
        contact: the whole record; ``None`` if the contact did not exist then (it had been deleted).
    """

    snapshot_id: str | None
    created_at: datetime | None
    label: str | None
    contact: Contact | None

    @property
    def content(self) -> Any:
        """The contact's content then (``None`` also when the contact did not exist: see :attr:`exists`)."""
        return None if self.contact is None else self.contact.content

    @property
    def exists(self) -> bool:
        """Whether the contact existed then."""
        return self.contact is not None


def load_contact(reader: NetworkReader, network_id: str, group_id: str, contact_id: str) -> Contact | None:
    """The whole current record of one contact, or ``None`` if the network, group or contact does not exist."""
    check_id(group_id, "group_id")
    check_id(contact_id, "contact_id")
    root = reader.head_root(network_id)
    if root is None:
        return None
    record = reader.trees["contacts"].get(root["contacts"], records.member_key(group_id, contact_id))
    return None if record is None else records.decode_contact(record, contact_id, group_id, reader.blobs.get)


def lookup_across(tree: ProllyTree, roots: Sequence[bytes], key: str) -> list[bytes | None]:
    """The value of ``key`` in each of several trees: one batched read per level, each distinct node read once."""
    found: list[bytes | None] = [None] * len(roots)
    frontier: dict[bytes, list[int]] = {}
    for index, root in enumerate(roots):
        frontier.setdefault(root, []).append(index)
    while frontier:
        digests = list(frontier)
        below: dict[bytes, list[int]] = {}
        for digest, node in zip(digests, tree.load_many(digests), strict=True):
            i = bisect_left(node.keys, key)
            if i == len(node.keys):
                continue  # past the last key: absent
            if node.level > 0:
                below.setdefault(node.values[i], []).extend(frontier[digest])
            elif node.keys[i] == key:
                for index in frontier[digest]:
                    found[index] = node.values[i]
        frontier = below
    return found


def contact_history(
    reader: NetworkReader, network_id: str, group_id: str, contact_id: str, limit: int | None = None
) -> list[HistoryEntry]:
    """The values one contact had, newest first: one entry per snapshot where it changed.

    The current state comes first when it differs from the newest snapshot.  Consecutive snapshots
    holding the same record collapse into one entry, attributed to the oldest of them (where the
    change appeared).  Snapshots where the contact did not exist (it had been deleted) give an entry
    whose ``contact`` is ``None``; those before it first existed give none, so a contact that never
    existed has no history.  ``limit`` keeps the newest entries only, and walks only as many snapshots as it
    needs (in batches).  An absent network has no history (``[]``).
    """
    check_id(group_id, "group_id")
    check_id(contact_id, "contact_id")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise SerializationError(f"limit: expected a whole number >= 0 or None, got {limit!r}", "limit")
    if limit == 0:
        return []
    head = reader.refs.get(head_ref(network_id))
    states: list[tuple[_Snapshot | None, bytes]] = [] if head is None else [(None, head)]
    states += [(snapshot, snapshot.root) for snapshot in _snapshots_newest_first(reader, network_id)]
    key = records.member_key(group_id, contact_id)
    values: list[bytes | None] = []
    runs: list[int] = []  # the index in ``states`` where each run of equal values starts
    batch = FIRST_BATCH
    while len(values) < len(states):
        chunk = states[len(values) : len(values) + batch]
        roots = _contacts_roots(reader, [digest for _, digest in chunk])
        for value in lookup_across(reader.trees["contacts"], roots, key):
            if not values or value != values[-1]:
                runs.append(len(values))
            values.append(value)
        if limit is not None and len(runs) > limit:
            break  # the limit-th run is closed: the next one has begun
        batch = min(batch * 2, MAX_BATCH)
    ends = [*runs[1:], len(values)]
    if len(values) == len(states) and runs and values[runs[-1]] is None:
        runs.pop()  # before the contact first existed: not a value it had
    entries = []
    for start, end in zip(runs[:limit], ends, strict=False):
        oldest, _ = states[end - 1]  # the oldest state of the run: where the value appeared
        record = values[start]
        contact = None if record is None else records.decode_contact(record, contact_id, group_id, reader.blobs.get)
        if oldest is None:
            entries.append(HistoryEntry(None, None, None, contact))
        else:
            entries.append(HistoryEntry(oldest.id, oldest.time, oldest.label, contact))
    return entries


@dataclass(frozen=True, order=True)
class _Snapshot:
    """What the history needs of a snapshot; ordered as ``list_snapshots`` orders (by time, then id)."""

    time: datetime
    id: str
    root: bytes
    label: str | None


def _snapshots_newest_first(reader: NetworkReader, network_id: str) -> list[_Snapshot]:
    """The network's snapshots in ``list_snapshots`` order, the ids taken from the ref names (which are
    their printable ids), so that a long chain costs no id formatting."""
    prefix = snapshots_prefix(network_id)
    refs = reader.refs.list(prefix)
    names = list(refs)
    found = []
    for name, data in zip(names, reader.blobs.get_many([refs[name] for name in names]), strict=True):
        snapshot = records.decode_snapshot(data)
        found.append(_Snapshot(snapshot["time"], name[len(prefix) :], snapshot["root"], snapshot["label"]))
    found.sort(reverse=True)
    return found


def _contacts_roots(reader: NetworkReader, network_roots: list[bytes]) -> list[bytes]:
    """The contacts-tree root of each network root, the roots read in one batch.

    Decoded here rather than through the reader's cache of roots, which a long chain would overflow.
    """
    unique = list(dict.fromkeys(network_roots))
    contacts = {
        digest: records.decode_network_root(data)["contacts"]
        for digest, data in zip(unique, reader.blobs.get_many(unique), strict=True)
    }
    return [contacts[digest] for digest in network_roots]
