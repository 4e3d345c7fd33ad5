"""The Merkle network model: Bassline's ``NetworkStorage`` interface on prolly trees.

A network's state is one root object (see :mod:`casstore.model.records`) named
by the ref ``networks/<id>/head``.  Every write reads the head, builds the new
root (rewriting only the nodes on changed paths), writes the new objects
children-first, then moves the head by compare-and-swap; on a conflict the
write is re-applied to the new head, so concurrent writers never lose an
update.  A snapshot is a small commit object plus the ref
``networks/<id>/snapshots/<snapshot id>``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from casstore import codec
from casstore.errors import (
    GroupNotFound,
    InvalidId,
    NetworkNotFound,
    RefConflict,
    SerializationError,
    SnapshotNotFound,
    StorageError,
)
from casstore.model import records
from casstore.model.types import (
    Change,
    Contact,
    GroupState,
    NetworkState,
    SnapshotInfo,
    Wire,
    check_id,
)
from casstore.prolly import Edit, NodeCache, ProllyTree
from casstore.store.base import ObjectStore, PendingWrites, RefUpdate

log = logging.getLogger("casstore")

MAX_ATTEMPTS = 64
#: Pending objects are written early (children first) once they pass this many bytes, bounding memory on import.
FLUSH_BYTES = 32 << 20
#: Each tree kind's nominal leaf-value size in the chunking rule (part of the format; see docs/format.md):
#: about the typical encoded record, so that leaves come out near the 4 KB target.
VALUE_HINTS = {"groups": 128, "contacts": 128, "wires": 48, "index": 1}
TREE_KINDS = tuple(VALUE_HINTS)


def make_tree(store: NetworkStore, kind: str, pending: PendingWrites | None = None) -> ProllyTree:
    return ProllyTree(store.blobs, kind, store.cache, pending, value_hint=VALUE_HINTS[kind])


def quote_network_id(network_id: str) -> str:
    """A network id as one safe ref-name component (``%``-escaped; never starts with a dot)."""
    check_id(network_id, "network_id")
    text = quote(network_id, safe="")
    return "%2E" + text[1:] if text.startswith(".") else text


def head_ref(network_id: str) -> str:
    return f"networks/{quote_network_id(network_id)}/head"


def snapshots_prefix(network_id: str) -> str:
    return f"networks/{quote_network_id(network_id)}/snapshots/"


def tip_ref(network_id: str) -> str:
    return f"networks/{quote_network_id(network_id)}/snapshot-tip"


# ---------------------------------------------------------------- prepared groups and transactions


@dataclass
class _PreparedGroup:
    """A group encoded in full (for save_group_state / save_network_state), reusable across retries."""

    body: dict[str, Any]
    body_bytes: bytes
    contacts_root: bytes
    wires_root: bytes
    size: int
    objects: PendingWrites


@dataclass
class _GroupEdit:
    """One group's pending changes. Its body is read only when its own fields change."""

    gid: str
    old_record: bytes | None
    old_body_digest: bytes | None
    old_size: int
    contacts_root: bytes
    wires_root: bytes
    size: int
    body: dict[str, Any] | None = None
    body_changed: bool = False
    replaced: bool = False
    deleted: bool = False
    contact_edits: dict[str, Edit] = field(default_factory=dict)
    #: contact ids in the order their content was first set, and those the update found absent (new contacts)
    content_order: list[str] = field(default_factory=list)
    created: set[str] = field(default_factory=set)
    results: dict[str, bytes] = field(default_factory=dict)


