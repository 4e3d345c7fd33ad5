"""Replication between any two stores: push, pull and sync by exchanging only missing hashes.

Two parts:

* :func:`transfer` copies everything reachable from some roots that the
  destination lacks.  It walks the DAG breadth-first by casstore's schema
  (:mod:`casstore.model.walk`), asks the destination ``missing()`` once per
  level for the whole frontier, fetches only the missing objects from the
  source (re-hashing each), and descends only into objects that were missing:
  a present object implies its whole subtree is present.  The objects are then
  written children-first (by height), so at every instant the destination
  keeps that invariant, and an interrupted transfer leaves only valid objects.
  An updated network's rewritten objects travel as deltas against the objects
  they replace, which the destination holds (:mod:`casstore.pack`).
* :func:`push` / :func:`pull` decide, network by network, whether the target's
  head may move (a lease, like git's ``--force-with-lease``) and move refs only
  after every object they name has landed.  The head both sides agreed on at
  the last exchange is kept in the *local* store as
  ``remotes/<name>/networks/<id>/head``.

See docs/sync.md for the protocol and its guarantees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from casstore import codec
from casstore.errors import InvalidRefName, NetworkNotFound, ObjectNotFound, RefConflict, RemoteExists, RemoteNotFound

__all__ = [
    "Progress",
    "SyncReport",
    "TransferStats",
    "add_remote",
    "decide",
    "pull",
    "push",
    "remote_name",
    "remotes",
    "remove_remote",
    "sync",
    "tracking_ref",
    "transfer",
]
from casstore.model.network import NetworkStore
from casstore.model.refs import REMOTES_PREFIX, head_ref, network_heads, snapshots_prefix, tip_ref, tracking_ref
from casstore.model.walk import Kind, children, paired_children
from casstore.pack import PackBuilder, apply_pack
from casstore.store.base import ObjectStore, RefUpdate, validate_ref_name

Outcome = Literal["created", "updated", "up-to-date", "diverged"]
#: Called as objects land: ``(objects_written, bytes_written, objects_known_missing)``.
Progress = Callable[[int, int, int], None]

#: Objects fetched from the source per ``get_frames`` call.
FETCH_BATCH = 8192
#: Bytes written to the destination per ``put_frames`` call (and objects, whichever comes first).
WRITE_BYTES = 16 << 20
WRITE_OBJECTS = 65536
#: Frames held in memory between the walk and the write; beyond this they are fetched again when written.
HOLD_BYTES = 256 << 20


@dataclass
class TransferStats:
    """What one :func:`transfer` did.

    ``bytes_sent`` counts what travelled: the packs (see :mod:`casstore.pack`)
    when objects could go as deltas, else the frames themselves (always to or
    from a passive remote such as S3); ``round_trips`` counts batched calls to
    the remote store.
    """

    objects_sent: int = 0
    bytes_sent: int = 0
    objects_skipped: int = 0
    round_trips: int = 0
    levels: int = 0
    #: objects sent as deltas against an object the destination held
    deltas: int = 0


@dataclass
class SyncReport(TransferStats):
    """What :func:`push`, :func:`pull` or ``NetworkStore.sync`` did.

    ``networks`` maps each network id to ``"created"``, ``"updated"``,
    ``"up-to-date"`` or ``"diverged"``; ``snapshots_copied`` counts snapshot refs
    created on the destination.
    """

    networks: dict[str, Outcome] = field(default_factory=dict)
    snapshots_copied: int = 0

    def add(self, other: TransferStats) -> None:
        self.objects_sent += other.objects_sent
        self.bytes_sent += other.bytes_sent
        self.objects_skipped += other.objects_skipped
        self.round_trips += other.round_trips
        self.levels = max(self.levels, other.levels)
        self.deltas += other.deltas


def _objects(store: ObjectStore) -> ObjectStore:
    """The backend under a network store (its ``commit`` may be atomic), or the store itself."""
    return store.objects if isinstance(store, NetworkStore) else store


class _Trips:
    """Counts, in ``stats.round_trips``, the batched calls made to the remote side of an exchange."""

    def __init__(self, remote: ObjectStore, stats: TransferStats) -> None:
        self.remote = _objects(remote)
        self.stats = stats

    def __call__(self, store: ObjectStore) -> None:
        if _objects(store) is self.remote:
            self.stats.round_trips += 1


# ---------------------------------------------------------------- the transfer engine


def _heights(order: Sequence[bytes], kids: dict[bytes, list[bytes]]) -> dict[bytes, int]:
    """Longest path down to a sink inside the missing subgraph (the keys of ``kids``).

    Every missing child then has a smaller height than its parents, so writing
    by ascending height is children-first even where subtrees are shared.
    """
    heights: dict[bytes, int] = {}
    for start in reversed(order):  # reversed BFS order visits most children before their parents
        stack = [start]
        while stack:
            node = stack[-1]
            if node in heights:
                stack.pop()
                continue
            inside = [child for child in kids[node] if child in kids]
            pending = [child for child in inside if child not in heights]
            if pending:
                stack.extend(pending)  # content addressing makes the graph acyclic
                continue
            heights[node] = 1 + max((heights[child] for child in inside), default=-1)
            stack.pop()
    return heights


def transfer(
    src: ObjectStore,
    dst: ObjectStore,
    roots: Iterable[tuple[bytes, Kind]],
    *,
    remote: ObjectStore | None = None,
    bases: Mapping[bytes, bytes] | None = None,
    progress: Progress | None = None,
    final_updates: Sequence[RefUpdate] = (),
    hold_bytes: int = HOLD_BYTES,
    stats: TransferStats | None = None,
) -> TransferStats:
    """Copy to ``dst`` everything reachable from ``roots`` that it lacks; then apply ``final_updates``.

    ``roots`` are ``(digest, kind)`` pairs (kinds as in :mod:`casstore.model.walk`).
    ``bases`` maps some of them to an object ``dst`` holds that is an older
    version of the same network (its head, typically); objects below are then
    sent as deltas against the objects in the same place under the base (see
    :mod:`casstore.pack`), unless either store is a passive remote.  The last
    batch of objects and ``final_updates`` go to the destination in one
    ``commit``, so a small push costs one write.  Raises
    :class:`~casstore.errors.ObjectNotFound` if the source lacks an object it
    names and :class:`~casstore.errors.CorruptObject` if one fails its hash;
    either way nothing that names a missing object was written.  Figures are
    added to ``stats`` if given (so they survive an exception), else to a new one.
    """
    source, target = _objects(src), _objects(dst)
    stats = stats if stats is not None else TransferStats()
    trips = _Trips(remote if remote is not None else dst, stats)
    use_deltas = bool(bases) and not (source.passive_remote or target.passive_remote)
    local = target if trips.remote is source else source  # delta bases are read on this side
    base_of: dict[bytes, bytes] = dict(bases or {}) if use_deltas else {}
    seen: set[bytes] = set()
    frontier: list[tuple[bytes, Kind]] = []
    for digest, kind in roots:
        if digest not in seen:
            seen.add(digest)
            frontier.append((digest, kind))

    order: list[bytes] = []  # missing objects, breadth-first
    kids: dict[bytes, list[bytes]] = {}  # missing object -> every object it links to
    held: dict[bytes, bytes] = {}
    deltas: dict[bytes, tuple[bytes, bytes, bytes]] = {}  # object -> (its bytes, base, base's bytes)
    held_bytes = 0
    while frontier:
        stats.levels += 1
        trips(target)
        absent = set(target.blobs.missing([digest for digest, _ in frontier]))
        stats.objects_skipped += len(frontier) - len(absent)
        todo = [(digest, kind) for digest, kind in frontier if digest in absent]
        following: list[tuple[bytes, Kind]] = []
        for start in range(0, len(todo), FETCH_BATCH):
            chunk = todo[start : start + FETCH_BATCH]
            trips(source)
            frames = source.blobs.get_frames([digest for digest, _ in chunk])
            base_data = _read_bases(local, [base_of[d] for d, _ in chunk if d in base_of])
            for (digest, kind), frame in zip(chunk, frames, strict=True):
                if frame is None:
                    name = codec.format_id(digest)
                    raise ObjectNotFound(name, f"the source ({src.url}) lacks object {name}")
                data = codec.unframe(frame, digest)
                order.append(digest)
                base = base_of.pop(digest, None)
                old = base_data.get(base) if base is not None else None
                if held_bytes + len(frame) <= hold_bytes:
                    held[digest] = frame
                    held_bytes += len(frame)
                    if base is not None and old is not None and held_bytes + len(data) + len(old) <= hold_bytes:
                        deltas[digest] = (data, base, old)
                        held_bytes += len(data) + len(old)
                if kind in ("data", "opaque"):
                    links: list[tuple[bytes, Kind, bytes | None]] = []
                elif old is not None:
                    links = list(paired_children(kind, data, old))
                else:
                    links = [(child, child_kind, None) for child, child_kind in children(kind, data)]
                kids[digest] = [child for child, _, _ in links]
                for child, child_kind, child_base in links:
                    if child not in seen:
                        seen.add(child)
                        following.append((child, child_kind))
                        if child_base is not None:
                            base_of[child] = child_base
            if progress is not None:
                progress(0, 0, len(order))
        frontier = following

    writer = _Writer(source, target, deltas if use_deltas else None, final_updates, stats, trips, progress)
    writer.write(order, kids, held)
    return stats


def _read_bases(local: ObjectStore, digests: list[bytes]) -> dict[bytes, bytes]:
    """Canonical bytes of the delta bases ``local`` holds (re-hashed); absent ones are left out."""
    if not digests:
        return {}
    wanted = list(dict.fromkeys(digests))
    return {
        digest: codec.unframe(frame, digest)
        for digest, frame in zip(wanted, local.blobs.get_frames(wanted), strict=True)
        if frame is not None
    }


class _Writer:
    """Writes the missing objects children-first, in packs (with deltas) or as plain frames."""

    def __init__(
        self,
        source: ObjectStore,
        target: ObjectStore,
        deltas: dict[bytes, tuple[bytes, bytes, bytes]] | None,
        final_updates: Sequence[RefUpdate],
        stats: TransferStats,
        trips: _Trips,
        progress: Progress | None,
    ) -> None:
        self.source, self.target, self.deltas = source, target, deltas
        self.final_updates, self.stats, self.trips, self.progress = final_updates, stats, trips, progress
        self.total = 0
        self.batch: list[tuple[bytes, bytes]] = []
        self.batch_bytes = 0

    def write(self, order: list[bytes], kids: dict[bytes, list[bytes]], held: dict[bytes, bytes]) -> None:
        heights = _heights(order, kids)
        by_height = sorted(order, key=heights.__getitem__)
        self.total = len(by_height)
        for start in range(0, self.total, FETCH_BATCH):
            chunk = by_height[start : start + FETCH_BATCH]
            refetch = [digest for digest in chunk if digest not in held]
            again: dict[bytes, bytes | None] = {}
            if refetch:
                self.trips(self.source)
                again = dict(zip(refetch, self.source.blobs.get_frames(refetch), strict=True))
            for digest in chunk:
                frame = held.pop(digest, None)
                if frame is None:
                    frame = again.get(digest)
                    if frame is None:  # deleted from the source since the walk
                        name = codec.format_id(digest)
                        raise ObjectNotFound(name, f"the source lost object {name} during the transfer")
                    codec.unframe(frame, digest)  # a second read is re-hashed too
                self.batch.append((digest, frame))
                self.batch_bytes += len(frame)
                if self.batch_bytes >= WRITE_BYTES or len(self.batch) >= WRITE_OBJECTS:
                    self.flush(final=False)
        if self.batch or self.final_updates:
            self.flush(final=True)

    def _encode(self) -> tuple[list[tuple[bytes, bytes]], int]:
        """The batch as the destination stores it, and the bytes that carried it."""
        if self.deltas is None:
            return self.batch, self.batch_bytes
        builder = PackBuilder()
        for digest, frame in self.batch:
            delta = self.deltas.pop(digest, None)
            if delta is None:
                builder.add_frame(digest, frame)
            else:
                builder.add(digest, frame, *delta)
        pack = builder.finish()
        self.stats.deltas += builder.deltas
        return apply_pack(self.target.blobs, pack), len(pack)

    def flush(self, final: bool) -> None:
        frames, sent = self._encode()
        self.trips(self.target)
        try:
            if final:
                self.target.commit(frames, self.final_updates)
            else:
                self.target.blobs.put_frames(frames)
        except RefConflict:
            if frames:  # a transactional commit dropped the objects with the refs: the caller still needs them
                self.trips(self.target)
                self.target.blobs.put_frames(frames)
            raise
        finally:
            self.stats.objects_sent += len(frames)
            self.stats.bytes_sent += sent
        if self.progress is not None:
            self.progress(self.stats.objects_sent, self.stats.bytes_sent, self.total)
        self.batch, self.batch_bytes = [], 0


# ---------------------------------------------------------------- remotes, kept in the store itself

REMOTES = REMOTES_PREFIX


def add_remote(store: ObjectStore, name: str, url: str) -> None:
    """Remember ``url`` as remote ``name`` in ``store`` (a small object named by ``config/remotes/<name>``)."""
    ref = REMOTES + validate_ref_name(name)
    if "/" in name:
        raise InvalidRefName(f"remote name {name!r} must be one ref component (no '/')")
    digest = store.blobs.put(codec.encode_value({"url": url}))
    current = store.refs.get(ref)
    if current is not None and current != digest:
        raise RemoteExists(f"remote {name!r} already exists with URL {remotes(store)[name]}; remove it first")
    if current is None:
        store.refs.compare_and_swap(ref, None, digest)


def remove_remote(store: ObjectStore, name: str) -> None:
    ref = REMOTES + validate_ref_name(name)
    current = store.refs.get(ref)
    if current is None:
        raise RemoteNotFound(f"no remote named {name!r}")
    store.refs.delete(ref, current)


def remotes(store: ObjectStore) -> dict[str, str]:
    """Remote name -> URL."""
    found = store.refs.list(REMOTES)
    names = list(found)
    values = store.blobs.get_many([found[name] for name in names])
    return {name[len(REMOTES) :]: codec.decode_value(data)["url"] for name, data in zip(names, values, strict=True)}


# ---------------------------------------------------------------- refs: which heads may move


def remote_name(store: ObjectStore) -> str:
    """The name a store is tracked under when no remote name is given: derived from its URL."""
    return "url-" + codec.hash_bytes(store.url.encode()).hex()[:16]


def decide(source: bytes, target: bytes | None, base: bytes | None, force: bool) -> Outcome:
    """Whether the target head may move to ``source``, given the head both sides last agreed on (``base``).

    * equal heads: ``up-to-date``; no target network: ``created``;
    * the target still at ``base`` (only the source changed): ``updated``;
    * the source still at ``base`` (only the target changed): ``up-to-date`` — nothing to send;
    * both changed: ``diverged`` (neither moves), or ``updated`` with ``force``.
    """
    if target == source:
        return "up-to-date"
    if target is None:
        return "created"
    if force or target == base:
        return "updated"
    if source == base:
        return "up-to-date"
    return "diverged"


def _replicate(
    src: ObjectStore,
    dst: ObjectStore,
    *,
    local: ObjectStore,
    remote: ObjectStore,
    name: str | None,
    networks: Iterable[str] | None,
    force: bool,
    progress: Progress | None,
) -> SyncReport:
    report = SyncReport()
    trips = _Trips(remote, report)
    name = name or remote_name(remote)
    trips(src)
    src_refs = src.refs.list("networks/")
    trips(dst)
    dst_refs = dst.refs.list("networks/")
    src_heads = network_heads(src_refs)
    dst_heads = network_heads(dst_refs)
    wanted = sorted(src_heads) if networks is None else list(dict.fromkeys(networks))
    for network_id in wanted:
        if network_id not in src_heads:
            raise NetworkNotFound(f"network {network_id!r} not found in {src.url}")

    snapshots: dict[str, list[tuple[str, bytes]]] = {}  # "networks/<id>/snapshots/" -> its snapshot refs
    for ref, digest in src_refs.items():
        head, sep, _ = ref.rpartition("/snapshots/")
        if sep:
            snapshots.setdefault(head + sep, []).append((ref, digest))
    roots: list[tuple[bytes, Kind]] = []
    delta_bases: dict[bytes, bytes] = {}  # new head -> the head it replaces, which the destination holds
    updates: list[RefUpdate] = []
    agreed: dict[str, tuple[bytes | None, bytes]] = {}  # network -> (old base, new base) to record locally
    trips(local)
    bases = local.refs.list(f"remotes/{name}/networks/")
    for network_id in wanted:
        source, target = src_heads[network_id], dst_heads.get(network_id)
        base = bases.get(tracking_ref(name, network_id))
        outcome = decide(source, target, base, force)
        report.networks[network_id] = outcome
        for ref, digest in snapshots.get(snapshots_prefix(network_id), ()):
            if ref not in dst_refs:
                roots.append((digest, "snap"))
                updates.append(RefUpdate(ref, None, digest, required=False))
                report.snapshots_copied += 1
        if outcome in ("created", "updated"):
            roots.append((source, "net"))
            if target is not None:
                delta_bases[source] = target
            updates.append(RefUpdate(head_ref(network_id), target, source))
            tip = src_refs.get(tip_ref(network_id))
            if tip is not None and dst_refs.get(tip_ref(network_id)) != tip:
                updates.append(RefUpdate(tip_ref(network_id), dst_refs.get(tip_ref(network_id)), tip, required=False))
        if outcome != "diverged" and base != source:
            agreed[network_id] = (base, source)

    local_in_commit = _objects(local) is _objects(dst)
    if local_in_commit:  # a pull: the agreed heads move with the heads, in the same commit
        updates += [RefUpdate(tracking_ref(name, n), old, new, required=False) for n, (old, new) in agreed.items()]
    try:
        transfer(
            src, dst, roots, remote=remote, bases=delta_bases, progress=progress, final_updates=updates, stats=report
        )
    except RefConflict:
        # a target head moved after we listed it (every object has landed): apply the moves one by one
        # and report the networks whose head moved under us as diverged
        lost: set[str] = set()
        for update in updates:
            owner = _network_of(update.name, name, wanted)
            if owner in lost:
                continue
            try:
                trips(dst)
                _objects(dst).commit([], [update])
            except RefConflict:
                if dst.refs.get(update.name) == update.new:  # applied before the conflict
                    continue
                if owner is not None:
                    lost.add(owner)
                    report.networks[owner] = "diverged"
                    agreed.pop(owner, None)
    if isinstance(dst, NetworkStore):  # the destination's subscribers hear of the heads that moved
        for network_id, outcome in report.networks.items():
            if outcome in ("created", "updated"):
                dst.head_moved(network_id, dst_heads.get(network_id), src_heads[network_id])
    if agreed and not local_in_commit:
        trips(local)
        moves = [RefUpdate(tracking_ref(name, n), old, new, required=False) for n, (old, new) in agreed.items()]
        _objects(local).commit([], moves)
    return report


def _network_of(ref: str, name: str, networks: list[str]) -> str | None:
    """The network whose head (or agreed head) ``ref`` is."""
    for network_id in networks:
        if ref in (head_ref(network_id), tracking_ref(name, network_id)):
            return network_id
    return None


def push(
    src: ObjectStore,
    dst: ObjectStore,
    networks: Iterable[str] | None = None,
    force: bool = False,
    *,
    remote: str | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Send ``networks`` (default: all of ``src``'s) and all their snapshots from ``src`` to ``dst``.

    ``dst``'s head of a network moves only if ``dst`` has no such network or its
    head is still what ``src`` last agreed with it (or with ``force``); see
    :func:`decide`.  The agreed heads are recorded in ``src`` under the remote
    name ``remote`` (default: derived from ``dst``'s URL).  ``round_trips``
    counts batched calls to ``dst``.
    """
    return _replicate(src, dst, local=src, remote=dst, name=remote, networks=networks, force=force, progress=progress)


