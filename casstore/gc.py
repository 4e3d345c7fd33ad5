"""Garbage collection: mark from every ref, sweep what is unreachable and older than the grace period.

Marking follows casstore's schema (:mod:`casstore.model.walk`), so a kept
object always keeps its whole subtree: the invariant "a present object implies
its whole subtree is present" survives gc.  Objects written (or re-written)
within the grace period are never swept, so a concurrent writer's fresh objects
survive until its ref moves; the refs and the recent writes are read again before
each batch of deletes, so a write that commits during gc keeps what it reused.  A kept object stored as a delta (see
:mod:`casstore.store.deltas`) keeps the chain of bases it is rebuilt from,
whether those are reachable or not, so gc never leaves a delta without its
base.  Those chains are read from the frames the backend itself keeps, past every
cache (the view verify reads): a cache holds the frames that were written or read,
and the backend may keep another form of an object it already held (a delta on
another base), which is the form whose base must stay.  The temporary files a killed write left
(``file://``'s ``tmp/*.tmp``) are removed once older than the grace period too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from casstore.codec import format_id
from casstore.errors import SerializationError
from casstore.model.refs import ref_kind
from casstore.model.walk import Reached, walk
from casstore.store.base import BlobStore, ObjectStore, check_store_argument
from casstore.store.deltas import chain_links, frame_chain
from casstore.verify import UncachedView, backend_of

__all__ = ["DEFAULT_GRACE_MINUTES", "GcReport", "TempFiles", "collect_garbage", "mark"]

DEFAULT_GRACE_MINUTES = 60.0
_BATCH = 4096


@dataclass
class GcReport:
    """What :func:`collect_garbage` found and did (or, with ``dry_run``, would do)."""

    reachable: int = 0
    unreachable: int = 0
    kept_recent: int = 0
    swept: int = 0
    swept_bytes: int = 0
    missing: list[str] = field(default_factory=list)
    dry_run: bool = False
    #: temporary files of killed writes (``file://``'s ``tmp/*.tmp``) older than the grace period, removed
    temp_files: int = 0
    #: objects no ref reaches, kept because a kept object is stored as a delta on them (not in ``unreachable``)
    kept_bases: int = 0


@runtime_checkable
class TempFiles(Protocol):
    """A backend whose killed writes can leave temporary files behind (``file://``)."""

    def remove_temp_files(self, older_than: float, dry_run: bool = False) -> int: ...


def mark(
    store: ObjectStore,
    progress: Callable[[int], None] | None = None,
    bases: set[bytes] | None = None,
    frames_from: BlobStore | None = None,
    refs: dict[str, bytes] | None = None,
    marked: set[bytes] | None = None,
) -> tuple[set[bytes], list[str]]:
    """Digests reachable from every ref, and the printable ids of reachable objects that are absent.

    ``bases`` receives every delta base the reachable objects are rebuilt from (gc keeps them), as
    ``frames_from`` (default: ``store.blobs``) keeps them.  ``refs`` (default: every ref, listed now)
    are the roots; with ``marked``, what it holds is not walked again and the new finds are added to it.
    """
    blobs = store.blobs if frames_from is None else frames_from
    listed = store.refs.list() if refs is None else refs
    roots = [(digest, ref_kind(name)) for name, digest in listed.items()]
    marked = set() if marked is None else marked
    known = marked
    missing: list[str] = []

    def visit(level: list[Reached]) -> None:
        for item in level:
            marked.add(item.digest)
            if progress and len(marked) % _BATCH == 0:
                progress(_BATCH)

    def fetch(digests: list[bytes]) -> list[bytes | None]:
        return blobs.get_whole_frames(digests, bases)

    walk(
        fetch,
        roots,
        prune=(lambda level: [d for d in level if d in known]) if known else None,
        visit=visit,
        on_missing=lambda digest, _: missing.append(format_id(digest)),
    )
    return marked, missing


def collect_garbage(
    store: ObjectStore,
    grace_minutes: float = DEFAULT_GRACE_MINUTES,
    dry_run: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> GcReport:
    """Sweep unreachable objects written more than ``grace_minutes`` ago.

    ``progress(phase, n)`` is called as objects are marked (``"mark"``) and swept (``"sweep"``).
    """
    check_store_argument(store)
    if type(grace_minutes) not in (int, float) or not 0 <= grace_minutes < float("inf"):
        raise SerializationError(
            f"the grace period (grace_minutes) must be a number of minutes, zero or more, not {grace_minutes!r}"
        )
    with ExitStack() as closing:
        backend = backend_of(store)
        stored = closing.enter_context(backend.uncached_view()) if isinstance(backend, UncachedView) else backend
        closing.enter_context(stored.blobs.delta_bases.bypassed())  # every stored base a chain needs is seen
        return _collect(store, backend, stored.blobs, grace_minutes, dry_run, progress)


def _collect(
    store: ObjectStore,
    backend: ObjectStore,
    stored: BlobStore,
    grace_minutes: float,
    dry_run: bool,
    progress: Callable[[str, int], None] | None,
) -> GcReport:
    """gc, judging delta chains by ``stored`` (the backend's own frames) and deleting through ``store``."""
    started = time.time()
    bases: set[bytes] = set()
    on_mark = (lambda n: progress("mark", n)) if progress else None
    refs = store.refs.list()
    marked, missing = mark(store, progress=on_mark, bases=bases, frames_from=stored, refs=refs)
    report = GcReport(reachable=len(marked), missing=missing, dry_run=dry_run)
    # read after marking, so objects written while we marked are protected too
    recent = store.blobs.written_since(started - grace_minutes * 60)
    # the bases of recent objects too: a writer's fresh delta keeps what it is rebuilt from
    fresh = [digest for digest in recent if digest not in marked]
    bases.update(chain_links(stored.get_frames, fresh).values())
    late = _LateWrites(store, stored, refs, marked, bases, recent, started - grace_minutes * 60)
    doomed = []
    for digest in store.blobs.iter_hashes():
        if digest in marked:
            continue
        if digest in bases:  # a kept object is rebuilt from it: kept, and not counted as unreachable
            report.kept_bases += 1
            continue
        report.unreachable += 1
        if digest in recent:
            report.kept_recent += 1
        else:
            doomed.append(digest)
    if isinstance(backend, TempFiles):
        report.temp_files = backend.remove_temp_files(started - grace_minutes * 60, dry_run=dry_run)
    for level in _by_chain_level(stored, doomed, report, late.sizes):
        for start in range(0, len(level), _BATCH):
            chunk = late.spare(level[start : start + _BATCH], report)
            report.swept += len(chunk) if dry_run else store.blobs.delete_many(chunk)
            if progress:
                progress("sweep", len(chunk))
    return report


class _LateWrites:
    """What writes made after the mark keep: checked again before each batch of deletes.

    A write that moved a ref since the mark (a push that found the objects it needed already here,
    unreferenced) has its new roots marked, and an object written or re-written since (a local write
    reusing an old leaf) is kept with its bases, so only a write that commits within one batch's
    delete can still lose an object it reused.
    """

    def __init__(
        self,
        store: ObjectStore,
        stored: BlobStore,
        refs: dict[str, bytes],
        marked: set[bytes],
        bases: set[bytes],
        recent: set[bytes],
        since: float,
    ) -> None:
        self.store, self.stored, self.refs = store, stored, refs
        self.marked, self.bases, self.recent, self.since = marked, bases, recent, since
        self.sizes: dict[bytes, int] = {}  # the doomed objects' stored sizes (counted as swept bytes)

    def spare(self, chunk: list[bytes], report: GcReport) -> list[bytes]:
        """``chunk`` without what late writes keep (counted into ``report`` as reachable or recent)."""
        now = self.store.refs.list()
        moved = {name: digest for name, digest in now.items() if self.refs.get(name) != digest}
        if moved:
            before = len(self.marked)
            _, missing = mark(self.store, bases=self.bases, frames_from=self.stored, refs=moved, marked=self.marked)
            report.missing.extend(missing)
            report.reachable += len(self.marked) - before
            self.refs = now
        recent = self.store.blobs.written_since(self.since)
        fresh = [digest for digest in recent - self.recent if digest not in self.marked]
        if fresh:
            self.bases.update(chain_links(self.stored.get_frames, fresh).values())
        self.recent |= recent
        doomed = [d for d in chunk if d not in self.marked and d not in self.recent and d not in self.bases]
        for digest in set(chunk).difference(doomed):  # kept after all: neither unreachable nor swept
            report.unreachable -= 1
            report.swept_bytes -= self.sizes.pop(digest, 0)
        return doomed


def _by_chain_level(
    stored: BlobStore, doomed: list[bytes], report: GcReport, sizes: dict[bytes, int]
) -> list[list[bytes]]:
    """``doomed`` grouped by chain length, longest first (and their bytes counted into ``report``).

    A delta's base is one level below it, so deleting level by level, longest chains first,
    never leaves an object whose base is gone, even when the sweep is interrupted part-way
    (a backend whose ``delete_many`` is not one transaction, such as the directory backend).
    """
    levels: dict[int, list[bytes]] = {}
    for start in range(0, len(doomed), _BATCH):
        chunk = doomed[start : start + _BATCH]
        for digest, frame in zip(chunk, stored.get_frames(chunk), strict=True):
            if frame is None:
                continue
            report.swept_bytes += len(frame)
            sizes[digest] = len(frame)
            levels.setdefault(frame_chain(frame), []).append(digest)
    return [levels[level] for level in sorted(levels, reverse=True)]
