"""``ImageStatus``: what a live image tells about its persistence (``NetworkImage.status()``)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from casstore.errors import StorageError
    from casstore.runtime.flush import Rejected

__all__ = ["ImageStatus"]

#: How many rejected changes the status keeps (the newest).
MAX_REJECTED = 100


@dataclass
class ImageStatus:
    """The persistence figures of one image (a copy; :meth:`NetworkImage.status` makes a new one each call).

    Fields:
        network_id, mode: the image's network and persistence mode.
        head: the printable id of the head the image last read or flushed.
        dirty: contacts and groups changed and not yet durable.
        flushes: flushes that committed (to the head, or as a journal entry); ``contact_writes`` /
            ``group_writes``: what they wrote (coalesced: a contact changed many times between two
            flushes counts once).
        journal_entries: journal entries committed and not yet folded into the head; ``folds``:
            head moves that folded entries in (:mod:`casstore.runtime.journal`).
        failures: flushes that failed in a row (0 after a success); ``total_failures``: ever.
        last_error: the last failure's message (``"CODE: message"``), ``None`` after a success.
        last_flush_at: when the last flush committed (``time.time()``); ``last_flush_seconds``: how long it took;
            ``flush_seconds``: how long every committed flush took, together.
        rejected: changes left out for their own fault (bad values, vanished groups), newest last.
        auto_snapshots: automatic snapshots taken.
    """

    network_id: str
    mode: str
    head: str | None = None
    dirty: int = 0
    flushes: int = 0
    contact_writes: int = 0
    group_writes: int = 0
    failures: int = 0
    total_failures: int = 0
    last_error: str | None = None
    last_flush_at: float | None = None
    last_flush_seconds: float | None = None
    flush_seconds: float = 0.0
    rejected: list[Rejected] = field(default_factory=list)
    auto_snapshots: int = 0
    journal_entries: int = 0
    folds: int = 0

    def copy(self, **changes: Any) -> ImageStatus:
        return dataclasses.replace(self, rejected=list(self.rejected), **changes)

    def flushed(
        self, contacts: int, groups: int, seconds: float, head: str | None, rejected: list[Rejected], folded: bool
    ) -> None:
        """A head move: of ``contacts`` and ``groups`` from the dirty map, and (``folded``) journal entries."""
        if contacts or groups:
            self.flushes += 1
        self.folds += folded
        self.head = head
        self._committed(contacts, groups, seconds, rejected)

    def journalled(self, contacts: int, seconds: float, rejected: list[Rejected]) -> None:
        """A flush as a journal entry."""
        self.flushes += 1
        self._committed(contacts, 0, seconds, rejected)

    def _committed(self, contacts: int, groups: int, seconds: float, rejected: list[Rejected]) -> None:
        self.contact_writes += contacts - sum(1 for r in rejected if r.contact_id is not None)
        self.group_writes += groups - sum(1 for r in rejected if r.contact_id is None)
        self.failures = 0
        self.last_error = None
        self.last_flush_at = time.time()
        self.last_flush_seconds = seconds
        self.flush_seconds += seconds
        self.rejected = (self.rejected + rejected)[-MAX_REJECTED:]

    def failed(self, exc: StorageError) -> None:
        self.failures += 1
        self.total_failures += 1
        self.last_error = f"{exc.code}: {exc}"