class _Tx:
    """Changes to one network on top of one head; :meth:`commit` writes the objects and returns the new root."""

    def __init__(self, store: NetworkStore, network_id: str, head: bytes | None) -> None:
        self.store = store
        self.network_id = network_id
        self.pending = PendingWrites()
        self.trees = {kind: make_tree(store, kind, self.pending) for kind in TREE_KINDS}
        if head is None:  # empty roots are written only if the commit leaves them empty (_write_root)
            self.groups_root = self.trees["groups"].empty(write=False)
            self.index_root = self.trees["index"].empty(write=False)
            self.current, self.root_group, self.size = "root", "root", 0
        else:
            root = store.network_root(head)
            self.groups_root, self.index_root = root["groups"], root["index"]
            self.current, self.root_group, self.size = root["current"], root["rootGroup"], root["size"]
        self.groups: dict[str, _GroupEdit] = {}
        self.replace_all: list[tuple[str, _PreparedGroup]] | None = None

    def group(self, gid: str) -> _GroupEdit | None:
        if gid in self.groups:
            edit = self.groups[gid]
            return None if edit.deleted else edit
        if self.replace_all is not None:
            return None
        record = self.trees["groups"].get(self.groups_root, gid)
        if record is None:
            return None
        body_digest, contacts_root, wires_root, size = records.decode_group_record(record)
        edit = _GroupEdit(gid, record, body_digest, size, contacts_root, wires_root, size)
        self.groups[gid] = edit
        return edit

    def old_body(self, edit: _GroupEdit) -> dict[str, Any] | None:
        if edit.old_body_digest is None:
            return None
        body: dict[str, Any] = self.store.body(edit.old_body_digest)
        return body

    # ---- operations

    def set_content(self, gid: str, cid: str, data: bytes) -> None:
        edit = self.group(gid)
        if edit is None:
            raise GroupNotFound(f"group {gid!r} not found in network {self.network_id!r}")
        prior = edit.contact_edits.get(cid)
        pending = self.pending

        def apply(old: bytes | None) -> bytes:
            if prior is not None:
                old = prior(old) if callable(prior) else prior
            if old is None:
                edit.created.add(cid)
                record = records.encode_contact(Contact(cid, gid), cid, gid, pending, content=data)
            else:
                record = records.with_content(old, data, pending)
            edit.results[cid] = record
            return record

        if cid not in edit.contact_edits:
            edit.content_order.append(cid)
        edit.contact_edits[cid] = apply

    def put_group(self, gid: str, prepared: _PreparedGroup) -> None:
        old = self.group(gid)
        self.pending.absorb(prepared.objects)
        self.groups[gid] = _GroupEdit(
            gid,
            old.old_record if old else None,
            old.old_body_digest if old else None,
            old.old_size if old else 0,
            prepared.contacts_root,
            prepared.wires_root,
            prepared.size,
            body=prepared.body,
            body_changed=True,
            replaced=True,
        )

    def delete_group(self, gid: str) -> None:
        edit = self.group(gid)
        if edit is not None:
            edit.deleted = True

    def replace_network(self, groups: list[tuple[str, _PreparedGroup]], current: str, root_group: str) -> None:
        self.replace_all = groups
        self.groups.clear()
        self.current, self.root_group = current, root_group

    # ---- commit

    def changed_groups(self) -> list[str]:
        if self.replace_all is not None:
            return [gid for gid, _ in self.replace_all]
        return list(self.groups)

    def commit(self) -> bytes:
        if self.replace_all is not None:
            return self._commit_replacement(self.replace_all)
        group_edits: dict[str, Edit] = {}
        index_edits: dict[str, Edit] = {}
        size = self.size
        for gid, edit in self.groups.items():
            if edit.deleted:
                if edit.old_record is not None:
                    group_edits[gid] = None
                    size -= edit.old_size
                    old_body = self.old_body(edit)
                    index_edits.update(dict.fromkeys(records.index_keys(gid, (old_body or {}).get("a", {}))))
                continue
            record, group_size, index_change = self._commit_group(edit)
            if record == edit.old_record:
                continue
            group_edits[gid] = record
            size += group_size - edit.old_size
            index_edits.update(index_change)
        groups_root, _ = self.trees["groups"].update(self.groups_root, group_edits)
        index_root, _ = self.trees["index"].update(self.index_root, index_edits)
        return self._write_root(groups_root, index_root, size)

    def _commit_group(self, edit: _GroupEdit) -> tuple[bytes, int, dict[str, Edit]]:
        gid = edit.gid
        group_size = edit.size
        if edit.contact_edits:
            edit.contacts_root, old_values = self.trees["contacts"].update(edit.contacts_root, edit.contact_edits)
            for key, new in edit.results.items():
                group_size += records.contact_entry_size(key, new)
            for key, old in old_values.items():
                group_size -= records.contact_entry_size(key, old)
        created = [cid for cid in edit.content_order if cid in edit.created]
        index_change: dict[str, Edit] = {}
        if created or edit.body_changed:
            old_body = None if edit.replaced and edit.old_body_digest is None else self.old_body(edit)
            body = edit.body if edit.body is not None else dict(old_body or {})
            if created:
                body = {**body, "c": [*body.get("c", []), *created]}
            body_bytes = records.encode_body(body, gid)
            body_digest = codec.hash_bytes(body_bytes)
            self.pending.add_hashed(body_digest, body_bytes)
            if not edit.replaced and old_body is not None:
                group_size += len(body_bytes) - len(records.encode_body(old_body, gid))
            old_keys = records.index_keys(gid, old_body.get("a", {})) if old_body else set()
            new_keys = records.index_keys(gid, body.get("a", {}))
            index_change.update(dict.fromkeys(old_keys - new_keys))
            index_change.update(dict.fromkeys(new_keys - old_keys, records.NULL))
        else:
            assert edit.old_body_digest is not None
            body_digest = edit.old_body_digest
        record = records.encode_group_record(body_digest, edit.contacts_root, edit.wires_root, group_size)
        return record, group_size, index_change

    def _commit_replacement(self, groups: list[tuple[str, _PreparedGroup]]) -> bytes:
        groups_tree, index_tree = self.trees["groups"], self.trees["index"]
        entries = []
        index: set[str] = set()
        size = 0
        for gid, prepared in sorted(groups, key=lambda item: item[0]):
            self.pending.absorb(prepared.objects)
            body_digest = codec.hash_bytes(prepared.body_bytes)
            self.pending.add_hashed(body_digest, prepared.body_bytes)
            record = records.encode_group_record(
                body_digest, prepared.contacts_root, prepared.wires_root, prepared.size
            )
            entries.append((gid, record))
            index.update(records.index_keys(gid, prepared.body.get("a", {})))
            size += prepared.size
        groups_root = groups_tree.build(entries)
        index_root = index_tree.build((key, records.NULL) for key in sorted(index))
        return self._write_root(groups_root, index_root, size)

    def _write_root(self, groups_root: bytes, index_root: bytes, size: int) -> bytes:
        """The new network root's digest; it and everything new stay in :attr:`pending` for the caller."""
        for kind, root in (("groups", groups_root), ("index", index_root)):
            if root == self.trees[kind].empty(write=False):
                self.trees[kind].empty()
        data = records.encode_network_root(groups_root, index_root, self.current, self.root_group, size)
        return self.pending.add(data)


