"""casstore: a content-addressed object store for Bassline propagation networks.

Layers, bottom to top (see docs/architecture.md): :mod:`casstore.codec` →
:mod:`casstore.store` → prolly trees → network model → sync/gc/verify → CLI.
"""

from __future__ import annotations

import os

import casstore.layout  # installs the filesystem:// store's hooks; share_node_cache below
from casstore.errors import StorageError
from casstore.model import Change, Contact, Group, GroupState, NetworkState, NetworkStore, SnapshotInfo, Wire
from casstore.model.bassline_json import NetworkJSONError, network_from_json, network_to_json
from casstore.model.history import HistoryEntry
from casstore.model.stats import NetworkStats
from casstore.sqlview import share_node_cache  # importing it installs the SQL view's hooks
from casstore.store import ObjectStore, open_object_store
from casstore.store.config import SchedulerStorageConfig, StorageConfig, load_config
from casstore.sync import Divergence, SyncReport, clone, pull, push
from casstore.verify import VerifyReport, verify

__version__ = "0.1.0"  # the one place the version is defined (pyproject.toml reads it from here)
__all__ = [
    "Change",
    "Contact",
    "Divergence",
    "Group",
    "GroupState",
    "HistoryEntry",
    "NetworkJSONError",
    "NetworkState",
    "NetworkStats",
    "NetworkStore",
    "ObjectStore",
    "SchedulerStorageConfig",
    "SnapshotInfo",
    "StorageConfig",
    "StorageError",
    "SyncReport",
    "VerifyReport",
    "Wire",
    "__version__",
    "clone",
    "load_config",
    "network_from_json",
    "network_to_json",
    "open_store",
    "pull",
    "push",
    "verify",
]


def open_store(url: str | os.PathLike[str] | StorageConfig, *, create: bool = True) -> NetworkStore:
    """Open the store a URL names (``memory://``, ``lmdb:///path`` or a bare path, ``file:///path``…),
    or a :class:`StorageConfig` (the one URL :meth:`StorageConfig.to_url` maps it to; see docs/runtime.md).

    The result has Bassline's ``NetworkStorage`` interface plus ``.blobs`` and ``.refs``.
    """
    if isinstance(url, StorageConfig):
        url = url.to_url()
    return casstore.layout.share_node_cache(share_node_cache(NetworkStore(open_object_store(url, create=create))))
