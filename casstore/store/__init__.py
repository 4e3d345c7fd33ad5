"""Store layer: the blob and ref protocols and their backends, chosen by URL.

``memory://``, ``lmdb:///path`` (also a bare path), ``file:///path``.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

from casstore.errors import InvalidStoreURL
from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore, validate_ref_name

__all__ = ["BlobStats", "BlobStore", "ObjectStore", "RefStore", "open_object_store", "validate_ref_name"]

SCHEMES = ("memory", "lmdb", "file")


def open_object_store(url: str | os.PathLike[str], *, create: bool = True) -> ObjectStore:
    """Open (or with ``create``, make) the blob+ref store a URL names.

    A bare path means LMDB.  Raises :class:`~casstore.errors.InvalidStoreURL`
    (a ``ValueError``) for an unknown scheme or a malformed URL, and
    :class:`~casstore.errors.StoreNotFound` for a missing store when ``create`` is false.
    """
    text = os.fspath(url)
    if not isinstance(text, str) or not text.strip():
        raise InvalidStoreURL(f"store URL must be a non-empty string, not {url!r}")
    if "://" not in text:
        from casstore.store.lmdb import LmdbStore

        return LmdbStore(text, create=create)
    try:
        parts = urlsplit(text)
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=bool(parts.query)).items()}
    except ValueError as exc:
        raise InvalidStoreURL(f"malformed store URL {text!r}: {exc}") from None
    scheme = parts.scheme.lower()
    path = parts.netloc + parts.path
    if scheme == "memory":
        from casstore.store.memory import MemoryStore

        return MemoryStore(text)
    if scheme in ("lmdb", "file") and not path:
        raise InvalidStoreURL(f"store URL {text!r} names no path (e.g. {scheme}:///var/lib/casstore)")
    if scheme == "lmdb":
        from casstore.store.lmdb import DEFAULT_MAP_SIZE, LmdbStore

        unknown = set(query) - {"map_size"}
        if unknown:
            raise InvalidStoreURL(f"unknown option(s) {sorted(unknown)} in {text!r} (lmdb takes map_size)")
        try:
            map_size = int(query.get("map_size", DEFAULT_MAP_SIZE))
        except ValueError:
            raise InvalidStoreURL(f"map_size in {text!r} must be a whole number of bytes") from None
        return LmdbStore(path, create=create, map_size=map_size)
    if scheme == "file":
        from casstore.store.file import FileStore

        if query:
            raise InvalidStoreURL(f"file:// takes no options, got {sorted(query)} in {text!r}")
        return FileStore(path, create=create)
    raise InvalidStoreURL(f"unknown store scheme {parts.scheme!r} in {text!r}; known: {', '.join(SCHEMES)}")
