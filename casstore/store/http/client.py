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
    except (ValueError, KeyError, TypeError):
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
    """Requests to one casstore server at ``base`` (``scheme://host:port/prefix``)."""

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
        self.client = httpx.Client(
            base_url=self.base,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            verify=verify,
            transport=transport,
            limits=httpx.Limits(max_keepalive_connections=16, max_connections=64),
        )

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
        if isinstance(content, list):
            content = b"".join(content)
        try:
            response = self.client.request(
                method, path, content=content, json=json_body, params=params, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"{self.shown}: {method} {path} timed out ({type(exc).__name__})") from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise ConnectionFailed(f"{self.shown}: {method} {path} failed: {type(exc).__name__}: {exc}") from None
        except httpx.InvalidURL as exc:
            raise errors.InvalidStoreURL(f"{self.shown}: {exc}") from None
        if response.status_code in ok:
            return response
        raise error_from_body(response.status_code, response.content, f"{self.shown} ({method} {path})")

    def close(self) -> None:
        self.client.close()
