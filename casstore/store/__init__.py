"""Store layer: the blob and ref protocols, their backends, and the wrappers stacked over them.

A URL names a backend by scheme (:mod:`casstore.store.registry`): ``memory://``,
``lmdb:///path`` (also a bare path), ``file:///path``,
``s3://bucket/prefix?endpoint_url=…&region=…&cache_dir=…&cache_mb=…&cache=off``,
and any scheme a third-party package registers.  The wrapper options
(``retries``, ``retry_delay``, ``metrics``, ``frame_cache_mb``, ``ref_ttl``,
``read_only``; see :mod:`casstore.store.wrappers.stack`) may be added to any URL.
"""

from __future__ import annotations

import os
from typing import Any

from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore, validate_ref_name
from casstore.store.registry import Backend, StoreLocation, open_location, parse_location, redact_url, register
from casstore.store.wrappers.stack import WRAPPER_OPTIONS, StackOptions, wrap_store

__all__ = [
    "WRAPPER_OPTIONS",
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
    "wrap_store",
]

_WRAPPER_OPTION_NAMES = frozenset(WRAPPER_OPTIONS)


def open_object_store(url: str | os.PathLike[str], *, create: bool = True, **options: Any) -> ObjectStore:
    """Open (or with ``create``, make) the blob+ref store a URL names, under the wrappers its options ask for.

    A bare path means LMDB.  ``options`` are the backend's or the wrappers'
    (as in the URL's query; keyword arguments win), e.g.
    ``open_object_store(path, retries=3, metrics=True)``.  With no wrapper
    option the backend's own store is returned.  Raises
    :class:`~casstore.errors.InvalidStoreURL` (a ``ValueError``) for an unknown
    scheme, a malformed URL or an unknown or malformed option, and
    :class:`~casstore.errors.StoreNotFound` for a missing store when ``create`` is false.
    """
    location = parse_location(url, options)
    stack = StackOptions.from_location(location)  # checked before the backend creates anything
    store = open_location(location, create=create, extra_options=_WRAPPER_OPTION_NAMES)
    try:
        return wrap_store(store, stack)
    except BaseException:
        store.close()
        raise
