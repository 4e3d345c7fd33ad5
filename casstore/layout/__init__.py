"""The seed's human-readable, git-friendly directory layout of a network (see docs/layout.md).

``P/networks/{network-id}/`` holds ``metadata.json``, ``groups/{group-id}/``
(``structure.json``, ``attributes.json``, ``contacts/{contact-id}.json``) and
``snapshots/{timestamp}-{label}.json``.  Modules: :mod:`~casstore.layout.names`
(ids as safe file names), :mod:`~casstore.layout.render` (each file's bytes),
:mod:`~casstore.layout.writer` (full and incremental writes), :mod:`~casstore.layout.place`
(files swapped in whole, old inodes recycled),
:mod:`~casstore.layout.parse` (reading files back), :mod:`~casstore.layout.status`
(hand edits), :mod:`~casstore.layout.manifest` (the bookkeeping),
:mod:`~casstore.layout.keeper` (the ``filesystem://`` store's hooks, installed on
import), :mod:`~casstore.layout.snapshots` (snapshot files restored as snapshots),
:mod:`~casstore.layout.clone` (a cloned tree's store rebuilt on open),
:mod:`~casstore.layout.edits` (``commit``) and
:mod:`~casstore.layout.transfer` (export and import from any store).
"""

from __future__ import annotations

from casstore.layout import clone  # registers the rebuild of a cloned tree on open
from casstore.layout.errors import InvalidLayout, UncommittedEdits
from casstore.layout.keeper import network_status, share_node_cache
from casstore.layout.status import Status

__all__ = ["InvalidLayout", "Status", "UncommittedEdits", "clone", "network_status", "share_node_cache"]