def pull(
    dst: ObjectStore,
    src: ObjectStore,
    networks: Iterable[str] | None = None,
    force: bool = False,
    *,
    remote: str | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Fetch ``networks`` (default: all of ``src``'s) from ``src`` into ``dst``: a push the other way.

    The agreed heads are recorded in ``dst`` (the local store) under ``remote``
    (default: derived from ``src``'s URL).  ``round_trips`` counts batched calls to ``src``.
    """
    return _replicate(src, dst, local=dst, remote=src, name=remote, networks=networks, force=force, progress=progress)


def sync(local: ObjectStore, remote: ObjectStore, *, name: str | None = None, force: bool = False) -> SyncReport:
    """Bassline's ``sync(remote)``: pull every network of ``remote``, then push every network of ``local``.

    Each network's entry is the more telling of the two outcomes (diverged >
    created > updated > up-to-date).
    """
    pulled = pull(local, remote, force=force, remote=name)
    pushed = push(local, remote, force=force, remote=name)
    report = SyncReport(snapshots_copied=pulled.snapshots_copied + pushed.snapshots_copied)
    report.add(pulled)
    report.add(pushed)
    rank: dict[Outcome, int] = {"diverged": 3, "created": 2, "updated": 1, "up-to-date": 0}
    for network_id in sorted(set(pulled.networks) | set(pushed.networks)):
        outcomes = [r.networks[network_id] for r in (pulled, pushed) if network_id in r.networks]
        report.networks[network_id] = max(outcomes, key=rank.__getitem__)
    return report
