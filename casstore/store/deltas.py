"""Deltas at rest: the delta frame (header ``02``), writing it, and rebuilding objects through chains.

A rewritten object (a prolly leaf that differs from the one it replaces by one
value, say) may be stored as a *delta frame* instead of a whole frame::

    02 | chain length (1 byte, 1..MAX_CHAIN) | base digest (32) | delta

where ``delta`` is a :func:`casstore.pack.make_delta` delta (a splice, or zstd
with the base as a raw-content dictionary) of the object's canonical bytes
against its base's canonical bytes.  The base is a whole frame or a delta
frame with a shorter chain length (one shorter when written; gc may rewrite
a base whole, which only shortens chains), so the writer learns the new chain
length from the base's header alone; at :data:`WRITE_CHAIN` it deltas against
the chain's bottom instead, or writes the object whole.

Backends never see the difference: frames stay opaque to them.  Chains are
resolved here, above every backend, by :func:`resolve_frames` — one batched
``get_frames`` per chain level — and every rebuilt object is re-hashed by the
caller's ``unframe`` exactly like a whole frame; a rebuilt object whose base
is corrupt or missing does not hash to its id and is reported as
:class:`~casstore.errors.CorruptObject`.  ``codec.unframe`` refuses a delta
frame read raw, so no delta frame is ever taken for an object by mistake.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from casstore import codec
from casstore.errors import CorruptObject, StorageError
from casstore.pack import apply_delta, make_delta
from casstore.store.basecache import DeltaBaseCache

__all__ = [
    "FRAME_DELTA",
    "MAX_CHAIN",
    "WRITE_CHAIN",
    "WRITE_DELTAS",
    "GetFrames",
    "chain_links",
    "clearly_smaller",
    "delta_frame",
    "frame_census",
    "frame_chain",
    "make_delta_frames",
    "parse_delta_frame",
    "rebuild_broken",
    "resolve_frames",
    "whole_content",
    "worth_it",
]

FRAME_DELTA = 0x02
#: Whether writes store deltas at all (``False`` writes the layout of before: whole frames only; for
#: benchmarks' same-run baselines and compatibility tests). Reading chains never depends on it.
WRITE_DELTAS = True
#: The longest chain of delta frames above a whole frame the format allows (a reader refuses longer).
MAX_CHAIN = 8
#: The longest chain writers build (at most MAX_CHAIN): a read of an object rebuilds at most this many
#: deltas, one batched base read per level.  Measured in docs/format.md.
WRITE_CHAIN = 4
_HEADER = 2 + codec.DIGEST_SIZE
#: A delta is kept only if it saves at least this fraction of the whole frame (else the read cost is not worth it).
_KEEP_BELOW = 0.75

GetFrames = Callable[[Sequence[bytes]], Sequence[bytes | None]]


def delta_frame(chain: int, base: bytes, delta: bytes) -> bytes:
    """The stored frame of an object ``delta`` rebuilds from ``base``, ``chain`` deltas above a whole frame."""
    return bytes([FRAME_DELTA, chain]) + base + delta


def parse_delta_frame(frame: bytes) -> tuple[int, bytes, bytes]:
    """``(chain length, base digest, delta)`` of a delta frame (:class:`ValueError` if it is not one)."""
    if len(frame) <= _HEADER or frame[0] != FRAME_DELTA or not 1 <= frame[1] <= MAX_CHAIN:
        raise ValueError("not a delta frame")
    return frame[1], frame[2:_HEADER], frame[_HEADER:]


def frame_chain(frame: bytes) -> int:
    """How many deltas a read of ``frame`` applies: 0 for a whole frame."""
    return frame[1] if frame[:1] == b"\x02" and len(frame) > 1 else 0


def resolve_frames(
    get_frames: GetFrames,
    digests: Sequence[bytes],
    used: set[bytes] | None = None,
    frames: Sequence[bytes | None] | None = None,
    compress: bool = False,
    links: dict[bytes, bytes] | None = None,
    cache: DeltaBaseCache | None = None,
) -> list[bytes | None]:
    """``get_frames(digests)`` with every delta frame rebuilt into a whole ``00`` frame (not yet re-hashed).

    Bases are read in one batch per chain level.  A chain that cannot be
    rebuilt (a base missing or unreadable, a malformed delta) leaves the
    delta frame in place, which ``codec.unframe`` reports as corrupt.  Every
    base read is added to ``used`` (gc keeps them alive).  ``frames``: those of
    ``digests``, already read.  With ``compress``, rebuilt objects are framed
    as they would be stored whole (for frames that leave the store).  ``links``
    receives, for every delta frame met, its base (gc follows chains with it).  ``cache``: content
    found there is neither rebuilt nor decompressed (see :mod:`casstore.store.basecache`; never with
    ``used`` or ``links``, which must see every stored base).
    """
    frames = list(get_frames(digests) if frames is None else frames)
    if used is not None or links is not None:
        cache = None
    if cache is not None and not compress:  # a compressed whole frame whose content is cached: not decompressed
        packed = [i for i, frame in enumerate(frames) if frame is not None and frame[:1] == b"\x01"]
        found = cache.get_many([digests[i] for i in packed]) if packed else {}
        for i in packed:
            if (data := found.get(digests[i])) is not None:
                frames[i] = b"\x00" + data
    pending = [i for i, frame in enumerate(frames) if frame is not None and frame[:1] == b"\x02"]
    if not pending:
        return frames
    # digest -> canonical bytes (None: cannot be rebuilt)
    known: dict[bytes, bytes | None] = dict(cache.get_many([digests[i] for i in pending])) if cache is not None else {}
    wanted: dict[bytes, tuple[int, bytes, bytes]] = {}  # delta-framed digest -> its parsed frame
    for i in pending:
        if digests[i] not in known:
            _parse_into(wanted, known, digests[i], frames[i])  # type: ignore[arg-type]
    level = {base for _, base, _ in wanted.values()}
    for _ in range(MAX_CHAIN):
        level = {digest for digest in level if digest not in known and digest not in wanted}
        if level and cache is not None:
            cached = cache.get_many(level)
            known.update(cached)
            level.difference_update(cached)
        if not level:
            break
        order = list(level)
        if used is not None:
            used.update(order)
        level = set()
        for digest, frame in zip(order, get_frames(order), strict=True):
            if frame is None:
                known[digest] = None
            elif frame[:1] == b"\x02":
                if _parse_into(wanted, known, digest, frame):
                    level.add(wanted[digest][1])
            else:
                known[digest] = whole_content(frame, digest)
    rebuilt = []
    if links is not None:
        links.update((digest, entry[1]) for digest, entry in wanted.items())
    for i in pending:
        data = _rebuild(digests[i], wanted, known)
        if data is not None:
            frames[i] = b"\x00" + data
            rebuilt.append(i)
    if cache is not None and cache.recording:  # a bypassing reader's record of what it read (keep_rebuilt)
        cache.keep_rebuilt([(digest, data) for digest, data in known.items() if data is not None])
    if compress and rebuilt:
        framed = codec.frame_hashed([(digests[i], frames[i][1:]) for i in rebuilt])  # type: ignore[index]
        for i, (_, frame) in zip(rebuilt, framed, strict=True):
            frames[i] = frame
    return frames


def rebuild_broken(
    digests: Sequence[bytes],
    frames: list[bytes | None],
    get_frames: GetFrames,
    used: set[bytes] | None = None,
    compress: bool = False,
) -> list[bytes | None]:
    """``frames`` (what :func:`resolve_frames` gave for ``digests``) with each chain that did not rebuild
    resolved again through ``get_frames`` (a cache's store below it: a delta cached as it was written
    may name a base the store does not keep, since a store that already held the object keeps its own form)."""
    broken = [d for d, f in zip(digests, frames, strict=True) if f is not None and f[:1] == bytes([FRAME_DELTA])]
    if not broken:
        return frames
    again = dict(zip(broken, resolve_frames(get_frames, broken, used, compress=compress), strict=True))
    return [again.get(d, f) for d, f in zip(digests, frames, strict=True)]


def _parse_into(
    wanted: dict[bytes, tuple[int, bytes, bytes]], known: dict[bytes, bytes | None], digest: bytes, frame: bytes
) -> bool:
    try:
        wanted[digest] = parse_delta_frame(frame)
        return True
    except ValueError:
        known[digest] = None
        return False


def whole_content(frame: bytes, digest: bytes) -> bytes | None:
    """A whole frame's canonical bytes, unhashed (the object built on it is hashed), or None if unreadable."""
    try:
        if frame[:1] == b"\x00":
            return frame[1:]
        if frame[:1] == b"\x01":
            return codec.decompress_bounded(frame[1:], digest)
    except StorageError:
        pass
    return None


