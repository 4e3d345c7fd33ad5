"""The ``fetch`` answer: every object reachable from ``want`` and not from ``have``, as packs, children first.

The transfer engine does the work (:func:`casstore.sync.engine.transfer`),
into a collector that keeps the packs instead of storing them.  Its
``missing`` question is answered without the client: the objects under
``have`` are expanded one level per level of the walk (both sides move down
together, as a tree diff does), skipping what the walk already reached,
and an object is "present" when it is one of them.  Everything claimed
present is reachable from ``have``, which the client holds, so nothing it
lacks is ever left out; a subtree that moved to another depth is merely
sent again.  Objects paired with a base under ``have`` go as deltas.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from casstore.model.walk import Kind, children
from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefUpdate
from casstore.store.memory import MemoryRefs
from casstore.sync.engine import transfer

__all__ = ["fetch_packs"]


class _HaveBlobs(BlobStore):
    """A stand-in for the client's blobs: holds exactly the objects found so far under ``have``."""

    def __init__(self, source: BlobStore, have: Sequence[tuple[bytes, Kind]]) -> None:
        self.source = source
        self.held: set[bytes] = {digest for digest, _ in have}
        self.frontier: list[tuple[bytes, Kind]] = list(have)
        self.asked: set[bytes] = set()
        self.levels = 0

    def _expand(self) -> None:
        """Add the next level under ``have``, except below objects the walk reached itself (equal subtrees)."""
        expand = [(digest, kind) for digest, kind in self.frontier if digest not in self.asked]
        self.frontier = []
        if not expand:
            return
        datas = self.source.get_many([digest for digest, _ in expand])
        for (_, kind), data in zip(expand, datas, strict=True):
            for child, child_kind in children(kind, data):
                if child not in self.held:
                    self.held.add(child)
                    self.frontier.append((child, child_kind))

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        asked = list(digests)
        if self.levels:
            self._expand()
        self.levels += 1
        self.asked.update(asked)
        return {digest for digest in asked if digest not in self.held}

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        raise NotImplementedError

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        raise NotImplementedError

    def iter_hashes(self) -> Iterator[bytes]:
        raise NotImplementedError

    def delete_many(self, digests: Iterable[bytes]) -> int:
        raise NotImplementedError

    def written_since(self, timestamp: float) -> set[bytes]:
        raise NotImplementedError

    def stats(self) -> BlobStats:
        raise NotImplementedError


class _Collector(ObjectStore):
    def __init__(self, source: ObjectStore, have: Sequence[tuple[bytes, Kind]]) -> None:
        self.url = "fetch://"
        self.blobs = _HaveBlobs(source.blobs, have)
        self.refs = MemoryRefs()
        self.packs: list[bytes] = []

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        self.packs.append(bytes(pack))
        return 0


def fetch_packs(
    store: ObjectStore,
    want: Sequence[tuple[bytes, Kind]],
    have: Sequence[tuple[bytes, Kind]],
    bases: Mapping[bytes, bytes],
) -> list[bytes]:
    """The packs of everything under ``want`` not under ``have`` (``have`` limited to what ``store`` holds)."""
    absent = store.blobs.missing([digest for digest, _ in have] + list(bases.values()))
    held = [(digest, kind) for digest, kind in have if digest not in absent]
    pairs = {new: old for new, old in bases.items() if old not in absent}
    collector = _Collector(store, held)
    transfer(store, collector, want, bases=pairs)
    return collector.packs
