"""``memory://`` — dictionaries in this process; for tests and scratch work."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence

from casstore.codec import ref_conflict
from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore
from casstore.store.registry import Backend, StoreLocation, register

__all__ = [
    "BACKEND",
    "MemoryBlobs",
    "MemoryRefs",
    "MemoryStore",
]


class MemoryBlobs(BlobStore):
    def __init__(self) -> None:
        self._frames: dict[bytes, bytes] = {}
        self._written: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        now = time.time()
        with self._lock:
            frames = self._frames
            for digest, frame in items:  # a held object keeps its frame (a delta keeps its base), as on disk
                frames.setdefault(digest, frame)
            self._written.update((digest, now) for digest, _ in items)

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        get = self._frames.get
        return [get(d) for d in digests]

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        return set(digests).difference(self._frames)

    def iter_hashes(self) -> Iterator[bytes]:
        with self._lock:
            snapshot = list(self._frames)
        return iter(snapshot)

    def delete_many(self, digests: Iterable[bytes]) -> int:
        removed = 0
        with self._lock:
            for digest in digests:
                if self._frames.pop(digest, None) is not None:
                    self._written.pop(digest, None)
                    removed += 1
        return removed

    def written_since(self, timestamp: float) -> set[bytes]:
        with self._lock:
            return {d for d, t in self._written.items() if t >= timestamp}

    def stats(self) -> BlobStats:
        with self._lock:
            return BlobStats(len(self._frames), sum(map(len, self._frames.values())))


class MemoryRefs(RefStore):
    def __init__(self) -> None:
        self._refs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _get(self, name: str) -> bytes | None:
        return self._refs.get(name)

    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        with self._lock:
            actual = self._refs.get(name)
            if actual != expected:
                raise ref_conflict(name, expected, actual)
            if new is None:
                self._refs.pop(name, None)
            else:
                self._refs[name] = new

    def _list(self, prefix: str) -> dict[str, bytes]:
        with self._lock:
            return {k: v for k, v in self._refs.items() if k.startswith(prefix)}


class MemoryStore(ObjectStore):
    def __init__(self, url: str = "memory://") -> None:
        # each in-memory store is its own store: its URL says which (sync tracks remotes by URL)
        self.url = url if url.rstrip("/") != "memory:" else f"memory://{uuid.uuid4().hex[:12]}"
        self.blobs = MemoryBlobs()
        self.refs = MemoryRefs()


def _open(location: StoreLocation, create: bool) -> MemoryStore:
    return MemoryStore(location.url)


BACKEND = register(Backend(("memory",), _open, needs_location=False, summary="in-process, gone at close"))
