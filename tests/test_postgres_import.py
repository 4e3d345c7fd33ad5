"""``casstore import-tables``: a database written in upstream Bassline's PostgreSQL schema imports exactly, once.

:func:`write_upstream_database` plays upstream's ``@bassline/storage-postgres``:
its four tables, a network ``state`` with Maps as entry lists, group rows
without contacts, contact rows holding only content, and snapshots as full
JSONB copies of the state.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from conftest import PgTestServer

from casstore import open_store
from casstore.cli import main
from casstore.model import Contact, Group, GroupState, NetworkState, Wire

UPSTREAM_TABLES = """
CREATE TABLE {s}.bassline_networks (id TEXT PRIMARY KEY, state JSONB NOT NULL,
  created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW());
CREATE TABLE {s}.bassline_groups (network_id TEXT NOT NULL REFERENCES {s}.bassline_networks(id) ON DELETE CASCADE,
  group_id TEXT NOT NULL, state JSONB NOT NULL, search_vector TSVECTOR, created_at TIMESTAMPTZ DEFAULT NOW(),
  updated_at TIMESTAMPTZ DEFAULT NOW(), PRIMARY KEY (network_id, group_id));
CREATE TABLE {s}.bassline_contacts (network_id TEXT NOT NULL, group_id TEXT NOT NULL, contact_id TEXT NOT NULL,
  content JSONB, created_at TIMESTAMPTZ DEFAULT NOW(), updated_at TIMESTAMPTZ DEFAULT NOW(),
  PRIMARY KEY (network_id, group_id, contact_id),
  FOREIGN KEY (network_id, group_id) REFERENCES {s}.bassline_groups(network_id, group_id) ON DELETE CASCADE);
CREATE TABLE {s}.bassline_snapshots (network_id TEXT NOT NULL REFERENCES {s}.bassline_networks(id) ON DELETE CASCADE,
  snapshot_id TEXT NOT NULL, label TEXT, state JSONB NOT NULL, created_at TIMESTAMPTZ DEFAULT NOW(),
  PRIMARY KEY (network_id, snapshot_id));
"""
T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _contact(cid: str, gid: str, content: Any, **more: Any) -> dict[str, Any]:
    return {"id": cid, "groupId": gid, "content": content, "blendMode": "accept-last", **more}


def _group_entry(gid: str, name: str, contacts: dict[str, Any], wires: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    group = {
        "id": gid, "name": name, "contactIds": list(contacts), "wireIds": list(wires), "subgroupIds": [],
        "boundaryContactIds": [], "attributes": attrs,
    }  # fmt: skip
    return {"id": gid, "group": group, "contacts": list(contacts.items()), "wires": list(wires.items())}


def _state(version: int) -> dict[str, Any]:
    """Upstream's serialize.networkState of a thermostat network at some version."""
    contacts = {
        "temp": _contact("temp", "root", 20 + version),
        "target": _contact("target", "root", {"c": 21, "unit": "C"}, blendMode="merge", isBoundary=True,
                           boundaryDirection="input", name="Target"),
    }  # fmt: skip
    wires = {"w1": {"id": "w1", "groupId": "root", "fromId": "temp", "toId": "target", "type": "directed"}}
    groups = [_group_entry("root", "Thermostat", contacts, wires, **{"bassline.tags": ["hvac"], "v": version})]
    if version >= 2:
        groups.append(_group_entry("sub", "Sensor", {"s": _contact("s", "sub", [version, None, True])}, {}))
    return {"groups": groups, "currentGroupId": "root", "rootGroupId": "root"}


def write_upstream_database(base_url: str, schema: str) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(UPSTREAM_TABLES.format(s=f'"{schema}"'))
        s = f'"{schema}".'
        conn.execute(
            f"INSERT INTO {s}bassline_networks (id, state, created_at, updated_at) VALUES (%s, %s, %s, %s)",
            ("thermostat", Jsonb(_state(3)), T0 - timedelta(days=1), T0 + timedelta(hours=3)),
        )
        conn.execute(f"INSERT INTO {s}bassline_networks (id, state) VALUES (%s, %s)", ("empty", Jsonb(
            {"groups": [], "currentGroupId": "root", "rootGroupId": "root"})))  # fmt: skip
        conn.execute(f"INSERT INTO {s}bassline_networks (id, state) VALUES (%s, %s)", ("broken", Jsonb({"x": 1})))
        for version, label in ((0, "first"), (1, None), (2, "with sensor")):
            conn.execute(
                f"INSERT INTO {s}bassline_snapshots (network_id, snapshot_id, label, state, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                ("thermostat", f"snapshot-{version}-x", label, Jsonb(_state(version)), T0 + timedelta(hours=version)),
            )
        # saveGroupState: the group row (contacts replaced by their ids; the wires Map became {}), contact rows
        renamed = {**_group_entry("sub", "Sensor (renamed)", {}, {})["group"], "contactIds": ["s"]}
        conn.execute(
            f"INSERT INTO {s}bassline_groups (network_id, group_id, state) VALUES (%s, %s, %s)",
            ("thermostat", "sub", Jsonb({"group": renamed, "wires": {}, "contactIds": ["s"]})),
        )
        for cid, content in (("s", "overlaid"), ("extra", {"only": "in the contacts table"})):
            conn.execute(
                f"INSERT INTO {s}bassline_contacts (network_id, group_id, contact_id, content) VALUES (%s, %s, %s, %s)",
                ("thermostat", "sub", cid, Jsonb(content)),
            )


