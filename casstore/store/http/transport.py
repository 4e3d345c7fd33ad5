"""How an ``http(s)://`` store's requests travel: sockets that count their bytes, or an ASGI app in this process.

:func:`counting_transport` is httpx's own transport (keep-alive pool, TLS)
whose sockets add every byte they carry to a :class:`WireCounter`: request
and response lines, headers, chunk framing and bodies, as the socket saw
them (after TLS decryption).  :class:`AsgiTransport` calls an ASGI app (a
``casstore.server.create_app``) on an event loop in a background thread, so
a synchronous client reaches a server without a socket; answers stream
(server-sent events included), and closing an answer early tells the app
the client went away.  Nothing crosses a socket there, so its counter counts
request and response bodies only.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

__all__ = ["AsgiTransport", "WireCounter", "counting_transport"]


@dataclass
class WireCounter:
    """Bytes a client's connections sent and received, and the requests it made (thread-safe)."""

    sent: int = 0
    received: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, sent: int = 0, received: int = 0, requests: int = 0) -> None:
        with self.lock:
            self.sent += sent
            self.received += received
            self.requests += requests

    def snapshot(self) -> tuple[int, int, int]:
        """``(sent, received, requests)`` so far."""
        with self.lock:
            return self.sent, self.received, self.requests


class _CountingStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, counter: WireCounter) -> None:
        self.inner, self.counter = inner, counter

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = self.inner.read(max_bytes, timeout)
        self.counter.add(received=len(data))
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, timeout)
        self.counter.add(sent=len(buffer))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> Any:
        return _CountingStream(self.inner.start_tls(ssl_context, server_hostname, timeout), self.counter)

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _CountingBackend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend, counter: WireCounter) -> None:
        self.inner, self.counter = inner, counter

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _CountingStream(stream, self.counter)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _CountingStream(self.inner.connect_unix_socket(path, timeout, socket_options), self.counter)

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class _CountingTransport(httpx.HTTPTransport):
    def __init__(self, counter: WireCounter, **options: Any) -> None:
        super().__init__(**options)
        self.counter = counter
        pool = self._pool
        # httpx does not take a network backend: put the counting one under its pool (as httpcore builds it)
        pool._network_backend = _CountingBackend(pool._network_backend, counter)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.counter.add(requests=1)
        return super().handle_request(request)


def counting_transport(counter: WireCounter, *, verify: Any, limits: httpx.Limits) -> httpx.BaseTransport:
    """httpx's HTTP transport whose sockets count what they carry into ``counter``."""
    return _CountingTransport(counter, verify=verify, limits=limits)


class _Loop:
    """One event loop in a daemon thread, shared by every :class:`AsgiTransport` of the process."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="casstore-asgi", daemon=True).start()
                cls._loop = loop
            return cls._loop


_END = object()


class _AnswerStream(httpx.SyncByteStream):
    def __init__(self, chunks: queue.Queue[Any], disconnected: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
        self.chunks, self.disconnected, self.loop = chunks, disconnected, loop

    def __iter__(self) -> Iterator[bytes]:
        while True:
            chunk = self.chunks.get()
            if chunk is _END:
                return
            if isinstance(chunk, BaseException):
                raise httpx.ReadError(f"the app failed mid-answer: {type(chunk).__name__}")
            yield chunk

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.disconnected.set)


class AsgiTransport(httpx.BaseTransport):
    """Requests answered by the ASGI ``app`` in this process (no socket), streamed both ways."""

    def __init__(
        self, app: Any, counter: WireCounter | None = None, client: tuple[str, int] = ("127.0.0.1", 0)
    ) -> None:
        self.app, self.client = app, client
        self.counter = counter if counter is not None else WireCounter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body: bytes | None = request.read()
        assert body is not None
        self.counter.add(sent=len(body), requests=1)
        loop = _Loop.get()
        started: queue.Queue[Any] = queue.Queue()
        chunks: queue.Queue[Any] = queue.Queue()
        disconnected = asyncio.Event()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": request.url.scheme,
            "path": request.url.path,
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "root_path": "",
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "client": self.client,
            "server": (request.url.host, request.url.port or 80),
        }
        counter = self.counter

        async def receive() -> dict[str, Any]:
            nonlocal body
            if body is not None:
                message = {"type": "http.request", "body": body, "more_body": False}
                body = None
                return message
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                started.put(message)
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if chunk:
                    counter.add(received=len(chunk))
                    chunks.put(chunk)
                if not message.get("more_body", False):
                    chunks.put(_END)
            if disconnected.is_set():
                raise OSError("the client went away")

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except BaseException as exc:  # the app failed: whoever waits hears of it
                started.put(exc)
                chunks.put(exc)
                return
            started.put(None)
            chunks.put(_END)

        asyncio.run_coroutine_threadsafe(run(), loop)
        start = started.get()
        if not isinstance(start, dict):
            raise httpx.RemoteProtocolError(f"the app gave no answer ({type(start).__name__})")
        headers = [(bytes(k), bytes(v)) for k, v in start.get("headers", [])]
        return httpx.Response(
            int(start["status"]), headers=headers, stream=_AnswerStream(chunks, disconnected, loop), request=request
        )
