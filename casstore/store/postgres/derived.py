"""The slot through which a layer above keeps tables derived from the refs, inside each ref move's transaction.

The store layer knows nothing of networks, so it cannot maintain the SQL view
of network state itself.  A package above it (:mod:`casstore.sqlview`)
installs a factory with :func:`install_derived_tables`; every
:class:`~casstore.store.postgres.store.PostgresStore` opened with tables on
(``?tables=on``, the default) asks the factory for its
:class:`DerivedTables` and calls it in the transaction of every ref move
(``commit`` and single compare-and-swaps alike), after the moves were applied
and before the transaction commits.  An exception it raises rolls the whole
write back.  Nothing here imports psycopg.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["DerivedTables", "Move", "derived_tables_factory", "install_derived_tables"]

#: One applied ref move: (name, old value, new value); ``None`` for absent.
Move = tuple[str, bytes | None, bytes | None]


class DerivedTables(Protocol):
    """What a store calls inside a write transaction (see the module docstring)."""

    def prepare(self, conn: Any) -> None:
        """Create the tables if they are missing (called once, when the store opens)."""

    def apply(self, conn: Any, frames: Mapping[bytes, bytes], moves: Sequence[Move]) -> None:
        """Bring the tables up to date with ``moves``; ``frames`` are the objects this transaction wrote."""


_factory: Callable[[Any], DerivedTables] | None = None


def install_derived_tables(factory: Callable[[Any], DerivedTables]) -> None:
    """Called by :mod:`casstore.sqlview` on import: each store with tables on gets ``factory(store)``."""
    global _factory
    _factory = factory


def derived_tables_factory() -> Callable[[Any], DerivedTables] | None:
    return _factory