# ---------------------------------------------------------------- the store


class NetworkStore(ObjectStore):
    """Bassline's ``NetworkStorage`` over a blob+ref store; what :func:`casstore.open_store` returns.

    Thread-safe; several processes may share a persistent store.  ``.blobs`` and
    ``.refs`` are the underlying protocols.
    """

    def __init__(self, objects: ObjectStore, cache_nodes: int = 200_000) -> None:
        self.objects = objects
        self.blobs = objects.blobs
        self.refs = objects.refs
        self.url = objects.url
        self.cache = NodeCache(cache_nodes)
        self._readers = {kind: make_tree(self, kind) for kind in TREE_KINDS}
        self._roots: dict[bytes, dict[str, Any]] = {}
        self._bodies: dict[bytes, dict[str, Any]] = {}
        self._subscribers: dict[str, list[Callable[[GroupState], None]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.objects.close()

    # ---------------------------------------------------------------- plumbing

    def body(self, digest: bytes) -> dict[str, Any]:
        """A group body (decoded; cached, bodies are immutable)."""
        body = self._bodies.get(digest)
        if body is None:
            body = codec.decode_value(self.blobs.get(digest))
            if len(self._bodies) > 100_000:
                self._bodies.clear()
            self._bodies[digest] = body
        return body

    def network_root(self, digest: bytes) -> dict[str, Any]:
        root = self._roots.get(digest)
        if root is None:
            root = records.decode_network_root(self.blobs.get(digest))
            if len(self._roots) > 1024:
                self._roots.clear()
            self._roots[digest] = root
        return root

    def _head(self, network_id: str) -> dict[str, Any] | None:
        head = self.refs.get(head_ref(network_id))
        return None if head is None else self.network_root(head)

    def _write(self, network_id: str, apply: Callable[[_Tx], None], create: bool) -> None:
        ref = head_ref(network_id)
        for attempt in range(MAX_ATTEMPTS):
            head = self.refs.get(ref)
            if head is None and not create:
                raise NetworkNotFound(f"network {network_id!r} not found")
            tx = _Tx(self, network_id, head)
            apply(tx)
            new_head = tx.commit()
            if new_head == head:
                return
            try:  # the new objects, then the head: one transaction where the backend has them
                self.objects.commit(tx.pending.frames(), [RefUpdate(ref, head, new_head)])
            except RefConflict:
                time.sleep(random.uniform(0, 0.002 * min(attempt + 1, 20)))
                continue
            self._notify(network_id, tx.changed_groups())
            return
        raise StorageError(f"network {network_id!r}: gave up after {MAX_ATTEMPTS} conflicting concurrent writes")

    def _prepare_group(self, gid: str, state: GroupState) -> _PreparedGroup:
        check_id(gid, "group_id")
        objects = PendingWrites()
        body = records.group_fields(state.group, gid)
        body_bytes = records.encode_body(body, gid)
        contacts_tree = make_tree(self, "contacts", objects)
        wires_tree = make_tree(self, "wires", objects)
        size = len(body_bytes)
        contact_entries = []
        for cid in sorted(state.contacts):
            check_id(cid, "contact id")
            contact = state.contacts[cid]
            if not isinstance(contact, Contact):
                raise SerializationError(f"contacts[{cid!r}] is a {type(contact).__name__}, not a Contact", cid)
            try:
                record = records.encode_contact(contact, cid, gid, objects)
            except SerializationError as exc:
                path = f"groups[{gid!r}].contacts[{cid!r}].{exc.path}"
                raise SerializationError(f"{path}: {str(exc).split(': ', 1)[-1]}", path) from None
            size += records.contact_entry_size(cid, record)
            contact_entries.append((cid, record))
        wire_entries = []
        for wid in sorted(state.wires):
            check_id(wid, "wire id")
            wire = state.wires[wid]
            if not isinstance(wire, Wire):
                raise SerializationError(f"wires[{wid!r}] is a {type(wire).__name__}, not a Wire", wid)
            record = records.encode_wire(wire, wid, gid)
            size += len(wid) + len(record)
            wire_entries.append((wid, record))
        contacts_root = contacts_tree.build(contact_entries)
        wires_root = wires_tree.build(wire_entries)
        return _PreparedGroup(body, body_bytes, contacts_root, wires_root, size, objects)

    # ---------------------------------------------------------------- writes

    def save_contact_content(self, network_id: str, group_id: str, contact_id: str, content: Any) -> None:
        check_id(group_id, "group_id")
        check_id(contact_id, "contact_id")
        data = records.content_bytes(content)
        self._write(network_id, lambda tx: tx.set_content(group_id, contact_id, data), create=False)

    def save_group_state(self, network_id: str, group_id: str, state: GroupState) -> None:
        prepared = self._prepare_group(group_id, state)
        self._write(network_id, lambda tx: tx.put_group(group_id, prepared), create=True)

    def delete_group(self, network_id: str, group_id: str) -> None:
        check_id(group_id, "group_id")
        if self._head(network_id) is not None:
            self._write(network_id, lambda tx: tx.delete_group(group_id), create=False)

    def save_network_state(self, network_id: str, state: NetworkState) -> None:
        prepared, current, root_group = self._prepare_network(state)
        self._write(network_id, lambda tx: tx.replace_network(prepared, current, root_group), create=True)

    def _prepare_network(self, state: NetworkState) -> tuple[list[tuple[str, _PreparedGroup]], str, str]:
        if not isinstance(state, NetworkState):
            raise SerializationError(f"expected a NetworkState, got {type(state).__name__}")
        prepared: list[tuple[str, _PreparedGroup]] = []
        unflushed = PendingWrites()
        for gid, group_state in state.groups.items():
            group = self._prepare_group(gid, group_state)
            prepared.append((gid, group))
            unflushed.absorb(group.objects)  # written here, whole groups only: children stay ahead of parents
            if unflushed.nbytes > FLUSH_BYTES:
                unflushed.write_to(self.blobs)
        unflushed.write_to(self.blobs)
        return prepared, state.current_group_id, state.root_group_id

    @contextmanager
    def batch(self, network_id: str) -> Iterator[Batch]:
        """Collect writes to one network and apply them atomically (one new head) at exit."""
        batch = Batch(self, network_id)
        yield batch
        batch.apply()

    def delete_network(self, network_id: str) -> None:
        ref = head_ref(network_id)
        for name, value in self.refs.list(snapshots_prefix(network_id)).items():
            self._delete_ref(name, value)
        for name in (tip_ref(network_id), ref):
            current = self.refs.get(name)
            if current is not None:
                self._delete_ref(name, current)

    def _delete_ref(self, name: str, value: bytes) -> None:
        while True:
            try:
                self.refs.delete(name, value)
                return
            except RefConflict:
                current = self.refs.get(name)
                if current is None:
                    return
                value = current

    # ---------------------------------------------------------------- reads

    def list_networks(self) -> list[str]:
        return sorted(
            unquote(name[len("networks/") : -len("/head")])
            for name in self.refs.list("networks/")
            if name.endswith("/head") and name.count("/") == 2
        )

    def exists(self, network_id: str) -> bool:
        return self.refs.get(head_ref(network_id)) is not None

    def load_contact_content(self, network_id: str, group_id: str, contact_id: str) -> Any:
        root = self._head(network_id)
        if root is None:
            return None
        record = self._readers["groups"].get(root["groups"], group_id)
        if record is None:
            return None
        _, contacts_root, _, _ = records.decode_group_record(record)
        contact = self._readers["contacts"].get(contacts_root, contact_id)
        if contact is None:
            return None
        return records.record_content(codec.decode(contact), self.blobs.get)

    def load_group_state(self, network_id: str, group_id: str) -> GroupState | None:
        root = self._head(network_id)
        if root is None:
            return None
        record = self._readers["groups"].get(root["groups"], group_id)
        return None if record is None else self._group_states([(group_id, record)])[group_id]

    def _group_states(self, group_records: list[tuple[str, bytes]]) -> dict[str, GroupState]:
        decoded = [(gid, records.decode_group_record(record)) for gid, record in group_records]
        bodies = self.blobs.get_many([d[0] for _, d in decoded])
        fetch = self.blobs.get
        out = {}
        for (gid, (_, contacts_root, wires_root, _)), body in zip(decoded, bodies, strict=True):
            group = records.decode_group(codec.decode_value(body), gid)
            contacts = {
                k: records.decode_contact(v, k, gid, fetch) for k, v in self._readers["contacts"].items(contacts_root)
            }
            wires = {k: records.decode_wire(v, k, gid) for k, v in self._readers["wires"].items(wires_root)}
            out[gid] = GroupState(group, contacts, wires)
        return out

    def load_network_state(self, network_id: str) -> NetworkState | None:
        head = self.refs.get(head_ref(network_id))
        return None if head is None else self._state_at(head)

    def _state_at(self, head: bytes) -> NetworkState:
        root = self.network_root(head)
        entries = list(self._readers["groups"].items(root["groups"]))
        groups: dict[str, GroupState] = {}
        for start in range(0, len(entries), 1024):
            groups.update(self._group_states(entries[start : start + 1024]))
        return NetworkState(groups, root["current"], root["rootGroup"])

    def query_groups(
        self,
        network_id: str,
        *,
        attributes: dict[str, Any] | None = None,
        author: str | None = None,
        tags: list[str] | None = None,
        type: str | None = None,
    ) -> list[GroupState]:
        """Groups matching every given filter, in group-id order, found through the attribute index."""
        root = self._head(network_id)
        if root is None:
            return []
        index = self._readers["index"]

        def scan(prefix: str) -> set[str]:
            return {key[len(prefix) :] for key, _ in index.items(root["index"], prefix, prefix + "\uffff")}

        candidates: set[str] | None = None

        def narrow(found: set[str]) -> None:
            nonlocal candidates
            candidates = found if candidates is None else candidates & found

        for name, value in (attributes or {}).items():
            narrow(scan(records.attribute_prefix(name, value)))
        for name, wanted in (("author", author), ("type", type)):
            if wanted is not None:
                narrow(
                    scan(records.attribute_prefix(f"bassline.{name}", wanted))
                    | scan(records.attribute_prefix(name, wanted))
                )
        for tag in tags or []:
            narrow(scan(records.tag_prefix(tag)))
        groups = self._readers["groups"]
        if candidates is None:
            found = list(groups.items(root["groups"]))
        else:
            got = groups.get_many(root["groups"], candidates)
            found = sorted(got.items())
        states = self._group_states(found)
        return [state for state in states.values() if _matches(state.group.attributes, attributes, author, tags, type)]

    # ---------------------------------------------------------------- snapshots

    def save_snapshot(self, network_id: str, label: str | None = None) -> str:
        head = self.refs.get(head_ref(network_id))
        if head is None:
            raise NetworkNotFound(f"network {network_id!r} not found")
        tip = self.refs.get(tip_ref(network_id))
        size = self.network_root(head)["size"]
        data = records.encode_snapshot(network_id, head, None if tip is None else codec.format_id(tip), label, size)
        pending = PendingWrites()
        digest = pending.add(data)
        snapshot_id = codec.format_id(digest)
        # the tip is only a hint for the next parent: a concurrent snapshot may have moved it
        updates = [
            RefUpdate(snapshots_prefix(network_id) + snapshot_id, None, digest),
            RefUpdate(tip_ref(network_id), tip, digest, required=False),
        ]
        self.objects.commit(pending.frames(), updates)
        return snapshot_id

    def _snapshot(self, network_id: str, snapshot_id: str) -> tuple[bytes, dict[str, Any]]:
        try:
            digest = codec.parse_id(snapshot_id)
        except InvalidId:
            raise SnapshotNotFound(f"{snapshot_id!r} is not a snapshot id") from None
        name = snapshots_prefix(network_id) + codec.format_id(digest)
        if self.refs.get(name) != digest:
            raise SnapshotNotFound(f"snapshot {snapshot_id} of network {network_id!r} not found")
        return digest, records.decode_snapshot(self.blobs.get(digest))

    def load_snapshot(self, network_id: str, snapshot_id: str) -> NetworkState:
        _, snapshot = self._snapshot(network_id, snapshot_id)
        return self._state_at(snapshot["root"])

    def list_snapshots(self, network_id: str) -> list[SnapshotInfo]:
        refs = self.refs.list(snapshots_prefix(network_id))
        digests = list(refs.values())
        infos = []
        for digest, data in zip(digests, self.blobs.get_many(digests), strict=True):
            snap = records.decode_snapshot(data)
            infos.append(
                SnapshotInfo(
                    id=codec.format_id(digest),
                    network_id=network_id,
                    label=snap["label"],
                    created_at=snap["time"],
                    size=snap["size"],
                    root=codec.format_id(snap["root"]),
                )
            )
        infos.sort(key=lambda info: (info.created_at, info.id), reverse=True)
        return infos

    def delete_snapshot(self, network_id: str, snapshot_id: str) -> None:
        try:
            digest = codec.parse_id(snapshot_id)
        except InvalidId:
            return
        name = snapshots_prefix(network_id) + codec.format_id(digest)
        if self.refs.get(name) is not None:
            self._delete_ref(name, digest)

    # ---------------------------------------------------------------- diff

    def _root_of(self, network_id: str, which: str | None) -> dict[str, Any] | None:
        if which is None:
            return self._head(network_id)
        _, snapshot = self._snapshot(network_id, which)
        return self.network_root(snapshot["root"])

    def diff(self, network_id: str, a: str | None, b: str | None) -> list[Change]:
        """Changes from state ``a`` to state ``b`` (snapshot ids, or ``None`` for the current state)."""
        old_root, new_root = self._root_of(network_id, a), self._root_of(network_id, b)
        empty = self._readers["groups"].empty()
        old_groups = old_root["groups"] if old_root else empty
        new_groups = new_root["groups"] if new_root else empty
        changes: list[Change] = []
        for gid, old, new in self._readers["groups"].diff(old_groups, new_groups):
            changes.extend(self._group_changes(gid, old, new))
        return changes

    def _group_changes(self, gid: str, old: bytes | None, new: bytes | None) -> Iterator[Change]:
        empty_contacts, empty_wires = self._readers["contacts"].empty(), self._readers["wires"].empty()
        o = records.decode_group_record(old) if old else None
        n = records.decode_group_record(new) if new else None
        old_body = codec.decode_value(self.blobs.get(o[0])) if o else None
        new_body = codec.decode_value(self.blobs.get(n[0])) if n else None
        if o is None and new_body is not None:
            yield Change("group-added", gid, gid, None, records.decode_group(new_body, gid))
        elif n is None and old_body is not None:
            yield Change("group-removed", gid, gid, records.decode_group(old_body, gid), None)
        elif (
            old_body is not None
            and new_body is not None
            and records.own_fields(old_body) != records.own_fields(new_body)
        ):
            yield Change(
                "group-updated", gid, gid, records.decode_group(old_body, gid), records.decode_group(new_body, gid)
            )
        fetch = self.blobs.get
        for key, before, after in self._readers["contacts"].diff(
            o[1] if o else empty_contacts, n[1] if n else empty_contacts
        ):
            old_c = records.decode_contact(before, key, gid, fetch) if before else None
            new_c = records.decode_contact(after, key, gid, fetch) if after else None
            kind = "contact-added" if old_c is None else "contact-removed" if new_c is None else "contact-updated"
            yield Change(kind, gid, key, old_c, new_c)  # type: ignore[arg-type]
        for key, before, after in self._readers["wires"].diff(o[2] if o else empty_wires, n[2] if n else empty_wires):
            old_w = records.decode_wire(before, key, gid) if before else None
            new_w = records.decode_wire(after, key, gid) if after else None
            kind = "wire-added" if old_w is None else "wire-removed" if new_w is None else "wire-updated"
            yield Change(kind, gid, key, old_w, new_w)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- subscribe

    def subscribe(self, path: str, callback: Callable[[GroupState], None]) -> Callable[[], None]:
        """Call ``callback(GroupState)`` after each committed change to ``"net/group"`` (or any group of ``"net"``)."""
        with self._lock:
            self._subscribers.setdefault(path, []).append(callback)

        def unsubscribe() -> None:
            with self._lock:
                listeners = self._subscribers.get(path, [])
                if callback in listeners:
                    listeners.remove(callback)

        return unsubscribe

    def _notify(self, network_id: str, group_ids: list[str]) -> None:
        with self._lock:
            if not self._subscribers:
                return
            wanted = {
                gid: [*self._subscribers.get(network_id, []), *self._subscribers.get(f"{network_id}/{gid}", [])]
                for gid in group_ids
            }
        wanted = {gid: cbs for gid, cbs in wanted.items() if cbs}
        for gid, callbacks in wanted.items():
            state = self.load_group_state(network_id, gid)
            if state is None:
                continue
            for callback in callbacks:
                try:
                    callback(state)
                except Exception:
                    log.exception("subscriber for %s/%s raised", network_id, gid)


def _matches(
    attrs: dict[str, Any],
    attributes: dict[str, Any] | None,
    author: str | None,
    tags: list[str] | None,
    type: str | None,
) -> bool:
    if attributes and any(name not in attrs or not _same(attrs[name], v) for name, v in attributes.items()):
        return False
    for name, wanted in (("author", author), ("type", type)):
        if wanted is not None and wanted not in (attrs.get(f"bassline.{name}"), attrs.get(name)):
            return False
    if tags:
        have: set[str] = set()
        for name in records.TAG_ATTRIBUTES:
            value = attrs.get(name)
            if isinstance(value, list):
                have.update(t for t in value if isinstance(t, str))
        if not set(tags) <= have:
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    return codec.encode_value(a) == codec.encode_value(b)


class Batch:
    """Writes collected by :meth:`NetworkStore.batch`; each is validated and encoded when called."""

    def __init__(self, store: NetworkStore, network_id: str) -> None:
        self.store = store
        self.network_id = network_id
        self._ops: list[Callable[[_Tx], None]] = []
        self._create = False

    def save_contact_content(self, network_id: str, group_id: str, contact_id: str, content: Any) -> None:
        self._same_network(network_id)
        check_id(group_id, "group_id")
        check_id(contact_id, "contact_id")
        data = records.content_bytes(content)
        self._ops.append(lambda tx: tx.set_content(group_id, contact_id, data))

    def save_group_state(self, network_id: str, group_id: str, state: GroupState) -> None:
        self._same_network(network_id)
        prepared = self.store._prepare_group(group_id, state)
        self._ops.append(lambda tx: tx.put_group(group_id, prepared))
        self._create = True

    def delete_group(self, network_id: str, group_id: str) -> None:
        self._same_network(network_id)
        check_id(group_id, "group_id")
        self._ops.append(lambda tx: tx.delete_group(group_id))

    def save_network_state(self, network_id: str, state: NetworkState) -> None:
        self._same_network(network_id)
        prepared, current, root_group = self.store._prepare_network(state)
        self._ops.append(lambda tx: tx.replace_network(prepared, current, root_group))
        self._create = True

    def _same_network(self, network_id: str) -> None:
        if network_id != self.network_id:
            raise SerializationError(f"this batch writes network {self.network_id!r}, not {network_id!r}")

    def apply(self) -> None:
        if not self._ops:
            return
        ops = list(self._ops)

        def run(tx: _Tx) -> None:
            for op in ops:
                op(tx)

        self.store._write(self.network_id, run, create=self._create)
