"""``casstore import-tables``: import networks from a database in upstream Bassline's PostgreSQL schema.

Upstream's ``@bassline/storage-postgres`` wrote four tables (in ``--schema``,
default ``public``)::

    bassline_networks  (id, state jsonb, created_at, updated_at)
    bassline_groups    (network_id, group_id, state jsonb, …)
    bassline_contacts  (network_id, group_id, contact_id, content jsonb, …)
    bassline_snapshots (network_id, snapshot_id, label, state jsonb, created_at)

A network ``state`` (and each snapshot's full copy of one) is
``{"groups": [{"id", "group", "contacts": [[id, contact], …], "wires": [[id,
wire], …]}, …], "currentGroupId", "rootGroupId", …}`` (its Maps as entry
lists).  ``saveGroupState`` and ``saveContactContent`` wrote only the groups
and contacts tables, which ``loadGroupState`` reads, so the current state is
the network's ``state`` overlaid with those rows: a group row's ``group`` (and
its wires, when stored as entries) and each contact row's ``content`` win;
contacts only in the contacts table are added (``accept-last``).

Each network is imported with its snapshots oldest first: the snapshot's state
becomes the head, then a snapshot with upstream's label and time is taken; the
current state is written last.  Idempotent: a snapshot whose time, label and
state the network already has is skipped, and the current state is written
only when it differs from the head.  What cannot be imported (a malformed
state) is reported, not raised, and the rest goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from casstore.errors import SerializationError, StorageError
from casstore.model import NetworkState, NetworkStore, snapshots
from casstore.model.bassline_json import network_from_json
from casstore.model.reads import NetworkReader
from casstore.store.postgres.connection import secret_scrubber
from casstore.store.postgres.schema import quote_schema

__all__ = ["ImportReport", "import_tables", "upstream_state"]


@dataclass
class ImportReport:
    """What :func:`import_tables` did, per network."""

    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def imported_snapshots(self) -> int:
        return sum(len(n["snapshots"]) for n in self.networks.values())

    @property
    def imported_heads(self) -> int:
        return sum(1 for n in self.networks.values() if n["head"])

    def as_json(self) -> dict[str, Any]:
        return {
            "networks": self.networks,
            "failed": self.failed,
            "imported_snapshots": self.imported_snapshots,
            "imported_heads": self.imported_heads,
        }


def _entries(value: Any, path: str) -> dict[str, Any]:
    """A serialized Map (a list of [key, value] pairs); an object is taken as it is."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, list) or not all(isinstance(e, list) and len(e) == 2 for e in value):
        raise StorageError(f"{path}: expected a list of [id, value] pairs")
    return {str(k): v for k, v in value}


def upstream_state(state: Any, path: str = "state") -> dict[str, Any]:
    """Upstream's serialized network state as casstore's Bassline JSON document (maps keyed by id)."""
    if not isinstance(state, dict) or not isinstance(state.get("groups"), list | dict):
        raise StorageError(f"{path}: not a serialized Bassline network state (no groups)")
    groups: dict[str, Any] = {}
    listed = state["groups"] if isinstance(state["groups"], list) else list(state["groups"].values())
    for index, entry in enumerate(listed):
        if isinstance(entry, list) and len(entry) == 2:  # a Map serialized as entries
            entry = {"id": entry[0], **entry[1]}
        if not isinstance(entry, dict) or not isinstance(entry.get("group"), dict):
            raise StorageError(f"{path}.groups[{index}]: not a group state")
        gid = str(entry.get("id") or entry["group"].get("id"))
        doc = {k: v for k, v in entry.items() if k != "id"}
        doc["contacts"] = _entries(entry.get("contacts", []), f"{path}.groups[{index}].contacts")
        doc["wires"] = _entries(entry.get("wires", []), f"{path}.groups[{index}].wires")
        groups[gid] = doc
    return {**state, "groups": groups}


