"""The delta base cache: canonical bytes of objects this process wrote or re-hashed, for rebuilding chains.

A delta frame at rest (:mod:`casstore.store.deltas`) names its base; reading
the object means rebuilding the base first, which may itself be a delta, up
to :data:`~casstore.store.deltas.WRITE_CHAIN` levels down.  Incremental work
reads exactly the objects the last step wrote or received: a push's source
rebuilds the objects its last write made, from the ones they replaced; a
destination rebuilds what it receives from what it received last time.  As
git keeps recently inflated bases (``core.deltaBaseCacheLimit``), each blob
store keeps a bounded cache of bases, so such a chain costs one delta, not
one per level.

What the cache may hold, and what it may stand in for:

- only bytes known to hash to their digest: objects a write made and the
  bases it deltaed against (hashed when made or checked), and objects a
  received pack rebuilt or decoded (re-hashed before stored);
- only the *content* of an object whose frame was read from the store (a
  delta frame, not rebuilt, or a compressed one, not decompressed), or of a
  base such a frame names: presence is never taken from the cache (a
  deleted object reads as absent), and what comes back is re-hashed by the
  caller as before.  Cached bytes are the stored object's bytes, by their
  hash; a stored delta that would not rebuild them goes unnoticed by such a
  read, which is verify's job, and a receiver's: sync sends stored deltas as
  they are, and the destination rebuilds each from its own base and re-hashes.
- never for gc or verify, which judge chains by what is stored: gc must see
  every base a chain needs (to keep it), verify must find a chain broken.
  Both read with the cache :meth:`~DeltaBaseCache.bypassed` (and a chain read
  that records the bases it reads never uses it).  Verify hands over a
  :class:`StoredReads` instead, which records what its own reads rebuilt or
  decompressed from the stored frames, so that a chain through an object
  rebuilt once starts from it: the very bytes a rebuild from the store gives,
  so every object built on a damaged base is still found (each delta of a
  history is applied once, not once per chain through it).

It also keeps *chain root hints*: for delta frames this process wrote or
walked, the whole frame at the bottom of their chain.  A writer whose base is
at the chain bound deltas against that bottom frame; with a hint it reads the
hinted frame together with the bases, instead of walking the chain one level
per read.  A hint is only a candidate: it is used when the frame read now is
a whole frame, so a stale hint (another process, or gc, changed what is
stored) costs a walk, never a wrong frame.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

__all__ = ["DEFAULT_BYTES", "DeltaBaseCache", "StoredReads"]

#: Chain root hints kept (32 + 32 bytes each, about 15 MB at the most); beyond, they start afresh.
_MAX_ROOT_HINTS = 200_000

#: Bytes of canonical content a blob store keeps as delta bases (a 1% step of the 100,000-contact
#: workload writes about 4 MB of nodes).
DEFAULT_BYTES = 32 << 20


class StoredReads(OrderedDict[bytes, bytes]):
    """Objects a bypassing reader rebuilt or decompressed from stored frames, by digest; bounded in bytes,
    the oldest dropped first.  Filled under :class:`DeltaBaseCache`'s lock."""

    def __init__(self, max_bytes: int = 2 * DEFAULT_BYTES) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.nbytes = 0

    def keep(self, digest: bytes, data: bytes) -> None:
        if digest in self:
            return
        self[digest] = data
        self.nbytes += len(data)
        while self.nbytes > self.max_bytes:
            self.nbytes -= len(self.popitem(last=False)[1])


class DeltaBaseCache:
    """A least-recently-used map from digest to canonical bytes, bounded in bytes; thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._bypassed = 0
        self._rehashed: StoredReads | None = None  # what a bypassing reader rebuilt from stored frames
        self._lock = threading.Lock()
        #: delta-framed digest -> a hint: the whole frame its chain ends at, and the chain's length
        self._roots: dict[bytes, tuple[bytes, int]] = {}

    def get_many(self, digests: Iterable[bytes]) -> dict[bytes, bytes]:
        """The cached bytes of those ``digests`` held (while :meth:`bypassed`, only the reader's own)."""
        found: dict[bytes, bytes] = {}
        with self._lock:
            if self._bypassed:
                rehashed = self._rehashed
                if rehashed:
                    found = {digest: data for digest in digests if (data := rehashed.get(digest)) is not None}
                return found
            if not self._entries:
                return found
            entries = self._entries
            for digest in digests:
                data = entries.get(digest)
                if data is not None:
                    entries.move_to_end(digest)
                    found[digest] = data
        return found

    def add(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Keep ``(digest, canonical bytes)`` pairs, each known to hash to its digest; evict the oldest."""
        if self.max_bytes <= 0:
            return
        with self._lock:
            entries = self._entries
            for digest, data in items:
                if len(data) > self.max_bytes:
                    continue
                old = entries.pop(digest, None)
                if old is not None:
                    self._bytes -= len(old)
                entries[digest] = data
                self._bytes += len(data)
            while self._bytes > self.max_bytes:
                _, data = entries.popitem(last=False)
                self._bytes -= len(data)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._roots.clear()

    def root_hints(self, digests: Iterable[bytes]) -> dict[bytes, tuple[bytes, int]]:
        """The chain root hints held for ``digests``: ``(bottom, chain length)`` (candidates only: see the
        module docstring)."""
        with self._lock:
            roots = self._roots
            return {digest: roots[digest] for digest in digests if digest in roots}

    def add_root_hints(self, hints: dict[bytes, tuple[bytes, int]]) -> None:
        """Remember, for delta frames written or walked, the whole frame their chain ends at, and its length."""
        with self._lock:
            if len(self._roots) + len(hints) > _MAX_ROOT_HINTS:
                self._roots.clear()
            self._roots.update(hints)

    @contextmanager
    def bypassed(self, rehashed: StoredReads | None = None) -> Iterator[None]:
        """Inside, :meth:`get_many` finds nothing cached (reads judge chains by what is stored) but what is
        in ``rehashed``, which :meth:`keep_rebuilt` fills with what chain reads rebuild from stored frames."""
        with self._lock:
            self._bypassed += 1
            outer, self._rehashed = self._rehashed, rehashed if rehashed is not None else self._rehashed
        try:
            yield
        finally:
            with self._lock:
                self._bypassed -= 1
                self._rehashed = outer

    @property
    def recording(self) -> bool:
        """Whether :meth:`keep_rebuilt` keeps anything now (a reader bypasses with a :class:`StoredReads`)."""
        return self._rehashed is not None and self._bypassed > 0

    def keep_rebuilt(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        """What a chain read rebuilt or decompressed from stored frames: kept only while :meth:`bypassed`
        with a :class:`StoredReads` (those bytes are not re-hashed one by one, so the cache itself never
        holds them)."""
        with self._lock:
            rehashed = self._rehashed
            if rehashed is not None and self._bypassed:
                for digest, data in items:
                    rehashed.keep(digest, data)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        return self._bytes
