"""The transfer engine: copy to a store everything reachable from some roots that it lacks, children-first.

:func:`transfer` walks the DAG level by level (:func:`casstore.model.walk.walk`),
asks the destination ``missing()`` once per level for the whole frontier,
fetches only the missing objects from the source (re-hashing each), and
descends only into objects that were missing: a present object implies its
whole subtree is present.  The objects are then written children-first (by
height), so at every instant the destination keeps that invariant, and an
interrupted transfer leaves only valid objects.  Every batch reaches the
destination as a pack through its one write seam,
:meth:`~casstore.store.base.ObjectStore.receive_pack`; an updated network's
rewritten objects travel in it as deltas against the objects they replace,
which the destination holds (:mod:`casstore.pack`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from casstore import codec
from casstore.collector import with_collector_paused
from casstore.errors import CorruptObject, NetworkNotFound, ObjectNotFound, SerializationError
from casstore.model.types import check_id
from casstore.model.walk import DECODE_ERRORS, Kind, Reached, children, walk
from casstore.pack import EMPTY_PACK, PackBuilder, read_pack
from casstore.store.base import ObjectStore, RefUpdate
from casstore.sync.report import Progress, TransferStats
from casstore.sync.stored import StoredDeltas

__all__ = ["FETCH_BATCH", "HOLD_BYTES", "WRITE_BYTES", "WRITE_OBJECTS", "transfer", "wanted_networks"]

#: Objects fetched from the source per ``get_frames`` call.
FETCH_BATCH = 8192
#: Bytes written to the destination per ``receive_pack`` call (and objects, whichever comes first).
WRITE_BYTES = 16 << 20
WRITE_OBJECTS = 65536
#: Frames held in memory between the walk and the write; beyond this they are fetched again when written.
HOLD_BYTES = 256 << 20


class _Trips:
    """Counts, in ``stats.round_trips``, the batched calls made to the remote side of an exchange."""

    def __init__(self, remote: ObjectStore, stats: TransferStats) -> None:
        self.remote = remote
        self.stats = stats

    def __call__(self, store: ObjectStore) -> None:
        if store is self.remote:
            self.stats.round_trips += 1


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


@with_collector_paused  # see casstore.collector: a transfer allocates as a large write does
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
    :mod:`casstore.pack`), unless either store is a passive remote.  Every
    batch goes to ``dst.receive_pack``; the last one carries ``final_updates``,
    so a small push costs one write.  Raises
    :class:`~casstore.errors.ObjectNotFound` if the source lacks an object it
    names and :class:`~casstore.errors.CorruptObject` if one fails its hash;
    either way nothing that names a missing object was written.  Figures are
    added to ``stats`` if given (so they survive an exception), else to a new one.
    """
    source, target = src, dst
    stats = stats if stats is not None else TransferStats()
    trips = _Trips(remote if remote is not None else dst, stats)
    use_deltas = bool(bases) and not (source.passive_remote or target.passive_remote)
    local = target if trips.remote is source else source  # delta bases are read on this side

    order: list[bytes] = []  # missing objects, breadth-first
    kids: dict[bytes, list[bytes]] = {}  # missing object -> every object it links to
    held: dict[bytes, bytes] = {}
    deltas: dict[bytes, tuple[bytes, bytes, bytes]] = {}  # object -> (its bytes, base, base's bytes)
    ready: dict[bytes, tuple[bytes, bytes]] = {}  # object -> (base, delta): its delta at rest, sent as it is
    held_bytes = 0

    # With delta bases, what sits unchanged under a base is known to be held (the destination holds each
    # base's subtree: the walk does not even follow it), and a rewritten object (paired with a different
    # base object) is new: only the objects paired with nothing are asked about, so an incremental push
    # asks little or nothing.
    rewritten: set[bytes] = set(bases or ()) if use_deltas else set()

    def present(digests: list[bytes]) -> set[bytes]:
        """One ``missing()`` call per level: the objects the destination holds are skipped with their subtrees."""
        stats.levels += 1
        ask = [digest for digest in digests if digest not in rewritten]
        absent = set(target.blobs.missing(ask)) if ask else set()
        if ask:
            trips(target)
        held = {digest for digest in ask if digest not in absent}
        stats.objects_skipped += len(held)
        return held

    stored = StoredDeltas(source.blobs) if use_deltas else None

    def fetch(digests: list[bytes]) -> Sequence[bytes | None]:
        trips(source)
        if stored is not None:
            return stored.fetch(digests)
        return source.blobs.get_whole_frames(digests, compress=True)

    def lacking(digest: bytes, kind: Kind) -> None:
        name = codec.format_id(digest)
        raise ObjectNotFound(name, f"the source ({src.url}) lacks object {name}")

    def visit(level: list[Reached]) -> None:
        nonlocal held_bytes
        for digest, _, data, frame, links, base, old, unchanged in level:
            order.append(digest)
            stats.objects_skipped += unchanged
            as_stored = stored.delta(digest, base) if stored is not None and base is not None else None
            if held_bytes + len(frame) <= hold_bytes:
                held[digest] = frame
                held_bytes += len(frame)
                if as_stored is not None and base is not None and len(as_stored) + codec.DIGEST_SIZE < len(frame):
                    ready[digest] = (base, as_stored)
                    held_bytes += len(as_stored)
                elif base is not None and old is not None and held_bytes + len(data) + len(old) <= hold_bytes:
                    deltas[digest] = (data, base, old)
                    held_bytes += len(data) + len(old)
            kids[digest] = [child for child, _, _ in links]
            if use_deltas:
                rewritten.update(child for child, _, paired in links if paired is not None)
        if progress is not None:
            progress(0, 0, len(order))

    roots = list(roots)
    if trips.remote is source and not target.passive_remote:
        fetched = _fetch_whole(source, target, roots, bases or {}, final_updates, stats, progress)
        if fetched:
            return stats
    walk(
        fetch,
        roots,
        batch=FETCH_BATCH,
        prune=present,
        visit=visit,
        on_missing=lacking,
        bases=bases if use_deltas else None,
        fetch_bases=local.blobs.get_whole_frames if use_deltas and (stored is None or local is not source) else None,
        read_bases=stored.read_bases if stored is not None and local is source else None,
    )
    writer = _Writer(source, target, deltas if use_deltas else None, final_updates, stats, trips, progress)
    if stored is not None:
        writer.ready, writer.rebuilt = ready, stored.rebuilt
    writer.write(order, kids, held)
    return stats


