"""``http://`` and ``https://`` — a store served by ``casstore serve`` on another process or machine.

URL: ``https://host:8750/[prefix]?token_file=PATH&timeout=30&ca_file=PATH&verify=on``.
The token (a bearer token, read or write) comes from ``token_file`` (its
first line), else ``token=`` (redacted when the URL is printed), else the
``CASSTORE_TOKEN`` environment variable.  ``cache_mb`` bounds the client's
cache of frames (immutable objects; default 64, 0 turns it off).  ``transport`` (keyword only) hands
httpx a transport, e.g. one that calls an ASGI app in this process.  Add
``retries=N`` to retry idempotent calls on connection errors and 5xx.
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path

import httpx

from casstore.errors import InvalidStoreURL
from casstore.store.base import os_error
from casstore.store.http.client import Session
from casstore.store.http.store import HttpBlobs, HttpRefs, HttpStore
from casstore.store.registry import Backend, StoreLocation, redact_url, register

__all__ = ["BACKEND", "HttpBlobs", "HttpRefs", "HttpStore", "read_token_file"]


_TOKEN = re.compile(r"[\x21-\x7e]+")  # printable ASCII, as an HTTP header value of a bearer token


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token on the first line of ``path``, stripped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise os_error(exc, f"cannot read token file {path}") from None
    token = text.splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise InvalidStoreURL(f"token file {path} is empty (the token goes on its first line)")
    return token


def _open(location: StoreLocation, create: bool) -> HttpStore:
    token_file = location.str_option("token_file")
    token = read_token_file(token_file) if token_file else location.str_option("token")
    token = token or (os.environ.get("CASSTORE_TOKEN") or "").strip() or None
    if token is not None and not _TOKEN.fullmatch(token):  # it goes in a header: no space, no control character
        source = "token_file" if token_file else "token=" if location.str_option("token") else "CASSTORE_TOKEN"
        raise InvalidStoreURL(f"the token from {source} holds whitespace or a control character; a bearer token cannot")
    ca_file = location.str_option("ca_file")
    verify: bool | ssl.SSLContext = (
        ssl.create_default_context(cafile=ca_file) if ca_file else location.bool_option("verify", True)
    )
    base = f"{location.scheme}://{location.netloc}{location.path}".rstrip("/")
    shown = redact_url(base)
    transport = location.options.get("transport")
    if transport is not None and not isinstance(transport, httpx.BaseTransport):
        raise InvalidStoreURL("transport is a keyword option taking an httpx transport, not a URL option")
    session = Session(
        base, shown, token, timeout=location.float_option("timeout", 30.0), verify=verify, transport=transport
    )
    try:
        return HttpStore(session, location.url, cache_bytes=location.int_option("cache_mb", 64) << 20)
    except BaseException:
        session.close()
        raise


BACKEND = register(
    Backend(
        ("http", "https"),
        _open,
        options=frozenset({"token_file", "token", "timeout", "ca_file", "verify", "transport", "cache_mb"}),
        summary="a casstore server (casstore serve)",
        example="https://casstore.example.org:8750",
    )
)
