"""Change events: subscribers to a network or one group, told after each committed change.

A path is ``"net"`` (every group of a network) or ``"net/group"``.  The writer
calls :meth:`Subscribers.notify` with the groups a commit changed; a head
moved from outside (a pull) arrives through :meth:`Subscribers.head_moved`,
which diffs the two roots only when somebody listens.  A callback that raises
is logged and does not stop the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from casstore.errors import InvalidId, SerializationError
from casstore.model.diff import changed_groups
from casstore.model.reads import NetworkReader
from casstore.model.types import GroupState, check_str

__all__ = ["Subscribers"]

log = logging.getLogger("casstore")


class Subscribers:
    """The callbacks subscribed to one store's networks (thread-safe)."""

    def __init__(self, reader: NetworkReader) -> None:
        self.reader = reader
        self._subscribers: dict[str, list[Callable[[GroupState], None]]] = {}
        self._lock = threading.Lock()

    def subscribe(self, path: str, callback: Callable[[GroupState], None]) -> Callable[[], None]:
        """Register ``callback`` for ``path``; returns the function that unsubscribes it."""
        check_str(path, "path")
        if not path:
            raise InvalidId("path: a subscription names a network, or network/group")
        if not callable(callback):
            raise SerializationError(f"callback: expected a function, got {type(callback).__name__}", "callback")
        with self._lock:
            self._subscribers.setdefault(path, []).append(callback)

        def unsubscribe() -> None:
            with self._lock:
                listeners = self._subscribers.get(path, [])
                if callback in listeners:
                    listeners.remove(callback)

        return unsubscribe

    def head_moved(self, network_id: str, old_head: bytes | None, new_head: bytes) -> None:
        """Tell subscribers about a head moved from outside this object (a pull); free when nobody listens."""
        with self._lock:
            listening = any(
                callbacks and (path == network_id or path.startswith(network_id + "/"))
                for path, callbacks in self._subscribers.items()
            )
        if listening:
            self.notify(network_id, changed_groups(self.reader, old_head, new_head))

    def notify(self, network_id: str, group_ids: list[str]) -> None:
        """Call the subscribers of each changed group with its state now."""
        with self._lock:
            if not self._subscribers:
                return
            wanted = {
                gid: [*self._subscribers.get(network_id, []), *self._subscribers.get(f"{network_id}/{gid}", [])]
                for gid in group_ids
            }
        wanted = {gid: cbs for gid, cbs in wanted.items() if cbs}
        for gid, callbacks in wanted.items():
            state = self.reader.load_group_state(network_id, gid)
            if state is None:
                continue
            for callback in callbacks:
                try:
                    callback(state)
                except Exception:
                    log.exception("subscriber for %s/%s raised", network_id, gid)
