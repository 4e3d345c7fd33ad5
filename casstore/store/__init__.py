"""Store layer: the blob and ref protocols, their backends, and the wrappers stacked over them.

A URL names a backend by scheme (:mod:`casstore.store.registry`): ``memory://``,
``lmdb:///path`` (also a bare path), ``file:///path``,
``s3://bucket/prefix?endpoint_url=…&region=…&cache_dir=…&cache_mb=…&cache=off``,
and any scheme a third-party package registers.
"""

from __future__ import annotations

import os
from typing import Any

from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore, validate_ref_name
from casstore.store.registry import Backend, StoreLocation, open_location, parse_location, redact_url, register

__all__ = [
    "Backend",
    "BlobStats",
    "BlobStore",
    "ObjectStore",
    "RefStore",
    "StoreLocation",
    "open_object_store",
    "redact_url",
    "register",
    "validate_ref_name",
]


def open_object_store(url: str | os.PathLike[str], *, create: bool = True, **options: Any) -> ObjectStore:
    """Open (or with ``create``, make) the blob+ref store a URL names.

    A bare path means LMDB.  ``options`` are the backend's (as in the URL's
    query; keyword arguments win).  Raises :class:`~casstore.errors.InvalidStoreURL`
    (a ``ValueError``) for an unknown scheme, a malformed URL or an unknown option,
    and :class:`~casstore.errors.StoreNotFound` for a missing store when ``create`` is false.
    """
    return open_location(parse_location(url, options), create=create)