def _fetch_whole(
    source: ObjectStore,
    target: ObjectStore,
    roots: list[tuple[bytes, Kind]],
    bases: Mapping[bytes, bytes],
    final_updates: Sequence[RefUpdate],
    stats: TransferStats,
    progress: Progress | None,
) -> bool:
    """A pull through the source's ``fetch_packs`` (one round trip for the whole closure), if it offers it.

    Returns ``False`` (nothing done) when the source has no such capability.
    Each pack is received as it comes, children first; once the answer has
    ended, the received closure is checked whole (:class:`_Fetched`)
    and only then are ``final_updates`` applied.
    """
    absent = target.blobs.missing([digest for digest, _ in roots])
    wanted = [(digest, kind) for digest, kind in roots if digest in absent]
    have = [(bases[digest], kind) for digest, kind in roots if digest in bases]
    packs = source.fetch_packs(wanted, have, {d: bases[d] for d, _ in wanted if d in bases}) if wanted else None
    if packs is None:
        return False
    stats.levels += 1
    stats.round_trips += 1
    fetched = _Fetched()
    for pack in packs:
        _receive(target, fetched.check(pack), (), stats, progress)
    fetched.check_closure(source, target, wanted)
    if final_updates:
        _receive(target, EMPTY_PACK, final_updates, stats, progress)
    return True


#: Every link inside casstore's objects is a CID under CBOR tag 42 (``codec.link``): bytes without it link to nothing.
_TAG_42 = b"\xd8\x2a"


class _Fetched:
    """What a fetch answer delivered, checked as it comes and, at its end, checked whole."""

    def __init__(self) -> None:
        self.received: set[bytes] = set()
        self.rebuilt: set[bytes] = set()  # sent as deltas: their bytes are read back when checked
        self.linking: dict[bytes, bytes] = {}  # received objects that may link: their canonical bytes

    def check(self, pack: bytes) -> bytes:
        """``pack`` as a verified pack: each whole frame re-hashed here (once: the store takes it as checked)."""
        builder = PackBuilder(verified=True)
        for entry in read_pack(pack):
            self.received.add(entry.digest)
            if entry.base is not None:
                self.rebuilt.add(entry.digest)
                builder.add_delta(entry.digest, entry.base, entry.payload)
                continue
            data = codec.unframe(entry.payload, entry.digest)
            if _TAG_42 in data:
                self.linking[entry.digest] = data
            builder.add_frame(entry.digest, entry.payload)
        return builder.finish()

    def check_closure(self, source: ObjectStore, target: ObjectStore, roots: list[tuple[bytes, Kind]]) -> None:
        """Every object under ``roots`` is now in ``target``: the answer was whole.

        Descends what was received by schema, down to objects it did not receive, which
        ``target`` must hold already (with their subtrees).  Raises
        :class:`~casstore.errors.ObjectNotFound` before any ref moves if the answer left one out.
        """
        seen = {digest for digest, _ in roots}
        level = list(dict.fromkeys(roots))
        while level:
            outside = [digest for digest, _ in level if digest not in self.received]
            absent = target.blobs.missing(outside) if outside else set()
            if absent:
                name = codec.format_id(next(iter(absent)))
                raise ObjectNotFound(name, f"{source.url} left object {name} out of what it sent")
            inside = [(digest, kind) for digest, kind in level if digest in self.received]
            read_back = [digest for digest, _ in inside if digest in self.rebuilt]
            datas = dict(zip(read_back, target.blobs.get_many(read_back), strict=True)) if read_back else {}
            following: list[tuple[bytes, Kind]] = []
            for digest, kind in inside:
                data = datas.get(digest, self.linking.get(digest))
                if data is None or kind in ("data", "opaque"):
                    continue
                try:
                    links = list(children(kind, data))
                except DECODE_ERRORS as exc:
                    name = codec.format_id(digest)
                    raise CorruptObject(name, f"{source.url} sent object {name}, which is no {kind}: {exc}") from None
                for child, child_kind in links:
                    if child not in seen:
                        seen.add(child)
                        following.append((child, child_kind))
            level = following


