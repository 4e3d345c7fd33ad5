"""Change events: subscribers to a network or one group, told after each committed change.

A path is ``"net"`` (every group of a network) or ``"net/group"``.  Every head
move this object makes or learns of goes through :meth:`Subscribers.committed`:
the writer passes the groups its commit changed; a pull passes none, and the
two roots are diffed only when somebody listens.

Moves made elsewhere — another process, another machine, another object over
the same store — arrive through the store's
:meth:`~casstore.store.base.ObjectStore.watch_refs`: while a network has
subscribers its head ref is watched (unless the store says nobody else can move
it).  For each watched network the subscribers remember the last head they were
told about, so a move is reported once however it arrives (the writer's own
report and the watch's can come in either order), and a move seen late is
diffed from that head, so nothing in between is missed.  A callback that raises
is logged and does not stop the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from casstore.errors import InvalidId
from casstore.model.diff import changed_groups
from casstore.model.reads import NetworkReader
from casstore.model.refs import head_ref
from casstore.model.types import GroupState, check_callable, check_str
from casstore.store.base import ObjectStore
from casstore.store.watch import RefChanges

__all__ = ["Subscribers"]

log = logging.getLogger("casstore")


class Subscribers:
    """The callbacks subscribed to one store's networks (thread-safe)."""

    def __init__(self, reader: NetworkReader, objects: ObjectStore | None = None) -> None:
        self.reader = reader
        self._objects = objects
        self._subscribers: dict[str, list[Callable[[GroupState], None]]] = {}
        self._lock = threading.RLock()
        self._watches: dict[str, Callable[[], None]] = {}  # network id → stop its head watch
        self._told: dict[str, bytes | None] = {}  # network id → the head its subscribers last heard of

    def subscribe(self, path: str, callback: Callable[[GroupState], None]) -> Callable[[], None]:
        """Register ``callback`` for ``path``; returns the function that unsubscribes it."""
        check_str(path, "path")
        if not path:
            raise InvalidId("path: a subscription names a network, or network/group")
        check_callable(callback, "callback")
        network_id = path.split("/", 1)[0]
        with self._lock:
            self._subscribers.setdefault(path, []).append(callback)
            if network_id not in self._watches:
                self._watch(network_id)

        def unsubscribe() -> None:
            stop: Callable[[], None] | None = None
            with self._lock:
                listeners = self._subscribers.get(path, [])
                if callback in listeners:
                    listeners.remove(callback)
                if not self._listening(network_id) and network_id in self._watches:
                    self._told.pop(network_id, None)
                    stop = self._watches.pop(network_id)
            if stop is not None:  # outside the lock: the watch's thread may be waiting for it
                stop()

        return unsubscribe

    def close(self) -> None:
        """Stop every watch (subscriptions stay registered for this process's own writes)."""
        with self._lock:
            watches, self._watches = list(self._watches.values()), {}
            self._told.clear()
        for stop in watches:
            stop()

    def committed(
        self, network_id: str, old_head: bytes | None, new_head: bytes | None, group_ids: list[str] | None = None
    ) -> None:
        """Tell subscribers that ``network_id``'s head moved from ``old_head`` to ``new_head``.

        ``group_ids`` are the groups the move changed when the caller knows them
        (a commit); otherwise the roots are diffed, and only if somebody listens.
        """
        with self._lock:
            if not self._listening(network_id):
                return
            if network_id in self._told:
                told = self._told[network_id]
                if told == new_head:
                    return  # already reported (by the watch, or by the writer)
                if told != old_head:
                    group_ids = None  # moves in between: report everything since the last report
                    old_head = told
                self._told[network_id] = new_head
        if new_head is None:
            return  # a deleted network has no group states to report
        if group_ids is None:
            group_ids = changed_groups(self.reader, old_head, new_head)
        self.notify(network_id, group_ids)

    def head_moved(self, network_id: str, old_head: bytes | None, new_head: bytes) -> None:
        """Tell subscribers about a head moved from outside this object (a pull); free when nobody listens."""
        self.committed(network_id, old_head, new_head)

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

    def _listening(self, network_id: str) -> bool:
        return any(
            callbacks and (path == network_id or path.startswith(network_id + "/"))
            for path, callbacks in self._subscribers.items()
        )

    def _watch(self, network_id: str) -> None:
        """Start watching ``network_id``'s head, if anyone but this object can move it (lock held)."""
        objects = self._objects
        if objects is None or objects.watch_interval is None:
            return
        ref = head_ref(network_id)
        self._told[network_id] = self.reader.refs.get(ref)

        def moved(changes: RefChanges) -> None:
            if ref in changes:
                with self._lock:
                    old = self._told.get(network_id)
                try:
                    self.committed(network_id, old, changes[ref])
                except Exception:
                    log.exception("reporting a move of %s's head", network_id)

        self._watches[network_id] = objects.watch_refs(ref, moved)
