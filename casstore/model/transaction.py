"""One write's changes on top of one network head, and the groups prepared for it.

A :class:`Transaction` collects edits (contents set, groups put or deleted, a
whole network replaced) against the head it was opened on and, in
:meth:`Transaction.commit`, builds the new network root: each tree is updated
in one batched pass, rewriting only the nodes on changed paths, and every new
object is left in :attr:`Transaction.pending` (children first) for the write
loop (:mod:`casstore.model.writes`) to store with the head move.  A
:class:`PreparedGroup` is a group validated and encoded once, before that loop,
so a retry on a newer head costs no re-encoding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from casstore import codec
from casstore.errors import GroupNotFound, SerializationError
from casstore.model import records, rootrecords
from casstore.model.reads import TREE_KINDS, NetworkReader, make_tree
from casstore.model.types import Contact, GroupState, Wire, check_id
from casstore.prolly import Edit
from casstore.store.base import PendingWrites

__all__ = ["GroupEdit", "KeptWrites", "PreparedGroup", "Transaction", "large_contents", "prepare_group"]


class KeptWrites(PendingWrites):
    """A prepared group's large contents: copied into each transaction that uses them, never handed over.

    A write that loses a race is rebuilt on the new head from the same prepared
    group; on a backend whose commit is one transaction the losing attempt's
    objects were dropped with it, so every attempt must carry them again.
    """

    @classmethod
    def taking(cls, objects: PendingWrites) -> KeptWrites:
        """A kept set holding ``objects``' objects (``objects`` is left empty)."""
        kept = cls()
        kept.absorb(objects)
        return kept

    def copy_into(self, target: PendingWrites) -> None:
        """Add every object to ``target`` (after its own, in order); this set keeps them."""
        for digest, data in self._data.items():
            target.add_hashed(digest, data)


@dataclass
class PreparedGroup:
    """A group encoded in full (for save_group_state / save_network_state), reusable across retries."""

    body: dict[str, Any]
    body_bytes: bytes
    contacts: list[tuple[str, bytes]]  # (member key, record), sorted
    wires: list[tuple[str, bytes]]
    size: int
    objects: KeptWrites  # large contents


@dataclass
class GroupEdit:
    """One group's pending changes. Its body is read only when its own fields change."""

    gid: str
    old_record: bytes | None
    old_body_digest: bytes | None
    body: dict[str, Any] | None = None
    body_changed: bool = False
    deleted: bool = False
    #: contact ids (an ordered set) in the order their content was first set in this edit, and
    #: those found absent (new contacts)
    content_order: dict[str, None] = field(default_factory=dict)
    created: set[str] = field(default_factory=set)


_NO_EDIT = object()