def _expected(version: int) -> NetworkState:
    root_contacts = {
        "temp": Contact("temp", "root", 20 + version),
        "target": Contact("target", "root", {"c": 21, "unit": "C"}, "merge", True, "input", "Target"),
    }
    wires = {"w1": Wire("w1", "root", "temp", "target", "directed")}
    root = GroupState(
        Group(
            "root", "Thermostat", None, ["temp", "target"], ["w1"], [], [], {"bassline.tags": ["hvac"], "v": version}
        ),
        root_contacts,
        wires,
    )
    groups = {"root": root}
    if version >= 2:
        groups["sub"] = GroupState(
            Group("sub", "Sensor", None, ["s"]), {"s": Contact("s", "sub", [version, None, True])}
        )
    return NetworkState(groups)


def test_import_tables_imports_a_seed_schema_database_exactly_and_once(
    postgres_server: PgTestServer, tmp_path: Path
) -> None:
    schema = f"t{postgres_server.token}_upstream"
    write_upstream_database(postgres_server.url, schema)
    store_url = str(tmp_path / "imported")
    args = ["--store", store_url, "import-tables", postgres_server.url, "--schema", schema, "--json"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 1, first.output  # "broken" could not be imported: reported, the rest imported
    report = json.loads(first.stdout)
    assert set(report["networks"]) == {"thermostat", "empty"}
    assert "broken" in report["failed"] and "no groups" in report["failed"]["broken"]
    assert report["imported_snapshots"] == 3 and report["imported_heads"] == 2
    with open_store(store_url) as store:
        infos = list(reversed(store.list_snapshots("thermostat")))  # oldest first
        assert [(i.label, i.created_at) for i in infos] == [
            ("first", T0), (None, T0 + timedelta(hours=1)), ("with sensor", T0 + timedelta(hours=2))
        ]  # fmt: skip
        for version, info in enumerate(infos):
            assert store.load_snapshot("thermostat", info.id) == _expected(version)
        current = _expected(3)
        current.groups["sub"].group.name = "Sensor (renamed)"
        current.groups["sub"].group.contact_ids = ["s", "extra"]
        current.groups["sub"].contacts = {
            "s": Contact("s", "sub", "overlaid"),
            "extra": Contact("extra", "sub", {"only": "in the contacts table"}),
        }
        loaded = store.load_network_state("thermostat")
        assert loaded == current
        assert (loaded.created_at, loaded.updated_at) == (T0 - timedelta(days=1), T0 + timedelta(hours=3))
        first_state = store.load_snapshot("thermostat", infos[0].id)
        assert (first_state.created_at, first_state.updated_at) == (T0 - timedelta(days=1), T0)
        assert store.load_network_state("empty") == NetworkState()
        assert not store.exists("broken")
        heads = {n: store.refs.get(f"networks/{n}/head") for n in ("thermostat", "empty")}
    again = CliRunner().invoke(main, args)
    report = json.loads(again.stdout)
    assert report["imported_snapshots"] == 0 and report["imported_heads"] == 0
    assert sorted(report["networks"]["thermostat"]["skipped_snapshots"]) == [
        "snapshot-0-x",
        "snapshot-1-x",
        "snapshot-2-x",
    ]
    with open_store(store_url) as store:
        assert {n: store.refs.get(f"networks/{n}/head") for n in ("thermostat", "empty")} == heads
        assert len(store.list_snapshots("thermostat")) == 3
    only = CliRunner().invoke(main, [*args[:-1], "empty", "absent", "--json"])
    assert json.loads(only.stdout)["failed"] == {"absent": "no such network in bassline_networks"}


def test_malformed_upstream_rows_are_reported_and_times_left_null_import_once(
    postgres_server: PgTestServer, tmp_path: Path
) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    schema = f"t{postgres_server.token}_upstream_odd"
    write_upstream_database(postgres_server.url, schema)
    s = f'"{schema}".'
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        insert = f"INSERT INTO {s}bassline_networks (id, state, created_at, updated_at) VALUES (%s, %s, NULL, NULL)"
        conn.execute(insert, ("no-times", Jsonb(_state(0))))
        conn.execute(insert, ("snapshot-without-time", Jsonb(_state(1))))
        conn.execute(
            f"INSERT INTO {s}bassline_snapshots (network_id, snapshot_id, label, state, created_at)"
            " VALUES (%s, %s, NULL, %s, NULL)",
            ("snapshot-without-time", "s1", Jsonb(_state(0))),
        )
    args = ["--store", str(tmp_path / "imported"), "import-tables", postgres_server.url, "--schema", schema, "--json"]
    first = json.loads(CliRunner().invoke(main, args).stdout)
    assert "no-times" in first["networks"] and first["networks"]["no-times"]["head"] is True
    assert "expected a timestamp" in first["failed"]["snapshot-without-time"]
    again = json.loads(CliRunner().invoke(main, args).stdout)
    assert again["imported_heads"] == 0 and again["imported_snapshots"] == 0  # idempotent, NULL times too
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE {s}bassline_contacts DROP COLUMN content")
    broken = CliRunner().invoke(main, args)
    assert broken.exit_code == 1 and "Traceback" not in broken.output
    failed = json.loads(broken.stdout)["failed"]
    assert "cannot be read" in failed["thermostat"] and "content" in failed["thermostat"]
