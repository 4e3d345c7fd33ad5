"""The two store protocols every backend implements: blobs and refs.

A backend subclasses :class:`BlobStore` and :class:`RefStore` and provides a
small set of primitives (marked *abstract*); hashing, framing and re-hash on
read live here, once, so no backend can forget them.  The conformance suite in
:mod:`casstore.testing` checks a backend against these docstrings.

Ids inside this layer are raw 32-byte BLAKE3 digests (see :mod:`casstore.codec`).
"""

from __future__ import annotations

import errno
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from casstore.codec import DIGEST_SIZE, format_id, frame_many, parse_id, unframe
from casstore.errors import (
    InvalidRefName,
    ObjectNotFound,
    RefConflict,
    SerializationError,
    StorageError,
    StoragePermissionError,
    StoreNotFound,
)
from casstore.pack import apply_pack
from casstore.store import deltas as at_rest
from casstore.store.basecache import DeltaBaseCache
from casstore.store.deltas import resolve_frames
from casstore.store.pending import PendingWrites
from casstore.store.received import received_frames
from casstore.store.watch import RefChanges, RefPoller

__all__ = [
    "BATCH",
    "MAX_REF_NAME",
    "BlobStats",
    "BlobStore",
    "ObjectStore",
    "PendingWrites",
    "RefStore",
    "RefUpdate",
    "check_store_argument",
    "make_directory",
    "os_error",
    "require_store",
    "validate_digest",
    "validate_ref_name",
]


#: Objects handed to a backend per write transaction by the batch helpers.
BATCH = 4096


@dataclass(frozen=True)
class BlobStats:
    """What a blob store holds: object count, canonical bytes, and stored (framed) bytes."""

    objects: int
    stored_bytes: int
    extra: dict[str, int | str] | None = None


class BlobStore(ABC):
    """Immutable objects named by the BLAKE3-256 digest of their canonical bytes.

    Implementers provide :meth:`put_frames`, :meth:`get_frames`, :meth:`missing`,
    :meth:`iter_hashes`, :meth:`delete_many`, :meth:`written_since` and
    :meth:`stats`.  A *frame* is the stored form of an object (see
    :func:`casstore.codec.frame_many`); backends store frames as opaque bytes
    and never need to hash, compress or decode.
    """

    #: Whether a delta frame given to :meth:`put_frames` is stored as it is (so its base could close a
    #: chain into a cycle); ``False`` where the store rebuilds deltas and keeps whole frames (``http://``).
    keeps_delta_frames = True

    # ---- primitives a backend implements

    @abstractmethod
    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Store ``(digest, frame)`` pairs, all or none (one transaction where the engine has them).

        Storing a digest that is already present is allowed and must refresh its
        write time (see :meth:`written_since`), so that gc's grace period also
        protects objects a writer reused.  Frames are trusted: callers have
        computed the digest from the canonical bytes.
        """

    @abstractmethod
    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        """Stored frames for ``digests``, in order; ``None`` where absent. Not verified."""

    @abstractmethod
    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        """The subset of ``digests`` this store does not hold, in one batch call.

        This is the question sync lives on; it must not read object bodies.
        """

    @abstractmethod
    def iter_hashes(self) -> Iterator[bytes]:
        """Every stored digest, in no particular order, without holding a long transaction."""

    @abstractmethod
    def delete_many(self, digests: Iterable[bytes]) -> int:
        """Remove objects (gc only); returns how many were present. Absent ids are ignored."""

    @abstractmethod
    def written_since(self, timestamp: float) -> set[bytes]:
        """Digests stored (or re-stored) at or after ``timestamp`` (seconds since the epoch).

        gc keeps these whatever their reachability: that is its grace period.
        """

    @abstractmethod
    def stats(self) -> BlobStats:
        """Object count and bytes stored."""

    # ---- the public API, built on the primitives

    def put_many(self, datas: Iterable[bytes]) -> list[bytes]:
        """Store canonical byte strings; returns their digests in order."""
        items = frame_many(datas)
        self.put_frames_in_batches(items)
        return [digest for digest, _ in items]

    def put_frames_in_batches(self, frames: Sequence[tuple[bytes, bytes]]) -> None:
        """:meth:`put_frames` in order (children first), ``BATCH * 16`` frames per call."""
        for start in range(0, len(frames), BATCH * 16):
            self.put_frames(frames[start : start + BATCH * 16])

    def put(self, data: bytes) -> bytes:
        """Store one canonical byte string; returns its digest."""
        return self.put_many([data])[0]

    def get_many(self, digests: Sequence[bytes]) -> list[bytes]:
        """Canonical bytes of each digest, re-hashed.

        Raises :class:`~casstore.errors.ObjectNotFound` for an absent id and
        :class:`~casstore.errors.CorruptObject` for bytes that do not hash to it.
        """
        frames = self.get_whole_frames(digests)
        out = []
        for digest, stored in zip(digests, frames, strict=False):
            if stored is None:
                raise ObjectNotFound(format_id(digest))
            out.append(unframe(stored, digest))
        return out

    def get_whole_frames(
        self, digests: Sequence[bytes], used: set[bytes] | None = None, compress: bool = False
    ) -> list[bytes | None]:
        """:meth:`get_frames` with delta frames rebuilt through their chains (see :mod:`casstore.store.deltas`).

        What leaves a store (sync, images) and what walks read: every frame is
        whole (``00``/``01``), not yet re-hashed; a chain that cannot be rebuilt
        stays a delta frame, which ``codec.unframe`` reports as corrupt.  Each
        base read is added to ``used``.  With ``compress`` a rebuilt object is
        framed as it would be stored whole (what sync sends).
        """
        return resolve_frames(self.get_frames, digests, used, compress=compress, cache=self.delta_bases)

    @property
    def delta_bases(self) -> DeltaBaseCache:
        """This store's cache of delta bases (:mod:`casstore.store.basecache`), made when first used."""
        cache: DeltaBaseCache | None = self.__dict__.get("_delta_bases")
        if cache is None:
            cache = self.__dict__.setdefault("_delta_bases", DeltaBaseCache())
        return cache

    def get(self, digest: bytes) -> bytes:
        """Canonical bytes of one object (see :meth:`get_many`)."""
        return self.get_many([digest])[0]

    def __contains__(self, digest: object) -> bool:
        return isinstance(digest, bytes) and not self.missing([digest])


