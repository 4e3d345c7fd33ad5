"""``casstore rebuild-tables``: (re)create the SQL view and re-derive it from the heads.

Each network is rebuilt in its own transaction that first locks its head row
(``SELECT … FOR UPDATE``; a concurrent writer waits), so the rows it writes are
exactly that head's; its snapshot rows come from its snapshot refs.  Rows of
networks that no longer have a head are removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from casstore.errors import StorageError
from casstore.model.refs import head_ref, network_heads
from casstore.sqlview.derive import SqlTables
from casstore.sqlview.jsonform import sql_text
from casstore.store.base import ObjectStore
from casstore.store.wrappers.base import innermost

__all__ = ["RebuildReport", "postgres_store", "rebuild_tables"]


@dataclass
class RebuildReport:
    """What :func:`rebuild_tables` did."""

    rebuilt: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"rebuilt": self.rebuilt, "removed": self.removed}


def postgres_store(store: ObjectStore) -> Any:
    """The PostgreSQL store beneath ``store``'s wrappers (and its network model), or a StorageError."""
    inner = innermost(getattr(store, "objects", store))
    if not hasattr(inner, "db") or not hasattr(inner, "schema") or not hasattr(inner, "after_moves"):
        raise StorageError(f"{store.url} is not a PostgreSQL store: the SQL view exists only on postgresql://")
    return inner


def rebuild_tables(store: ObjectStore, networks: Sequence[str] = ()) -> RebuildReport:
    """Create the tables if missing and re-derive ``networks`` (every network when empty) from their heads."""
    pg = postgres_store(store)

    tables: SqlTables = pg.derived if pg.derived is not None else SqlTables(pg)
    with pg.db.connect() as conn:
        tables.prepare(conn)
    report = RebuildReport()
    heads = network_heads(pg.refs.list("networks/"))
    wanted = list(networks) or sorted(heads)
    if not networks:

        def listed(conn: Any) -> list[str]:
            return [r[0] for r in conn.execute(tables.sql.list_networks).fetchall()]

        present = {sql_text(n) for n in heads}
        for name in pg.db.run("sqlview.list", listed):
            if name not in present:
                pg.db.run("sqlview.remove", lambda conn, n=name: tables.rebuild(conn, n, None, {}), transaction=True)
                report.removed.append(name)
    for network_id in wanted:

        def body(conn: Any, net: str = network_id) -> bool:
            with conn.cursor(binary=True) as cur:
                by_key = f"key = {tables.quoted}.ref_key(%s)"
                cur.execute(f"SELECT value FROM {tables.quoted}.refs WHERE {by_key} FOR UPDATE", (head_ref(net),))
                row = cur.fetchone()
                head = None if row is None else bytes(row[0])
            snapshots = tables.snapshot_refs(conn, net) if head is not None else {}
            tables.rebuild(conn, net, head, snapshots)
            return head is not None

        if pg.db.run("sqlview.rebuild", body, transaction=True):
            report.rebuilt.append(network_id)
        else:  # named, but no head: whatever rows it had are gone
            report.removed.append(network_id)
    return report
