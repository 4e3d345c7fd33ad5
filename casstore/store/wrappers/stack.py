"""``wrap_store``: the one place the wrappers are stacked over a backend, in a fixed order.

Innermost first::

    backend → RetryingStore → MetricsStore → CachingStore → ReadOnlyStore

* retries sit right on the backend, so every other layer sees one call per
  logical call, however many attempts it took;
* metrics sit below the cache, so they count what reaches the backend (a
  cache hit costs no call) and time it retries included;
* the cache sits above both, so a hit skips them;
* read-only is outermost, so a refused write touches nothing, not even a count.

Each layer is added only when its option asks for it; with no option the
backend is returned as it is.  Options come from the URL's query or keyword
arguments of :func:`casstore.store.open_object_store` (see :data:`WRAPPER_OPTIONS`);
their names are reserved: a backend may not declare them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from casstore.errors import InvalidStoreURL
from casstore.store.base import ObjectStore
from casstore.store.registry import StoreLocation, redact_url
from casstore.store.wrappers.caching import CachingStore
from casstore.store.wrappers.metrics import MetricsStore
from casstore.store.wrappers.readonly import ReadOnlyStore
from casstore.store.wrappers.retry import DEFAULT_BASE_DELAY, RetryingStore

__all__ = ["WRAPPER_OPTIONS", "StackOptions", "wrap_store"]

#: The options the wrappers take, what each does, and its default.
WRAPPER_OPTIONS: dict[str, str] = {
    "retries": "retry transient failures up to N more times (RetryingStore; default 0: off)",
    "retry_delay": f"first backoff in seconds, doubled per retry, with jitter (default {DEFAULT_BASE_DELAY})",
    "metrics": "on: count and time every call (MetricsStore; default off)",
    "frame_cache_mb": "keep up to N MB of frames in memory (CachingStore; default 0: off)",
    "ref_ttl": "reuse ref reads for N seconds (CachingStore; default 0: off)",
    "read_only": "on: refuse every write with StoreReadOnly (ReadOnlyStore; default off)",
}


@dataclass(frozen=True)
class StackOptions:
    """Which wrappers :func:`wrap_store` stacks, and how they are set."""

    retries: int = 0
    retry_delay: float = DEFAULT_BASE_DELAY
    metrics: bool = False
    frame_cache_mb: int = 0
    ref_ttl: float = 0.0
    read_only: bool = False

    @classmethod
    def from_location(cls, location: StoreLocation) -> StackOptions:
        """The wrapper options of a parsed URL (other options are the backend's), checked."""
        options = cls(
            retries=location.int_option("retries", 0),
            retry_delay=location.float_option("retry_delay", DEFAULT_BASE_DELAY),
            metrics=location.bool_option("metrics", False),
            frame_cache_mb=location.int_option("frame_cache_mb", 0),
            ref_ttl=location.float_option("ref_ttl", 0.0),
            read_only=location.bool_option("read_only", False),
        )
        for name in ("retries", "retry_delay", "frame_cache_mb", "ref_ttl"):
            value = getattr(options, name)
            if not 0 <= value < float("inf"):
                raise InvalidStoreURL(f"{name} in {redact_url(location.url)} must be 0 or more, not {value!r}")
        return options

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any], url: str = "") -> StackOptions:
        """Parse ``options`` (each a wrapper option; anything else is refused)."""
        unknown = set(options) - set(WRAPPER_OPTIONS)
        if unknown:
            raise InvalidStoreURL(f"unknown wrapper option(s) {sorted(unknown)}; known: {', '.join(WRAPPER_OPTIONS)}")
        return cls.from_location(StoreLocation(url, "", "", "", dict(options)))


def wrap_store(store: ObjectStore, options: StackOptions | Mapping[str, Any]) -> ObjectStore:
    """``store`` under the wrappers ``options`` ask for, in the fixed order of the module docstring."""
    if not isinstance(options, StackOptions):
        options = StackOptions.from_mapping(options, store.url)
    if options.retries:
        store = RetryingStore(store, attempts=options.retries + 1, base_delay=options.retry_delay)
    if options.metrics:
        store = MetricsStore(store)
    if options.frame_cache_mb or options.ref_ttl:
        store = CachingStore(store, frame_bytes=options.frame_cache_mb << 20, ref_ttl=options.ref_ttl)
    if options.read_only:
        store = ReadOnlyStore(store)
    return store