def _rebuild(
    digest: bytes, wanted: dict[bytes, tuple[int, bytes, bytes]], known: dict[bytes, bytes | None]
) -> bytes | None:
    """The canonical bytes ``digest``'s chain rebuilds (None if it cannot), memoised in ``known``."""
    stack: list[bytes] = []
    current = digest
    while current not in known:
        entry = wanted.get(current)
        if entry is None or len(stack) > MAX_CHAIN:
            known[current] = None
            break
        stack.append(current)
        chain, base, _ = entry
        if base in wanted and wanted[base][0] >= chain:
            known[current] = None  # chain lengths must fall towards a whole frame: never a cycle
            break
        current = base
    data = known.get(current)
    while stack:
        top = stack.pop()
        if top in known:
            data = known[top]
            continue
        if data is not None:
            try:
                data = apply_delta(wanted[top][2], data, top)
            except CorruptObject:
                data = None
        known[top] = data
    return known.get(digest)


def chain_links(get_frames: GetFrames, digests: Sequence[bytes]) -> dict[bytes, bytes]:
    """Delta frame → its base, for the delta frames of ``digests`` and down their whole chains (headers only)."""
    found: dict[bytes, bytes] = {}
    level = list(digests)
    for _ in range(MAX_CHAIN + 1):
        bases = []
        for digest, frame in zip(level, get_frames(level) if level else [], strict=True):
            if frame is not None and frame[:1] == b"\x02" and len(frame) > _HEADER:
                found[digest] = base = frame[2:_HEADER]
                if base not in found:
                    bases.append(base)
        if not bases:
            break
        level = list(dict.fromkeys(bases))
    return found


