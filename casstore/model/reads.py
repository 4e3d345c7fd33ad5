"""Reading network state: heads, network roots, group bodies, and the caches of their decoded forms.

A :class:`NetworkReader` holds one store's blob and ref protocols, the prolly
node cache, one reader tree per tree kind, and caches of decoded network roots
and group bodies (all immutable objects, so a cache is never stale).  Every
other model module reads through it; the writer shares it so that a root it
builds is already decoded for the next read.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

from casstore import codec
from casstore.collector import with_collector_paused
from casstore.errors import ObjectNotFound
from casstore.model import records
from casstore.model.refs import head_ref, network_heads
from casstore.model.types import GroupState, NetworkState
from casstore.model.walk import LARGE_CONTENT_KEY, Kind
from casstore.prolly import NodeCache, ProllyTree, encode_node, prefetch_together
from casstore.store.base import BlobStore, PendingWrites, RefStore

__all__ = ["TREE_KINDS", "VALUE_HINTS", "NetworkReader", "make_tree"]

#: Each tree kind's nominal leaf-value size in the chunking rule (part of the format; see docs/format.md):
#: about the typical encoded record, so that leaves come out near the 4 KB target.
VALUE_HINTS = {"groups": 48, "contacts": 128, "wires": 48, "index": 1}
TREE_KINDS = tuple(VALUE_HINTS)


def make_tree(reader: NetworkReader, kind: str, pending: PendingWrites | None = None) -> ProllyTree:
    """A prolly tree of one kind over the reader's blobs and node cache (writing into ``pending`` if given)."""
    return ProllyTree(reader.blobs, kind, reader.cache, pending, value_hint=VALUE_HINTS[kind])


