"""The seed's relational tables (networks, groups, contacts, snapshots) as a live SQL view of every head.

A PostgreSQL store (``?tables=on``, the default) keeps, in its own schema,
tables derived from its refs, updated in the transaction that moves each ref
(:mod:`.derive`, through the store's slot :mod:`casstore.store.postgres.derived`),
so every committed state the tables show is a head's.  :mod:`.tables` holds the
DDL and statements, :mod:`.jsonform` the JSON form of values, :mod:`.query`
answers ``query_groups`` with the GIN index, :mod:`.rebuild` re-derives the
tables from the heads (``casstore rebuild-tables``), :mod:`.read` reads a
network back from them, and :mod:`.migrate` imports a database in upstream
Bassline's schema (``casstore import-tables``).  This package installs its
hooks on import (``casstore/__init__.py`` imports it); nothing here imports
psycopg until a PostgreSQL store is used.
"""

from __future__ import annotations

from casstore.model import NetworkStore
from casstore.model import query as _model_query
from casstore.sqlview.derive import SqlTables
from casstore.sqlview.query import find_groups
from casstore.store.postgres.derived import install_derived_tables
from casstore.store.wrappers.base import innermost

__all__ = ["SqlTables", "find_groups", "share_node_cache"]


def share_node_cache(store: NetworkStore) -> NetworkStore:
    """Let a PostgreSQL store's SQL view read tree nodes through ``store``'s node cache (``open_store`` does).

    Nodes are immutable, so sharing is always right; the nodes a write builds are then decoded
    once, not again when the view diffs them in the same transaction.  Returns ``store``.
    """
    derived = getattr(innermost(store.objects), "derived", None)
    if isinstance(derived, SqlTables):
        derived.share_cache(store.cache)
    return store


install_derived_tables(SqlTables)
_model_query.install_group_finder(find_groups)