def make_delta_frames(
    items: Sequence[tuple[bytes, bytes, bytes]],
    get_frames: GetFrames,
    known: Callable[[bytes], bytes | None] | None = None,
    cache: DeltaBaseCache | None = None,
) -> dict[bytes, bytes]:
    """Delta frames, by digest, for ``(digest, canonical bytes, base digest)``, where the base allows one.

    A base whose chain is shorter than :data:`WRITE_CHAIN` is used as it is
    (the new chain is one longer).  At the bound the delta is taken against the
    whole frame at the bottom of the base's chain instead (a chain of one: it
    holds every change since that frame, so it grows until the caller finds it
    no longer pays and writes the object whole, which starts a new chain).
    Bases are read and rebuilt in one batch per chain level; a base that cannot
    be read is simply not used.  A base at the bound whose chain bottom the
    ``cache`` hints at has the hinted frame read with the bases (one read, not a
    walk down the chain), used only if it is a whole frame now; the bottoms of
    the delta frames made are hinted in turn.  ``known`` gives the canonical bytes of a base
    the caller holds already (checked by hash), which is then not rebuilt from
    its chain: only its frame's header is read.  The caller compares each delta
    frame with the whole frame (see :func:`worth_it`).  ``cache``: bases are
    looked up there first, and those ``known`` gives are kept there (the next
    read of the objects written rebuilds them from these bases).
    """
    if not items:
        return {}
    base_ids = list(dict.fromkeys(base for _, _, base in items))
    hints = cache.root_hints(base_ids) if cache is not None else {}
    # the hinted bottom of a chain at the bound is read with the bases: used if whole now (else walked)
    bottoms = {base: bottom for base, (bottom, chain) in hints.items() if chain >= WRITE_CHAIN}
    read_ids = list(dict.fromkeys([*base_ids, *bottoms.values()]))
    read = dict(zip(read_ids, get_frames(read_ids), strict=True))
    chains = {base: frame_chain(frame) for base in base_ids if (frame := read[base]) is not None}
    target = {base: (base, chains[base]) for base in chains if chains[base] < WRITE_CHAIN}
    walk = []
    for base in chains:
        if base not in target:
            bottom = read.get(bottoms.get(base, b""))
            if bottom is not None and bottom[:1] != b"\x02":
                target[base] = (bottoms[base], 0)
            else:
                walk.append(base)
    walked = _chain_roots(get_frames, walk)
    target.update(walked)
    contents = cache.get_many({against for against, _ in target.values()}) if cache is not None else {}
    if known is not None:
        held = []
        for base, (against, _) in target.items():
            if against == base and base not in contents and (data := known(base)) is not None:
                contents[base] = data
                held.append((base, data))
        if cache is not None:
            cache.add(held)
    wanted = list(dict.fromkeys(digest for digest, _ in target.values() if digest not in contents))
    for digest, data in _contents(get_frames, wanted, read, cache).items():
        if data is not None:
            contents[digest] = data
    out: dict[bytes, bytes] = {}
    # what the new frames' chains end at, as far as known (hints only: see DeltaBaseCache)
    found_bottoms = {base: (root, chains[base]) for base, (root, _) in walked.items()}
    for digest, data, base in items:
        against, chain = target.get(base, (base, -1))
        base_data = contents.get(against)
        if base_data is not None and against != digest:
            out[digest] = delta_frame(chain + 1, against, make_delta(data, base_data))
            bottom = against if chain == 0 else hints.get(base, (None, 0))[0]
            if bottom is not None:
                found_bottoms[digest] = (bottom, chain + 1)
    if cache is not None and found_bottoms:
        cache.add_root_hints(found_bottoms)
    return out