class NetworkReader:
    """Reads of network state over one store's blobs and refs, with caches of decoded immutable objects."""

    def __init__(self, blobs: BlobStore, refs: RefStore, cache_nodes: int = 200_000) -> None:
        self.blobs = blobs
        self.refs = refs
        self.cache = NodeCache(cache_nodes)
        self.trees = {kind: make_tree(self, kind) for kind in TREE_KINDS}
        self._roots: dict[bytes, dict[str, Any]] = {}
        self._root_bytes: dict[bytes, bytes] = {}  # the canonical bytes of the roots in _roots
        self._bodies: dict[bytes, dict[str, Any]] = {}

    # ---------------------------------------------------------------- decoded objects

    def body(self, digest: bytes) -> dict[str, Any]:
        """A group body (decoded; cached, bodies are immutable)."""
        body = self._bodies.get(digest)
        if body is None:
            body = self.remember_body(digest, codec.decode_value(self.blobs.get(digest)))
        return body

    def prefetch_bodies(self, digests: Iterable[bytes]) -> None:
        """Read the group bodies of ``digests`` not cached yet, in one batch (then :meth:`body` reads nothing)."""
        wanted = [digest for digest in dict.fromkeys(digests) if digest not in self._bodies]
        for digest, data in zip(wanted, self.blobs.get_many(wanted) if wanted else [], strict=True):
            self.remember_body(digest, codec.decode_value(data))

    def remember_body(self, digest: bytes, body: dict[str, Any]) -> dict[str, Any]:
        """Cache a decoded group body under its digest (a writer's new body: the next write will not read it)."""
        if len(self._bodies) > 100_000:
            self._bodies.clear()
        self._bodies[digest] = body
        return body

    def network_root(self, digest: bytes) -> dict[str, Any]:
        """A network root (decoded; cached)."""
        root = self._roots.get(digest)
        return root if root is not None else self.remember_root(digest, self.blobs.get(digest))

    def remember_root(self, digest: bytes, data: bytes) -> dict[str, Any]:
        """Decode and cache a network root (immutable, so the cache is always right)."""
        root = records.decode_network_root(data)
        if len(self._roots) > 1024:
            self._roots.clear()
            self._root_bytes.clear()
        self._roots[digest] = root
        self._root_bytes[digest] = data
        return root

    def held_bytes(self, digest: bytes, kind: Kind) -> bytes | None:
        """The canonical bytes of a network root or tree node of ``kind`` this reader holds decoded, if it
        does (``None`` else); not re-hashed here: a caller that relies on them re-hashes them."""
        if kind == "net":
            return self._root_bytes.get(digest)
        if kind.startswith("tree:"):
            node = self.cache.get(digest)
            if node is not None:
                return encode_node(kind[5:], node)
        return None

    def head_root(self, network_id: str) -> dict[str, Any] | None:
        """The decoded root a network's head names, or ``None`` if there is no such network."""
        head = self.refs.get(head_ref(network_id))
        return None if head is None else self.network_root(head)

    # ---------------------------------------------------------------- networks

    def list_networks(self) -> list[str]:
        return sorted(network_heads(self.refs.list("networks/")))

    def exists(self, network_id: str) -> bool:
        return self.refs.get(head_ref(network_id)) is not None

    # ---------------------------------------------------------------- states

    def load_contact_content(self, network_id: str, group_id: str, contact_id: str) -> Any:
        root = self.head_root(network_id)
        if root is None:
            return None
        # a group's members exist only while the group does, so one lookup answers
        record = self.trees["contacts"].get(root["contacts"], records.member_key(group_id, contact_id))
        return None if record is None else records.record_content(codec.decode(record), self.blobs.get)

    def load_group_state(self, network_id: str, group_id: str) -> GroupState | None:
        root = self.head_root(network_id)
        if root is None:
            return None
        record = self.trees["groups"].get(root["groups"], group_id)
        return None if record is None else self.group_states(root, [(group_id, record)])[group_id]

    def prefetch_groups(self, root: dict[str, Any], gids: Collection[str]) -> None:
        """Cache the tree nodes that reading groups ``gids`` whole needs (records and members): each level of
        the three trees in one batched read, so a server is asked as often as the deepest tree is deep."""
        if len(gids) > 1:
            prefixes = [records.member_prefix(gid) for gid in gids]
            prefetch_together([
                (self.trees["groups"], root["groups"], gids),
                (self.trees["contacts"], root["contacts"], prefixes),
                (self.trees["wires"], root["wires"], prefixes),
            ])  # fmt: skip

    @with_collector_paused
    def group_states(self, root: dict[str, Any], group_records: list[tuple[str, bytes]]) -> dict[str, GroupState]:
        """Group states of some groups: bodies in one batch, members by one key-range scan per group (for
        many groups, call :meth:`prefetch_groups` first: the scans then read nothing)."""
        bodies = self.blobs.get_many([records.decode_group_record(record) for _, record in group_records])
        prefixes = [records.member_prefix(gid) for gid, _ in group_records]
        contacts = [list(self.trees["contacts"].items_with_prefix(root["contacts"], p)) for p in prefixes]
        fetch = self.large_contents(record for entries in contacts for _, record in entries)
        out = {}
        for (gid, _), body, members, prefix in zip(group_records, bodies, contacts, prefixes, strict=True):
            wires = self.trees["wires"].items_with_prefix(root["wires"], prefix)
            out[gid] = self.assemble(gid, body, members, wires, fetch)
        return out

    def large_contents(self, contact_records: Iterable[bytes]) -> Callable[[bytes], bytes]:
        """A reader of the separately stored contents these contact records link to, all read here in one
        batch (instead of one read each as the records are decoded)."""
        links = []
        for record in contact_records:
            if LARGE_CONTENT_KEY in record:  # a cheap pre-check
                fields = codec.decode(record)
                if "C" in fields:
                    links.append(codec.link_digest(fields["C"]))
        links = list(dict.fromkeys(links))
        held = dict(zip(links, self.blobs.get_many(links), strict=True)) if links else {}

        def fetch(digest: bytes) -> bytes:
            if digest not in held:
                raise ObjectNotFound(codec.format_id(digest))
            return held[digest]

        return fetch

    def assemble(
        self,
        gid: str,
        body: bytes,
        contacts: Iterable[tuple[str, bytes]],
        wires: Iterable[tuple[str, bytes]],
        fetch: Callable[[bytes], bytes] | None = None,
    ) -> GroupState:
        """One group's state from its encoded body and its member records (keys carry the group prefix);
        ``fetch`` reads separately stored contents (default: one read each)."""
        start = len(records.member_prefix(gid))
        fetch = fetch or self.blobs.get
        fields = codec.decode_value(body)
        return GroupState(
            records.decode_group(fields, gid),
            {key[start:]: records.decode_contact(value, key[start:], gid, fetch) for key, value in contacts},
            {key[start:]: records.decode_wire(value, key[start:], gid) for key, value in wires},
            fields.get("X", {}),
        )

    def load_network_state(self, network_id: str) -> NetworkState | None:
        head = self.refs.get(head_ref(network_id))
        return None if head is None else self.state_at(head)

    @with_collector_paused  # it allocates what it returns: collections would only traverse it (casstore.collector)
    def state_at(self, head: bytes) -> NetworkState:
        """A whole state: one scan of each tree, members split by their group prefix."""
        root = self.network_root(head)
        for kind in ("groups", "contacts", "wires"):  # read each tree level by level, in batches
            for _ in self.trees[kind].node_digests(root[kind]):
                pass
        group_records = list(self.trees["groups"].items(root["groups"]))
        bodies = self.blobs.get_many([records.decode_group_record(record) for _, record in group_records])
        members: dict[str, dict[str, list[tuple[str, bytes]]]] = {"contacts": {}, "wires": {}}
        for kind, by_group in members.items():
            for key, value in self.trees[kind].items(root[kind]):
                gid, _ = records.split_member_key(key)
                by_group.setdefault(gid, []).append((key, value))
        fetch = self.large_contents(record for entries in members["contacts"].values() for _, record in entries)
        groups = {
            gid: self.assemble(gid, body, members["contacts"].get(gid, ()), members["wires"].get(gid, ()), fetch)
            for (gid, _), body in zip(group_records, bodies, strict=True)
        }
        extra = codec.decode_value(root["x"]) if "x" in root else {}
        created, updated = records.root_times(root)
        return NetworkState(
            groups, root["current"], root["rootGroup"], extra, records.root_metadata(root), created, updated
        )

    def load_network_metadata(self, network_id: str) -> dict[str, Any] | None:
        root = self.head_root(network_id)
        return None if root is None else records.root_metadata(root)