def _receive(
    target: ObjectStore, pack: bytes, updates: Sequence[RefUpdate], stats: TransferStats, progress: Progress | None
) -> None:
    try:
        stats.objects_sent += target.receive_pack(pack, updates)
    finally:
        stats.bytes_sent += len(pack) - len(EMPTY_PACK)
    if progress is not None:
        progress(stats.objects_sent, stats.bytes_sent, stats.objects_sent)


class _Writer:
    """Writes the missing objects children-first, in packs handed to the destination's ``receive_pack``."""

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
        #: object -> (base, delta) sent as it is; objects whose held frame is raw (rebuilt from a delta frame)
        self.ready: dict[bytes, tuple[bytes, bytes]] = {}
        self.rebuilt: set[bytes] = set()

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
                again = dict(zip(refetch, self.source.blobs.get_whole_frames(refetch, compress=True), strict=True))
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

    def _encode(self) -> tuple[bytes, int]:
        """The batch as a pack, and the bytes that count as sent.

        With deltas in play that is the pack itself; otherwise (a new network,
        a clone, a passive remote) every entry is a whole frame and the frames
        are what counts, as if they travelled bare.
        """
        builder = PackBuilder(verified=True)  # every frame was re-hashed when read from the source
        if self.deltas is None:
            builder.add_frames(self.batch)
            return builder.finish(), self.batch_bytes
        ready, rebuilt = self.ready, self.rebuilt
        raw = [(d, f[1:]) for d, f in self.batch if d in rebuilt and d not in ready and f[:1] == b"\x00"]
        framed = dict(codec.frame_many_hashed(raw)) if raw else {}  # sent whole after all: compressed
        for digest, frame in self.batch:
            as_stored = ready.pop(digest, None)
            if as_stored is not None:
                builder.add_delta(digest, *as_stored)
                continue
            frame = framed.get(digest, frame)
            delta = self.deltas.pop(digest, None)
            if delta is None:
                builder.add_frame(digest, frame)
            else:
                builder.add(digest, frame, *delta)
        pack = builder.finish()
        self.stats.deltas += builder.deltas
        return pack, len(pack)

    def flush(self, final: bool) -> None:
        pack, sent = self._encode()
        self.trips(self.target)
        try:
            # on a RefConflict the objects are stored all the same (receive_pack's contract): the caller needs them
            self.target.receive_pack(pack, self.final_updates if final else ())
        finally:
            self.stats.objects_sent += len(self.batch)
            self.stats.bytes_sent += sent
        if self.progress is not None:
            self.progress(self.stats.objects_sent, self.stats.bytes_sent, self.total)
        self.batch, self.batch_bytes = [], 0


def wanted_networks(networks: Iterable[str] | None, heads: Mapping[str, bytes], where: str) -> list[str]:
    """The networks a push, pull or fetch asked for (default: every one of ``heads``, the source's), each
    checked as an id and present in ``heads`` (else :class:`~casstore.errors.NetworkNotFound` naming ``where``)."""
    if networks is None:
        return sorted(heads)
    if isinstance(networks, (str, bytes)) or not isinstance(networks, Iterable):
        shown = repr(networks)[:80]
        raise SerializationError(f"networks: expected a list of network ids, not {shown}", "networks")
    wanted = list(dict.fromkeys(networks))
    for network_id in wanted:
        check_id(network_id, "networks item")
        if network_id not in heads:
            raise NetworkNotFound(f"network {network_id!r} not found in {where}")
    return wanted
