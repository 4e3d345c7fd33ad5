"""Watching refs: the default change feed, a thread that polls a ref prefix.

:meth:`casstore.store.base.ObjectStore.watch_refs` reports ref moves made by
anyone — this process, other processes, other machines.  Backends with a
change feed of their own override it (PostgreSQL's LISTEN/NOTIFY, a remote
server's event stream); every other backend gets :class:`RefPoller`, which
lists the prefix every ``interval`` seconds and reports what differs from
the last listing.  Polling can coalesce moves (two moves within one interval
are reported as the second) but never misses the latest value, and a listing
that fails (a dropped connection) is simply retried on the next tick, so what
changed meanwhile is reported once the store answers again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

__all__ = ["RefChanges", "RefPoller", "ref_differences"]

log = logging.getLogger("casstore")

#: What a watch reports: ref name → its new value (``None``: the ref was deleted).
RefChanges = Mapping[str, bytes | None]


def ref_differences(before: Mapping[str, bytes], after: Mapping[str, bytes]) -> dict[str, bytes | None]:
    """The refs whose value differs between two listings (``None`` for a ref that is gone)."""
    changes: dict[str, bytes | None] = {name: value for name, value in after.items() if before.get(name) != value}
    changes.update({name: None for name in before.keys() - after.keys()})
    return changes


class RefPoller:
    """A daemon thread listing ``prefix`` with ``list_refs`` every ``interval`` seconds.

    The first listing is taken in the constructor, so every move after it
    returns is reported.  ``callback`` runs on the poller's thread; an
    exception from it is logged and polling goes on.  :meth:`stop` is
    idempotent and does not wait for a callback in progress on another thread.
    """

    def __init__(
        self,
        list_refs: Callable[[str], Mapping[str, bytes]],
        prefix: str,
        callback: Callable[[RefChanges], None],
        interval: float,
    ) -> None:
        self._list = list_refs
        self._prefix = prefix
        self._callback = callback
        self._interval = interval
        self._seen = dict(list_refs(prefix))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"casstore-watch {prefix}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (idempotent)."""
        self._stopped.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=self._interval + 5)

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                listing = dict(self._list(self._prefix))
            except Exception as exc:  # the store is unreachable for now: try again next tick
                log.debug("watching %s: listing failed (%s); retrying", self._prefix, exc)
                continue
            changes = ref_differences(self._seen, listing)
            self._seen = listing
            if changes and not self._stopped.is_set():
                try:
                    self._callback(changes)
                except Exception:
                    log.exception("ref watch callback for %s raised", self._prefix)
