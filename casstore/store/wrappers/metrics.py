"""``MetricsStore``: counts and times every call that passes through it, by method.

Each call is recorded under its name (``blobs.get_frames``, ``refs.compare_and_swap``,
``commit``, ``receive_pack``, …) with how often it ran, how often it raised,
the seconds spent below this layer, and the objects and bytes it moved (frames
written or read, digests asked about, refs listed, the size of a pack).
Benchmarks and tests read :meth:`MetricsStore.snapshot` instead of patching
a backend's methods; :meth:`MetricsStore.reset` starts the counts again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore, RefUpdate
from casstore.store.wrappers.base import WrappedBlobs, WrappedRefs, WrappedStore

__all__ = ["CallStats", "Metrics", "MetricsStore"]


@dataclass(frozen=True)
class CallStats:
    """What one method did since the last reset: calls, calls that raised, time, objects and bytes moved."""

    calls: int = 0
    errors: int = 0
    seconds: float = 0.0
    objects: int = 0
    bytes: int = 0


class Metrics:
    """The thread-safe counters a :class:`MetricsStore` and its blob and ref wrappers share."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, CallStats] = {}

    def record(self, name: str, seconds: float, objects: int = 0, nbytes: int = 0, failed: bool = False) -> None:
        with self._lock:
            old = self._stats.get(name) or CallStats()
            self._stats[name] = CallStats(
                old.calls + 1, old.errors + failed, old.seconds + seconds, old.objects + objects, old.bytes + nbytes
            )

    def add_objects(self, name: str, objects: int) -> None:
        """Count objects a call yields after it returned (an iteration)."""
        with self._lock:
            old = self._stats.get(name) or CallStats()
            self._stats[name] = replace(old, objects=old.objects + objects)

    def snapshot(self) -> dict[str, CallStats]:
        with self._lock:
            return dict(self._stats)

    def reset(self) -> None:
        with self._lock:
            self._stats.clear()


T = TypeVar("T")


def _nothing(_: object) -> tuple[int, int]:
    return 0, 0


def _measured(metrics: Metrics, name: str, call: Callable[[], T], moved: Callable[[T], tuple[int, int]]) -> T:
    """Run ``call`` and record it under ``name``; ``moved(result)`` is ``(objects, bytes)``."""
    start = time.perf_counter()
    try:
        result = call()
    except BaseException:
        metrics.record(name, time.perf_counter() - start, failed=True)
        raise
    objects, nbytes = moved(result)
    metrics.record(name, time.perf_counter() - start, objects, nbytes)
    return result


def _frames_moved(frames: list[bytes | None]) -> tuple[int, int]:
    found = [frame for frame in frames if frame is not None]
    return len(found), sum(map(len, found))


def _size(result: Collection[object]) -> tuple[int, int]:
    return len(result), 0


def _items_moved(items: Sequence[tuple[bytes, bytes]]) -> Callable[[object], tuple[int, int]]:
    return lambda _: (len(items), sum(len(frame) for _, frame in items))


class MetricsBlobs(WrappedBlobs):
    def __init__(self, inner: BlobStore, metrics: Metrics) -> None:
        super().__init__(inner)
        self.metrics = metrics

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        _measured(self.metrics, "blobs.put_frames", lambda: self.inner.put_frames(items), _items_moved(items))

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        return _measured(self.metrics, "blobs.get_frames", lambda: self.inner.get_frames(digests), _frames_moved)

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        wanted = digests if isinstance(digests, Collection) else list(digests)
        return _measured(self.metrics, "blobs.missing", lambda: self.inner.missing(wanted), lambda _: (len(wanted), 0))

    def iter_hashes(self) -> Iterator[bytes]:
        return self._counted(_measured(self.metrics, "blobs.iter_hashes", self.inner.iter_hashes, _nothing))

    def _counted(self, inner: Iterator[bytes]) -> Iterator[bytes]:
        count = 0
        try:
            for digest in inner:
                count += 1
                yield digest
        finally:
            self.metrics.add_objects("blobs.iter_hashes", count)

    def delete_many(self, digests: Iterable[bytes]) -> int:
        return _measured(self.metrics, "blobs.delete_many", lambda: self.inner.delete_many(digests), lambda n: (n, 0))

    def written_since(self, timestamp: float) -> set[bytes]:
        return _measured(self.metrics, "blobs.written_since", lambda: self.inner.written_since(timestamp), _size)

    def stats(self) -> BlobStats:
        return _measured(self.metrics, "blobs.stats", self.inner.stats, _nothing)


class MetricsRefs(WrappedRefs):
    def __init__(self, inner: RefStore, metrics: Metrics) -> None:
        super().__init__(inner)
        self.metrics = metrics

    def get(self, name: str) -> bytes | None:
        return _measured(self.metrics, "refs.get", lambda: self.inner.get(name), lambda v: (v is not None, 0))

    def compare_and_swap(self, name: str, expected: bytes | str | None, new: bytes | str) -> None:
        call = lambda: self.inner.compare_and_swap(name, expected, new)  # noqa: E731
        _measured(self.metrics, "refs.compare_and_swap", call, lambda _: (1, 0))

    def delete(self, name: str, expected: bytes | str | None) -> None:
        _measured(self.metrics, "refs.delete", lambda: self.inner.delete(name, expected), lambda _: (1, 0))

    def list(self, prefix: str = "") -> dict[str, bytes]:
        return _measured(self.metrics, "refs.list", lambda: self.inner.list(prefix), _size)


class MetricsStore(WrappedStore):
    """Counts and times every call to ``inner`` (see the module docstring); share ``metrics`` to pool counts."""

    blobs: MetricsBlobs
    refs: MetricsRefs

    def __init__(self, inner: ObjectStore, metrics: Metrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else Metrics()
        super().__init__(inner, MetricsBlobs(inner.blobs, self.metrics), MetricsRefs(inner.refs, self.metrics))

    def snapshot(self) -> dict[str, CallStats]:
        """Every method called since the last :meth:`reset`, by name (``blobs.get_frames``, ``commit``, …)."""
        return self.metrics.snapshot()

    def calls(self, name: str) -> int:
        """How many times ``name`` (e.g. ``"blobs.get_frames"``) was called since the last reset."""
        return self.metrics.snapshot().get(name, CallStats()).calls

    def reset(self) -> None:
        """Forget every count."""
        self.metrics.reset()

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        _measured(self.metrics, "commit", lambda: self.inner.commit(frames, updates), _items_moved(frames))

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        call = lambda: self.inner.receive_pack(pack, updates)  # noqa: E731
        return _measured(self.metrics, "receive_pack", call, lambda stored: (stored, len(pack)))
