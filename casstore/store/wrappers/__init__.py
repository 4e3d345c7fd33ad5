"""Store wrappers: layers over a backend that forward every call and add one concern each.

:mod:`~casstore.store.wrappers.base` forwards everything (and unwraps);
built on it, :class:`MetricsStore` counts and times calls, :class:`RetryingStore`
retries transient failures, :class:`CachingStore` keeps frames (and briefly refs)
in memory, and :class:`ReadOnlyStore` refuses writes.
:func:`~casstore.store.wrappers.stack.wrap_store` stacks them, in one fixed
order, from the options of a store URL.
"""

from __future__ import annotations

from casstore.store.wrappers.base import WrappedBlobs, WrappedRefs, WrappedStore, find_layer, innermost
from casstore.store.wrappers.caching import CachingStore
from casstore.store.wrappers.metrics import CallStats, Metrics, MetricsStore
from casstore.store.wrappers.readonly import ReadOnlyStore
from casstore.store.wrappers.retry import RetriesExhausted, RetryingStore, RetryPolicy
from casstore.store.wrappers.stack import WRAPPER_OPTIONS, StackOptions, wrap_store

__all__ = [
    "WRAPPER_OPTIONS",
    "CachingStore",
    "CallStats",
    "Metrics",
    "MetricsStore",
    "ReadOnlyStore",
    "RetriesExhausted",
    "RetryPolicy",
    "RetryingStore",
    "StackOptions",
    "WrappedBlobs",
    "WrappedRefs",
    "WrappedStore",
    "find_layer",
    "innermost",
    "wrap_store",
]
