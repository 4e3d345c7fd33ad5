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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
from casstore.model.refs import head_ref, network_heads, snapshots_prefix, tip_ref
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

if TYPE_CHECKING:
    from casstore.sync import SyncReport

log = logging.getLogger("casstore")

MAX_ATTEMPTS = 64
#: On import, large contents (leaves: nothing they link to) are written early once they pass this many bytes;
#: the tree nodes follow in the commit.
FLUSH_BYTES = 32 << 20
#: Each tree kind's nominal leaf-value size in the chunking rule (part of the format; see docs/format.md):
#: about the typical encoded record, so that leaves come out near the 4 KB target.
VALUE_HINTS = {"groups": 48, "contacts": 128, "wires": 48, "index": 1}
TREE_KINDS = tuple(VALUE_HINTS)


def make_tree(store: NetworkStore, kind: str, pending: PendingWrites | None = None) -> ProllyTree:
    return ProllyTree(store.blobs, kind, store.cache, pending, value_hint=VALUE_HINTS[kind])


# ---------------------------------------------------------------- prepared groups and transactions


@dataclass
class _PreparedGroup:
    """A group encoded in full (for save_group_state / save_network_state), reusable across retries."""

    body: dict[str, Any]
    body_bytes: bytes
    contacts: list[tuple[str, bytes]]  # (member key, record), sorted
    wires: list[tuple[str, bytes]]
    size: int
    objects: PendingWrites  # large contents


@dataclass
class _GroupEdit:
    """One group's pending changes. Its body is read only when its own fields change."""

    gid: str
    old_record: bytes | None
    old_body_digest: bytes | None
    body: dict[str, Any] | None = None
    body_changed: bool = False
    deleted: bool = False
    #: contact ids in the order their content was first set, and those found absent (new contacts)
    content_order: list[str] = field(default_factory=list)
    created: set[str] = field(default_factory=set)


_NO_EDIT = object()


