"""The Merkle network model: Bassline's types and the ``NetworkStorage`` interface on prolly trees."""

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
