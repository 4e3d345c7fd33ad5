"""Integrity check: read every object back, re-hash it, and report (never raise).

Reads in batches and hashes on a small thread pool: zstd decompression and
BLAKE3 on large inputs release the GIL, so two cores are used where it helps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

from casstore.codec import format_id, unframe
from casstore.errors import CorruptObject
from casstore.store.base import BlobStore, ObjectStore

BATCH = 2048


@dataclass
class VerifyReport:
    """Result of :func:`verify`: ``ok`` is true when no object is corrupt or unreadable."""

    objects: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.corrupt


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
        for batch in _batches(iter(blobs.iter_hashes())):
            pending.append(pool.submit(_check_batch, blobs, batch))
            while len(pending) > 2 * threads:
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
    report.corrupt.sort()
    return report