def _contents(
    get_frames: GetFrames, digests: list[bytes], read: dict[bytes, bytes | None], cache: DeltaBaseCache | None
) -> dict[bytes, bytes | None]:
    """The canonical bytes of ``digests`` (``None``: unreadable), from frames ``read`` already where it holds them."""
    given = [digest for digest in digests if read.get(digest) is not None]
    unread = [digest for digest in digests if read.get(digest) is None]
    out: dict[bytes, bytes | None] = {}
    for order, frames in ((given, [read[d] for d in given]), (unread, None)):
        if order:
            resolved = resolve_frames(get_frames, order, frames=frames, cache=cache)
            for digest, frame in zip(order, resolved, strict=True):
                out[digest] = whole_content(frame, digest) if frame is not None else None
    return out


def _chain_roots(get_frames: GetFrames, digests: Sequence[bytes]) -> dict[bytes, tuple[bytes, int]]:
    """For each delta-framed digest, the whole frame at the bottom of its chain (and chain length 0)."""
    at = {digest: digest for digest in digests}
    roots: dict[bytes, tuple[bytes, int]] = {}
    for _ in range(MAX_CHAIN + 1):
        if not at:
            break
        order = list(at)
        following = {}
        for digest, frame in zip(order, get_frames([at[d] for d in order]), strict=True):
            if frame is None:
                continue
            if frame[:1] != b"\x02":
                roots[digest] = (at[digest], 0)
            elif len(frame) > _HEADER:
                following[digest] = frame[2:_HEADER]
        at = following
    return roots


#: A delta frame under this fraction of the canonical bytes is kept without compressing the whole object to
#: compare (zstd gets nowhere near 8x on one object); a larger one must beat :data:`_KEEP_BELOW` of the whole frame.
_CLEARLY_SMALLER = 0.125


def clearly_smaller(delta: bytes, data: bytes) -> bool:
    """Whether a delta frame is kept without comparing it with the compressed whole frame."""
    return len(delta) < _CLEARLY_SMALLER * len(data)


def worth_it(delta: bytes, whole: bytes) -> bool:
    """Whether a delta frame is worth its read cost against the whole frame."""
    return len(delta) < _KEEP_BELOW * len(whole)


def frame_census(blobs_get_frames: GetFrames, digests: Sequence[bytes], batch: int = 4096) -> dict[str, Any]:
    """What the frames of ``digests`` are: count and bytes of whole raw, whole zstd and delta frames, and
    how many frames have each chain length (``"0"``: whole)."""
    kinds = {"raw": [0, 0], "zstd": [0, 0], "delta": [0, 0]}
    chains: dict[str, int] = {}
    for start in range(0, len(digests), batch):
        for frame in blobs_get_frames(digests[start : start + batch]):
            if not frame:
                continue
            kind = "delta" if frame[0] == FRAME_DELTA else "zstd" if frame[0] == codec.FRAME_ZSTD else "raw"
            kinds[kind][0] += 1
            kinds[kind][1] += len(frame)
            chain = str(frame_chain(frame))
            chains[chain] = chains.get(chain, 0) + 1
    return {
        "frames": {kind: {"objects": n, "bytes": size} for kind, (n, size) in kinds.items()},
        "frame_bytes": sum(size for _, size in kinds.values()),
        "chain_lengths": dict(sorted(chains.items(), key=lambda item: int(item[0]))),
    }