_REF_COMPONENT = re.compile(r"[A-Za-z0-9_%+=@:,~-][A-Za-z0-9_.%+=@:,~-]*")
#: Long enough for a network id of 1,024 UTF-8 bytes, %-escaped, inside a tracking ref.
MAX_REF_NAME = 4096


def validate_ref_name(name: str) -> str:
    """Return ``name`` if it is a safe ref name, else raise :class:`InvalidRefName`.

    Ref names are ``/``-separated components of ``[A-Za-z0-9_.%+=@:,~-]`` that do
    not start with a dot: no empty component, no ``..``, nothing absolute, so a
    name can be used as a relative path by the directory backend.
    """
    if not isinstance(name, str) or not name:
        raise InvalidRefName(f"ref name must be a non-empty string, not {name!r}")
    if len(name) > MAX_REF_NAME:
        raise InvalidRefName(f"ref name longer than {MAX_REF_NAME} characters")
    for component in name.split("/"):
        if not _REF_COMPONENT.fullmatch(component):
            raise InvalidRefName(f"invalid ref name {name!r}: bad component {component!r}")
    return name


def validate_digest(digest: bytes | str | None) -> bytes | None:
    """A raw digest from any id form (``None`` passes through)."""
    if digest is None:
        return None
    if isinstance(digest, bytes) and len(digest) == DIGEST_SIZE:
        return digest
    return parse_id(digest)


