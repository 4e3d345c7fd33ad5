"""``watch_refs`` for an ``http(s)://`` store: the server's ``/v1/subscribe`` event stream, resumed after a drop.

The server keeps no history (it holds no state beyond its store), so every
connection starts with an ``event: state`` listing of the prefix; later
``event: moved`` events carry ``{ref: new hex or null}``.  After a dropped
connection the watcher reconnects (sending ``Last-Event-ID``), diffs the new
listing against what it last reported, and reports the difference: nothing
is missed, moves may be coalesced.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping

import httpx

from casstore.store.http.wire import API

__all__ = ["RefWatcher"]

Callback = Callable[[Mapping[str, bytes | None]], None]


def _events(lines: Iterator[str]) -> Iterator[tuple[str, str, str]]:
    """``(event, id, data)`` of each server-sent event in ``lines``."""
    event, ident, data = "message", "", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, ident, "\n".join(data)
            event, ident, data = "message", "", []
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "id":
                ident = value
            elif field == "data":
                data.append(value)


def _decode(data: str) -> dict[str, bytes | None]:
    items = json.loads(data)
    return {str(k): None if v is None else bytes.fromhex(v) for k, v in items.items()}


class RefWatcher:
    """A daemon thread following one prefix's ref moves over SSE; :meth:`stop` ends it."""

    def __init__(
        self,
        base: str,
        headers: Mapping[str, str],
        verify: bool | ssl.SSLContext,
        prefix: str,
        callback: Callback,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base, self.headers, self.verify = base, dict(headers), verify
        self.prefix, self.callback = prefix, callback
        self.known: dict[str, bytes] | None = None
        self.last_id = ""
        self.stopped = threading.Event()
        self.ready = threading.Event()
        self.reconnects = 0
        self.client = httpx.Client(verify=verify, timeout=httpx.Timeout(10.0, read=None), transport=transport)
        self.owns_transport = transport is None
        self.thread = threading.Thread(target=self._run, name=f"casstore-watch {prefix!r}", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        self.ready.wait(timeout)

    def stop(self) -> None:
        self.stopped.set()
        if self.owns_transport:  # closing it ends the stream at once; a shared one ends at the next keepalive
            self.client.close()

    def _run(self) -> None:
        while not self.stopped.is_set():
            with contextlib.suppress(Exception):  # a dropped or refused connection: reconnect after a pause
                self._follow()
            if self.stopped.wait(0.2):
                return
            self.reconnects += 1

    def _follow(self) -> None:
        headers = dict(self.headers, Accept="text/event-stream")
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        url = f"{self.base}{API}/subscribe"
        with self.client.stream("GET", url, params={"prefix": self.prefix}, headers=headers) as response:
            if response.status_code != 200:
                self.ready.set()  # the caller is not kept waiting by a server that refuses (it retries)
                return
            for event, ident, data in _events(response.iter_lines()):
                if self.stopped.is_set():
                    return
                self.last_id = ident or self.last_id
                if event == "state":
                    self._state(_decode(data))
                elif event == "moved":
                    self._moved(_decode(data))

    def _state(self, listing: dict[str, bytes | None]) -> None:
        current = {name: digest for name, digest in listing.items() if digest is not None}
        if self.known is not None:
            changed: dict[str, bytes | None] = {n: d for n, d in current.items() if self.known.get(n) != d}
            changed.update((name, None) for name in self.known if name not in current)
            if changed:
                self.callback(changed)
        self.known = current
        self.ready.set()

    def _moved(self, moves: dict[str, bytes | None]) -> None:
        assert self.known is not None
        changed = {n: d for n, d in moves.items() if self.known.get(n) != d}
        for name, digest in changed.items():
            if digest is None:
                self.known.pop(name, None)
            else:
                self.known[name] = digest
        if changed:
            self.callback(changed)
