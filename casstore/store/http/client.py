"""The HTTP session of an ``http(s)://`` store: one keep-alive httpx pool, the token, and error mapping.

Every request goes through :meth:`Session.request`, which turns what the
server or the network did into casstore errors: a connection failure, a
timeout, a truncated body or a 5xx is a :class:`ConnectionFailed` (a
:class:`~casstore.errors.StorageConnectionError` the retry wrapper treats as
transient); 401/403 are :class:`~casstore.errors.StoragePermissionError`;
the server's JSON errors come back as the casstore error they name.  Messages
name the server, never the token.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from casstore import errors
from casstore.errors import StorageConnectionError, StorageError, StoragePermissionError
from casstore.store.http.transport import AsgiTransport, WireCounter, counting_transport

__all__ = ["ConnectionFailed", "Session", "error_from_body"]


class ConnectionFailed(StorageConnectionError):
    """The server could not be reached, dropped the connection, or answered 5xx: worth retrying."""


_BY_CODE: dict[str, type[StorageError]] = {
    cls.code: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, StorageError) and cls is not StorageError
}


def error_from_body(status: int, body: bytes, where: str) -> StorageError:
    """The casstore error a server's JSON error body ``{"code", "message", …}`` names."""
    try:
        detail = json.loads(body)
        code, message = str(detail["code"]), str(detail["message"])
    except (ValueError, KeyError, TypeError, RecursionError):
        detail, code, message = {}, "", body[:200].decode("utf-8", "replace") or f"HTTP {status}"
    text = f"{where}: {message}"
    if code == errors.RefConflict.code:
        return errors.RefConflict(str(detail.get("name", "")), detail.get("expected"), detail.get("actual"))
    if code in (errors.ObjectNotFound.code,):
        return errors.ObjectNotFound(str(detail.get("object_id", "")), text)
    if code == errors.CorruptObject.code:
        return errors.CorruptObject(str(detail.get("object_id", "")), f"{message} (at {where})")
    if status in (401, 403) or code == StoragePermissionError.code:
        return StoragePermissionError(text)
    if status >= 500 and code in ("", StorageConnectionError.code, StorageError.code):
        return ConnectionFailed(text)
    cls = _BY_CODE.get(code, StorageError)
    try:
        return cls(text)
    except TypeError:  # an error class with another signature
        return StorageError(text)


class Session:
    """Requests to one casstore server at ``base`` (``scheme://host:port/prefix``).

    :attr:`wire` counts what the connections carried (see :mod:`casstore.store.http.transport`).
    Requests are built from cached :class:`httpx.URL` objects and sent without httpx's per-request
    URL merging, which costs more than a loopback round trip.
    """

    def __init__(
        self,
        base: str,
        shown: str,
        token: str | None,
        *,
        timeout: float = 30.0,
        verify: bool | ssl.SSLContext = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base = base.rstrip("/")
        self.shown = shown
        headers = {"User-Agent": "casstore"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.headers = headers
        self.timeout = timeout
        self.verify = verify
        self.wire = transport.counter if isinstance(transport, AsgiTransport) else WireCounter()
        limits = httpx.Limits(max_keepalive_connections=16, max_connections=64)
        #: The transport the caller gave (an in-process app, a test's fault injector), if any.
        self.given_transport = transport
        self.transport = transport or counting_transport(self.wire, verify=verify, limits=limits)
        self.client = httpx.Client(
            base_url=self.base, headers=headers, timeout=httpx.Timeout(timeout), transport=self.transport
        )
        self._extensions = {"timeout": httpx.Timeout(timeout).as_dict()}
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}

    def url(self, path: str, params: Mapping[str, str] | None = None) -> httpx.URL:
        """The URL of ``path`` below the base with ``params``, built once."""
        key = (path, tuple(params.items()) if params else ())
        url = self._urls.get(key)
        if url is None:
            url = httpx.URL(self.base + path, params=params)
            if len(self._urls) >= 4096:
                self._urls.clear()
            self._urls[key] = url
        return url

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | Iterable[bytes] | None = None,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (200, 204),
    ) -> httpx.Response:
        """Send one request and read its whole answer; raise the casstore error for anything not in ``ok``."""
        response = self.open(method, path, content=content, json_body=json_body, params=params, headers=headers)
        try:
            response.read()
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"{self.shown}: {method} {path} timed out ({type(exc).__name__})") from None
        except (httpx.TransportError, httpx.DecodingError, httpx.StreamError) as exc:
            raise ConnectionFailed(f"{self.shown}: {method} {path} failed: {type(exc).__name__}: {exc}") from None
        finally:
            response.close()
        return self.check(response, method, path, ok)

    def open(
        self,
        method: str,
        path: str,
        *,
        content: bytes | Iterable[bytes] | None = None,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request; the answer's body is left to stream (close it)."""
        if isinstance(content, list):
            content = b"".join(content)
        sent = dict(self.headers, **headers) if headers else dict(self.headers)
        if json_body is not None:
            content = json.dumps(json_body, separators=(",", ":")).encode()
            sent["Content-Type"] = "application/json"
        try:
            request = httpx.Request(
                method, self.url(path, params), headers=sent, content=content, extensions=self._extensions
            )
            return self.client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"{self.shown}: {method} {path} timed out ({type(exc).__name__})") from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise ConnectionFailed(f"{self.shown}: {method} {path} failed: {type(exc).__name__}: {exc}") from None
        except httpx.InvalidURL as exc:
            raise errors.InvalidStoreURL(f"{self.shown}: {exc}") from None

    def check(self, response: httpx.Response, method: str, path: str, ok: tuple[int, ...]) -> httpx.Response:
        """``response`` if its status is in ``ok``; else the casstore error it carries (its body read)."""
        if response.status_code in ok:
            return response
        try:
            body = response.read()
        except httpx.HTTPError:
            body = b""
        finally:
            response.close()
        raise error_from_body(response.status_code, body, f"{self.shown} ({method} {path})")

    def close(self) -> None:
        self.client.close()
