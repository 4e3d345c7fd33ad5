"""Cross-process ref watching on PostgreSQL: LISTEN on the schema's channel, on a connection of its own.

Every transaction that moves refs sends one ``pg_notify`` on the schema's
channel (see :mod:`.store`), committed with the moves; its payload is the
moved ref names, one per line, or empty ("re-list").  A :class:`RefWatcher`
holds a connection outside the pool (``application_name=casstore-listener``),
LISTENs, lists the prefix once, and returns; its daemon thread then reads
the values of the notified refs under the prefix and reports what differs from
its last report (coalesced).  When the connection is lost (server restart,
``pg_terminate_backend``) it reconnects with backoff, LISTENs again, re-lists
the prefix and reports what changed while it was away, so no move is missed.
A callback that raises is logged and ignored.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from casstore.store.postgres.refs import _text, like_prefix
from casstore.store.watch import RefChanges

__all__ = ["LISTENER_NAME", "RefWatcher"]

log = logging.getLogger("casstore.store.postgres.listen")
#: The ``application_name`` of a watcher's connection (how to find it in ``pg_stat_activity``).
LISTENER_NAME = "casstore-listener"
_POLL = 0.2


class RefWatcher:
    """One ``watch_refs`` subscription (see the module docstring); :meth:`stop` ends it (idempotent)."""

    def __init__(
        self,
        conninfo: str,
        schema: str,
        channel: str,
        prefix: str,
        callback: Callable[[RefChanges], None],
        translate: Callable[[BaseException, str], Exception],
    ) -> None:
        self._conninfo = psycopg.conninfo.make_conninfo(conninfo, application_name=LISTENER_NAME)
        self._listen = f'LISTEN "{channel}"'
        self._list = f"SELECT name, value FROM {schema}.refs WHERE substr(name, 1, 1000) LIKE %s AND name LIKE %s"
        self._some = (
            f"SELECT name, value FROM {schema}.refs WHERE key = ANY(ARRAY("
            f"SELECT {schema}.ref_key(n) FROM unnest(%s::text[]) AS n))"
        )
        self._prefix = prefix
        self._callback = callback
        self._stopped = threading.Event()
        self.reconnects = 0
        try:
            self._conn = self._connect()
            self._last = self._list_prefix()
        except psycopg.Error as exc:
            raise translate(exc, "watch_refs") from exc
        self._thread = threading.Thread(target=self._run, name=f"casstore watch {prefix!r}", daemon=True)
        self._thread.start()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self._conninfo, autocommit=True)
        conn.execute(self._listen)
        return conn

    def _list_prefix(self) -> dict[str, bytes]:
        with self._conn.cursor(binary=True) as cur:
            cur.execute(self._list, (like_prefix(self._prefix[:1000]), like_prefix(self._prefix)))
            return {_text(n): bytes(v) for n, v in cur.fetchall()}

    def _read(self, names: set[str]) -> dict[str, bytes]:
        with self._conn.cursor(binary=True) as cur:
            cur.execute(self._some, (sorted(names),))
            return {_text(n): bytes(v) for n, v in cur.fetchall()}

    def _report(self, now: Mapping[str, bytes], names: set[str] | None) -> None:
        """Report what differs from the last report: among ``names`` (``None``: the whole prefix)."""
        scope = set(self._last) | set(now) if names is None else names
        changes = {n: now.get(n) for n in scope if self._last.get(n) != now.get(n)}
        if not changes:
            return
        for name, value in changes.items():
            if value is None:
                self._last.pop(name, None)
            else:
                self._last[name] = value
        try:
            self._callback(changes)
        except Exception:
            log.exception("a watch_refs callback raised; ignored")

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen_once()
            except psycopg.Error as exc:
                if self._stopped.is_set():
                    return
                log.info(
                    "watch_refs lost its connection (%s); reconnecting", str(exc).splitlines()[0] if str(exc) else exc
                )
                self._reconnect()

    def _listen_once(self) -> None:
        names: set[str] = set()
        relist = False
        for notify in self._conn.notifies(timeout=_POLL):
            if notify.payload == "":
                relist = True
            else:
                names.update(n for n in notify.payload.split("\n") if n.startswith(self._prefix))
            if self._stopped.is_set():
                return
        if relist:
            self._report(self._list_prefix(), None)
        elif names:
            self._report(self._read(names), names)

    def _reconnect(self) -> None:
        delay = 0.05
        with contextlib.suppress(psycopg.Error):
            self._conn.close()
        while not self._stopped.is_set():
            try:
                self._conn = self._connect()
                self.reconnects += 1
                self._report(self._list_prefix(), None)  # what moved while nobody listened
                return
            except psycopg.Error:
                self._stopped.wait(delay)
                delay = min(delay * 2, 2.0)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)
        with contextlib.suppress(psycopg.Error):
            self._conn.close()
