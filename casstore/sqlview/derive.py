"""Deriving the SQL view's rows from network heads: incrementally from a diff, or whole.

:class:`SqlTables` is what a PostgreSQL store with tables on calls inside
each write transaction (see :mod:`casstore.store.postgres.derived`).  For each
head move it diffs the old head against the new one (each tree descended only
where hashes differ, so a 1% step rewrites about 1% of the rows) and writes
the changed rows in batched statements (at most :data:`ROWS_PER_STATEMENT` rows
each; a network derived whole, its rows deleted first, is written by ``COPY``,
about twice as fast per row); a snapshot ref created or deleted adds or
removes its row; a deleted head removes the network's rows.
It reads objects on the transaction's own connection (the objects this
transaction wrote are in hand), so it sees exactly what the move commits.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from itertools import islice
from typing import Any
from urllib.parse import unquote

from casstore import codec
from casstore.errors import CorruptObject, ObjectNotFound, SerializationError, StorageError
from casstore.model import records
from casstore.model.bassline_json import contact_optional_fields, group_state_to_json, network_to_json
from casstore.model.diff import tree_pair
from casstore.model.reads import NetworkReader
from casstore.model.refs import snapshots_prefix
from casstore.model.types import Contact, GroupState, NetworkState
from casstore.prolly import NodeCache
from casstore.sqlview.jsonform import dumps, sql_text
from casstore.sqlview.tables import TableWriter, create_statements, tables_exist
from casstore.sqlview.treediff import changed_entries
from casstore.store.base import BlobStats, BlobStore

__all__ = ["ROWS_PER_STATEMENT", "SqlTables", "contact_row", "group_row", "parse_ref"]

#: Rows per ``jsonb`` array statement: one array of 100,000 rows took 1.5x the time of 5,000-row batches
#: (the server parses one huge document slower per byte).
ROWS_PER_STATEMENT = 5_000


def batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """``rows`` in lists of at most ``size``."""
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def copy_rows(conn: Any, statement: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """``rows`` into a table by ``COPY`` (text format; psycopg escapes each field).

    ``rows`` may be made as they are sent, but must not use the connection.  In a savepoint: a row that
    cannot be made (a corrupt record) raises with the transaction still usable."""
    with conn.transaction(), conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def parse_ref(name: str) -> tuple[str, str, str | None] | None:
    """``("head", network, None)`` or ``("snapshot", network, snapshot id)`` for a network's refs, else ``None``."""
    parts = name.split("/")
    if parts[0] != "networks":
        return None
    if len(parts) == 3 and parts[2] == "head":
        return "head", unquote(parts[1]), None
    if len(parts) == 4 and parts[2] == "snapshots":
        return "snapshot", unquote(parts[1]), parts[3]
    return None


def group_row(state: GroupState) -> list[Any]:
    """[group id, structure, attributes, extra or None] in the export's JSON form, for one group's row."""
    doc = group_state_to_json(GroupState(state.group, {}, state.wires, state.extra))
    group = doc["group"]
    attributes = group.pop("attributes")
    extra: dict[str, Any] = {}
    if "wires" in group:  # a group field casstore does not model, named like the view's own key
        extra["group"] = {"wires": group.pop("wires")}
    group["wires"] = doc["wires"]
    state_extra = {k: v for k, v in doc.items() if k not in ("group", "contacts", "wires")}
    if state_extra:
        extra["state"] = state_extra
    return [state.group.id, group, attributes, extra or None]


def contact_row(contact: Contact) -> list[Any]:
    """[group id, contact id, content, blend mode, the rest] of one contact, shaped as the export writes it.

    Values stay Python values (bytes included): :func:`~casstore.sqlview.jsonform.dumps` writes them.
    """
    rest: dict[str, Any] = {"id": contact.id, **contact_optional_fields(contact)}
    if contact.extra:
        rest.update((k, v) for k, v in contact.extra.items() if k not in rest)
    return [contact.group_id, contact.id, contact.content, contact.blend_mode, rest]


class TransactionBlobs(BlobStore):
    """Objects as one open transaction sees them: the ones it wrote (in hand), then its connection's reads."""

    def __init__(self, schema: str) -> None:
        self.conn: Any = None
        self.frames: Mapping[bytes, bytes] = {}
        self._select = f"SELECT id, frame FROM {schema}.objects WHERE id = ANY(%b::bytea[])"

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        frames = self.frames
        found = {d: f for d in digests if (f := frames.get(d)) is not None}
        wanted = [d for d in dict.fromkeys(digests) if d not in found]
        if wanted:
            if self.conn is None:
                raise StorageError("the SQL view read an object outside a transaction")
            with self.conn.cursor(binary=True) as cur:
                cur.execute(self._select, (wanted,))
                found.update((bytes(i), bytes(f)) for i, f in cur.fetchall())
        return [found.get(d) for d in digests]

    def _read_only(self) -> StorageError:
        return StorageError("the SQL view's object reader is read-only")

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        raise self._read_only()

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        wanted = list(digests)
        return {d for d, f in zip(wanted, self.get_frames(wanted), strict=True) if f is None}

    def iter_hashes(self) -> Iterator[bytes]:
        raise self._read_only()

    def delete_many(self, digests: Iterable[bytes]) -> int:
        raise self._read_only()

    def written_since(self, timestamp: float) -> set[bytes]:
        raise self._read_only()

    def stats(self) -> BlobStats:
        raise self._read_only()


