"""What an exchange did: the figures of one transfer and of a push, pull or sync, and the progress callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Outcome", "Progress", "SyncReport", "TransferStats"]

#: What happened to one network's head in an exchange (see :func:`casstore.sync.decide`).
Outcome = Literal["created", "updated", "up-to-date", "diverged"]
#: Called as objects land: ``(objects_written, bytes_written, objects_known_missing)``.
Progress = Callable[[int, int, int], None]


@dataclass
class TransferStats:
    """What one :func:`~casstore.sync.transfer` did.

    ``bytes_sent`` counts what travelled: the packs (see :mod:`casstore.pack`)
    when objects could go as deltas, else the frames themselves (always to or
    from a passive remote such as S3); ``round_trips`` counts batched calls to
    the remote store.
    """

    objects_sent: int = 0
    bytes_sent: int = 0
    objects_skipped: int = 0
    round_trips: int = 0
    levels: int = 0
    #: objects sent as deltas against an object the destination held
    deltas: int = 0


@dataclass
class SyncReport(TransferStats):
    """What :func:`~casstore.sync.push`, :func:`~casstore.sync.pull` or ``NetworkStore.sync`` did.

    ``networks`` maps each network id to ``"created"``, ``"updated"``,
    ``"up-to-date"`` or ``"diverged"``; ``snapshots_copied`` counts snapshot refs
    created on the destination.
    """

    networks: dict[str, Outcome] = field(default_factory=dict)
    snapshots_copied: int = 0

    def add(self, other: TransferStats) -> None:
        """Add ``other``'s figures to these (``levels`` is the deeper of the two)."""
        self.objects_sent += other.objects_sent
        self.bytes_sent += other.bytes_sent
        self.objects_skipped += other.objects_skipped
        self.round_trips += other.round_trips
        self.levels = max(self.levels, other.levels)
        self.deltas += other.deltas
