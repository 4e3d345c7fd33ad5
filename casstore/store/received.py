"""A received pack's objects as frames to store, its deltas kept as delta frames at rest where they pay.

:func:`casstore.pack.apply_pack` rebuilds every delta entry and frames the
object whole (compressing it).  A store that keeps delta frames
(``BlobStore.keeps_delta_frames``, with deltas at rest on) need not undo the
sender's work: a delta entry against a base whose chain is shorter than
:data:`~casstore.store.deltas.WRITE_CHAIN` is stored as the delta frame
``02 | chain + 1 | base | delta`` (the pack's delta and the delta at rest
share one format, :func:`casstore.pack.make_delta`), under the rules the
write path follows (:class:`~casstore.store.base.PendingWrites`): only for an
object the store lacks (a held object may be some chain's base, and making it
a delta could close a cycle), and only where it is clearly smaller than the
object, or smaller enough than its compressed frame.

Integrity is unchanged: every delta is still rebuilt from the store's own
base and the object re-hashed against its digest before anything is stored
(the base is checked by that hash: a corrupt base cannot rebuild an object
that hashes to its id; when one fails, the base is re-hashed to name the
culprit); a whole frame is re-hashed unless the pack is a
:class:`~casstore.pack.VerifiedPack` built in this process.  What is rebuilt
or re-hashed here is kept in the store's delta base cache
(:mod:`casstore.store.basecache`): the next transfer's deltas are against it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import blake3

from casstore import codec
from casstore.errors import CorruptObject, ObjectNotFound
from casstore.pack import Entry, VerifiedPack, read_pack, rebuild_entry
from casstore.store import deltas as at_rest

if TYPE_CHECKING:
    from casstore.store.base import BlobStore

__all__ = ["received_frames"]


def received_frames(blobs: BlobStore, pack: bytes) -> list[tuple[bytes, bytes]]:
    """``(digest, frame)`` for every object of ``pack``, in pack order, each rebuilt and re-hashed.

    As :func:`~casstore.pack.apply_pack` (same errors, nothing returned unless every entry checks out),
    except that a delta entry may come back as a delta frame (see the module docstring).
    """
    checked = isinstance(pack, VerifiedPack)
    built = pack.entries if isinstance(pack, VerifiedPack) else None
    entries: list[Entry] = built if built is not None else list(read_pack(pack))
    base_ids = list(dict.fromkeys(entry.base for entry in entries if entry.base is not None))
    raw = blobs.get_frames(base_ids) if base_ids else []
    whole = at_rest.resolve_frames(blobs.get_frames, base_ids, frames=raw, cache=blobs.delta_bases) if base_ids else []
    bases: dict[bytes, bytes] = {}
    chains: dict[bytes, int] = {}
    for digest, stored, frame in zip(base_ids, raw, whole, strict=True):
        if frame is None or stored is None:
            raise ObjectNotFound(
                codec.format_id(digest),
                f"delta base {codec.format_id(digest)} is gone from the destination; run the transfer again",
            )
        data = at_rest.whole_content(frame, digest)
        # not hashed here: the object rebuilt from it is (a corrupt base cannot rebuild an object that
        # hashes to its id), and the base itself when that fails; unreadable, unframe names what is wrong
        bases[digest] = data if data is not None else codec.unframe(frame, digest)
        chains[digest] = at_rest.frame_chain(stored)
    keep = [e.digest for e in entries if e.base is not None and chains[e.base] < at_rest.WRITE_CHAIN]
    absent = blobs.missing(keep) if keep else set()
    out: list[tuple[bytes, bytes]] = []
    rebuilt: list[tuple[bytes, bytes]] = []  # to be framed whole (or kept as deltas where those win)
    verified: list[tuple[bytes, bytes]] = []  # every object rebuilt or decoded, and re-hashed
    kept: dict[bytes, bytes] = {}  # delta frames that may be kept, if they beat the whole frame
    for entry in entries:
        if entry.base is None and not checked:  # re-hashed here as rebuild_entry would, and kept as a base
            verified.append((entry.digest, codec.unframe(entry.payload, entry.digest)))
            out.append((entry.digest, entry.payload))
            continue
        try:
            data = rebuild_entry(entry, bases, checked)
        except CorruptObject:
            if entry.base is not None and blake3.blake3(bases[entry.base]).digest() != entry.base:
                name = codec.format_id(entry.base)
                raise CorruptObject(name, f"stored object {name}, a delta base, does not hash to its id") from None
            raise
        if data is None or entry.base is None:
            out.append((entry.digest, entry.payload))
            continue
        verified.append((entry.digest, data))
        out.append((entry.digest, b""))
        if entry.digest in absent:
            frame = at_rest.delta_frame(chains[entry.base] + 1, entry.base, entry.payload)
            if at_rest.clearly_smaller(frame, data):
                out[-1] = (entry.digest, frame)
                continue
            kept[entry.digest] = frame
        rebuilt.append((entry.digest, data))
    frames = dict(codec.frame_many_hashed(rebuilt))
    blobs.delta_bases.add(verified)  # the bases of the next transfer's deltas
    for digest, frame in kept.items():
        if at_rest.worth_it(frame, frames[digest]):
            frames[digest] = frame
    return [(digest, frame or frames[digest]) for digest, frame in out]