class RefStore(ABC):
    """Named mutable pointers to object ids, moved only by compare-and-swap.

    Implementers provide :meth:`_get`, :meth:`_cas`, and :meth:`_list`; names and
    ids are validated here before a backend sees them.  ``_cas`` must be atomic
    across threads and processes sharing the store.
    """

    @abstractmethod
    def _get(self, name: str) -> bytes | None: ...

    @abstractmethod
    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        """Set ``name`` to ``new`` (``None`` = delete) iff it is at ``expected`` (``None`` = absent).

        Raises :class:`~casstore.errors.RefConflict` otherwise, changing nothing.
        """

    @abstractmethod
    def _list(self, prefix: str) -> dict[str, bytes]: ...

    def get(self, name: str) -> bytes | None:
        """The digest ``name`` points at, or ``None``."""
        return self._get(validate_ref_name(name))

    def recent(self, name: str) -> bytes | None:
        """What ``name`` points at, possibly as this store last saw it: only for a compare-and-swap that checks it.

        A write reads its head with this and moves it by compare-and-swap, so a stale answer costs a
        conflict and a retry, never a lost update.  A store across a network answers from its last
        answer or move (saving a round trip); this default asks (:meth:`get`).
        """
        return self.get(name)

    def compare_and_swap(self, name: str, expected: bytes | str | None, new: bytes | str) -> None:
        """Point ``name`` at ``new`` if it currently points at ``expected``.

        ``expected=None`` means the ref must not exist yet.  On mismatch raises
        :class:`~casstore.errors.RefConflict` and leaves the ref as it was.
        """
        target = validate_digest(new)
        if target is None:
            raise InvalidRefName("compare_and_swap needs a new id; use delete() to remove a ref")
        self._cas(validate_ref_name(name), validate_digest(expected), target)

    def delete(self, name: str, expected: bytes | str | None) -> None:
        """Remove ``name`` if it points at ``expected`` (``None``: it must already be absent)."""
        self._cas(validate_ref_name(name), validate_digest(expected), None)

    def list(self, prefix: str = "") -> dict[str, bytes]:
        """Every ref whose name starts with ``prefix``, name → digest."""
        if not isinstance(prefix, str):
            raise InvalidRefName(f"ref prefix must be a string, not {prefix!r}")
        return self._list(prefix)


@dataclass(frozen=True)
class RefUpdate:
    """One ref move of :meth:`ObjectStore.commit`: ``name`` from ``expected`` to ``new`` (``None`` deletes).

    A ``required`` update whose ref has moved raises :class:`~casstore.errors.RefConflict`;
    an optional one (a hint, such as a snapshot tip) is then skipped.
    """

    name: str
    expected: bytes | None
    new: bytes | None
    required: bool = True


