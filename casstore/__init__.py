"""casstore: a content-addressed object store for Bassline propagation networks.

Layers, bottom to top (see docs/architecture.md): :mod:`casstore.codec` →
:mod:`casstore.store` → prolly trees → network model → sync/gc/verify → CLI.
"""

from __future__ import annotations

import os

from casstore.errors import StorageError
from casstore.store import ObjectStore, open_object_store
from casstore.verify import VerifyReport, verify

__version__ = "0.1.0"
__all__ = ["ObjectStore", "StorageError", "VerifyReport", "__version__", "open_store", "verify"]


def open_store(url: str | os.PathLike[str], *, create: bool = True) -> ObjectStore:
    """Open the store a URL names (``memory://``, ``lmdb:///path`` or a bare path, ``file:///path``)."""
    return open_object_store(url, create=create)
