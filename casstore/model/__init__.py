"""The Merkle network model: Bassline's types and the ``NetworkStorage`` interface on prolly trees.

* :mod:`.network` — :class:`NetworkStore`, the facade (Bassline's interface), which delegates to:
* :mod:`.reads` — heads, roots and states, with the caches of decoded objects;
* :mod:`.transaction` — one write's edits on one head, building the new root;
* :mod:`.writes` — the compare-and-swap write loop and :class:`Batch`;
* :mod:`.query` — queries through the attribute index;
* :mod:`.snapshots` — save, find, load, list and delete snapshots;
* :mod:`.diff` — changes between two states;
* :mod:`.events` — subscribers told of committed changes.

Below them: :mod:`.types` (the Bassline dataclasses and their validation),
:mod:`.records` (how a network is laid out in objects), :mod:`.refs` (every ref
name), :mod:`.walk` (the DAG walk: each object's links, by schema) and
:mod:`.bassline_json` (Bassline's JSON shape).
"""

from casstore.model.network import Batch, NetworkStore
from casstore.model.types import (
    Change,
    Contact,
    Group,
    GroupState,
    NetworkState,
    SnapshotInfo,
    Wire,
)

__all__ = ["Batch", "Change", "Contact", "Group", "GroupState", "NetworkState", "NetworkStore", "SnapshotInfo", "Wire"]
