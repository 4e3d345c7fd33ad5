"""``query_groups`` on a PostgreSQL store with tables on: candidates from the GIN index on ``groups.attributes``.

Each filter becomes a containment test (``attributes @> '{"name": value}'``;
author, type and each tag test the ``bassline.``-prefixed name or the plain
one), which ``jsonb_path_ops`` answers from the index.  The same statement
reads the head and the head the rows were derived from: when they differ (the
tables were left behind by a writer with ``?tables=off``) the finder declines
and the model's own attribute index answers.  Containment may admit more than
an exact match (``1`` contains ``1.0``; a list contains its sublists), never
less, and the model re-checks every candidate, so answers equal every other
backend's.
"""

from __future__ import annotations

from typing import Any

from casstore.model import records
from casstore.model.bassline_json import contact_to_json
from casstore.model.query import QueryFilter
from casstore.model.reads import NetworkReader
from casstore.model.refs import head_ref
from casstore.model.types import Contact
from casstore.sqlview.jsonform import NUL_STANDIN, dumps, sql_text

__all__ = ["find_groups", "innermost_refs"]


def innermost_refs(refs: Any) -> Any:
    while hasattr(refs, "unwrap"):
        inner = refs.unwrap()
        if inner is refs:
            break
        refs = inner
    return refs


def _json(value: Any) -> str:
    # a value in the export's JSON form (bytes as DAG-JSON), as a contact's content is written
    return dumps(contact_to_json(Contact("x", "x", content=value))["content"])


def conditions(checked: QueryFilter) -> list[tuple[str, list[str]]]:
    """(SQL condition, its parameters) per filter, every one a GIN-indexable containment."""
    out: list[tuple[str, list[str]]] = []
    for name, value in (checked.attributes or {}).items():
        out.append(("attributes @> %s::jsonb", ['{"' + _key(name) + '":' + _json(value) + "}"]))
    for name, wanted in (("author", checked.author), ("type", checked.type)):
        if wanted is not None:
            out.append(_either((f"bassline.{name}", name), _json(wanted)))
    for tag in checked.tags or []:
        out.append(_either(records.TAG_ATTRIBUTES, "[" + _json(tag) + "]"))
    return out


def _key(name: str) -> str:
    return dumps(name)[1:-1]


def _either(names: tuple[str, ...], value: str) -> tuple[str, list[str]]:
    return (
        "(" + " OR ".join("attributes @> %s::jsonb" for _ in names) + ")",
        ['{"' + _key(n) + '":' + value + "}" for n in names],
    )


def find_groups(reader: NetworkReader, network_id: str, checked: QueryFilter) -> tuple[bytes | None, set[str]] | None:
    """The head and the ids of the groups whose attributes contain every filter, or ``None`` (see above).

    The model then reads the candidates (their members prefetched: :meth:`NetworkReader.group_states`).
    """
    inner = innermost_refs(reader.refs)
    tables = getattr(inner, "derived", None)
    if tables is None:
        return None
    parts = conditions(checked)
    where = " AND ".join(sql for sql, _ in parts) or "TRUE"  # no filter: every group (its members prefetched)
    params: list[Any] = [head_ref(network_id), sql_text(network_id), sql_text(network_id)]
    for _, values in parts:
        params.extend(values)
    s = tables.quoted
    statement = (
        f"SELECT (SELECT value FROM {s}.refs WHERE key = {s}.ref_key(%s)),"
        f" (SELECT head FROM {s}.networks WHERE id = %s),"
        f" array(SELECT structure->>'id' FROM {s}.groups WHERE network_id = %s AND {where})"
    )

    def body(conn: Any) -> tuple[bytes | None, bytes | None, list[str]]:
        with conn.cursor(binary=True) as cur:
            cur.execute(statement, params)
            row = cur.fetchone()
        return row[0] and bytes(row[0]), row[1] and bytes(row[1]), list(row[2])

    head, derived_from, ids = inner.run_query("sqlview.query_groups", body)
    if head != derived_from or any(NUL_STANDIN in gid for gid in ids):
        return None  # stale rows, or an id the rows show with U+FFFD for U+0000: the model answers
    return head, set(ids)
