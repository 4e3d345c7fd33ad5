"""Backends by URL scheme: each backend module declares a :class:`Backend`; opening a URL is a lookup.

A backend declares its schemes, the options it accepts (from the URL's query or
keyword arguments), how it opens (or creates) a store, and how its URL prints
without secrets.  Built-in backends are named below by ``module:attribute`` and
imported only when their scheme is used; third-party packages add theirs
through the ``casstore.backends`` entry-point group, one entry point per scheme,
named after it (see ``docs/backends.md``)::

    [project.entry-points."casstore.backends"]
    foo = "casstore_foo:BACKEND"

Lookup order: a backend given to :func:`register` in this process, then the
built-ins, then entry points (loaded only when their scheme is opened).  A
store's ``url`` is printed, logged and used by sync as the store's identity,
so :func:`open_location` strips secrets from it.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

from casstore.errors import InvalidStoreURL, StorageError
from casstore.store.base import ObjectStore, os_error

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "StoreLocation",
    "backend_for",
    "known_schemes",
    "parse_location",
    "redact_exception",
    "redact_url",
    "register",
]

ENTRY_POINT_GROUP = "casstore.backends"

#: The built-in backends, by scheme (imported on first use, so LMDB users never import boto3).
BUILTIN: dict[str, str] = {
    "memory": "casstore.store.memory:BACKEND",
    "lmdb": "casstore.store.lmdb:BACKEND",
    "file": "casstore.store.file:BACKEND",
    "s3": "casstore.store.s3:BACKEND",
    "postgresql": "casstore.store.postgres:BACKEND",
    "postgres": "casstore.store.postgres:BACKEND",
    "http": "casstore.store.http:BACKEND",
    "https": "casstore.store.http:BACKEND",
    "filesystem": "casstore.store.filesystem:BACKEND",
}


@dataclass(frozen=True)
class StoreLocation:
    """A parsed store URL: what a backend's ``open`` receives.

    ``options`` are the URL's query parameters (strings) merged with keyword
    arguments given to :func:`casstore.store.open_object_store` (any type; they win).
    """

    url: str
    scheme: str
    netloc: str
    path: str
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``netloc + path``: what most file-like backends treat as their location."""
        return self.netloc + self.path

    def int_option(self, name: str, default: int) -> int:
        value = self.options.get(name, default)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise InvalidStoreURL(f"{name} in {redact_url(self.url)} must be a whole number, not {value!r}") from None

    def float_option(self, name: str, default: float) -> float:
        value = self.options.get(name, default)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidStoreURL(f"{name} in {redact_url(self.url)} must be a number, not {value!r}") from None

    def bool_option(self, name: str, default: bool) -> bool:
        value = self.options.get(name, default)
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise InvalidStoreURL(f"{name} in {redact_url(self.url)} must be on or off, not {value!r}")

    def str_option(self, name: str) -> str | None:
        value = self.options.get(name)
        return None if value is None else str(value)


_USERINFO_PASSWORD = re.compile(r"(://[^/@:?#\s]*):[^/@?#\s]*@")
_SECRET_QUERY_VALUE = re.compile(r"(?i)([?&][^=&#\s]*(?:pass|secret|token|key|credential|signature)[^=&#\s]*=)[^&#\s]*")


def _redact_secrets(text: str) -> str:
    """``text`` (a URL, or a message quoting one) with each URL's password and secret-named query values as ``***``.

    A password is the ``:password`` of ``scheme://user:password@host``; a query
    value is secret when its name contains ``pass``, ``secret``, ``token``,
    ``key``, ``credential`` or ``signature`` (``aws_secret_access_key=…``).
    """
    text = _USERINFO_PASSWORD.sub(r"\1:***@", text)
    return _SECRET_QUERY_VALUE.sub(r"\1***", text)


@dataclass(frozen=True)
class Backend:
    """One backend: its URL schemes, accepted options, opener and URL printer.

    ``open(location, create)`` returns the store, raising
    :class:`~casstore.errors.StoreNotFound` for a missing store when ``create``
    is false and :class:`~casstore.errors.InvalidStoreURL` for bad options.
    Options outside ``options`` are refused before ``open`` is called.
    """

    schemes: tuple[str, ...]
    open: Callable[[StoreLocation, bool], ObjectStore]
    options: frozenset[str] = frozenset()
    redact: Callable[[str], str] = _redact_secrets
    needs_location: bool = True
    summary: str = ""
    #: A URL of this backend to show in errors (default: ``SCHEME:///var/lib/casstore``).
    example: str = ""


