"""The LMDB backend's object layout: each write's new frames appended as one segment, with an index.

Three named databases hold the objects (``docs/format.md``, "The LMDB layout"):

* ``segments``: segment number (8 bytes, big-endian, increasing) → one write's
  new frames, concatenated after a header of their digests
  (``u32 count | count * 32-byte digest | frames``);
* ``index``: digest → where its frame is (``u64 segment | u32 offset | u32 length``);
* ``seglive``: segment number → ``u64 live bytes | u64 frame bytes`` (what gc has left of it).

One value per write instead of one per object removes LMDB's per-object page
overhead: small frames no longer leave random-key leaf pages part-filled, and
frames over half a page no longer take whole overflow pages each (a segment is
one run of overflow pages). Only the 16-byte index entries sit in a random-key
B-tree. gc deletes index entries; a segment left with no live bytes is dropped,
and one left under :data:`COMPACT_BELOW` live is rewritten as a new segment of
its live frames, in the same transaction.

Stores written before this layout keep their objects in the ``blobs`` database
(digest → frame), which every read, presence check, scan and delete still
consults: they open and read unchanged, and their new writes go to segments.
Everything here runs inside the caller's LMDB transaction, so a commit's
frames, index entries and ref moves stay one atomic transaction.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from casstore.codec import DIGEST_SIZE

__all__ = [
    "COMPACT_BELOW",
    "SEGMENT_BYTES",
    "Layout",
    "append",
    "delete",
    "get_many",
    "held",
    "layout_stats",
]

Txn = Any
#: A write's frames are cut into segments of about this many bytes (a larger frame gets one to itself).
#: Small enough that reading one frame stays cheap: LMDB's get of a value costs ~3.5 µs per MiB of it here.
SEGMENT_BYTES = 128 << 10
#: A segment whose live bytes fall under this fraction of its frames is rewritten by the delete that did it.
COMPACT_BELOW = 0.5
_LOCATION = struct.Struct(">QII")
_LIVE = struct.Struct(">QQ")
_COUNT = struct.Struct(">I")


@dataclass(frozen=True)
class Layout:
    """The databases objects live in; ``index`` is ``None`` in a read-only store written before segments."""

    legacy: Any
    index: Any
    segments: Any
    seglive: Any


def held(txn: Txn, layout: Layout, digests: Iterable[bytes]) -> set[bytes]:
    """Which of ``digests`` the store holds (in a segment or the legacy table)."""
    get, index, legacy = txn.get, layout.index, layout.legacy
    found = set() if index is None else {d for d in digests if get(d, db=index) is not None}
    if txn.stat(legacy)["entries"]:
        found.update(d for d in digests if d not in found and get(d, db=legacy) is not None)
    return found


def get_many(txn: Txn, layout: Layout, digests: Sequence[bytes]) -> list[bytes | None]:
    """The frames of ``digests`` (``None`` where absent); ``txn`` may be a buffers transaction."""
    get = txn.get
    index, legacy, segments = layout.index, layout.legacy, layout.segments
    opened: dict[int, Any] = {}  # segment number -> its value, read once per call
    out: list[bytes | None] = []
    for digest in digests:
        where = get(digest, db=index) if index is not None else None
        if where is None:
            frame = get(digest, db=legacy)
            out.append(None if frame is None else bytes(frame))
            continue
        number, offset, length = _LOCATION.unpack(where)
        segment = opened.get(number)
        if segment is None:
            segment = opened[number] = get(number.to_bytes(8, "big"), db=segments)
        # a damaged index reads as absent (a lost segment) or as a short frame, which unframing rejects
        out.append(None if segment is None else bytes(segment[offset : offset + length]))
    return out


def append(txn: Txn, layout: Layout, frames: dict[bytes, bytes]) -> None:
    """Store ``frames`` (digest → frame, none held yet) as new segments, indexed."""
    cursor = txn.cursor(layout.segments)
    number = int.from_bytes(cursor.key(), "big") + 1 if cursor.last() else 1
    batch: list[tuple[bytes, bytes]] = []
    size = 0
    for item in frames.items():
        if batch and size + len(item[1]) > SEGMENT_BYTES:
            _write_segment(txn, layout, number, batch)
            number, batch, size = number + 1, [], 0
        batch.append(item)
        size += len(item[1])
    if batch:
        _write_segment(txn, layout, number, batch)


def _write_segment(txn: Txn, layout: Layout, number: int, batch: list[tuple[bytes, bytes]]) -> None:
    key = number.to_bytes(8, "big")
    offset = _COUNT.size + DIGEST_SIZE * len(batch)
    entries = []
    for digest, frame in batch:
        entries.append((digest, _LOCATION.pack(number, offset, len(frame))))
        offset += len(frame)
    header = _COUNT.pack(len(batch)) + b"".join(digest for digest, _ in batch)
    txn.put(key, b"".join([header, *(frame for _, frame in batch)]), db=layout.segments, append=True)
    txn.cursor(layout.index).putmulti(entries, overwrite=True)
    frame_bytes = offset - _COUNT.size - DIGEST_SIZE * len(batch)
    txn.put(key, _LIVE.pack(frame_bytes, frame_bytes), db=layout.seglive)


def delete(txn: Txn, layout: Layout, digests: Iterable[bytes]) -> int:
    """Delete ``digests``' objects; how many were held. Emptied segments go, thinned ones are rewritten."""
    removed = 0
    freed: dict[int, int] = {}
    for digest in digests:
        where = txn.get(digest, db=layout.index) if layout.index is not None else None
        if where is not None:
            number, _, length = _LOCATION.unpack(where)
            txn.delete(digest, db=layout.index)
            freed[number] = freed.get(number, 0) + length
            removed += 1
        elif txn.delete(digest, db=layout.legacy):
            removed += 1
    for number, gone in sorted(freed.items()):
        _shrink(txn, layout, number, gone)
    return removed


