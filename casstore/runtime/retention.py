"""Snapshot retention: automatic snapshots on a timer, and pruning (``max_snapshots``, ``casstore prune``).

Pruning deletes snapshot refs only; ``casstore gc`` then reclaims the bytes
that only pruned snapshots held (a snapshot's parent is a weak reference, see
``docs/format.md``).  Labelled snapshots are never candidates: only
unlabelled ones (and, for a live image's ``max_snapshots``, only automatic
ones) are pruned.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

from casstore.errors import SerializationError
from casstore.model import NetworkStore, SnapshotInfo

__all__ = ["AutoSnapshots", "parse_duration", "prune_snapshots", "snapshots_to_prune"]

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``"45s"``, ``"30m"``, ``"12h"``, ``"7d"``, ``"2w"`` as a timedelta; ``SerializationError`` otherwise."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise SerializationError(f"duration {text!r} is not a whole number followed by s, m, h, d or w (e.g. 30m, 7d)")
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        raise SerializationError(f"duration {text!r} is too long (at most {timedelta.max.days:,} days)") from None


def snapshots_to_prune(
    snapshots: list[SnapshotInfo],
    *,
    keep: int | None = None,
    keep_within: timedelta | None = None,
    automatic_only: bool = False,
    now: datetime | None = None,
) -> list[SnapshotInfo]:
    """Which of ``snapshots`` pruning removes, newest first.

    Candidates are the unlabelled snapshots (with ``automatic_only``, the automatic ones).  A
    candidate stays if it is among the ``keep`` newest candidates or was taken within
    ``keep_within`` of ``now``; with both rules, staying under either is enough.  With neither,
    nothing is pruned.
    """
    if keep is None and keep_within is None:
        return []
    if keep is not None and (type(keep) is not int or keep < 0):
        raise SerializationError(f"keep must be a whole number of at least 0, not {keep!r}", "keep")
    if keep_within is not None and (not isinstance(keep_within, timedelta) or keep_within < timedelta(0)):
        raise SerializationError(
            f"keep_within must be a timedelta of zero or more (parse_duration('7d')), not {keep_within!r}",
            "keep_within",
        )
    now = now or datetime.now(UTC)
    candidates = [s for s in snapshots if s.label is None and (s.automatic or not automatic_only)]
    candidates.sort(key=lambda s: (s.created_at, s.id), reverse=True)
    doomed = []
    for rank, info in enumerate(candidates):
        kept_by_count = keep is not None and rank < keep
        kept_by_age = keep_within is not None and now - info.created_at <= keep_within
        if not (kept_by_count or kept_by_age):
            doomed.append(info)
    return doomed


def prune_snapshots(
    store: NetworkStore,
    network_id: str,
    *,
    keep: int | None = None,
    keep_within: timedelta | None = None,
    automatic_only: bool = False,
    dry_run: bool = False,
) -> list[SnapshotInfo]:
    """Delete the snapshot refs :func:`snapshots_to_prune` picks (none with ``dry_run``); returns them."""
    doomed = snapshots_to_prune(
        store.list_snapshots(network_id), keep=keep, keep_within=keep_within, automatic_only=automatic_only
    )
    if not dry_run:
        for info in doomed:
            store.delete_snapshot(network_id, info.id)
    return doomed


class AutoSnapshots:
    """A snapshot timer: at most one automatic snapshot per ``interval_ms``, and only of a new head.

    After each snapshot it keeps the newest ``max_snapshots`` automatic snapshots (older ones'
    refs are deleted).  Not thread-safe by itself: the image calls it under its flush lock.
    """

    def __init__(
        self, store: NetworkStore, network_id: str, interval_ms: int | None, max_snapshots: int | None
    ) -> None:
        self.store = store
        self.network_id = network_id
        self.interval = None if interval_ms is None else interval_ms / 1000
        self.max_snapshots = max_snapshots
        self.last_time = time.monotonic()
        self.last_head: str | None = None
        self.taken = 0
        self.pruned = 0

    def start(self, head: str | None) -> None:
        """The head the image loaded: no snapshot is taken of it unless it changes."""
        self.last_head = head
        self.last_time = time.monotonic()

    def due(self, head: str | None) -> bool:
        return (
            self.interval is not None
            and head is not None
            and head != self.last_head
            and time.monotonic() - self.last_time >= self.interval
        )

    def maybe_take(self, head: str | None) -> str | None:
        """Take an automatic snapshot if one is due for ``head`` (the image's durable head); its id."""
        if not self.due(head):
            return None
        snapshot_id = self.store.save_snapshot(self.network_id, automatic=True)
        self.last_head, self.last_time = head, time.monotonic()
        self.taken += 1
        if self.max_snapshots is not None:
            self.pruned += len(
                prune_snapshots(self.store, self.network_id, keep=self.max_snapshots, automatic_only=True)
            )
        return snapshot_id
