"""Pass-through wrappers: a store that forwards every call to the store below it.

:class:`WrappedBlobs`, :class:`WrappedRefs` and :class:`WrappedStore` forward
every primitive of the protocols in :mod:`casstore.store.base`, ``commit``,
``receive_pack``, ``fetch_packs``, ``watch_refs``, ``is_transient``, ``close``, ``url`` and every capability
flag, so a wrapper overrides only the calls it changes.  They forward *frames*:
hashing and re-hashing stay in :meth:`BlobStore.put_many` / :meth:`BlobStore.get_many`
of the outermost layer, once, whatever the depth of the stack.  Refs are
forwarded through the inner store's public ``get`` / ``compare_and_swap`` /
``delete`` / ``list``, which validate names and ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore, RefUpdate
from casstore.store.registry import redact_url
from casstore.store.watch import RefChanges

__all__ = ["WrappedBlobs", "WrappedRefs", "WrappedStore", "find_layer", "innermost"]

S = TypeVar("S", bound=ObjectStore)


class WrappedBlobs(BlobStore):
    """A blob store that forwards every primitive to ``inner``."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.keeps_delta_frames = inner.keeps_delta_frames

    def unwrap(self) -> BlobStore:
        """The blob store below this one."""
        return self.inner

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        self.inner.put_frames(items)

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        return self.inner.get_frames(digests)

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        return self.inner.missing(digests)

    def iter_hashes(self) -> Iterator[bytes]:
        return self.inner.iter_hashes()

    def delete_many(self, digests: Iterable[bytes]) -> int:
        return self.inner.delete_many(digests)

    def written_since(self, timestamp: float) -> set[bytes]:
        return self.inner.written_since(timestamp)

    def stats(self) -> BlobStats:
        return self.inner.stats()


class WrappedRefs(RefStore):
    """A ref store that forwards the public calls to ``inner`` (which validates names and ids).

    Subclasses override the public methods; the private hooks of
    :class:`RefStore` route to them, so either entry point reaches the wrapper.
    """

    def __init__(self, inner: RefStore) -> None:
        self.inner = inner

    def unwrap(self) -> RefStore:
        """The ref store below this one."""
        return self.inner

    def get(self, name: str) -> bytes | None:
        return self.inner.get(name)

    def compare_and_swap(self, name: str, expected: bytes | str | None, new: bytes | str) -> None:
        self.inner.compare_and_swap(name, expected, new)

    def delete(self, name: str, expected: bytes | str | None) -> None:
        self.inner.delete(name, expected)

    def list(self, prefix: str = "") -> dict[str, bytes]:
        return self.inner.list(prefix)

    def _get(self, name: str) -> bytes | None:
        return self.get(name)

    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        if new is None:
            self.delete(name, expected)
        else:
            self.compare_and_swap(name, expected, new)

    def _list(self, prefix: str) -> dict[str, bytes]:
        return self.list(prefix)


class WrappedStore(ObjectStore):
    """An object store over ``inner``: same URL, same capabilities, every call forwarded.

    A subclass passes its own ``blobs`` / ``refs`` wrappers (defaults forward
    unchanged) and overrides the store-level calls it changes.
    """

    def __init__(self, inner: ObjectStore, blobs: BlobStore | None = None, refs: RefStore | None = None) -> None:
        self.inner = inner
        self.blobs = blobs if blobs is not None else WrappedBlobs(inner.blobs)
        self.refs = refs if refs is not None else WrappedRefs(inner.refs)
        self.url = inner.url
        self.atomic_commit = inner.atomic_commit
        self.passive_remote = inner.passive_remote
        self.watch_interval = inner.watch_interval
        self.deltas_at_rest = inner.deltas_at_rest

    def unwrap(self) -> ObjectStore:
        """The store below this one."""
        return self.inner

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        self.inner.commit(frames, updates)

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        return self.inner.receive_pack(pack, updates)

    def fetch_packs(
        self,
        want: Sequence[tuple[bytes, str]],
        have: Sequence[tuple[bytes, str]],
        bases: Mapping[bytes, bytes] | None = None,
    ) -> Iterator[bytes] | None:
        return self.inner.fetch_packs(want, have, bases)

    def watch_refs(self, prefix: str, callback: Callable[[RefChanges], None]) -> Callable[[], None]:
        return self.inner.watch_refs(prefix, callback)

    def is_transient(self, exc: BaseException) -> bool:
        return self.inner.is_transient(exc)

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {redact_url(self.url)} over {self.inner!r}>"


def innermost(store: ObjectStore) -> ObjectStore:
    """The backend at the bottom of a stack of wrappers (``store`` itself if it wraps nothing)."""
    while isinstance(store, WrappedStore):
        store = store.unwrap()
    return store


def find_layer(store: ObjectStore, kind: type[S]) -> S | None:
    """The outermost layer of type ``kind`` in the stack ``store`` heads, or ``None``."""
    layer: ObjectStore | None = store
    while layer is not None:
        if isinstance(layer, kind):
            return layer
        layer = layer.unwrap() if isinstance(layer, WrappedStore) else None
    return None