class SqlTables:
    """The derived tables of one PostgreSQL store (its ``derived`` slot); see the module docstring."""

    def __init__(self, store: Any) -> None:
        self.schema: str = store.schema
        self.quoted = f'"{self.schema}"'
        self.sql = TableWriter(self.quoted)
        self._blobs = TransactionBlobs(self.quoted)
        self._reader = NetworkReader(self._blobs, store.refs, 50_000)
        self._lock = threading.Lock()

    def share_cache(self, cache: NodeCache) -> None:
        """Read tree nodes through ``cache`` (a network store's): the nodes its writes built are decoded there."""
        self._reader.cache = cache
        for tree in self._reader.trees.values():
            tree.cache = cache

    # ---- the slot

    def prepare(self, conn: Any) -> None:
        if tables_exist(conn, self.schema):
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (0x6362, self.schema))
            for statement in create_statements(self.quoted):
                conn.execute(statement)

    def apply(
        self, conn: Any, frames: Mapping[bytes, bytes], moves: Sequence[tuple[str, bytes | None, bytes | None]]
    ) -> None:
        parsed = [(parse_ref(name), old, new) for name, old, new in moves]
        if not any(p is not None for p, _, _ in parsed):
            return
        with self._lock:
            self._blobs.conn, self._blobs.frames = conn, frames
            try:
                dropped = {p[2] for p, _, new in parsed if p is not None and p[0] != "head" and new is None}
                for which, old, new in parsed:
                    if which is None:
                        continue
                    kind, network_id, snapshot_id = which
                    if kind == "head":
                        self._head_moved(conn, network_id, old, new, dropped)
                    elif new is not None:
                        self._add_snapshot_row(conn, network_id, new)
                    elif snapshot_id is not None:
                        conn.execute(self.sql.drop_snapshot, (snapshot_id,))
            finally:
                self._blobs.conn, self._blobs.frames = None, {}

    # ---- rebuilding

    def rebuild(self, conn: Any, network_id: str, head: bytes | None, snapshots: Mapping[str, bytes]) -> None:
        """Re-derive one network's rows whole (in the caller's transaction): its head and its snapshots."""
        with self._lock:
            self._blobs.conn, self._blobs.frames = conn, {}
            try:
                conn.execute(self.sql.forget_snapshots, (sql_text(network_id),))
                if head is not None:
                    self._derive_or_forget(conn, network_id, None, head)  # whole: deletes the network's rows first
                else:
                    self._forget(conn, network_id)
                for digest in snapshots.values():
                    self._add_snapshot_row(conn, network_id, digest)
            finally:
                self._blobs.conn, self._blobs.frames = None, {}

    # ---- rows

    def _forget(self, conn: Any, network_id: str) -> None:
        for statement in self.sql.forget:
            conn.execute(statement, (sql_text(network_id),))

    def _head_moved(
        self, conn: Any, network_id: str, old: bytes | None, new: bytes | None, dropped: set[str | None]
    ) -> None:
        net = sql_text(network_id)
        if new is None:
            self._forget(conn, network_id)
            conn.execute(self.sql.forget_snapshots, (net,))
            return
        with conn.cursor(binary=True) as cur:
            cur.execute(self.sql.head_of, (net,))
            row = cur.fetchone()
        derived_from = None if row is None else bytes(row[0])
        if derived_from == old:
            self._derive_or_forget(conn, network_id, old, new)
            return
        # left behind by a writer with tables off: derive this network whole, its snapshots too
        self._derive_or_forget(conn, network_id, None, new)
        conn.execute(self.sql.forget_snapshots, (net,))
        for name, digest in self.snapshot_refs(conn, network_id).items():
            if name.rsplit("/", 1)[-1] not in dropped:  # those this very commit deletes stay deleted
                self._add_snapshot_row(conn, network_id, digest)

    def snapshot_refs(self, conn: Any, network_id: str) -> dict[str, bytes]:
        """The network's snapshot refs (name → snapshot object), read in the caller's transaction."""
        from casstore.store.postgres.refs import like_prefix  # psycopg is there: this is a PostgreSQL store

        try:
            prefix = snapshots_prefix(network_id)
        except StorageError:  # a ref named like a head whose id the model refuses (raw ref use): none
            return {}
        with conn.cursor(binary=True) as cur:
            cur.execute(
                f"SELECT name, value FROM {self.quoted}.refs WHERE substr(name, 1, 1000) LIKE %s AND name LIKE %s",
                (like_prefix(prefix[:1000]), like_prefix(prefix)),
            )
            return {str(name): bytes(value) for name, value in cur.fetchall()}

    def _derive_or_forget(self, conn: Any, network_id: str, old: bytes | None, new: bytes) -> None:
        try:
            self._derive(conn, network_id, old, new)
        except (ObjectNotFound, CorruptObject, SerializationError):
            # a ref named like a head that names no network root (raw ref use): no network to show
            self._forget(conn, network_id)

    def _add_snapshot_row(self, conn: Any, network_id: str, digest: bytes) -> None:
        # a ref named like a snapshot that names no snapshot (raw ref use): no row
        with suppress(ObjectNotFound, CorruptObject, SerializationError):
            self._snapshot_added(conn, network_id, digest)

    def _derive(self, conn: Any, network_id: str, old: bytes | None, new: bytes) -> None:
        """The rows that differ between heads ``old`` and ``new``; with ``old`` ``None``, the network whole."""
        reader = self._reader
        net = sql_text(network_id)
        whole = old is None
        if whole:
            self._forget(conn, network_id)
        old_root = reader.network_root(old) if old is not None else None
        new_root = reader.network_root(new)
        trees = reader.trees
        changed: set[str] = set()
        dropped: list[str] = []
        for gid, (_, record) in changed_entries(
            trees["groups"], *tree_pair(reader, "groups", old_root, new_root)
        ).items():
            (changed.add(gid) if record is not None else dropped.append(gid))
        for key in changed_entries(trees["wires"], *tree_pair(reader, "wires", old_root, new_root)):
            changed.add(records.split_member_key(key)[0])
        changed.difference_update(dropped)
        contacts = changed_entries(trees["contacts"], *tree_pair(reader, "contacts", old_root, new_root))
        gone: list[list[str]] = []
        written: list[tuple[str, str, bytes]] = []
        for key, (_, record) in sorted(contacts.items()):
            gid, cid = records.split_member_key(key)
            if record is None:
                gone.append([gid, cid])
            else:
                written.append((gid, cid, record))
        # made as they are sent; for COPY, which holds the connection, what they read is read before
        fetch = reader.large_contents(record for _, _, record in written) if whole else reader.blobs.get
        kept = (contact_row(records.decode_contact(record, cid, gid, fetch)) for gid, cid, record in written)
        created, updated = records.root_times(new_root)
        metadata = network_to_json(
            NetworkState({}, new_root["current"], new_root["rootGroup"],
                         codec.decode_value(new_root["x"]) if "x" in new_root else {},
                         metadata=records.root_metadata(new_root), created_at=created, updated_at=updated)
        )  # fmt: skip
        del metadata["groups"]
        conn.execute(self.sql.put_network, (net, new, dumps(metadata)))
        if dropped:
            conn.execute(self.sql.drop_groups, (net, dumps(dropped)))
        if gone:
            conn.execute(self.sql.drop_contacts, (net, dumps(gone)))
        groups = self._group_rows(new_root, sorted(changed))
        if whole:  # each row's JSON made while COPY sends the ones before, which the server parses meanwhile
            copy_rows(conn, self.sql.copy_groups, ((net, sql_text(g), dumps(s), dumps(a), x and dumps(x))
                                                   for g, s, a, x in groups))  # fmt: skip
            copy_rows(conn, self.sql.copy_contacts, ((net, sql_text(g), sql_text(c), dumps(v), b, dumps(r))
                                                     for g, c, v, b, r in kept))  # fmt: skip
            return
        for rows, statement in ((groups, self.sql.put_groups), (kept, self.sql.put_contacts)):
            for chunk in batches(rows, ROWS_PER_STATEMENT):
                conn.execute(statement, (net, dumps(chunk)))

    def _group_rows(self, root: dict[str, Any], gids: list[str]) -> list[list[Any]]:
        """The rows of groups ``gids`` (their records and bodies read in one batch each)."""
        if not gids:
            return []
        reader = self._reader
        got = reader.trees["groups"].get_many(root["groups"], gids)
        present = [g for g in gids if g in got]
        bodies = reader.blobs.get_many([records.decode_group_record(got[g]) for g in present])
        rows = []
        for gid, body in zip(present, bodies, strict=True):
            wires = reader.trees["wires"].items_with_prefix(root["wires"], records.member_prefix(gid))
            rows.append(group_row(reader.assemble(gid, body, (), wires)))
        return rows

    def _snapshot_added(self, conn: Any, network_id: str, digest: bytes) -> None:
        snap = records.decode_snapshot(self._reader.blobs.get(digest))
        conn.execute(
            self.sql.put_snapshot,
            (codec.format_id(digest), sql_text(network_id), snap["label"] and sql_text(snap["label"]),
             snap["time"], codec.format_id(snap["root"]), int(snap["size"])),
        )  # fmt: skip