class ObjectStore:
    """A blob store and a ref store opened together from one URL.

    Backends subclass this and set :attr:`blobs`, :attr:`refs` and :attr:`url`;
    :func:`casstore.open_store` returns one (wrapped by the network layer).
    """

    blobs: BlobStore
    refs: RefStore
    url: str
    #: Capability: :meth:`commit` applies objects and all ref moves in one transaction.
    atomic_commit = False
    #: Capability: the objects live across a network on a service that runs no casstore code (S3), so
    #: a transfer to or from this store moves whole frames; sync sends delta packs only between others.
    passive_remote = False
    #: Capability: the network model may store a rewritten object as a delta against the one it
    #: replaces (see :mod:`casstore.store.deltas`); reads resolve chains whatever the flag says.
    deltas_at_rest = True
    #: Seconds between two listings of the default :meth:`watch_refs`; ``None`` when nothing but this
    #: object can move the refs (``memory://``), so nobody needs to watch them.
    watch_interval: float | None = 0.25

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        """Store ``frames`` (children first), then apply ``updates`` in order.

        Objects always land before any ref names them.  This default applies the
        updates one by one, stopping at the first required conflict (earlier ones
        stay); a backend with transactions overrides it to do everything in one,
        so a conflict changes no ref and costs one commit instead of several.
        """
        self.blobs.put_frames_in_batches(frames)
        for update in updates:
            try:
                if update.new is None:
                    self.refs.delete(update.name, update.expected)
                else:
                    self.refs.compare_and_swap(update.name, update.expected, update.new)
            except RefConflict:
                if update.required:
                    raise

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        """Store every object of a transfer ``pack`` (see :mod:`casstore.pack`), then apply ``updates``.

        The seam sync writes through: this default rebuilds and re-hashes each
        entry against this store's own objects and hands the frames and ref moves
        to :meth:`commit`, keeping its deltas as delta frames at rest where this store keeps them
        (:mod:`casstore.store.received`; the whole frames of a :class:`~casstore.pack.VerifiedPack`, built in this
        process from frames already re-hashed, are not hashed again); a store that fronts a casstore process elsewhere
        overrides it to send the pack as it is.  Returns the number of objects
        stored.  On a required :class:`~casstore.errors.RefConflict` the objects
        are still stored (the caller retries with a new ref plan) and the
        conflict is raised.
        """
        keep_deltas = self.blobs.keeps_delta_frames and self.deltas_at_rest and at_rest.WRITE_DELTAS
        frames = received_frames(self.blobs, pack) if keep_deltas else apply_pack(self.blobs, pack)
        try:
            self.commit(frames, updates)
        except RefConflict:
            if frames and self.atomic_commit:  # the transaction dropped the objects with the refs
                self.blobs.put_frames(frames)
            raise
        return len(frames)

    def fetch_packs(
        self,
        want: Sequence[tuple[bytes, str]],
        have: Sequence[tuple[bytes, str]],
        bases: Mapping[bytes, bytes] | None = None,
    ) -> Iterator[bytes] | None:
        """Capability: the packs of everything reachable from ``want`` and not from ``have``, or ``None``.

        ``want`` and ``have`` are ``(digest, kind)`` roots (kinds as in
        :mod:`casstore.model.walk`); the caller holds everything ``have``
        reaches; ``bases`` pairs some ``want`` roots with the ``have`` root they
        replace, for deltas.  A store that fronts a casstore process elsewhere (``http://``)
        answers with one streamed request, children first, deltas against the
        objects under ``have`` where smaller, so a pull or clone costs one round
        trip instead of one per tree level.  The default, ``None``, means the
        caller walks the DAG itself with :meth:`BlobStore.missing` and
        :meth:`BlobStore.get_frames`.
        """
        return None

    def watch_refs(self, prefix: str, callback: Callable[[RefChanges], None]) -> Callable[[], None]:
        """Report the ref moves under ``prefix`` that anyone makes: this process, others, other machines.

        Returns once watching, so every move after the return is reported, and
        returns the function that stops the watch (idempotent).  ``callback``
        gets ``{ref name: new value, or None if deleted}`` for what differs from
        its last report; moves close together may be coalesced into the last
        one, never lost.  It runs on a thread of the watch; one that raises is
        logged.  This default lists ``prefix`` every :attr:`watch_interval`
        seconds (a quarter of a second unless the backend says otherwise); a
        backend with a change feed overrides it, and after a lost connection
        re-lists and reports what changed meanwhile.
        """
        poller = RefPoller(self.refs.list, prefix, callback, self.watch_interval or 0.25)
        return poller.stop

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by one of this store's calls, may succeed if retried.

        :class:`~casstore.store.wrappers.RetryingStore` asks the backend; the
        default treats nothing as transient.  Backends that talk to a service
        override it (throttling, timeouts, dropped connections); permanent
        errors (missing objects, conflicts, bad input) must answer ``False``.
        """
        return False

    def close(self) -> None:
        """Release files and handles. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


def check_store_argument(store: object, what: str = "store") -> None:
    """Refuse what is not an opened store (a URL given where a store is wanted, say) with a clear error."""
    if not isinstance(store, ObjectStore):
        shown = repr(store)[:80]
        raise SerializationError(f"{what}: expected an opened store (casstore.open_store(url)), not {shown}", what)


def os_error(exc: OSError, doing: str) -> StorageError:
    """A filesystem failure as a StorageError: permission problems get their own code."""
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoragePermissionError(f"{doing}: {exc.strerror or exc}")
    return StorageError(f"{doing}: {exc.strerror or exc}")


def make_directory(path: Path) -> None:
    """``mkdir -p`` for a store's directory, failing with a StorageError that names it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error(exc, f"cannot create directory {path}") from None


def require_store(exists: bool, url: str) -> None:
    """Raise :class:`StoreNotFound` for a store that does not exist and was not to be created."""
    if not exists:
        raise StoreNotFound(f"no casstore store at {url} (create one with `casstore init`)")
