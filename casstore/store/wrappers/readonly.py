"""``ReadOnlyStore``: every read passes, every write raises :class:`~casstore.errors.StoreReadOnly`.

Writes are refused before they reach the store below, so a refused call
changes nothing: ``put_frames``, ``delete_many``, ``compare_and_swap``,
``delete``, ``commit`` and ``receive_pack``.  The error (code ``READ_ONLY``)
names the store (its URL without secrets) and the call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NoReturn

from casstore.errors import StoreReadOnly
from casstore.store.base import BlobStore, ObjectStore, RefStore, RefUpdate
from casstore.store.registry import redact_url
from casstore.store.wrappers.base import WrappedBlobs, WrappedRefs, WrappedStore

__all__ = ["ReadOnlyStore"]


def _refuse(url: str, call: str) -> NoReturn:
    raise StoreReadOnly(f"{redact_url(url)} is open read-only: {call} refused")


class ReadOnlyBlobs(WrappedBlobs):
    def __init__(self, inner: BlobStore, url: str) -> None:
        super().__init__(inner)
        self.url = url

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        _refuse(self.url, "blobs.put_frames")

    def delete_many(self, digests: Iterable[bytes]) -> int:
        _refuse(self.url, "blobs.delete_many")


class ReadOnlyRefs(WrappedRefs):
    def __init__(self, inner: RefStore, url: str) -> None:
        super().__init__(inner)
        self.url = url

    def compare_and_swap(self, name: str, expected: bytes | str | None, new: bytes | str) -> None:
        _refuse(self.url, f"refs.compare_and_swap of {name!r}")

    def delete(self, name: str, expected: bytes | str | None) -> None:
        _refuse(self.url, f"refs.delete of {name!r}")


class ReadOnlyStore(WrappedStore):
    """``inner`` with every write refused (see the module docstring)."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner, ReadOnlyBlobs(inner.blobs, inner.url), ReadOnlyRefs(inner.refs, inner.url))

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        _refuse(self.url, "commit")

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        _refuse(self.url, "receive_pack")
