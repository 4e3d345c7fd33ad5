"""Three-way merge of diverged replicas of a network, by each contact's blend mode (docs/merge.md).

* :mod:`casstore.merge.content`: the ``merge`` blend mode's value rules (upstream Bassline's
  ``mergeContent``, three-way), and :class:`~casstore.merge.content.Contradiction`;
* :mod:`casstore.merge.network`: :func:`merge_roots`, the tree-by-tree merge of two network roots
  against their base, by diff (cost follows the changes);
* :mod:`casstore.merge.rules`: the structure rules (fields three-way, maps key by key, id lists);
* :mod:`casstore.merge.treediff`: the level-by-level diff each side is read by;
* :mod:`casstore.merge.history`: the snapshot graph (merge parents), ancestry and the merge base;
* :mod:`casstore.merge.commit`: :func:`merge_network`, one merge as one write with its snapshot.

The conflicts a merge records live in the network's state (:mod:`casstore.model.conflicts`):
``NetworkStore.conflicts`` lists them, ``NetworkStore.resolve_conflict`` settles one.
"""

from __future__ import annotations

from casstore.merge.commit import AUTO, MergeResult, merge_network, resolve_other
from casstore.merge.content import Contradiction, merge3
from casstore.merge.history import SnapshotGraph
from casstore.merge.network import MergedRoot, merge_roots
from casstore.model.conflicts import Conflict

__all__ = [
    "AUTO",
    "Conflict",
    "Contradiction",
    "MergeResult",
    "MergedRoot",
    "SnapshotGraph",
    "merge3",
    "merge_network",
    "merge_roots",
    "resolve_other",
]
