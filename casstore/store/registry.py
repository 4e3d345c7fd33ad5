"""Backends by URL scheme: each backend module declares a :class:`Backend`; opening a URL is a lookup.

A backend declares its schemes, the options it accepts (from the URL's query or
keyword arguments), how it opens (or creates) a store, and how its URL prints
without secrets.  Built-in backends are named below by ``module:attribute`` and
imported only when their scheme is used; third-party packages add theirs
through the ``casstore.backends`` entry-point group (see ``docs/backends.md``)::

    [project.entry-points."casstore.backends"]
    foo = "casstore_foo:BACKEND"
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import parse_qs, urlsplit

from casstore.errors import InvalidStoreURL
from casstore.store.base import ObjectStore

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "StoreLocation",
    "backend_for",
    "known_schemes",
    "parse_location",
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


def _redact_secrets(url: str) -> str:
    """``url`` with any password (``user:password@``) and secret-named query values replaced by ``***``."""
    text = re.sub(r"(://[^/@:?#]*):[^/@?#]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&](?:password|secret|token|key)[^=&]*=)[^&#]*", r"\1***", text)


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


redact_url = _redact_secrets
_registered: dict[str, Backend] = {}
_entry_points_loaded = False


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


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        register(_load(point.value, f"entry point {point.name!r}"))


def known_schemes() -> list[str]:
    _load_entry_points()
    return sorted(set(BUILTIN) | set(_registered))


def backend_for(scheme: str) -> Backend:
    """The backend for ``scheme``: registered ones first, then entry points, then the built-ins."""
    scheme = scheme.lower()
    if scheme not in _registered:
        _load_entry_points()
    if scheme not in _registered and scheme in BUILTIN:
        register(_load(BUILTIN[scheme], "built-in"))
    try:
        return _registered[scheme]
    except KeyError:
        raise InvalidStoreURL(f"unknown store scheme {scheme!r}; known: {', '.join(known_schemes())}") from None


def parse_location(url: str | os.PathLike[str], options: Mapping[str, Any] | None = None) -> StoreLocation:
    """Parse a store URL (a bare path means ``lmdb``); keyword ``options`` override the URL's query."""
    try:
        text = os.fspath(url)
    except TypeError:
        raise InvalidStoreURL(f"store URL must be a string or path, not {url!r}") from None
    if not isinstance(text, str) or not text.strip():
        raise InvalidStoreURL(f"store URL must be a non-empty string, not {url!r}")
    if "://" not in text:
        return StoreLocation(text, "lmdb", "", text, dict(options or {}))
    try:
        parts = urlsplit(text)
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=bool(parts.query)).items()}
    except ValueError as exc:
        raise InvalidStoreURL(f"malformed store URL {redact_url(text)!r}: {exc}") from None
    query.update(options or {})
    return StoreLocation(text, parts.scheme.lower(), parts.netloc, parts.path, query)


def open_location(location: StoreLocation, *, create: bool, extra_options: frozenset[str] = frozenset()) -> ObjectStore:
    """Open ``location`` with its backend, refusing options neither it nor ``extra_options`` take."""
    backend = backend_for(location.scheme)
    shown = backend.redact(location.url)
    if backend.needs_location and not location.where:
        raise InvalidStoreURL(f"store URL {shown!r} names no path (e.g. {location.scheme}:///var/lib/casstore)")
    unknown = set(location.options) - backend.options - extra_options
    if unknown:
        accepted = ", ".join(sorted(backend.options)) or "no options"
        raise InvalidStoreURL(f"unknown option(s) {sorted(unknown)} in {shown!r} ({location.scheme} takes {accepted})")
    own = {k: v for k, v in location.options.items() if k in backend.options}
    return backend.open(StoreLocation(location.url, location.scheme, location.netloc, location.path, own), create)
