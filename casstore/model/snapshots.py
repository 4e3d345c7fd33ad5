"""Snapshots: save, find, load, list and delete the named past states of a network.

A snapshot is a small commit object (the network root it names, its parent
snapshot, a label, a time and a size; see :func:`casstore.model.records.encode_snapshot`)
plus the ref ``networks/<id>/snapshots/<snapshot id>``.  The ref
``networks/<id>/snapshot-tip`` names the newest one, as a hint for the next
snapshot's parent.  Snapshot ids are the printable ids of the commit objects;
every call taking one also takes a unique prefix of :data:`MIN_PREFIX` or more
characters (printable or hex), as the CLI does (:func:`resolve_snapshot_id`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from casstore import codec
from casstore.errors import InvalidId, NetworkNotFound, SerializationError, SnapshotNotFound
from casstore.model import records
from casstore.model.reads import NetworkReader
from casstore.model.refs import head_ref, snapshot_ref, snapshots_prefix, tip_ref
from casstore.model.types import NetworkState, SnapshotInfo
from casstore.model.writes import delete_ref
from casstore.store.base import ObjectStore, PendingWrites, RefUpdate

__all__ = [
    "MIN_PREFIX",
    "delete_snapshot",
    "find_snapshot",
    "full_snapshot_id",
    "list_snapshots",
    "load_snapshot",
    "resolve_snapshot_id",
    "save_snapshot",
    "state_root",
]

#: The shortest snapshot-id prefix accepted (as for object ids at the CLI).
MIN_PREFIX = 8
_HEX = frozenset("0123456789abcdefABCDEF")


def save_snapshot(
    reader: NetworkReader,
    objects: ObjectStore,
    network_id: str,
    label: str | None = None,
    automatic: bool = False,
    *,
    time: datetime | None = None,
) -> str:
    """Record the network's current head as a snapshot (one commit: the object, its ref, the tip hint).

    ``automatic`` marks it as taken by a snapshot timer (``"auto": true``), which retention may prune.
    ``time`` (timezone-aware) replaces "now" as the snapshot's time: for importing history.
    """
    refs = reader.refs
    head = refs.get(head_ref(network_id))
    if head is None:
        raise NetworkNotFound(f"network {network_id!r} not found")
    tip = refs.get(tip_ref(network_id))
    size = reader.network_root(head)["size"]
    parent = None if tip is None else codec.format_id(tip)
    data = records.encode_snapshot(network_id, head, parent, label, size, automatic=automatic)
    if time is not None:
        if time.tzinfo is None:
            raise SerializationError("time: a snapshot's time must be timezone-aware", "time")
        fields = codec.decode(data)
        fields["time"] = time.astimezone(UTC).isoformat(timespec="microseconds")
        data = codec.encode(fields)
    pending = PendingWrites()
    digest = pending.add(data)
    snapshot_id = codec.format_id(digest)
    # the tip is only a hint for the next parent: a concurrent snapshot may have moved it
    updates = [
        RefUpdate(snapshot_ref(network_id, snapshot_id), None, digest),
        RefUpdate(tip_ref(network_id), tip, digest, required=False),
    ]
    objects.commit(pending.frames(), updates)
    return snapshot_id


def resolve_snapshot_id(reader: NetworkReader, network_id: str, text: str | bytes) -> str | None:
    """The full printable id of ``network_id``'s snapshot ``text`` names, or ``None`` if it names none.

    ``text`` is a snapshot id in any form :func:`casstore.codec.parse_id` takes, or a prefix of
    :data:`MIN_PREFIX` or more characters of its printable or hex form.  A full id costs one ref
    read; a prefix, one listing of the network's snapshot refs.  A prefix matching several
    snapshots raises :class:`~casstore.errors.InvalidId` naming them.
    """
    try:
        digest = codec.parse_id(text)
    except InvalidId:
        if not isinstance(text, str):
            return None
    else:
        full = codec.format_id(digest)
        return full if reader.refs.get(snapshot_ref(network_id, full)) == digest else None
    prefix = text.strip()
    if len(prefix) < MIN_PREFIX:
        return None
    by_hex = all(c in _HEX for c in prefix)
    start = len(snapshots_prefix(network_id))
    matches = []
    for name, digest in reader.refs.list(snapshots_prefix(network_id)).items():
        if digest.hex().startswith(prefix.lower()) if by_hex else name[start:].startswith(prefix):
            matches.append(name[start:])
    if len(matches) > 1:
        shown = ", ".join(sorted(matches)[:5]) + (", …" if len(matches) > 5 else "")
        raise InvalidId(f"prefix {prefix!r} is ambiguous: {len(matches)} snapshots of {network_id!r} match ({shown})")
    return matches[0] if matches else None


def full_snapshot_id(reader: NetworkReader, network_id: str, snapshot_id: str) -> str:
    """The full printable id of a snapshot named by an id or a unique prefix of 8+ characters.

    :class:`SnapshotNotFound` if ``network_id`` has no such snapshot; :class:`InvalidId` for an
    ambiguous prefix.
    """
    full = resolve_snapshot_id(reader, network_id, snapshot_id)
    if full is not None:
        return full
    if not isinstance(snapshot_id, str) or len(snapshot_id.strip()) < MIN_PREFIX:
        raise SnapshotNotFound(
            f"{snapshot_id!r} is not a snapshot id of {network_id!r} (give {MIN_PREFIX} or more characters)"
        )
    try:
        codec.parse_id(snapshot_id)
    except InvalidId:
        raise SnapshotNotFound(f"{snapshot_id!r} matches no snapshot of network {network_id!r}") from None
    raise SnapshotNotFound(f"snapshot {snapshot_id} of network {network_id!r} not found")


def find_snapshot(reader: NetworkReader, network_id: str, snapshot_id: str) -> tuple[bytes, dict[str, Any]]:
    """A snapshot's digest and decoded record (``snapshot_id``: an id or a unique prefix of 8+ characters).

    :class:`SnapshotNotFound` if ``network_id`` has no such snapshot; :class:`InvalidId` for an
    ambiguous prefix.
    """
    digest = codec.parse_id(full_snapshot_id(reader, network_id, snapshot_id))
    return digest, records.decode_snapshot(reader.blobs.get(digest))


def load_snapshot(reader: NetworkReader, network_id: str, snapshot_id: str) -> NetworkState:
    """The whole network state a snapshot names."""
    _, snapshot = find_snapshot(reader, network_id, snapshot_id)
    return reader.state_at(snapshot["root"])


def list_snapshots(reader: NetworkReader, network_id: str) -> list[SnapshotInfo]:
    """Every snapshot of a network, newest first."""
    refs = reader.refs.list(snapshots_prefix(network_id))
    digests = list(refs.values())
    infos = []
    for digest, data in zip(digests, reader.blobs.get_many(digests), strict=True):
        snap = records.decode_snapshot(data)
        infos.append(
            SnapshotInfo(
                id=codec.format_id(digest),
                network_id=network_id,
                label=snap["label"],
                created_at=snap["time"],
                size=snap["size"],
                root=codec.format_id(snap["root"]),
                automatic=snap["auto"],
                parents=tuple(records.snapshot_parents(snap)),
            )
        )
    infos.sort(key=lambda info: (info.created_at, info.id), reverse=True)
    return infos


def delete_snapshot(reader: NetworkReader, network_id: str, snapshot_id: str) -> None:
    """Remove a snapshot's ref (its objects stay until gc); a no-op for an unknown or malformed id.

    ``snapshot_id`` may be a unique prefix of 8+ characters; an ambiguous one raises
    :class:`~casstore.errors.InvalidId` and deletes nothing.
    """
    full = resolve_snapshot_id(reader, network_id, snapshot_id)
    if full is not None:
        delete_ref(reader.refs, snapshot_ref(network_id, full), codec.parse_id(full))


def state_root(reader: NetworkReader, network_id: str, which: str | None) -> dict[str, Any] | None:
    """The decoded root of a state: a snapshot's (by id), or the current head's for ``None``."""
    if which is None:
        return reader.head_root(network_id)
    _, snapshot = find_snapshot(reader, network_id, which)
    return reader.network_root(snapshot["root"])
