"""Reading a transfer's source with its deltas at rest kept: a stored delta against the paired base goes as it is.

A rewritten object the source stores as a delta frame against the object it
replaced (:mod:`casstore.store.deltas`) is usually paired, in an incremental
transfer, with that very object, which the destination holds.  Its stored
delta is then the pack entry sync would compute (:func:`casstore.pack.make_delta`
of the same two objects), so :class:`StoredDeltas` keeps it instead of
rebuilding the object, compressing it whole and delta-ing it again.

Every object is still rebuilt (the walk needs its links), or taken from the
store's delta base cache where this process made it (:mod:`casstore.store.basecache`),
and re-hashed by the walk.  The bases it is rebuilt from are not hashed here (a
corrupt base cannot rebuild an object that hashes to its id); they are handed
on to the walk's pairing, which re-hashes them without reading them a second time.
"""

from __future__ import annotations

from collections.abc import Sequence

from casstore import codec
from casstore.errors import CorruptObject
from casstore.pack import apply_delta
from casstore.store.base import BlobStore
from casstore.store.deltas import FRAME_DELTA, parse_delta_frame, whole_content

__all__ = ["StoredDeltas"]


class StoredDeltas:
    """The walk's reads of the source: :meth:`fetch` (objects) and, where the pairs are the source's
    too (a push), :meth:`read_bases` (the pairs: those :meth:`fetch` just rebuilt objects from are
    not read again)."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        #: object -> (base, delta) as stored, for every delta frame read whose base could be read
        self.stored: dict[bytes, tuple[bytes, bytes]] = {}
        #: objects rebuilt from a delta frame: their frame is raw (``00``), to be framed if sent whole
        self.rebuilt: set[bytes] = set()
        self._bases: dict[bytes, bytes] = {}  # the last chunk's bases: canonical bytes (the walk re-hashes them)

    def fetch(self, digests: Sequence[bytes]) -> list[bytes | None]:
        """Frames of ``digests``; a delta frame is rebuilt into a raw whole frame (not yet re-hashed).

        One whose chain cannot be rebuilt stays a delta frame, which ``codec.unframe`` reports as
        corrupt (as :meth:`~casstore.store.base.BlobStore.get_whole_frames` leaves it).
        """
        frames = list(self.blobs.get_frames(digests))
        deltas: dict[int, tuple[bytes, bytes]] = {}
        for i, frame in enumerate(frames):
            if frame is not None and frame[:1] == bytes([FRAME_DELTA]):
                try:
                    _, base, delta = parse_delta_frame(frame)
                except ValueError:
                    continue
                deltas[i] = (base, delta)
        self._bases = {}
        if not deltas:
            return frames
        cached = self.blobs.delta_bases.get_many([digests[i] for i in deltas])  # this process made them
        base_ids = list(dict.fromkeys(base for i, (base, _) in deltas.items() if digests[i] not in cached))
        for digest, frame in zip(base_ids, self.blobs.get_whole_frames(base_ids), strict=True):
            data = whole_content(frame, digest) if frame is not None else None
            if data is not None:
                self._bases[digest] = data
        for i, (base, delta) in deltas.items():
            digest = digests[i]
            data = cached.get(digest)
            if data is None:
                base_data = self._bases.get(base)
                if base_data is None:
                    continue
                try:
                    data = apply_delta(delta, base_data, digest)
                except CorruptObject:
                    continue
            frames[i] = b"\x00" + data
            self.stored[digest] = (base, delta)
            self.rebuilt.add(digest)
        return frames

    def read_bases(self, digests: Sequence[bytes]) -> dict[bytes, bytes]:
        """Canonical bytes of the walk's pairs (as :data:`~casstore.model.walk.ReadBases`): those in the
        delta base cache as they are (known by their hash), those the last :meth:`fetch` rebuilt objects
        from re-hashed here, the others read and re-hashed."""
        wanted = list(dict.fromkeys(digests))
        found = self.blobs.delta_bases.get_many(wanted)
        unread = [digest for digest in wanted if digest not in found]
        frames = [b"\x00" + self._bases[d] if d in self._bases else None for d in unread]
        need = [d for d, frame in zip(unread, frames, strict=True) if frame is None]
        read = dict(zip(need, self.blobs.get_whole_frames(need), strict=True)) if need else {}
        for digest, frame in zip(unread, frames, strict=True):
            frame = frame if frame is not None else read[digest]
            if frame is not None:
                found[digest] = codec.unframe(frame, digest)
        return found

    def delta(self, digest: bytes, base: bytes) -> bytes | None:
        """The stored delta of ``digest`` if it is against ``base``, else ``None``; forgotten once asked."""
        stored = self.stored.pop(digest, None)
        return stored[1] if stored is not None and stored[0] == base else None
