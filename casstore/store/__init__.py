"""Store layer: the blob and ref protocols and their backends, chosen by URL.

``memory://``, ``lmdb:///path`` (also a bare path), ``file:///path``,
``s3://bucket/prefix?endpoint_url=…&region=…&cache_dir=…&cache_mb=…&cache=off``.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

from casstore.errors import InvalidStoreURL
from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore, validate_ref_name

__all__ = ["BlobStats", "BlobStore", "ObjectStore", "RefStore", "open_object_store", "validate_ref_name"]

SCHEMES = ("memory", "lmdb", "file", "s3")
S3_OPTIONS = {"endpoint_url", "region", "cache_dir", "cache", "cache_mb"}


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
    if scheme == "s3":
        return _open_s3(text, parts.netloc, parts.path, query, create)
    raise InvalidStoreURL(f"unknown store scheme {parts.scheme!r} in {text!r}; known: {', '.join(SCHEMES)}")


def _open_s3(text: str, bucket: str, path: str, query: dict[str, str], create: bool) -> ObjectStore:
    from casstore.store.s3 import DEFAULT_CACHE_BYTES, S3Store

    if not bucket:
        raise InvalidStoreURL(f"store URL {text!r} names no bucket (e.g. s3://my-bucket/casstore)")
    unknown = set(query) - S3_OPTIONS
    if unknown:
        raise InvalidStoreURL(f"unknown option(s) {sorted(unknown)} in {text!r} (s3 takes {sorted(S3_OPTIONS)})")
    try:
        cache_bytes = int(query["cache_mb"]) << 20 if "cache_mb" in query else DEFAULT_CACHE_BYTES
    except ValueError:
        raise InvalidStoreURL(f"cache_mb in {text!r} must be a whole number") from None
    return S3Store(
        bucket,
        path,
        endpoint_url=query.get("endpoint_url"),
        region=query.get("region"),
        create=create,
        cache_dir=query.get("cache_dir"),
        cache=query.get("cache", "on") not in ("off", "0", "false", "no"),
        cache_bytes=cache_bytes,
    )