class Transaction:
    """Changes to one network on top of one head; :meth:`commit` builds the new root, leaving every new
    object in :attr:`pending` for the caller to write."""

    def __init__(self, reader: NetworkReader, network_id: str, head: bytes | None) -> None:
        self.reader = reader
        self.network_id = network_id
        self.pending = PendingWrites()
        self.trees = {kind: make_tree(reader, kind, self.pending) for kind in TREE_KINDS}
        if head is None:  # empty roots are written only if the commit leaves them empty (_write_root)
            self.roots = {kind: tree.empty(write=False) for kind, tree in self.trees.items()}
            self.current, self.root_group, self.size = "root", "root", 0
            self.extra: bytes | None = None
            self.conflicts: bytes | None = None
            self.metadata: bytes | None = None
            self.created: str | None = None
            self.updated: str | None = None
        else:
            root = reader.network_root(head)
            self.roots = {kind: root[kind] for kind in TREE_KINDS}
            self.current, self.root_group, self.size = root["current"], root["rootGroup"], root["size"]
            self.extra = root.get("x")
            self.conflicts = root.get(records.CONFLICTS_FIELD)  # kept as it is by every ordinary write
            self.metadata, self.created, self.updated = root.get("m"), root.get("ct"), root.get("ut")
        self.head = head
        #: times given by the writer (an import keeping a state's times): used where set
        self.given_times: tuple[str | None, str | None] | None = None
        self.groups: dict[str, GroupEdit] = {}
        self.member_edits: dict[str, dict[str, Edit]] = {"contacts": {}, "wires": {}}
        self.results: dict[str, bytes] = {}  # member key → record an edit function produced
        self.replace_all: list[tuple[str, PreparedGroup]] | None = None
        self.replaced: list[str] = []  # groups a replacement wrote, once built (_settle_replacement)
        self.own_bodies: dict[bytes, dict[str, Any]] = {}  # their bodies, not stored until the commit

    def group(self, gid: str) -> GroupEdit | None:
        if gid in self.groups:
            edit = self.groups[gid]
            return None if edit.deleted else edit
        if self.replace_all is not None:
            self._settle_replacement()
        record = self.trees["groups"].get(self.roots["groups"], gid)
        if record is None:
            return None
        edit = GroupEdit(gid, record, records.decode_group_record(record))
        self.groups[gid] = edit
        return edit

    def prefetch_groups(self, gids: Iterable[str]) -> None:
        """Look up many groups in one pass over the groups tree (a batch's groups, before its edits)."""
        if self.replace_all is not None:
            return
        wanted = [gid for gid in set(gids) if gid not in self.groups]
        for gid, record in self.trees["groups"].get_many(self.roots["groups"], wanted).items():
            self.groups[gid] = GroupEdit(gid, record, records.decode_group_record(record))

    def old_body(self, edit: GroupEdit) -> dict[str, Any] | None:
        if edit.old_body_digest is None:
            return None
        own = self.own_bodies.get(edit.old_body_digest)
        return own if own is not None else self.reader.body(edit.old_body_digest)

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

        # also when a prior edit came from replacing or clearing the group (then ``edit`` is new)
        edit.content_order.setdefault(cid)
        edits[key] = apply

    def put_contact(self, gid: str, cid: str, record: bytes) -> None:
        """Replace (or create, appended to the group's contact ids) one contact's whole record."""
        edit = self.group(gid)
        if edit is None:
            raise GroupNotFound(f"group {gid!r} not found in network {self.network_id!r}")
        key = records.member_key(gid, cid)
        edits = self.member_edits["contacts"]
        prior = edits.get(key, _NO_EDIT)
        results = self.results

        def apply(old: bytes | None) -> bytes:
            if prior is not _NO_EDIT:  # what the contact is by then (as in set_content)
                old = prior(old) if callable(prior) else prior  # type: ignore[assignment]
            if old is None:
                edit.created.add(cid)
            results[key] = record
            return record

        edit.content_order.setdefault(cid)
        edits[key] = apply

    def _clear_members(self, gid: str) -> None:
        """Delete every contact and wire of a group (pending edits included)."""
        prefix = records.member_prefix(gid)
        for kind, edits in self.member_edits.items():
            for key in [k for k in edits if k.startswith(prefix)]:
                del edits[key]
            for key, _ in self.trees[kind].items_with_prefix(self.roots[kind], prefix):
                edits[key] = None

    def put_group(self, gid: str, prepared: PreparedGroup) -> None:
        old = self.group(gid)
        self._clear_members(gid)
        self.member_edits["contacts"].update(prepared.contacts)
        self.member_edits["wires"].update(prepared.wires)
        prepared.objects.copy_into(self.pending)
        self.groups[gid] = GroupEdit(
            gid,
            old.old_record if old else None,
            old.old_body_digest if old else None,
            body=prepared.body,
            body_changed=True,
        )

    def delete_group(self, gid: str) -> None:
        """Delete a group with its contacts and wires; its subgroups move up to its parent.

        The parent (the group's ``parent_id``, if stored) lists the group's ``subgroup_ids`` in its
        place; each stored subgroup gets the deleted group's ``parent_id``.  Nothing else changes.
        """
        edit = self.group(gid)
        if edit is None:
            return
        body = self._current_body(edit)
        parent_id, children = body.get("p"), body.get("s", [])
        if parent_id == gid:
            parent_id = None
        self._clear_members(gid)
        edit.deleted = True
        parent = None if parent_id is None else self.group(parent_id)
        if parent is not None:
            siblings = self._current_body(parent).get("s", [])
            moved = [child for child in children if child != parent_id and child not in siblings]
            at = siblings.index(gid) if gid in siblings else len(siblings)
            self._edit_body(parent, "s", [*siblings[:at], *moved, *siblings[at + 1 :]])
        for child_id in children:
            child = None if child_id in (gid, parent_id) else self.group(child_id)
            if child is not None:
                self._edit_body(child, "p", parent_id)

    def _current_body(self, edit: GroupEdit) -> dict[str, Any]:
        """A group's body as this transaction has it so far (not to be mutated)."""
        if edit.body is not None:
            return edit.body
        return self.old_body(edit) or {}

    def _edit_body(self, edit: GroupEdit, name: str, value: Any) -> None:
        """Set one field of a group's body (left out when empty, as records.group_fields writes it)."""
        body = dict(self._current_body(edit))  # a prepared body is shared by every retry: copy it
        if value:
            body[name] = value
        else:
            body.pop(name, None)
        edit.body, edit.body_changed = body, True

    def delete_contact(self, gid: str, cid: str) -> None:
        """Remove contact ``cid`` of group ``gid``: its record, its id from the group's ``contact_ids`` and
        ``boundary_contact_ids``, and the group's own wires from or to it (with their ``wire_ids``).

        A no-op for an absent group or contact (no new head if nothing changes).  Wires of other groups
        naming ``cid`` are left alone: a wire names a contact by id only.
        """
        edit = self.group(gid)
        if edit is None:
            return
        prefix = records.member_prefix(gid)
        key = prefix + cid
        contacts = self.member_edits["contacts"]
        if key in contacts:  # set, put or deleted earlier in this transaction
            if contacts[key] is None:
                return
        elif self.trees["contacts"].get(self.roots["contacts"], key) is None:
            return  # not a contact of this group: its wires naming ``cid`` (a subgroup's boundary) stay
        contacts[key] = None
        edit.content_order.setdefault(cid)  # a later set_content of cid then re-creates it (see set_content)
        wire_edits = self.member_edits["wires"]
        wires: dict[str, Edit] = dict(self.trees["wires"].items_with_prefix(self.roots["wires"], prefix))
        wires.update((key, value) for key, value in wire_edits.items() if key.startswith(prefix))
        doomed = set()
        for key, value in wires.items():
            if isinstance(value, bytes):
                record = codec.decode(value)
                if cid in (record["f"], record["t"]):
                    wire_edits[key] = None
                    doomed.add(key[len(prefix) :])
        body = edit.body if edit.body is not None else self.old_body(edit) or {}
        lists = {"c": {cid}, "b": {cid}, "w": doomed}
        if not any(name in gone for name_list, gone in lists.items() for name in body.get(name_list, ())):
            return
        body = dict(body)
        for name_list, gone in lists.items():
            if name_list in body:
                kept = [name for name in body[name_list] if name not in gone]
                if kept:
                    body[name_list] = kept
                else:
                    del body[name_list]
        edit.body, edit.body_changed = body, True

    def replace_network(
        self,
        groups: list[tuple[str, PreparedGroup]],
        current: str,
        root_group: str,
        extra: bytes | None = None,
        metadata: bytes | None = None,
        times: tuple[str | None, str | None] | None = None,
    ) -> None:
        """Replace the whole network; ``times`` (created, updated), if given, are stored as they are."""
        self.replace_all = groups
        self.replaced = []
        self.groups.clear()
        for edits in self.member_edits.values():
            edits.clear()
        self.current, self.root_group, self.extra, self.metadata = current, root_group, extra, metadata
        self.given_times = times

    def set_metadata(self, metadata: bytes | None) -> None:
        """Replace the network's metadata (encoded; ``None``: none)."""
        self.metadata = metadata

    # ---- commit

    def changed_groups(self) -> list[str]:
        if self.replace_all is not None:
            return [gid for gid, _ in self.replace_all]
        return list(dict.fromkeys([*self.replaced, *self.groups]))

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
        changed = []
        for gid, edit in self.groups.items():
            created = [cid for cid in edit.content_order if cid in edit.created]
            if edit.deleted or edit.body_changed or created:
                changed.append((gid, edit, created))
        self.reader.prefetch_bodies(
            digest
            for _, edit, _ in changed
            if (digest := edit.old_body_digest) is not None and digest not in self.own_bodies
        )
        for gid, edit, created in changed:
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
            self.reader.remember_body(body_digest, codec.decode_value(body_bytes))  # its canonical form, not an alias
            if edit.old_body_digest is not None:
                self.pending.replaces(body_digest, edit.old_body_digest)
            group_edits[gid] = records.encode_group_record(body_digest)
            new_keys = records.index_keys(gid, body.get("a", {}))
            index_edits.update(dict.fromkeys(old_keys - new_keys))
            index_edits.update(dict.fromkeys(new_keys - old_keys, records.NULL))
        self.roots["groups"], _ = self.trees["groups"].update(self.roots["groups"], group_edits)
        self.roots["index"], _ = self.trees["index"].update(self.roots["index"], index_edits)
        return self._write_root(size)

    def _commit_replacement(self, groups: list[tuple[str, PreparedGroup]]) -> bytes:
        return self._write_root(self._build_replacement(groups))

    def _settle_replacement(self) -> None:
        """Build the replacement's trees now, so that the writes after it apply on top of it, as on a head."""
        groups, self.replace_all = self.replace_all, None
        assert groups is not None
        self.size = self._build_replacement(groups)
        self.replaced = [gid for gid, _ in groups]
        for _, prepared in groups:  # decoded afresh: a prepared body is shared by every retry of the write
            self.own_bodies[codec.hash_bytes(prepared.body_bytes)] = codec.decode_value(prepared.body_bytes)

    def _build_replacement(self, groups: list[tuple[str, PreparedGroup]]) -> int:
        """The roots of a replacement's trees (their nodes into :attr:`pending`); returns its logical size."""
        entries: dict[str, list[tuple[str, bytes]]] = {"groups": [], "contacts": [], "wires": []}
        index: set[str] = set()
        size = 0
        # member prefixes are prefix-free, so groups in prefix order give member keys in key order
        for gid, prepared in sorted(groups, key=lambda item: records.member_prefix(item[0])):
            prepared.objects.copy_into(self.pending)
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
        return size

    def _write_root(self, size: int) -> bytes:
        """The new network root's digest; it and everything new stay in :attr:`pending` for the caller."""
        for kind, root in self.roots.items():
            if root == self.trees[kind].empty(write=False):
                self.trees[kind].empty()
        created, updated = self.created, self.updated
        if self.given_times is not None:
            created, updated = self.given_times
        elif self.head is not None:  # unchanged apart from the times: the head itself (no new root, no write)
            data = self._encode_root(size, created, updated)
            if codec.hash_bytes(data) == self.head:
                return self.head
        if self.given_times is None or updated is None:
            updated = rootrecords.now_text()  # the one clock of roots and snapshots (tests pin it there)
        created = created or self.created or updated
        data = self._encode_root(size, created, updated)
        digest = self.pending.add(data)
        self.reader.remember_root(digest, data)  # a snapshot of it will not have to read it back
        return digest

    def _encode_root(self, size: int, created: str | None, updated: str | None) -> bytes:
        return records.encode_network_root(
            self.roots,
            self.current,
            self.root_group,
            size,
            self.extra,
            self.metadata,
            created,
            updated,
            conflicts=self.conflicts,
        )


def prepare_group(gid: str, state: GroupState) -> PreparedGroup:
    """Validate and encode a whole group once, before any retry (its large contents kept for the commit)."""
    check_id(gid, "group_id")
    objects = PendingWrites()
    body = records.group_state_fields(state, gid)
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
    return PreparedGroup(body, body_bytes, contacts, wires, size, KeptWrites.taking(objects))


def large_contents(state: GroupState) -> KeptWrites:
    """The large contents :func:`prepare_group` kept for an already prepared (so valid) group, encoded again."""
    objects = KeptWrites()
    for cid in sorted(state.contacts):
        data = records.content_bytes(state.contacts[cid].content)
        records.content_record(data, objects)
    return objects
