"""Integrity check: read every object back, re-hash it, check its structure, and report (never raise).

What is checked is what the store holds, not a copy near the reader: the walk
reads through the backend under every wrapper (:func:`~casstore.store.wrappers.innermost`,
so a frame cache is bypassed), and a backend with caches of its own (S3's
local directory and memory) offers :meth:`uncached_view`, a view that reads
the service directly.

Two passes that together read each object once: first a walk from every ref
along casstore's schema (:func:`casstore.model.walk.walk`), which re-hashes
what it reads, holds each object to the schema of the kind it is reached by
(:class:`casstore.model.schema.StructureCheck`: a network root's fields, a
tree node of the right tree, a group body…) and notes objects that are named
but absent (the invariant "a present object implies its whole subtree is
present"); then every object the walk did not reach, read in batches and
hashed on a small thread pool (zstd decompression and BLAKE3 on large inputs
release the GIL).

Damaged data is a finding, never an exception: an object that does not
re-hash is ``corrupt``, one that re-hashes but breaks its schema ``invalid``,
a ref whose file cannot be read (or a store-level file, such as an S3 index)
is in ``damaged``, and so is a read or a listing the store refused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol, runtime_checkable

from casstore.codec import format_id, unframe
from casstore.errors import CorruptObject
from casstore.model.network import NetworkStore
from casstore.model.refs import ref_kind
from casstore.model.schema import StructureCheck
from casstore.model.walk import Kind, Reached, walk
from casstore.store.base import BlobStore, ObjectStore, RefStore, check_store_argument
from casstore.store.basecache import StoredReads
from casstore.store.wrappers import innermost

__all__ = ["REF_NAME_CHARACTERS", "UncachedView", "VerifyReport", "backend_of", "list_refs_tolerantly", "verify"]

BATCH = 2048
#: Every character a ref name may hold (see :func:`casstore.store.base.validate_ref_name`), for
#: narrowing down which ref of a listing is damaged.
REF_NAME_CHARACTERS = "/%+,-.0123456789:=@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
#: Listings tried while narrowing down damaged refs; past this, the narrowest prefix is reported.
_NARROWING_BUDGET = 20000
#: What a read the store refused stands in as: a frame that never unframes (so the walk reports it).
_UNREADABLE = b""


@runtime_checkable
class UncachedView(Protocol):
    """A backend with caches of its own offers a view of itself that reads past them, for verify."""

    def uncached_view(self) -> ObjectStore:
        """A store reading the same objects and refs directly (closed by the caller); its
        ``damaged`` attribute, if any, maps store-level files it could not read to the reason."""
        ...


@dataclass
class VerifyReport:
    """Result of :func:`verify`.

    ``ok`` is true when no object is corrupt or unreadable (``corrupt``), none
    breaks the schema it is reached by (``invalid``: id → problem), nothing a
    ref reaches is absent (``missing``) and no ref or store file is damaged
    (``damaged``: ref name or file → problem).  ``objects`` and ``bytes`` count
    what was re-hashed; ``reachable`` how many of those a ref reaches.
    """

    objects: int = 0
    bytes: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reachable: int = 0
    invalid: dict[str, str] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.missing and not self.invalid and not self.damaged


_Checked = tuple[int, int, list[str], dict[bytes, str]]


def _check_batch(blobs: BlobStore, digests: list[bytes]) -> _Checked:
    """``(objects checked, their bytes, corrupt ids, refused reads → reason)`` of one batch."""
    checked = size = 0
    bad: list[str] = []
    refused: dict[bytes, str] = {}
    frames = _read_tolerantly(blobs, digests, refused)
    for digest, stored in zip(digests, frames, strict=False):
        checked += 1
        if stored is None:  # listed but unreadable (or deleted meanwhile)
            bad.append(format_id(digest))
            continue
        try:
            size += len(unframe(stored, digest))
        except CorruptObject:
            bad.append(format_id(digest))
    return checked, size, bad, refused


def _read_tolerantly(blobs: BlobStore, digests: Sequence[bytes], refused: dict[bytes, str]) -> list[bytes | None]:
    """``get_frames``; a batch the store refuses is read one by one, and a refused read stands in as
    :data:`_UNREADABLE` (its reason in ``refused``)."""
    try:
        return blobs.get_whole_frames(digests)
    except Exception:  # verify reports, never raises
        pass
    frames: list[bytes | None] = []
    for digest in digests:
        try:
            frames.extend(blobs.get_whole_frames([digest]))
        except Exception as exc:
            refused[digest] = f"unreadable: {exc}"
            frames.append(_UNREADABLE)
    return frames


def _batches(it: Iterator[bytes]) -> Iterator[list[bytes]]:
    while batch := list(islice(it, BATCH)):
        yield batch


def verify(
    store: ObjectStore,
    progress: Callable[[int], None] | None = None,
    threads: int = 2,
    *,
    structure: bool = True,
) -> VerifyReport:
    """Re-hash every object of ``store`` (and, with ``structure``, check its schema); never raises on damage.

    ``progress(n)`` is called after each batch of n objects.
    """
    check_store_argument(store)
    report = VerifyReport()
    with ExitStack() as closing:
        checked = backend_of(store)
        if isinstance(checked, UncachedView):
            checked = closing.enter_context(checked.uncached_view())
            report.damaged.update(getattr(checked, "damaged", {}))
        # chains judged by what is stored (and, rebuilt once, by what this verify rebuilt of it)
        closing.enter_context(checked.blobs.delta_bases.bypassed(StoredReads()))
        _verify(checked, report, progress, threads, structure)
    report.corrupt.sort()
    report.missing.sort()
    return report


def backend_of(store: ObjectStore) -> ObjectStore:
    """The backend under a network store and every wrapper: what verify reads."""
    while True:
        inner = store.objects if isinstance(store, NetworkStore) else innermost(store)
        if inner is store:
            return store
        store = inner


def _verify(
    store: ObjectStore, report: VerifyReport, progress: Callable[[int], None] | None, threads: int, structure: bool
) -> None:
    blobs = store.blobs
    pending: deque[Future[_Checked]] = deque()

    def collect(future: Future[_Checked]) -> None:
        checked, size, bad, refused = future.result()
        report.objects += checked
        report.bytes += size
        report.corrupt.extend(bad)
        report.damaged.update((format_id(digest), reason) for digest, reason in refused.items())
        if progress:
            progress(checked)

    refs, damaged = list_refs_tolerantly(store.refs)
    report.damaged.update(damaged)
    seen = _walk_refs(store, refs, report, progress, structure)
    try:
        every = blobs.iter_hashes()
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="casstore-verify") as pool:
            unreached = (digest for digest in every if digest not in seen)
            for batch in _batches(unreached):
                pending.append(pool.submit(_check_batch, blobs, batch))
                while len(pending) > 2 * threads:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
    except Exception as exc:  # a store that cannot list its objects is a finding
        report.damaged["objects"] = f"the store's objects cannot be listed: {exc}"


def list_refs_tolerantly(refs: RefStore, prefix: str = "") -> tuple[dict[str, bytes], dict[str, str]]:
    """Every readable ref under ``prefix``, and the damaged ones (name → problem), without raising.

    A listing fails as a whole when one ref in it cannot be read; the damaged
    refs are then found by listing ever narrower prefixes (one more character
    at a time), so every other ref is still checked.  The search is bounded;
    past its budget the narrowest failing prefix is reported, with ``*``.
    """
    good: dict[str, bytes] = {}
    damaged: dict[str, str] = {}
    budget = _NARROWING_BUDGET
    try:
        return refs.list(prefix), damaged
    except Exception as exc:
        failing = [(prefix, str(exc))]
    while failing:  # iteratively: a name is at most a few hundred characters, but the budget is larger
        start, problem = failing.pop()
        if budget < len(REF_NAME_CHARACTERS):
            damaged[start + "*"] = f"refs under this prefix are unreadable: {problem}"
            continue
        budget -= len(REF_NAME_CHARACTERS)
        below: list[tuple[str, str]] = []
        for character in REF_NAME_CHARACTERS:
            try:
                good.update(refs.list(start + character))
            except Exception as exc:
                below.append((start + character, str(exc)))
        if not below:  # every longer name lists cleanly: the damaged ref is ``start`` itself
            damaged[start] = f"ref unreadable: {problem}"
        elif len(below) == len(REF_NAME_CHARACTERS):  # no listing under it works: the listing itself is broken
            damaged[start + "*"] = f"refs under this prefix are unreadable: {problem}"
        else:
            failing.extend(reversed(below))
    return dict(sorted(good.items())), damaged


def _walk_refs(
    store: ObjectStore,
    refs: dict[str, bytes],
    report: VerifyReport,
    progress: Callable[[int], None] | None,
    structure: bool,
) -> set[bytes]:
    """Re-hash (and check) everything the refs reach, by schema; returns the digests read (or found corrupt)."""
    seen: set[bytes] = set()
    roots = [(digest, ref_kind(name)) for name, digest in refs.items()]
    unvisited = 0  # objects of the current chunk the walk reported as missing or corrupt
    refused: dict[bytes, str] = {}
    check = StructureCheck() if structure else None

    def fetch(digests: list[bytes]) -> Sequence[bytes | None]:
        return _read_tolerantly(store.blobs, digests, refused)

    def on_missing(digest: bytes, kind: Kind) -> None:
        nonlocal unvisited
        unvisited += 1
        report.missing.append(format_id(digest))

    def on_corrupt(digest: bytes, kind: Kind, exc: Exception) -> None:
        nonlocal unvisited
        unvisited += 1
        seen.add(digest)
        report.objects += 1
        if digest in refused:
            report.corrupt.append(format_id(digest))
            report.damaged[format_id(digest)] = refused[digest]
        elif isinstance(exc, CorruptObject):
            report.corrupt.append(format_id(digest))
        else:  # re-hashes, but its links do not decode by the schema of its kind
            report.invalid[format_id(digest)] = f"not a valid {kind} object: {exc}"

    # serial on purpose: splitting this Python-heavy walk across threads measured slower (GIL)
    def visit(level: list[Reached]) -> None:
        nonlocal unvisited
        for item in level:
            seen.add(item.digest)
            report.objects += 1
            report.bytes += len(item.data)
            report.reachable += 1
            if check is not None:
                problem = check.check(item)
                if problem is not None:
                    report.invalid[format_id(item.digest)] = problem
        if progress:
            progress(len(level) + unvisited)
        unvisited = 0

    try:
        walk(fetch, roots, batch=BATCH, visit=visit, on_missing=on_missing, on_corrupt=on_corrupt)
        if check is not None:
            for digest, problem in check.finish(fetch).items():
                report.invalid[format_id(digest)] = problem
    except Exception as exc:  # never raise: what stopped the walk is the finding
        report.damaged["walk"] = f"the walk from the refs stopped: {exc}"
    return seen
