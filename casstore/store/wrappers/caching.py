"""``CachingStore``: a bytes-bounded LRU of frames, and an optional short TTL for ref reads.

Objects are immutable, so a cached frame never expires: it is evicted only to
stay under the byte bound, or when the object is deleted or re-stored through
this store.  Frames are kept as the store below returned them, unverified:
the outermost :meth:`~casstore.store.base.BlobStore.get_many` re-hashes every
read, cached or not, so a frame damaged below the cache is caught on every
read.  :meth:`missing` answers from the cache first and asks the store below
only about the rest, so while a frame is cached this store takes the object
to be present even if another process's gc has since deleted it (gc deletes
only objects no ref reaches, after its grace period; S3's in-memory index
answers ``missing`` the same way).  Frames this store writes are cached too
(write-through).

Refs are mutable: with ``ref_ttl`` seconds > 0, ``get`` and ``list`` answers
are reused for that long, and every ref move through this store (a swap, a
delete, a commit, a received pack, or a conflict, which shows the ref moved
elsewhere) forgets them all.  Another process's moves are seen after at most
``ref_ttl``: keep it short, or off (the default) where that matters.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Generic, TypeVar

from casstore.errors import RefConflict
from casstore.store.base import BlobStore, ObjectStore, RefStore, RefUpdate
from casstore.store.deltas import rebuild_broken
from casstore.store.wrappers.base import WrappedBlobs, WrappedRefs, WrappedStore

__all__ = ["ENTRY_OVERHEAD", "CachingStore", "FrameCache", "RefCache", "TtlMap"]

V = TypeVar("V")

#: Bytes charged per cached frame on top of its length (the digest and the LRU's own bookkeeping).
ENTRY_OVERHEAD = 128


class FrameCache:
    """A thread-safe LRU of ``digest → frame`` holding at most ``max_bytes`` (lengths plus overhead)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._frames: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._frames)

    def lookup(self, digests: Sequence[bytes]) -> list[bytes | None]:
        """The cached frame of each digest, ``None`` where not cached; hits become most recent."""
        with self._lock:
            frames = self._frames
            found = [frames.get(d) for d in digests]
            for digest, frame in zip(digests, found, strict=True):
                if frame is not None:
                    frames.move_to_end(digest)
            hits = sum(1 for frame in found if frame is not None)
            self.hits += hits
            self.misses += len(found) - hits
            return found

    def holds(self, digests: Collection[bytes]) -> set[bytes]:
        """Which of ``digests`` are cached (without touching recency)."""
        with self._lock:
            return {d for d in digests if d in self._frames}

    def add(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Cache frames (replacing any cached copy), evicting the least recently used beyond the bound."""
        with self._lock:
            frames = self._frames
            for digest, frame in items:
                size = len(frame) + ENTRY_OVERHEAD
                if size > self.max_bytes:
                    continue
                old = frames.pop(digest, None)
                if old is not None:
                    self.nbytes -= len(old) + ENTRY_OVERHEAD
                frames[digest] = frame
                self.nbytes += size
            while self.nbytes > self.max_bytes:
                _, evicted = frames.popitem(last=False)
                self.nbytes -= len(evicted) + ENTRY_OVERHEAD

    def discard(self, digests: Iterable[bytes]) -> None:
        with self._lock:
            for digest in digests:
                old = self._frames.pop(digest, None)
                if old is not None:
                    self.nbytes -= len(old) + ENTRY_OVERHEAD


class CachingBlobs(WrappedBlobs):
    def __init__(self, inner: BlobStore, cache: FrameCache) -> None:
        super().__init__(inner)
        self.cache = cache

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        try:
            self.inner.put_frames(items)
        except BaseException:
            self.cache.discard(digest for digest, _ in items)  # some may have landed: keep no stale copy
            raise
        self.cache.add(items)

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        found = self.cache.lookup(digests)
        wanted = [digest for digest, frame in zip(digests, found, strict=True) if frame is None]
        if not wanted:
            return found
        fetched = iter(self.inner.get_frames(wanted))
        new: list[tuple[bytes, bytes]] = []
        for i, frame in enumerate(found):
            if frame is None:
                found[i] = frame = next(fetched)
                if frame is not None:
                    new.append((digests[i], frame))
        self.cache.add(new)
        return found

    def get_whole_frames(
        self, digests: Sequence[bytes], used: set[bytes] | None = None, compress: bool = False
    ) -> list[bytes | None]:
        """Chains rebuilt from cached frames; one that does not rebuild (a delta cached as written,
        naming a base the store below did not keep) is read again from the store below."""
        frames = super().get_whole_frames(digests, used, compress)
        return rebuild_broken(digests, frames, self._get_below, used, compress)

    def _get_below(self, digests: Sequence[bytes]) -> list[bytes | None]:
        """The store's own frames, replacing any cached copies."""
        self.cache.discard(digests)
        return self.get_frames(digests)

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        wanted = digests if isinstance(digests, Collection) else list(digests)
        held = self.cache.holds(wanted)
        if not held:
            return self.inner.missing(wanted)
        rest = [digest for digest in wanted if digest not in held]
        return self.inner.missing(rest) if rest else set()

    def delete_many(self, digests: Iterable[bytes]) -> int:
        doomed = digests if isinstance(digests, Collection) else list(digests)
        self.cache.discard(doomed)
        try:
            return self.inner.delete_many(doomed)
        finally:
            self.cache.discard(doomed)  # a concurrent read may have cached one meanwhile


class TtlMap(Generic[V]):
    """Answers kept ``ttl`` seconds by key; :meth:`forget` drops them all, and any read in flight."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, V]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def read(self, key: str, fetch: Callable[[], V]) -> V:
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            generation = self._generation
        if entry is not None and entry[0] > now:
            return entry[1]
        value = fetch()
        with self._lock:
            if self._generation == generation:  # no move since the read began: the answer is current
                self._entries[key] = (now + self.ttl, value)
        return value

    def forget(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()


class RefCache:
    """The ``get`` and ``list`` answers of one store, kept ``ttl`` seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.gets: TtlMap[bytes | None] = TtlMap(ttl, clock)
        self.lists: TtlMap[dict[str, bytes]] = TtlMap(ttl, clock)

    def forget(self) -> None:
        self.gets.forget()
        self.lists.forget()


class CachingRefs(WrappedRefs):
    def __init__(self, inner: RefStore, cache: RefCache) -> None:
        super().__init__(inner)
        self.cache = cache

    def get(self, name: str) -> bytes | None:
        return self.cache.gets.read(name, lambda: self.inner.get(name))

    def list(self, prefix: str = "") -> dict[str, bytes]:
        return dict(self.cache.lists.read(prefix, lambda: self.inner.list(prefix)))

    def compare_and_swap(self, name: str, expected: bytes | str | None, new: bytes | str) -> None:
        try:
            self.inner.compare_and_swap(name, expected, new)
        finally:
            self.cache.forget()

    def delete(self, name: str, expected: bytes | str | None) -> None:
        try:
            self.inner.delete(name, expected)
        finally:
            self.cache.forget()


class CachingStore(WrappedStore):
    """``inner`` with a frame LRU of ``frame_bytes`` (0: none) and ref reads kept ``ref_ttl`` seconds (0: not)."""

    def __init__(
        self,
        inner: ObjectStore,
        *,
        frame_bytes: int = 64 << 20,
        ref_ttl: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if frame_bytes < 0 or ref_ttl < 0:
            raise ValueError("cache sizes and times cannot be negative")
        self.frames = FrameCache(frame_bytes) if frame_bytes > 0 else None
        self.ref_cache = RefCache(ref_ttl, clock) if ref_ttl > 0 else None
        blobs = CachingBlobs(inner.blobs, self.frames) if self.frames is not None else None
        refs = CachingRefs(inner.refs, self.ref_cache) if self.ref_cache is not None else None
        super().__init__(inner, blobs, refs)

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        try:
            self.inner.commit(frames, updates)
        except RefConflict:
            self._forget_refs()
            raise
        except BaseException:
            self._forget_refs()
            if self.frames is not None:
                self.frames.discard(digest for digest, _ in frames)
            raise
        self._forget_refs()
        if self.frames is not None:
            self.frames.add(frames)

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        try:
            return self.inner.receive_pack(pack, updates)
        finally:
            self._forget_refs()

    def _forget_refs(self) -> None:
        if self.ref_cache is not None:
            self.ref_cache.forget()
