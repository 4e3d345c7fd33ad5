"""What every conformance suite shares: the backend flags and the check that a subclass gives its hooks.

A suite's hooks (``make_store``, ``url``, ``corrupt_object``) are marked with
:func:`abstract_hook`.  pytest collects only classes named ``Test*``, so those
are the concrete suites: creating one that leaves a required hook out raises
:class:`TypeError` at once (so at collection), naming the hooks, instead of
failing with ``NotImplementedError`` in the middle of some test.  Which hooks
are required follows the flags: ``make_store`` always, ``url`` for a persistent
store another process can open (``persistent and shared``), and whatever else
a suite adds in :meth:`ConformanceSuite.required_hooks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ConformanceSuite", "abstract_hook", "missing_hooks"]

F = TypeVar("F", bound=Callable[..., Any])


def abstract_hook(method: F) -> F:
    """Mark a suite method as a hook every concrete subclass must override (when its flags need it)."""
    method.__abstract_hook__ = True  # type: ignore[attr-defined]
    return method


def missing_hooks(cls: type, names: list[str]) -> list[str]:
    """Those of ``names`` that ``cls`` still has only as the suite's abstract placeholder."""
    return [name for name in names if getattr(getattr(cls, name, None), "__abstract_hook__", False)]


class ConformanceSuite:
    """Base of :class:`~casstore.testing.StoreTests` and :class:`~casstore.testing.network.NetworkTests`."""

    #: Whether data survives close + reopen (enables the persistence, process and corruption tests).
    persistent = False
    #: Whether another process can open the store by :meth:`url` (enables the multi-process tests).
    shared = True
    #: Whether several threads may use one store object here (False only for a test double that is not
    #: thread-safe, e.g. moto's in-process S3; run the suite against a real server for those races).
    threads = True
    #: Whether the store re-hashes what it is given to write and refuses a bad frame (a remote server does:
    #: it trusts no client); the tests that plant a bad frame then check it is refused and nothing stored.
    verifies_writes = False

    @classmethod
    def required_hooks(cls) -> list[str]:
        """The hooks this class's flags make necessary."""
        hooks = ["make_store"]
        if cls.persistent and cls.shared:
            hooks.append("url")
        return hooks

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("Test"):
            return  # a partial base or mixin: pytest never runs it, its subclasses are checked
        missing = missing_hooks(cls, cls.required_hooks())
        if missing:
            flags = f"persistent={cls.persistent}, shared={cls.shared}"
            raise TypeError(
                f"{cls.__module__}.{cls.__qualname__} must define {', '.join(missing)} ({flags}); "
                f"see {ConformanceSuite.__module__} for which hooks the flags require"
            )