def _overlay(doc: dict[str, Any], group_rows: list[tuple[str, Any]], contact_rows: list[tuple[str, str, Any]]) -> None:
    groups = doc["groups"]
    for gid, state in group_rows:
        if not isinstance(state, dict) or not isinstance(state.get("group"), dict):
            continue
        entry = groups.setdefault(gid, {"group": {}, "contacts": {}, "wires": {}})
        entry["group"] = dict(state["group"])
        if isinstance(state.get("wires"), list) and state["wires"]:
            entry["wires"] = _entries(state["wires"], f"bassline_groups[{gid!r}].wires")
    for gid, cid, content in contact_rows:
        if gid not in groups:
            continue
        contacts = groups[gid]["contacts"]
        contact = dict(contacts.get(cid) or {"id": cid, "groupId": gid, "blendMode": "accept-last"})
        contact["content"] = content
        contacts[cid] = contact
        ids = groups[gid]["group"].setdefault("contactIds", [])
        if cid not in ids:
            ids.append(cid)


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise SerializationError(f"{what}: expected a timestamp, got {value!r:.60}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def import_tables(store: NetworkStore, url: str, schema: str = "public", networks: Sequence[str] = ()) -> ImportReport:
    """Import every network (or ``networks``) of the upstream database at ``url`` into ``store``."""
    import psycopg

    s = quote_schema(schema)
    report = ImportReport()
    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        scrub = secret_scrubber(url)
        raise StorageError(scrub(f"cannot connect to the upstream database: {' '.join(str(exc).split())}")) from None
    with conn:
        try:
            rows = conn.execute(
                f"SELECT id, state, created_at, updated_at FROM {s}.bassline_networks ORDER BY id"
            ).fetchall()
        except psycopg.Error as exc:
            raise StorageError(f"no Bassline tables in schema {schema!r}: {_first_line(exc)}") from None
        wanted = set(networks)
        for network_id, state, created_at, updated_at in rows:
            if wanted and network_id not in wanted:
                continue
            where = f"bassline_networks[{network_id!r}]"
            try:
                times = tuple(
                    None if t is None else _time(t, f"{where}.{name}")
                    for t, name in ((created_at, "created_at"), (updated_at, "updated_at"))
                )
                report.networks[network_id] = _import_network(conn, s, store, network_id, state, times)
            except StorageError as exc:
                report.failed[network_id] = str(exc)
            except psycopg.Error as exc:  # a table or column of the seed's schema missing or of another type
                report.failed[network_id] = f"{where}: the upstream tables cannot be read: {_first_line(exc)}"
        for missing in sorted(wanted - {r[0] for r in rows}):
            report.failed[missing] = "no such network in bassline_networks"
    return report


def _import_network(
    conn: Any, s: str, store: NetworkStore, network_id: str, state: Any, times: tuple[datetime | None, ...]
) -> dict[str, Any]:
    """One network: its snapshots oldest first (each state written with the network's creation time and
    the snapshot's time), then its current state with the network row's own times."""
    created, updated = times
    current = upstream_state(state, f"bassline_networks[{network_id!r}].state")
    group_rows = conn.execute(
        f"SELECT group_id, state FROM {s}.bassline_groups WHERE network_id = %s ORDER BY group_id", (network_id,)
    ).fetchall()
    contact_rows = conn.execute(
        f"SELECT group_id, contact_id, content FROM {s}.bassline_contacts WHERE network_id = %s"
        " ORDER BY group_id, contact_id",
        (network_id,),
    ).fetchall()
    _overlay(current, group_rows, contact_rows)
    snaps = conn.execute(
        f"SELECT snapshot_id, label, state, created_at FROM {s}.bassline_snapshots WHERE network_id = %s"
        " ORDER BY created_at, snapshot_id",
        (network_id,),
    ).fetchall()
    reader = NetworkReader(store.blobs, store.refs)
    have: dict[tuple[datetime, str | None], list[str]] = {}
    for info in store.list_snapshots(network_id):
        have.setdefault((info.created_at, info.label), []).append(info.id)
    done: dict[str, Any] = {"snapshots": [], "skipped_snapshots": [], "head": False}
    for upstream_id, label, snap_state, created_at in snaps:
        parsed = network_from_json(upstream_state(snap_state, f"bassline_snapshots[{upstream_id!r}].state"))
        when = _time(created_at, f"bassline_snapshots[{upstream_id!r}].created_at")
        if any(store.load_snapshot(network_id, sid) == parsed for sid in have.get((when, label), [])):
            done["skipped_snapshots"].append(upstream_id)
            continue
        if store.load_network_state(network_id) != parsed:
            parsed.created_at, parsed.updated_at = created or when, when
            store.save_network_state(network_id, parsed, keep_times=True)
        snapshot_id = snapshots.save_snapshot(reader, store.objects, network_id, label, time=when)
        done["snapshots"].append({"upstream": upstream_id, "id": snapshot_id, "label": label, "time": when.isoformat()})
    final = network_from_json(current)
    final.created_at, final.updated_at = created, updated
    now = store.load_network_state(network_id)
    # a time the upstream row does not give (NULL) is the store's own: no change
    if now is None or now != final or _times_moved(now, created, updated):
        store.save_network_state(network_id, final, keep_times=True)
        done["head"] = True
    return done


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _times_moved(now: NetworkState, created: datetime | None, updated: datetime | None) -> bool:
    return (created is not None and now.created_at != created) or (updated is not None and now.updated_at != updated)
