"""``filesystem:///P``: a store kept as the seed's human-readable layout, with its objects under ``P/.casstore/``.

The content-addressed store is an LMDB environment in ``P/.casstore/`` (LMDB
for its one-transaction commit of objects and head move, and its speed; the
``file`` backend would journal every commit).  After every commit that moves a
ref, the files under ``P/networks/`` are brought in step; before one that moves
a network's head, they are checked for uncommitted hand edits.  Both are the
job of :mod:`casstore.layout` (a layer above this one), which installs itself
through :func:`install_layout` when casstore is imported; this module only
calls it.  Reads come from the store, never from the files.

Options: ``force`` (``?force=on`` or ``open_object_store(url, force=True)``):
writes go ahead over uncommitted hand edits (they are overwritten).  The same
for one block of code: ``with store.forcing(): ...``.  ``fsync`` (default on;
``?fsync=off``): each tree update is made durable (one ``syncfs``) before its
bookkeeping records it; off, a power loss may leave files older than the
bookkeeping says (shown as hand edits), while a killed process is still repaired.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from casstore.errors import StorageError
from casstore.store.base import ObjectStore, RefStore, RefUpdate, make_directory, require_store
from casstore.store.lmdb import DEFAULT_MAP_SIZE, LmdbStore
from casstore.store.registry import Backend, StoreLocation, register

__all__ = ["BACKEND", "FilesystemStore", "LayoutHooks", "install_layout"]

#: The directory under ``P`` holding the objects and the tree's bookkeeping.
STORE_DIR = ".casstore"


class LayoutHooks(Protocol):
    """What :mod:`casstore.layout` does for a filesystem store."""

    def opened(self, store: FilesystemStore) -> None:
        """Repair: bring every network's files in step with its head."""

    def before_moves(self, store: FilesystemStore, names: Sequence[str]) -> None:
        """Refuse (raise) a move of these refs over uncommitted hand edits, unless the store is forced."""

    def after_moves(self, store: FilesystemStore, names: Sequence[str]) -> None:
        """Bring the files of the networks these refs belong to in step."""

    def closing(self, store: FilesystemStore) -> None:
        """Release what the layout holds for this store."""


_hooks: LayoutHooks | None = None


def install_layout(hooks: LayoutHooks) -> None:
    """Called by :mod:`casstore.layout` on import."""
    global _hooks
    _hooks = hooks


def _layout() -> LayoutHooks:
    if _hooks is None:  # never: importing casstore (the parent package) loads casstore.layout
        raise StorageError("casstore.layout is not loaded")
    return _hooks


class _HookedRefs(RefStore):
    """The LMDB store's refs, with every move checked before and the files brought in step after."""

    def __init__(self, store: FilesystemStore, inner: RefStore) -> None:
        self.store = store
        self.inner = inner

    def _get(self, name: str) -> bytes | None:
        return self.inner._get(name)

    def _list(self, prefix: str) -> dict[str, bytes]:
        return self.inner._list(prefix)

    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        _layout().before_moves(self.store, [name])
        self.inner._cas(name, expected, new)
        _layout().after_moves(self.store, [name])


class FilesystemStore(ObjectStore):
    """Objects in LMDB under ``P/.casstore/``; every network also as files under ``P/networks/``."""

    atomic_commit = True

    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = True,
        force: bool = False,
        fsync: bool = True,
        map_size: int = DEFAULT_MAP_SIZE,
    ) -> None:
        self.base = Path(path)
        self.url = f"filesystem://{self.base.resolve()}"
        store_dir = self.base / STORE_DIR
        if not create:
            require_store((store_dir / "data.mdb").exists(), self.url)
        if self.base.exists() and not self.base.is_dir():
            raise StorageError(f"{self.base} exists and is not a directory")
        make_directory(self.base)
        self.inner = LmdbStore(store_dir, create=create, map_size=map_size)
        self.blobs = self.inner.blobs
        self.refs = _HookedRefs(self, self.inner.refs)
        self.force = force
        #: whether each tree update is made durable before the tree's bookkeeping records it
        self.durable = fsync
        self._forcing = threading.local()
        #: what :mod:`casstore.layout` keeps for this store (its bookkeeping, readers, lock)
        self.layout_state: object = None
        self._closed = False
        try:
            _layout().opened(self)
        except BaseException:
            self.close()
            raise

    @property
    def forced(self) -> bool:
        """Whether writes now go ahead over uncommitted hand edits."""
        return self.force or getattr(self._forcing, "depth", 0) > 0

    @contextmanager
    def forcing(self) -> Iterator[None]:
        """Within the block (in this thread), writes overwrite uncommitted hand edits."""
        self._forcing.depth = getattr(self._forcing, "depth", 0) + 1
        try:
            yield
        finally:
            self._forcing.depth -= 1

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        """The LMDB commit (objects and ref moves in one transaction), checked before and mirrored after."""
        names = [update.name for update in updates]
        if names:
            _layout().before_moves(self, names)
        self.inner.commit(frames, updates)
        if names:
            _layout().after_moves(self, names)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if _hooks is not None:
                _hooks.closing(self)
        finally:
            self.inner.close()


def _open(location: StoreLocation, create: bool) -> FilesystemStore:
    return FilesystemStore(
        location.where,
        create=create,
        force=location.bool_option("force", False),
        fsync=location.bool_option("fsync", True),
        map_size=location.int_option("map_size", DEFAULT_MAP_SIZE),
    )


BACKEND = register(
    Backend(
        ("filesystem",),
        _open,
        frozenset({"force", "fsync", "map_size"}),
        summary="LMDB under P/.casstore, networks kept as the seed's JSON layout under P/networks",
    )
)
