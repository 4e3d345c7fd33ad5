"""What an exchange did: the figures of one transfer and of a push, pull or sync, and the progress callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Divergence", "Outcome", "Progress", "SyncReport", "TransferStats"]

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


@dataclass(frozen=True)
class Divergence:
    """What diverged in one network: both heads moved since the head the two stores last agreed on.

    *Local* is the store that records the agreed heads (the one pushing, or pulling); *remote* the
    other.  Heads are printable ids (``agreed_head`` is ``None`` if the two never exchanged this
    network); the snapshot lists are the ids each side held that the other did not, before the
    exchange (sorted; the exchange then copies the sender's to the receiver, as always).
    """

    network_id: str
    local_head: str | None
    remote_head: str | None
    agreed_head: str | None
    local_only_snapshots: list[str] = field(default_factory=list)
    remote_only_snapshots: list[str] = field(default_factory=list)


@dataclass
class SyncReport(TransferStats):
    """What :func:`~casstore.sync.push`, :func:`~casstore.sync.pull` or ``NetworkStore.sync`` did.

    ``networks`` maps each network id to ``"created"``, ``"updated"``,
    ``"up-to-date"`` or ``"diverged"``; ``snapshots_copied`` counts snapshot refs
    created on the destination; ``diverged`` says, for each diverged network,
    what diverged (:class:`Divergence`).
    """

    networks: dict[str, Outcome] = field(default_factory=dict)
    snapshots_copied: int = 0
    diverged: dict[str, Divergence] = field(default_factory=dict)
    #: with ``merge=True``: each network merged instead of diverging → its ``casstore.merge.MergeResult``
    merged: dict[str, Any] = field(default_factory=dict)

    def add(self, other: TransferStats) -> None:
        """Add ``other``'s figures to these (``levels`` is the deeper of the two)."""
        self.objects_sent += other.objects_sent
        self.bytes_sent += other.bytes_sent
        self.objects_skipped += other.objects_skipped
        self.round_trips += other.round_trips
        self.levels = max(self.levels, other.levels)
        self.deltas += other.deltas