def _shrink(txn: Txn, layout: Layout, number: int, gone: int) -> None:
    key = number.to_bytes(8, "big")
    figures = txn.get(key, db=layout.seglive)
    if figures is None:  # a damaged store: leave the segment to verify's report rather than guess
        return
    live, total = _LIVE.unpack(figures)
    live -= gone
    if live > 0 and live >= COMPACT_BELOW * total:
        txn.put(key, _LIVE.pack(live, total), db=layout.seglive)
        return
    survivors = _live_frames(txn, layout, number) if live > 0 else {}
    txn.delete(key, db=layout.segments)
    txn.delete(key, db=layout.seglive)
    if survivors:
        append(txn, layout, survivors)


def _live_frames(txn: Txn, layout: Layout, number: int) -> dict[bytes, bytes]:
    """The frames of segment ``number`` that the index still points at."""
    segment = bytes(txn.get(number.to_bytes(8, "big"), db=layout.segments))
    (count,) = _COUNT.unpack_from(segment)
    out: dict[bytes, bytes] = {}
    for at in range(_COUNT.size, _COUNT.size + DIGEST_SIZE * count, DIGEST_SIZE):
        digest = segment[at : at + DIGEST_SIZE]
        where = txn.get(digest, db=layout.index)
        if where is None:
            continue
        home, offset, length = _LOCATION.unpack(where)
        if home == number:
            out[digest] = segment[offset : offset + length]
    return out


def layout_stats(txn: Txn, layout: Layout) -> dict[str, int]:
    """Objects, pages and segment bytes of the layout (``stored_bytes``: every page it occupies)."""
    legacy = txn.stat(layout.legacy)
    segmented = [] if layout.index is None else [txn.stat(db) for db in (layout.index, layout.segments, layout.seglive)]
    pages = sum(st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"] for st in [legacy, *segmented])
    live = total = 0
    if layout.seglive is not None:
        for value in txn.cursor(layout.seglive).iternext(keys=False, values=True):
            kept, frames = _LIVE.unpack(value)
            live, total = live + kept, total + frames
    index, segments = (segmented[0]["entries"], segmented[1]["entries"]) if segmented else (0, 0)
    return {
        "objects": legacy["entries"] + index,
        "stored_bytes": pages * legacy["psize"],
        "legacy_objects": legacy["entries"],
        "segments": segments,
        "segment_live_bytes": live,
        "segment_dead_bytes": total - live,
    }
