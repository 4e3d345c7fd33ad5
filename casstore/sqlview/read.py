"""A network read back from the SQL view: what the tables say its state is (the tests compare it with the head).

:func:`state_from_tables` reassembles the Bassline JSON document from the
rows (``networks.metadata``, each group's ``structure``, ``attributes`` and
``extra``, each contact's columns) and parses it with the export's own reader,
so a value round-trips exactly as it does through ``casstore export`` (U+0000
excepted, see :mod:`.jsonform`).
"""

from __future__ import annotations

from typing import Any

from casstore.model.bassline_json import network_from_json
from casstore.model.types import NetworkState
from casstore.sqlview.jsonform import sql_text

__all__ = ["document_from_tables", "state_from_tables"]


def document_from_tables(conn: Any, schema: str, network_id: str) -> tuple[bytes, dict[str, Any]] | None:
    """(the head the rows were derived from, the network's Bassline JSON), or ``None`` if the tables lack it."""
    s, net = f'"{schema}"', sql_text(network_id)
    row = conn.execute(f"SELECT head, metadata FROM {s}.networks WHERE id = %s", (net,)).fetchone()
    if row is None:
        return None
    head, metadata = bytes(row[0]), dict(row[1])
    groups: dict[str, Any] = {}
    for structure, attributes, extra in conn.execute(
        f"SELECT structure, attributes, extra FROM {s}.groups WHERE network_id = %s", (net,)
    ).fetchall():
        group = dict(structure)
        wires = group.pop("wires")
        extra = extra or {}
        group.update(extra.get("group", {}))
        group["attributes"] = attributes
        groups[group["id"]] = {"group": group, "contacts": {}, "wires": wires, **extra.get("state", {})}
    for gid, content, blend_mode, record in conn.execute(
        f"SELECT group_id, content, blend_mode, record FROM {s}.contacts WHERE network_id = %s", (net,)
    ).fetchall():
        owner = next((g for g in groups.values() if sql_text(g["group"]["id"]) == gid), None)
        if owner is None:
            raise ValueError(f"contact row {record['id']!r} of a group {gid!r} with no row")
        owner["contacts"][record["id"]] = {
            **record,
            "groupId": owner["group"]["id"],
            "content": content,
            "blendMode": blend_mode,
        }
    return head, {**metadata, "groups": groups}


def state_from_tables(conn: Any, schema: str, network_id: str) -> tuple[bytes, NetworkState] | None:
    """(derived-from head, state) of one network as the tables hold it, or ``None``."""
    found = document_from_tables(conn, schema, network_id)
    if found is None:
        return None
    head, doc = found
    return head, network_from_json(doc)