redact_url = _redact_secrets
_registered: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Make ``backend`` open its schemes (later registrations win). Returns it, for use as a module constant."""
    for scheme in backend.schemes:
        _registered[scheme.lower()] = backend
    return backend


def _load(target: str, origin: str) -> Backend:
    module_name, _, attribute = target.partition(":")
    try:
        backend = getattr(importlib.import_module(module_name), attribute or "BACKEND")
    except (ImportError, AttributeError) as exc:
        raise InvalidStoreURL(f"backend {target!r} ({origin}) cannot be loaded: {exc}") from None
    if not isinstance(backend, Backend):
        raise InvalidStoreURL(f"backend {target!r} ({origin}) is not a casstore.store.registry.Backend")
    return backend


def _entry_points() -> list[EntryPoint]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _from_entry_point(scheme: str) -> Backend | None:
    """The backend an installed package declares for ``scheme`` (entry point named after it), registered."""
    for point in _entry_points():
        if point.name.lower() != scheme:
            continue
        backend = _load(point.value, f"entry point {point.name!r} of group {ENTRY_POINT_GROUP}")
        if scheme not in (s.lower() for s in backend.schemes):
            declared = ", ".join(backend.schemes)
            raise InvalidStoreURL(f"entry point {point.name!r} ({point.value}) opens {declared}, not {scheme}")
        return register(backend)
    return None


def known_schemes() -> list[str]:
    """Every scheme a URL may use: registered, built-in, or named by an installed entry point (not loaded)."""
    return sorted(set(BUILTIN) | set(_registered) | {point.name.lower() for point in _entry_points()})


def backend_for(scheme: str) -> Backend:
    """The backend for ``scheme``: one registered in this process, else a built-in, else an entry point's.

    A package's entry point is loaded only when its scheme is used, so a broken
    or slow plugin never affects the other schemes.
    """
    scheme = scheme.lower()
    backend = _registered.get(scheme)
    if backend is None and scheme in BUILTIN:
        backend = register(_load(BUILTIN[scheme], "built-in"))
    if backend is None:
        backend = _from_entry_point(scheme)
    if backend is None:
        raise InvalidStoreURL(f"unknown store scheme {scheme!r}; known: {', '.join(known_schemes())}")
    return backend


def parse_location(url: str | os.PathLike[str], options: Mapping[str, Any] | None = None) -> StoreLocation:
    """Parse a store URL (a bare path means ``lmdb``); keyword ``options`` override the URL's query.

    A keyword option given as ``None`` counts as not given.
    """
    try:
        text = os.fspath(url)
    except TypeError:
        raise InvalidStoreURL(f"store URL must be a string or path, not {url!r}") from None
    if not isinstance(text, str) or not text.strip():
        raise InvalidStoreURL(f"store URL must be a non-empty string, not {url!r}")
    given = {name: value for name, value in (options or {}).items() if value is not None}
    if "://" not in text:
        return StoreLocation(text, "lmdb", "", text, given)
    try:
        parts = urlsplit(text)
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=bool(parts.query)).items()}
    except ValueError as exc:
        raise InvalidStoreURL(f"malformed store URL {redact_url(text)!r}: {exc}") from None
    query.update(given)
    return StoreLocation(text, parts.scheme.lower(), parts.netloc, parts.path, query)


def open_location(location: StoreLocation, *, create: bool, extra_options: frozenset[str] = frozenset()) -> ObjectStore:
    """Open ``location`` with its backend, refusing options neither it nor ``extra_options`` take.

    ``extra_options`` (the wrappers') are kept from the backend: they leave
    the option mapping and the URL it is handed.  The store's ``url`` and any
    error raised while opening are stripped of secrets (``backend.redact``),
    since both are printed.
    """
    backend = backend_for(location.scheme)
    shown = backend.redact(location.url)
    if backend.needs_location and not location.where:
        example = backend.example or f"{location.scheme}:///var/lib/casstore"
        raise InvalidStoreURL(f"store URL {shown!r} names no location (e.g. {example})")
    clash = backend.options & extra_options
    if clash:
        raise InvalidStoreURL(f"the {location.scheme} backend declares option(s) {sorted(clash)} reserved for wrappers")
    unknown = set(location.options) - backend.options - extra_options
    if unknown:
        accepted = ", ".join(sorted(backend.options)) or "no options"
        raise InvalidStoreURL(f"unknown option(s) {sorted(unknown)} in {shown!r} ({location.scheme} takes {accepted})")
    own = {k: v for k, v in location.options.items() if k in backend.options}
    url = _without_query_options(location.url, extra_options) if extra_options else location.url
    try:
        store = backend.open(StoreLocation(url, location.scheme, location.netloc, location.path, own), create)
    except Exception as exc:
        redact_exception(exc, backend.redact)
        if backend.redact(str(exc)) != str(exc):  # a message the scrub could not reach (a custom __str__)
            raise StorageError(f"cannot open {shown!r}: {backend.redact(str(exc))}") from None
        if isinstance(exc, StorageError):
            raise
        raise _opening_error(exc, shown) from exc
    store.url = backend.redact(store.url)
    return store


def _opening_error(exc: Exception, shown: str) -> StorageError:
    """What a backend's open raised that is not a StorageError (a path the OS refuses, an option lmdb cannot
    take), as one."""
    if isinstance(exc, OSError):
        return os_error(exc, f"cannot open {shown!r}")
    if isinstance(exc, (ValueError, TypeError, OverflowError)):  # UnicodeError is a ValueError
        return InvalidStoreURL(f"cannot open {shown!r}: {exc}")
    return StorageError(f"cannot open {shown!r}: {type(exc).__name__}: {exc}")


def _without_query_options(url: str, names: frozenset[str]) -> str:
    """``url`` without the query parameters ``names`` (the others are kept as written)."""
    if "://" not in url or "?" not in url:
        return url
    base, _, rest = url.partition("?")
    query, hash_, fragment = rest.partition("#")
    kept = [field for field in query.split("&") if unquote_plus(field.partition("=")[0]) not in names]
    return base + ("?" + "&".join(kept) if kept else "") + hash_ + fragment


def redact_exception(exc: BaseException, redact: Callable[[str], str] = _redact_secrets) -> None:
    """Redact secrets from the string arguments of ``exc`` and of the exceptions it chains to, in place.

    Reaches every message built from its arguments (as casstore's errors are);
    a class that builds its message otherwise is out of reach: check ``str(exc)``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in current.args)
        current = current.__cause__ or current.__context__
