"""``s3://bucket/prefix`` — objects packed into S3 objects, refs moved by S3 conditional writes.

Layout under the prefix (see docs/backends.md):

* ``packs/<blake3 of the pack>.pack`` — frames back to back, at most ~8 MB per pack.
* ``index/<time ns>-<hash>.idx`` — one per write: the packs it wrote and, for each
  object, ``(digest, pack, offset, length)``.  It is written after all of its
  packs, so a write's objects appear together (children never before parents),
  and a write of many objects costs O(packs) requests, not O(objects).
* ``refs/<name>`` — a printable id; moved by compare-and-swap with ``IfNoneMatch="*"``
  (create) and ``IfMatch=<ETag>`` (replace, delete).
* ``casstore-format`` — marks the store.

The index is held in memory (``missing()`` costs no request); reads are ranged
GETs, coalesced per pack and run in parallel.  Index files and fetched objects
are cached in a local directory (bounded in size).  Throttling and 5xx answers
are retried by botocore's "standard" retry mode; a precondition failure is
permanent and becomes :class:`~casstore.errors.RefConflict`.
:meth:`S3Store.is_transient` tells a retrying wrapper which errors that got
past botocore's retries are worth another attempt.

Modules: :mod:`.client` (the boto3 client, error translation and
classification), :mod:`.index` (the index file format, merging),
:mod:`.cache` (frames in memory, the local directory), :mod:`.blobs`
(:class:`S3Blobs`), :mod:`.refs` (:class:`S3Refs`) and :mod:`.store`
(:class:`S3Store` and the registry's :data:`BACKEND`).
"""

from casstore.store.s3.blobs import (
    CONSOLIDATE_AT,
    MEMORY_CACHE_BYTES,
    ORPHAN_PACK_AGE_S,
    PACK_BYTES,
    WHOLE_PACK_BYTES,
    S3Blobs,
)
from casstore.store.s3.cache import DEFAULT_CACHE_BYTES, default_cache_dir
from casstore.store.s3.client import S3Client, is_transient_error
from casstore.store.s3.index import INDEX_MAGIC, MERGED_SUFFIX, decode_index, encode_index
from casstore.store.s3.refs import S3Refs
from casstore.store.s3.store import BACKEND, S3Store

__all__ = [
    "BACKEND",
    "CONSOLIDATE_AT",
    "DEFAULT_CACHE_BYTES",
    "INDEX_MAGIC",
    "MEMORY_CACHE_BYTES",
    "MERGED_SUFFIX",
    "ORPHAN_PACK_AGE_S",
    "PACK_BYTES",
    "WHOLE_PACK_BYTES",
    "S3Blobs",
    "S3Client",
    "S3Refs",
    "S3Store",
    "decode_index",
    "default_cache_dir",
    "encode_index",
    "is_transient_error",
]