class _Tx:
    """Changes to one network on top of one head; :meth:`commit` builds the new root, leaving every new
    object in :attr:`pending` for the caller to write."""

    def __init__(self, store: NetworkStore, network_id: str, head: bytes | None) -> None:
        self.store = store
        self.network_id = network_id
        self.pending = PendingWrites()
        self.trees = {kind: make_tree(store, kind, self.pending) for kind in TREE_KINDS}
        if head is None:  # empty roots are written only if the commit leaves them empty (_write_root)
            self.roots = {kind: tree.empty(write=False) for kind, tree in self.trees.items()}
            self.current, self.root_group, self.size = "root", "root", 0
        else:
            root = store.network_root(head)
            self.roots = {kind: root[kind] for kind in TREE_KINDS}
            self.current, self.root_group, self.size = root["current"], root["rootGroup"], root["size"]
        self.groups: dict[str, _GroupEdit] = {}
        self.member_edits: dict[str, dict[str, Edit]] = {"contacts": {}, "wires": {}}
        self.results: dict[str, bytes] = {}  # member key → record an edit function produced
        self.replace_all: list[tuple[str, _PreparedGroup]] | None = None

    def group(self, gid: str) -> _GroupEdit | None:
        if gid in self.groups:
            edit = self.groups[gid]
            return None if edit.deleted else edit
        if self.replace_all is not None:
            return None
        record = self.trees["groups"].get(self.roots["groups"], gid)
        if record is None:
            return None
        edit = _GroupEdit(gid, record, records.decode_group_record(record))
        self.groups[gid] = edit
        return edit

    def prefetch_groups(self, gids: Iterable[str]) -> None:
        """Look up many groups in one pass over the groups tree (a batch's groups, before its edits)."""
        if self.replace_all is not None:
            return
        wanted = [gid for gid in set(gids) if gid not in self.groups]
        for gid, record in self.trees["groups"].get_many(self.roots["groups"], wanted).items():
            self.groups[gid] = _GroupEdit(gid, record, records.decode_group_record(record))

    def old_body(self, edit: _GroupEdit) -> dict[str, Any] | None:
        return None if edit.old_body_digest is None else self.store.body(edit.old_body_digest)

    # ---- operations

    def set_content(self, gid: str, cid: str, data: bytes) -> None:
        edit = self.group(gid)
        if edit is None:
            raise GroupNotFound(f"group {gid!r} not found in network {self.network_id!r}")
        key = records.member_key(gid, cid)
        edits = self.member_edits["contacts"]
        prior = edits.get(key, _NO_EDIT)
        pending, results = self.pending, self.results

        def apply(old: bytes | None) -> bytes:
            if prior is not _NO_EDIT:
                old = prior(old) if callable(prior) else prior  # type: ignore[assignment]
            if old is None:
                edit.created.add(cid)
                record = records.encode_contact(Contact(cid, gid), cid, gid, pending, content=data)
            else:
                record = records.with_content(old, data, pending)
            results[key] = record
            return record

        if prior is _NO_EDIT:
            edit.content_order.append(cid)
        edits[key] = apply

    def _clear_members(self, gid: str) -> None:
        """Delete every contact and wire of a group (pending edits included)."""
        prefix = records.member_prefix(gid)
        for kind, edits in self.member_edits.items():
            for key in [k for k in edits if k.startswith(prefix)]:
                del edits[key]
            for key, _ in self.trees[kind].items_with_prefix(self.roots[kind], prefix):
                edits[key] = None

    def put_group(self, gid: str, prepared: _PreparedGroup) -> None:
        old = self.group(gid)
        self._clear_members(gid)
        self.member_edits["contacts"].update(prepared.contacts)
        self.member_edits["wires"].update(prepared.wires)
        self.pending.absorb(prepared.objects)
        self.groups[gid] = _GroupEdit(
            gid,
            old.old_record if old else None,
            old.old_body_digest if old else None,
            body=prepared.body,
            body_changed=True,
        )

    def delete_group(self, gid: str) -> None:
        edit = self.group(gid)
        if edit is not None:
            self._clear_members(gid)
            edit.deleted = True

    def replace_network(self, groups: list[tuple[str, _PreparedGroup]], current: str, root_group: str) -> None:
        self.replace_all = groups
        self.groups.clear()
        for edits in self.member_edits.values():
            edits.clear()
        self.current, self.root_group = current, root_group

    # ---- commit

    def changed_groups(self) -> list[str]:
        if self.replace_all is not None:
            return [gid for gid, _ in self.replace_all]
        return list(self.groups)

    def commit(self) -> bytes:
        if self.replace_all is not None:
            return self._commit_replacement(self.replace_all)
        size = self.size
        for kind, edits in self.member_edits.items():
            if not edits:
                continue
            self.roots[kind], old_values = self.trees[kind].update(self.roots[kind], edits)
            entry_size = records.contact_entry_size if kind == "contacts" else records.wire_entry_size
            for key, change in edits.items():
                new = self.results.get(key) if callable(change) else change
                if new is not None:
                    size += entry_size(key, new)
            for key, old in old_values.items():
                size -= entry_size(key, old)
        group_edits: dict[str, Edit] = {}
        index_edits: dict[str, Edit] = {}
        for gid, edit in self.groups.items():
            created = [cid for cid in edit.content_order if cid in edit.created]
            if not (edit.deleted or edit.body_changed or created):
                continue
            old_body = self.old_body(edit)
            old_keys = records.index_keys(gid, old_body.get("a", {})) if old_body else set()
            if old_body is not None:
                size -= len(records.encode_body(old_body, gid))
            if edit.deleted:
                group_edits[gid] = None
                index_edits.update(dict.fromkeys(old_keys))
                continue
            body = edit.body if edit.body is not None else dict(old_body or {})
            if created:
                body = {**body, "c": [*body.get("c", []), *created]}
            body_bytes = records.encode_body(body, gid)
            size += len(body_bytes)
            body_digest = codec.hash_bytes(body_bytes)
            self.pending.add_hashed(body_digest, body_bytes)
            group_edits[gid] = records.encode_group_record(body_digest)
            new_keys = records.index_keys(gid, body.get("a", {}))
            index_edits.update(dict.fromkeys(old_keys - new_keys))
            index_edits.update(dict.fromkeys(new_keys - old_keys, records.NULL))
        self.roots["groups"], _ = self.trees["groups"].update(self.roots["groups"], group_edits)
        self.roots["index"], _ = self.trees["index"].update(self.roots["index"], index_edits)
        return self._write_root(size)

    def _commit_replacement(self, groups: list[tuple[str, _PreparedGroup]]) -> bytes:
        entries: dict[str, list[tuple[str, bytes]]] = {"groups": [], "contacts": [], "wires": []}
        index: set[str] = set()
        size = 0
        # member prefixes are prefix-free, so groups in prefix order give member keys in key order
        for gid, prepared in sorted(groups, key=lambda item: records.member_prefix(item[0])):
            self.pending.absorb(prepared.objects)
            body_digest = codec.hash_bytes(prepared.body_bytes)
            self.pending.add_hashed(body_digest, prepared.body_bytes)
            entries["groups"].append((gid, records.encode_group_record(body_digest)))
            entries["contacts"].extend(prepared.contacts)
            entries["wires"].extend(prepared.wires)
            index.update(records.index_keys(gid, prepared.body.get("a", {})))
            size += prepared.size
        entries["groups"].sort()
        for kind, items in entries.items():
            self.roots[kind] = self.trees[kind].build(items)
        self.roots["index"] = self.trees["index"].build((key, records.NULL) for key in sorted(index))
        return self._write_root(size)

    def _write_root(self, size: int) -> bytes:
        """The new network root's digest; it and everything new stay in :attr:`pending` for the caller."""
        for kind, root in self.roots.items():
            if root == self.trees[kind].empty(write=False):
                self.trees[kind].empty()
        data = records.encode_network_root(self.roots, self.current, self.root_group, size)
        digest = self.pending.add(data)
        self.store.remember_root(digest, data)  # a snapshot of it will not have to read it back
        return digest


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
        return root if root is not None else self.remember_root(digest, self.blobs.get(digest))

    def remember_root(self, digest: bytes, data: bytes) -> dict[str, Any]:
        """Decode and cache a network root (immutable, so the cache is always right)."""
        root = records.decode_network_root(data)
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
        prefix = records.member_prefix(gid)
        size = len(body_bytes)
        contacts = []
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
            key = prefix + cid
            size += records.contact_entry_size(key, record)
            contacts.append((key, record))
        wires = []
        for wid in sorted(state.wires):
            check_id(wid, "wire id")
            wire = state.wires[wid]
            if not isinstance(wire, Wire):
                raise SerializationError(f"wires[{wid!r}] is a {type(wire).__name__}, not a Wire", wid)
            key = prefix + wid
            record = records.encode_wire(wire, wid, gid)
            size += records.wire_entry_size(key, record)
            wires.append((key, record))
        return _PreparedGroup(body, body_bytes, contacts, wires, size, objects)

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
        return sorted(network_heads(self.refs.list("networks/")))

    def exists(self, network_id: str) -> bool:
        return self.refs.get(head_ref(network_id)) is not None

    def load_contact_content(self, network_id: str, group_id: str, contact_id: str) -> Any:
        root = self._head(network_id)
        if root is None:
            return None
        # a group's members exist only while the group does, so one lookup answers
        record = self._readers["contacts"].get(root["contacts"], records.member_key(group_id, contact_id))
        return None if record is None else records.record_content(codec.decode(record), self.blobs.get)

    def load_group_state(self, network_id: str, group_id: str) -> GroupState | None:
        root = self._head(network_id)
        if root is None:
            return None
        record = self._readers["groups"].get(root["groups"], group_id)
        return None if record is None else self._group_states(root, [(group_id, record)])[group_id]

    def _group_states(self, root: dict[str, Any], group_records: list[tuple[str, bytes]]) -> dict[str, GroupState]:
        """Group states of some groups: bodies in one batch, members by one key-range scan per group."""
        bodies = self.blobs.get_many([records.decode_group_record(record) for _, record in group_records])
        out = {}
        for (gid, _), body in zip(group_records, bodies, strict=True):
            prefix = records.member_prefix(gid)
            contacts = self._readers["contacts"].items_with_prefix(root["contacts"], prefix)
            wires = self._readers["wires"].items_with_prefix(root["wires"], prefix)
            out[gid] = self._assemble(gid, body, contacts, wires)
        return out

    def _assemble(
        self,
        gid: str,
        body: bytes,
        contacts: Iterable[tuple[str, bytes]],
        wires: Iterable[tuple[str, bytes]],
    ) -> GroupState:
        start = len(records.member_prefix(gid))
        fetch = self.blobs.get
        return GroupState(
            records.decode_group(codec.decode_value(body), gid),
            {key[start:]: records.decode_contact(value, key[start:], gid, fetch) for key, value in contacts},
            {key[start:]: records.decode_wire(value, key[start:], gid) for key, value in wires},
        )

    def load_network_state(self, network_id: str) -> NetworkState | None:
        head = self.refs.get(head_ref(network_id))
        return None if head is None else self._state_at(head)

    def _state_at(self, head: bytes) -> NetworkState:
        """A whole state: one scan of each tree, members split by their group prefix."""
        root = self.network_root(head)
        for kind in ("groups", "contacts", "wires"):  # read each tree level by level, in batches
            for _ in self._readers[kind].node_digests(root[kind]):
                pass
        group_records = list(self._readers["groups"].items(root["groups"]))
        bodies = self.blobs.get_many([records.decode_group_record(record) for _, record in group_records])
        members: dict[str, dict[str, list[tuple[str, bytes]]]] = {"contacts": {}, "wires": {}}
        for kind, by_group in members.items():
            for key, value in self._readers[kind].items(root[kind]):
                gid, _ = records.split_member_key(key)
                by_group.setdefault(gid, []).append((key, value))
        groups = {
            gid: self._assemble(gid, body, members["contacts"].get(gid, ()), members["wires"].get(gid, ()))
            for (gid, _), body in zip(group_records, bodies, strict=True)
        }
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
            return {key[len(prefix) :] for key, _ in index.items_with_prefix(root["index"], prefix)}

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
        states = self._group_states(root, found)
        return [state for state in states.values() if _matches(state.group.attributes, attributes, author, tags, type)]

    # ---------------------------------------------------------------- replication

    def sync(self, remote: ObjectStore, *, name: str | None = None, force: bool = False) -> SyncReport:
        """Pull every network of ``remote``, then push every network of this store (see :mod:`casstore.sync`)."""
        from casstore.sync import sync  # the sync layer sits above this one; only this entry point reaches up

        return sync(self, remote, name=name, force=force)

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

    def find_snapshot(self, network_id: str, snapshot_id: str) -> tuple[bytes, dict[str, Any]]:
        """A snapshot's digest and decoded record; :class:`SnapshotNotFound` if ``network_id`` has no such snapshot."""
        try:
            digest = codec.parse_id(snapshot_id)
        except InvalidId:
            raise SnapshotNotFound(f"{snapshot_id!r} is not a snapshot id") from None
        name = snapshots_prefix(network_id) + codec.format_id(digest)
        if self.refs.get(name) != digest:
            raise SnapshotNotFound(f"snapshot {snapshot_id} of network {network_id!r} not found")
        return digest, records.decode_snapshot(self.blobs.get(digest))

    def load_snapshot(self, network_id: str, snapshot_id: str) -> NetworkState:
        _, snapshot = self.find_snapshot(network_id, snapshot_id)
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
        _, snapshot = self.find_snapshot(network_id, which)
        return self.network_root(snapshot["root"])

    def diff(self, network_id: str, a: str | None, b: str | None) -> list[Change]:
        """Changes from state ``a`` to state ``b`` (snapshot ids, or ``None`` for the current state).

        Each tree is compared by descending only where hashes differ: groups for
        group-level changes, then contacts and wires (a group's members joining
        or leaving are reported as their own added/removed changes).
        """
        old_root, new_root = self._root_of(network_id, a), self._root_of(network_id, b)
        changes: list[Change] = []

        def roots(kind: str) -> tuple[bytes, bytes]:
            return self._tree_pair(kind, old_root, new_root)

        for gid, old, new in self._readers["groups"].diff(*roots("groups")):
            change = self._group_change(gid, old, new)
            if change is not None:
                changes.append(change)
        fetch = self.blobs.get
        for key, old, new in self._readers["contacts"].diff(*roots("contacts")):
            gid, cid = records.split_member_key(key)
            old_c = records.decode_contact(old, cid, gid, fetch) if old else None
            new_c = records.decode_contact(new, cid, gid, fetch) if new else None
            kind = "contact-added" if old_c is None else "contact-removed" if new_c is None else "contact-updated"
            changes.append(Change(kind, gid, cid, old_c, new_c))  # type: ignore[arg-type]
        for key, old, new in self._readers["wires"].diff(*roots("wires")):
            gid, wid = records.split_member_key(key)
            old_w = records.decode_wire(old, wid, gid) if old else None
            new_w = records.decode_wire(new, wid, gid) if new else None
            kind = "wire-added" if old_w is None else "wire-removed" if new_w is None else "wire-updated"
            changes.append(Change(kind, gid, wid, old_w, new_w))  # type: ignore[arg-type]
        return changes

    def _tree_pair(self, kind: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> tuple[bytes, bytes]:
        """The roots of one tree in two network roots (an absent network has empty trees)."""
        empty = self._readers[kind].empty(write=False)
        return (old[kind] if old else empty), (new[kind] if new else empty)

    def changed_groups(self, old_head: bytes | None, new_head: bytes) -> list[str]:
        """Ids of the groups whose own fields, contacts or wires differ between two network roots."""
        old_root, new_root = (self.network_root(old_head) if old_head else None), self.network_root(new_head)
        found = {gid for gid, _, _ in self._readers["groups"].diff(*self._tree_pair("groups", old_root, new_root))}
        for kind in ("contacts", "wires"):
            for key, _, _ in self._readers[kind].diff(*self._tree_pair(kind, old_root, new_root)):
                found.add(records.split_member_key(key)[0])
        return sorted(found)

    def head_moved(self, network_id: str, old_head: bytes | None, new_head: bytes) -> None:
        """Tell subscribers about a head moved from outside this object (a pull); free when nobody listens."""
        with self._lock:
            listening = any(
                callbacks and (path == network_id or path.startswith(network_id + "/"))
                for path, callbacks in self._subscribers.items()
            )
        if listening:
            self._notify(network_id, self.changed_groups(old_head, new_head))

    def _group_change(self, gid: str, old: bytes | None, new: bytes | None) -> Change | None:
        old_body = self.body(records.decode_group_record(old)) if old else None
        new_body = self.body(records.decode_group_record(new)) if new else None
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
        self._groups: list[str] = []  # groups whose contents are set, looked up together at apply
        self._create = False

    def save_contact_content(self, network_id: str, group_id: str, contact_id: str, content: Any) -> None:
        self._same_network(network_id)
        check_id(group_id, "group_id")
        check_id(contact_id, "contact_id")
        data = records.content_bytes(content)
        self._ops.append(lambda tx: tx.set_content(group_id, contact_id, data))
        self._groups.append(group_id)

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
        groups = list(self._groups)

        def run(tx: _Tx) -> None:
            tx.prefetch_groups(groups)
            for op in ops:
                op(tx)

        self.store._write(self.network_id, run, create=self._create)
