"""The SQL view's tables and the statements that write them (no psycopg import; connections are passed in).

::

    networks  (id text PRIMARY KEY, head bytea, metadata jsonb, created_at, updated_at)
    groups    (network_id, group_id, structure jsonb, attributes jsonb, extra jsonb, updated_at)
              PRIMARY KEY (network_id, group_id); GIN (attributes jsonb_path_ops)
    contacts  (network_id, group_id, contact_id, content jsonb, blend_mode text, record jsonb, updated_at)
              PRIMARY KEY (network_id, group_id, contact_id)
    snapshots (id text PRIMARY KEY, network_id, label, created_at, root text, size bigint)

``networks.head`` is the head the network's rows were derived from; a writer
whose old head differs (the tables were left behind by a store opened with
``?tables=off``) re-derives that network whole.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TableWriter", "create_statements", "tables_exist"]


def create_statements(s: str) -> list[str]:
    """The DDL, idempotent; ``s`` is the quoted schema."""
    return [
        f'CREATE TABLE IF NOT EXISTS {s}.networks (id text COLLATE "C" PRIMARY KEY, head bytea NOT NULL,'
        " metadata jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),"
        " updated_at timestamptz NOT NULL DEFAULT now())",
        f'CREATE TABLE IF NOT EXISTS {s}.groups (network_id text COLLATE "C" NOT NULL,'
        ' group_id text COLLATE "C" NOT NULL, structure jsonb NOT NULL, attributes jsonb NOT NULL,'
        " extra jsonb, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (network_id, group_id))",
        f"CREATE INDEX IF NOT EXISTS groups_attributes_gin ON {s}.groups USING gin (attributes jsonb_path_ops)",
        f'CREATE TABLE IF NOT EXISTS {s}.contacts (network_id text COLLATE "C" NOT NULL,'
        ' group_id text COLLATE "C" NOT NULL, contact_id text COLLATE "C" NOT NULL, content jsonb NOT NULL,'
        " blend_mode text NOT NULL, record jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (network_id, group_id, contact_id))",
        f'CREATE TABLE IF NOT EXISTS {s}.snapshots (id text COLLATE "C" PRIMARY KEY,'
        ' network_id text COLLATE "C" NOT NULL, label text, created_at timestamptz NOT NULL,'
        " root text NOT NULL, size bigint NOT NULL)",
        f"CREATE INDEX IF NOT EXISTS snapshots_network ON {s}.snapshots (network_id, created_at)",
    ]


def tables_exist(conn: Any, schema: str) -> bool:
    row = conn.execute(
        "SELECT to_regclass(%s), to_regclass(%s)", (f'"{schema}".contacts', f'"{schema}".snapshots')
    ).fetchone()
    return row is not None and row[0] is not None and row[1] is not None


class TableWriter:
    """The row writes of one schema: batches of rows as one ``jsonb`` array parameter each, and ``COPY``
    for a network derived whole (its rows were just deleted, so nothing conflicts)."""

    def __init__(self, s: str) -> None:
        self.head_of = f"SELECT head FROM {s}.networks WHERE id = %s"
        self.put_network = (
            f"INSERT INTO {s}.networks (id, head, metadata) VALUES (%s, %b, %s::jsonb) ON CONFLICT (id)"
            " DO UPDATE SET head = excluded.head, metadata = excluded.metadata, updated_at = now()"
        )
        # each batch is one jsonb array parameter (one value to send, parsed by the server in C)
        self.put_groups = (
            f"INSERT INTO {s}.groups (network_id, group_id, structure, attributes, extra)"
            " SELECT %s, r->>0, r->1, r->2, NULLIF(r->3, 'null') FROM jsonb_array_elements(%s::jsonb) AS r"
            " ON CONFLICT (network_id, group_id) DO UPDATE SET structure = excluded.structure,"
            " attributes = excluded.attributes, extra = excluded.extra, updated_at = now()"
        )
        self.copy_groups = f"COPY {s}.groups (network_id, group_id, structure, attributes, extra) FROM STDIN"
        self.drop_groups = (
            f"DELETE FROM {s}.groups WHERE network_id = %s AND group_id IN"
            " (SELECT jsonb_array_elements_text(%s::jsonb))"
        )
        self.put_contacts = (
            f"INSERT INTO {s}.contacts (network_id, group_id, contact_id, content, blend_mode, record)"
            " SELECT %s, r->>0, r->>1, r->2, r->>3, r->4 FROM jsonb_array_elements(%s::jsonb) AS r"
            " ON CONFLICT (network_id, group_id, contact_id) DO UPDATE SET content = excluded.content,"
            " blend_mode = excluded.blend_mode, record = excluded.record, updated_at = now()"
        )
        self.copy_contacts = (
            f"COPY {s}.contacts (network_id, group_id, contact_id, content, blend_mode, record) FROM STDIN"
        )
        self.drop_contacts = (
            f"DELETE FROM {s}.contacts WHERE network_id = %s AND (group_id, contact_id) IN"
            " (SELECT r->>0, r->>1 FROM jsonb_array_elements(%s::jsonb) AS r)"
        )
        self.put_snapshot = (
            f"INSERT INTO {s}.snapshots (id, network_id, label, created_at, root, size)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
        )
        self.drop_snapshot = f"DELETE FROM {s}.snapshots WHERE id = %s"
        self.forget = [
            f"DELETE FROM {s}.contacts WHERE network_id = %s",
            f"DELETE FROM {s}.groups WHERE network_id = %s",
            f"DELETE FROM {s}.networks WHERE id = %s",
        ]
        self.forget_snapshots = f"DELETE FROM {s}.snapshots WHERE network_id = %s"
        self.list_networks = f"SELECT id FROM {s}.networks"
