"""New objects of one write, kept in creation order until written together (:class:`PendingWrites`).

Part of the store protocols (re-exported by :mod:`casstore.store.base`): the
write engine adds each new object as it builds it, records which object each
replaces (a delta base at rest), and hands them to a backend in one batch,
framed whole or as deltas (:mod:`casstore.store.deltas`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from casstore.codec import frame_many_hashed, hash_bytes
from casstore.store import deltas as at_rest
from casstore.store.deltas import make_delta_frames

if TYPE_CHECKING:
    from casstore.store.base import BlobStore

__all__ = ["PendingWrites"]


class PendingWrites:
    """New objects of one write, in creation order (children first), until written together.

    Each object is hashed once, when added (its id is needed at once, to link
    to it); :meth:`write_to` frames them all in one batch and stores them in order.
    (Framing in the background while the caller works was measured slower: the
    worker thread and the caller's Python code contend for the GIL.)
    """

    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self.nbytes = 0
        #: new object -> the object it replaces (a delta base at rest), set by the write engine's pairing
        self.bases: dict[bytes, bytes] = {}
        #: a base -> what returns its canonical bytes, where the writer holds it already (checked by hash
        #: when used), so framing deltas need not read it back through its chain
        self.base_encoders: dict[bytes, Callable[[], bytes]] = {}

    def add(self, data: bytes) -> bytes:
        """Keep ``data`` for writing; returns its digest."""
        digest = hash_bytes(data)
        self.add_hashed(digest, data)
        return digest

    def add_hashed(self, digest: bytes, data: bytes) -> None:
        if digest not in self._data:
            self._data[digest] = data
            self.nbytes += len(data)

    def replaces(self, new: bytes, old: bytes, encoder: Callable[[], bytes] | None = None) -> None:
        """Record that ``new`` replaces ``old`` (its delta base); ``encoder`` gives ``old``'s canonical bytes."""
        if new != old:
            self.bases[new] = old
            if encoder is not None:
                self.base_encoders[old] = encoder

    def base_data(self, digest: bytes) -> bytes | None:
        """``digest``'s canonical bytes if the writer holds them (re-hashed here), else ``None``."""
        encoder = self.base_encoders.get(digest)
        if encoder is None:
            return None
        data = encoder()
        return data if hash_bytes(data) == digest else None

    def absorb(self, other: PendingWrites) -> None:
        """Take over ``other``'s objects, after ours, in their order."""
        for digest, data in other._data.items():
            self.add_hashed(digest, data)
        self.bases.update(other.bases)
        self.base_encoders.update(other.base_encoders)
        other._data, other.nbytes, other.bases, other.base_encoders = {}, 0, {}, {}

    def get(self, digest: bytes) -> bytes | None:
        return self._data.get(digest)

    def __contains__(self, digest: object) -> bool:
        return digest in self._data

    def __len__(self) -> int:
        return len(self._data)

    def frames(self, blobs: BlobStore | None = None) -> list[tuple[bytes, bytes]]:
        """Everything as ``(digest, frame)`` in order (children first); then forget it.

        With ``blobs`` (the store the objects are for), an object paired with
        the one it replaces (:attr:`bases`) is framed as a delta against it
        where that is smaller (see :mod:`casstore.store.deltas`).
        """
        data, bases = self._data, self.bases
        deltas: dict[bytes, bytes] = {}
        if blobs is not None and bases and at_rest.WRITE_DELTAS:
            paired = [d for d in data if d in bases and bases[d] not in data]
            # only objects the store lacks: an object held already (a value changed back) may be some
            # delta's base, and making it a delta in turn could close a cycle
            # (a store that keeps no delta frames at rest needs no such care, nor the round trip)
            absent = set(paired) if not blobs.keeps_delta_frames else blobs.missing(paired) if paired else set()
            deltas = make_delta_frames(
                [(d, data[d], bases[d]) for d in paired if d in absent],
                blobs.get_frames,
                self.base_data,
                blobs.delta_bases,
            )
        if not deltas:
            frames = frame_many_hashed(list(data.items()))
        else:
            kept = {d: f for d, f in deltas.items() if at_rest.clearly_smaller(f, data[d])}
            whole = dict(frame_many_hashed([(d, v) for d, v in data.items() if d not in kept]))
            for digest, frame in deltas.items():
                if digest not in kept and at_rest.worth_it(frame, whole[digest]):
                    kept[digest] = frame
            frames = [(d, kept[d] if d in kept else whole[d]) for d in data]
        if blobs is not None:
            blobs.delta_bases.add(list(data.items()))  # hashed when added: the next step's bases
        self._data, self.nbytes, self.bases, self.base_encoders = {}, 0, {}, {}
        return frames

    def write_to(self, blobs: BlobStore) -> None:
        """Store everything (children first), in batches; then forget it."""
        blobs.put_frames_in_batches(self.frames())
