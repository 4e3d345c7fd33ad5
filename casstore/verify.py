"""Integrity check: read every object back, re-hash it, and report (never raise).

Two passes that together read each object once: first a walk from every ref
along casstore's schema (:func:`casstore.model.walk.walk`), which re-hashes what it reads and notes objects that
are named but absent (the invariant "a present object implies its whole
subtree is present"); then every object the walk did not reach, read in
batches and hashed on a small thread pool (zstd decompression and BLAKE3 on
large inputs release the GIL).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

from casstore.codec import format_id, unframe
from casstore.errors import CorruptObject
from casstore.model.refs import ref_kind
from casstore.model.walk import Kind, Reached, walk
from casstore.store.base import BlobStore, ObjectStore

__all__ = ["VerifyReport", "verify"]

BATCH = 2048


@dataclass
class VerifyReport:
    """Result of :func:`verify`.

    ``ok`` is true when no object is corrupt or unreadable (``corrupt``) and
    nothing a ref reaches is absent (``missing``).  ``objects`` and ``bytes``
    count what was re-hashed; ``reachable`` how many of those a ref reaches.
    """

    objects: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reachable: int = 0

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing


def _check_batch(blobs: BlobStore, digests: list[bytes]) -> tuple[int, int, list[str]]:
    checked = size = 0
    bad: list[str] = []
    try:
        frames = blobs.get_frames(digests)
    except Exception:  # a backend that cannot read the batch: check one by one
        frames = []
        for digest in digests:
            try:
                frames.extend(blobs.get_frames([digest]))
            except Exception:
                frames.append(None)
    for digest, stored in zip(digests, frames, strict=False):
        checked += 1
        if stored is None:  # listed but unreadable (or deleted meanwhile)
            bad.append(format_id(digest))
            continue
        try:
            size += len(unframe(stored, digest))
        except CorruptObject:
            bad.append(format_id(digest))
    return checked, size, bad


def _batches(it: Iterator[bytes]) -> Iterator[list[bytes]]:
    while batch := list(islice(it, BATCH)):
        yield batch


def verify(store: ObjectStore, progress: Callable[[int], None] | None = None, threads: int = 2) -> VerifyReport:
    """Re-hash every object of ``store``; ``progress(n)`` is called after each batch of n objects."""
    report = VerifyReport()
    blobs = store.blobs
    pending: deque[Future[tuple[int, int, list[str]]]] = deque()

    def collect(future: Future[tuple[int, int, list[str]]]) -> None:
        checked, size, bad = future.result()
        report.objects += checked
        report.bytes += size
        report.corrupt.extend(bad)
        if progress:
            progress(checked)

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="casstore-verify") as pool:
        seen = _walk_refs(store, report, progress)
        unreached = (digest for digest in blobs.iter_hashes() if digest not in seen)
        for batch in _batches(unreached):
            pending.append(pool.submit(_check_batch, blobs, batch))
            while len(pending) > 2 * threads:
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
    report.corrupt.sort()
    report.missing.sort()
    return report


def _walk_refs(store: ObjectStore, report: VerifyReport, progress: Callable[[int], None] | None) -> set[bytes]:
    """Re-hash everything the refs reach, by schema; returns the digests read (or found corrupt)."""
    seen: set[bytes] = set()
    roots = [(digest, ref_kind(name)) for name, digest in store.refs.list().items()]
    unvisited = 0  # objects of the current chunk the walk reported as missing or corrupt

    def on_missing(digest: bytes, kind: Kind) -> None:
        nonlocal unvisited
        unvisited += 1
        report.missing.append(format_id(digest))

    def on_corrupt(digest: bytes, kind: Kind, exc: Exception) -> None:
        nonlocal unvisited
        unvisited += 1
        seen.add(digest)
        report.objects += 1
        report.corrupt.append(format_id(digest))

    # serial on purpose: splitting this Python-heavy walk across threads measured slower (GIL)
    def visit(level: list[Reached]) -> None:
        nonlocal unvisited
        for item in level:
            seen.add(item.digest)
            report.objects += 1
            report.bytes += len(item.data)
            report.reachable += 1
        if progress:
            progress(len(level) + unvisited)
        unvisited = 0

    walk(store.blobs.get_frames, roots, batch=BATCH, visit=visit, on_missing=on_missing, on_corrupt=on_corrupt)
    return seen
