"""The SQL view on PostgreSQL: the tables equal every head (a hypothesis run checks after each step),
``?tables=off``, re-deriving stale tables, ``rebuild-tables``, and ``query_groups`` through the GIN index."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import PgTestServer
from hypothesis import settings
from hypothesis.stateful import invariant

from casstore import codec, network_to_json, open_store
from casstore.cli import main
from casstore.model import Contact, Group, GroupState, NetworkState, NetworkStore
from casstore.model.query import query_filter
from casstore.model.refs import head_ref
from casstore.sqlview.jsonform import NUL_STANDIN
from casstore.sqlview.query import conditions
from casstore.sqlview.read import state_from_tables
from casstore.store import open_object_store
from casstore.testing.network import sample_group
from casstore.testing.state_machine import NetworkStateMachine


def _psycopg() -> Any:
    import psycopg

    return psycopg


def _schema(url: str) -> str:
    return url.split("schema=")[1].split("&")[0]


def _without_nul(value: Any) -> Any:
    """What the tables can show of a value: U+0000 as U+FFFD (see casstore.sqlview.jsonform)."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_STANDIN)
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def assert_tables_match(store: NetworkStore, base_url: str, schema: str) -> None:
    """Every network's rows equal its head; no rows for networks without one; snapshot rows equal the refs."""
    with _psycopg().connect(base_url, autocommit=True) as conn:
        listed = sorted(r[0] for r in conn.execute(f'SELECT id FROM "{schema}".networks').fetchall())
        assert listed == sorted(_without_nul(n) for n in store.list_networks())
        for net in store.list_networks():
            found = state_from_tables(conn, schema, net)
            assert found is not None
            head, state = found
            assert head == store.refs.get(head_ref(net))
            expected = store.load_network_state(net)
            assert expected is not None
            assert _without_nul(network_to_json(state)) == _without_nul(network_to_json(expected))
        rows = conn.execute(
            f'SELECT id, network_id, label, created_at, root, size FROM "{schema}".snapshots'
        ).fetchall()
        have = {(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}
        want = {
            (i.id, i.network_id, i.label and _without_nul(i.label), i.created_at, i.root, i.size)
            for net in store.list_networks()
            for i in store.list_snapshots(net)
        }
        assert have == want


# ---------------------------------------------------------------- the tables follow every head


_SERVER: list[PgTestServer] = []


@pytest.fixture(autouse=True)
def _model_server(request: pytest.FixtureRequest) -> None:
    if request.node.cls is TestTablesFollowHeads:
        _SERVER[:] = [request.getfixturevalue("postgres_server")]
        request.getfixturevalue("private_pool_jitter")


class TablesFollowHeads(NetworkStateMachine):
    """The network model's random histories; after every step, SELECT from the tables equals the heads."""

    def make_store(self) -> NetworkStore:
        self.url = _SERVER[0].fresh_url(pool_size="2")
        return NetworkStore(open_object_store(self.url))

    @invariant()
    def tables_equal_heads(self) -> None:
        assert_tables_match(self.store, _SERVER[0].url, _schema(self.url))

    @invariant()
    def tag_queries_match_model(self) -> None:
        for net, state in self.model.items():
            expected = sorted(g for g, s in state.groups.items() if "x" in s.group.attributes.get("bassline.tags", []))
            assert sorted(s.group.id for s in self.store.query_groups(net, tags=["x"])) == expected


TestTablesFollowHeads = TablesFollowHeads.TestCase
TestTablesFollowHeads.settings = settings(max_examples=12, stateful_step_count=20, deadline=None)


# ---------------------------------------------------------------- tables off, stale tables, rebuild


def _counts(base_url: str, schema: str) -> dict[str, int] | None:
    with _psycopg().connect(base_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass(%s)", (f'"{schema}".contacts',)).fetchone()[0] is None:
            return None
        return {
            t: conn.execute(f'SELECT count(*) FROM "{schema}".{t}').fetchone()[0]
            for t in ("networks", "groups", "contacts", "snapshots")
        }


def test_tables_off_creates_nothing_and_a_later_writer_rederives(postgres_server: PgTestServer) -> None:
    url = postgres_server.fresh_url()
    schema = _schema(url)
    with open_store(url + "&tables=off") as off:
        off.save_group_state("net", "g1", sample_group("g1"))
        off.save_snapshot("net", "first")
    assert _counts(postgres_server.url, schema) is None  # ?tables=off: no tables at all
    with open_store(url) as on:  # opening with tables on creates them (empty: nothing derived yet)
        assert _counts(postgres_server.url, schema) == {"networks": 0, "groups": 0, "contacts": 0, "snapshots": 0}
        on.save_contact_content("net", "g1", "new", 1)  # the rows are behind: this network is derived whole
        with _psycopg().connect(postgres_server.url, autocommit=True) as conn:
            found = state_from_tables(conn, schema, "net")
        assert found is not None and found[1] == on.load_network_state("net")
    with open_store(url + "&tables=off") as off:
        off.save_contact_content("net", "g1", "new", 2)  # the tables fall behind again
        off.save_group_state("net", "g2", sample_group("g2", tags=["t-g2"]))
    with open_store(url) as on:
        assert on.query_groups("net", tags=["t-g2"])[0].group.id == "g2"  # declines the stale GIN, still right
        result = CliRunner().invoke(main, ["--store", url, "rebuild-tables", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output) == {"rebuilt": ["net"], "removed": []}
        assert_tables_match(on, postgres_server.url, schema)
        on.delete_network("net")
        assert _counts(postgres_server.url, schema) == {"networks": 0, "groups": 0, "contacts": 0, "snapshots": 0}


def test_a_network_derived_whole_gets_its_snapshot_rows_again(postgres_server: PgTestServer) -> None:
    url = postgres_server.fresh_url()
    schema = _schema(url)
    with open_store(url) as on:
        on.save_group_state("net", "g1", sample_group("g1"))
        gone = on.save_snapshot("net", "deleted with tables off")
    with open_store(url + "&tables=off") as off:
        off.delete_snapshot("net", gone)
        off.save_snapshot("net", "made with tables off")
        off.save_contact_content("net", "g1", "x", 1)
    with open_store(url) as on:
        on.save_contact_content("net", "g1", "x", 2)  # the rows are behind: derived whole, snapshots too
        assert_tables_match(on, postgres_server.url, schema)


def test_rebuild_tables_shows_no_rows_for_a_head_ref_that_names_no_network(postgres_server: PgTestServer) -> None:
    url = postgres_server.fresh_url()
    schema = _schema(url)
    with open_store(url) as on:
        on.save_group_state("zz", "g1", sample_group("g1"))
    with open_store(url + "&tables=off") as off:
        off.save_contact_content("zz", "g1", "x", 42)  # zz's rows fall behind
        off.refs.compare_and_swap(head_ref("aa"), None, off.blobs.put(codec.encode({"hello": 1})))  # raw ref use
    result = CliRunner().invoke(main, ["--store", url, "rebuild-tables", "--json"])
    assert result.exit_code == 0, result.output
    named = CliRunner().invoke(main, ["--store", url, "rebuild-tables", "no-such-net", "--json"])
    assert json.loads(named.output) == {"rebuilt": [], "removed": ["no-such-net"]}  # no head: not "rebuilt"
    with _psycopg().connect(postgres_server.url, autocommit=True) as conn:
        found = state_from_tables(conn, schema, "zz")
        assert found is not None and found[1].groups["g1"].contacts["x"].content == 42
        assert conn.execute(f'SELECT count(*) FROM "{schema}".networks WHERE id = %s', ("aa",)).fetchone() == (0,)


def test_query_groups_finds_a_group_whose_id_holds_nul(postgres_server: PgTestServer) -> None:
    gid = "g\x00x"  # shown as g\ufffdx in the rows: the model answers for it
    tagged = GroupState(Group(gid, "G", attributes={"bassline.tags": ["hvac"]}), {})
    root = GroupState(Group("root", "root", subgroup_ids=[gid]), {})
    with open_store(postgres_server.fresh_url()) as store:
        store.save_network_state("n", NetworkState({"root": root, gid: tagged}, "root", "root"))
        assert [g.group.id for g in store.query_groups("n", tags=["hvac"])] == [gid]


def test_changes_beyond_one_statement_and_networks_derived_whole(
    postgres_server: PgTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change of more rows than one statement takes is written in several; a new network is COPYed whole."""
    from casstore.sqlview import derive

    monkeypatch.setattr(derive, "ROWS_PER_STATEMENT", 3)
    url = postgres_server.fresh_url()
    with open_store(url) as store:
        contacts = {f"c{i}": Contact(f"c{i}", "g1", {"i": i, "b": b"\x00raw"}) for i in range(10)}
        big = {"large": "x" * 5000, "raw": bytes(range(256))}  # stored as its own object
        contacts["c0"].content = contacts["c1"].content = big
        group = GroupState(Group("g1", "g1", None, sorted(contacts), [], [], [], {"bassline.tags": ["t"]}), contacts)
        store.save_group_state("net", "g1", group)  # a new network: derived whole, by COPY
        assert_tables_match(store, postgres_server.url, _schema(url))
        with store.batch("net") as batch:  # 8 changed rows and 2 deleted: 3 statements of changed rows
            for i in range(8):
                batch.save_contact_content("net", "g1", f"c{i}", {"changed": i, "nul": "a\x00b"})
            batch.delete_contact("net", "g1", "c8")
            batch.delete_contact("net", "g1", "c9")
            for g in ("g2", "g3", "g4", "g5"):  # 4 new groups: 2 statements of group rows
                batch.save_group_state("net", g, sample_group(g, tags=["t"]))
        assert_tables_match(store, postgres_server.url, _schema(url))
        assert sorted(s.group.id for s in store.query_groups("net", tags=["t"])) == ["g1", "g2", "g3", "g4", "g5"]
        store.save_group_state("net2", "g1", group)  # whole again, its large content read from the server
        result = CliRunner().invoke(main, ["--store", url, "rebuild-tables", "--json"])  # every read from there
        assert result.exit_code == 0, result.output
        assert_tables_match(store, postgres_server.url, _schema(url))


def test_a_row_that_cannot_be_made_during_copy_leaves_the_transaction_usable(
    postgres_server: PgTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record that fails to decode while COPY runs: the savepoint rolls back, the network shows no rows,
    the write itself commits, and the next write derives the network whole."""
    from casstore.errors import CorruptObject
    from casstore.sqlview import derive

    row = derive.contact_row

    def failing(contact: Contact) -> list[Any]:
        if contact.id == "g1-c1":
            raise CorruptObject("test", "a record that does not decode")
        return row(contact)

    url = postgres_server.fresh_url()
    with open_store(url) as store:
        monkeypatch.setattr(derive, "contact_row", failing)
        store.save_group_state("net", "g1", sample_group("g1"))
        assert store.load_group_state("net", "g1") == sample_group("g1")
        assert _counts(postgres_server.url, _schema(url)) == {"networks": 0, "groups": 0, "contacts": 0, "snapshots": 0}
        monkeypatch.setattr(derive, "contact_row", row)
        store.save_contact_content("net", "g1", "g1-c0", "again")
        assert_tables_match(store, postgres_server.url, _schema(url))


def test_rebuild_tables_refuses_other_backends(tmp_path: Any) -> None:
    result = CliRunner().invoke(main, ["--store", str(tmp_path / "s"), "init"])
    assert result.exit_code == 0
    result = CliRunner().invoke(main, ["--store", str(tmp_path / "s"), "rebuild-tables", "--json"])
    assert result.exit_code == 1
    assert "not a PostgreSQL store" in json.loads(result.stderr)["error"]["message"]


def test_bytes_links_and_nul_have_their_documented_json_form(postgres_server: PgTestServer) -> None:
    url = postgres_server.fresh_url()
    content = {"raw": b"\x00\x01", "cid-like": codec.CID_PREFIX + bytes(32), "nul": "a\x00b", "big": 2**63 - 1}
    with open_store(url) as store:
        group = Group("g", "G", attributes={"blob": b"\xff", "bassline.tags": ["t"]})
        store.save_group_state("n", "g", GroupState(group, {"c": Contact("c", "g", content)}))
        with _psycopg().connect(postgres_server.url, autocommit=True) as conn:
            s = _schema(url)
            row = conn.execute(f'SELECT content FROM "{s}".contacts WHERE contact_id = %s', ("c",)).fetchone()
            attrs = conn.execute(f'SELECT attributes FROM "{s}".groups').fetchone()
        assert row[0] == {
            "raw": {"/": {"bytes": "AAE"}},
            "cid-like": {"/": {"bytes": "AXEeIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},
            "nul": "a\ufffdb",
            "big": 2**63 - 1,
        }
        assert attrs[0] == {"blob": {"/": {"bytes": "/w"}}, "bassline.tags": ["t"]}


# ---------------------------------------------------------------- query_groups through the GIN index


def test_query_groups_uses_the_gin_index_and_answers_as_memory_does(postgres_server: PgTestServer) -> None:
    url = postgres_server.fresh_url()
    memory = open_store("memory://")
    with open_store(url) as store:
        for i in range(60):
            attrs: dict[str, Any] = {"bassline.type": "odd" if i % 2 else "even", "n": i % 5, "f": [i % 3, "x"]}
            if i % 7 == 0:
                attrs["tags"] = ["seven", "all"]
            elif i % 3 == 0:
                attrs["bassline.tags"] = ["three", "all"]
            if i % 4 == 0:
                attrs["author"] = "bob"
            for target in (store, memory):
                target.save_group_state("n", f"g{i:02}", GroupState(Group(f"g{i:02}", "G", attributes=attrs)))
        queries: list[dict[str, Any]] = [
            {"tags": ["all"]}, {"tags": ["seven", "all"]}, {"type": "odd"}, {"author": "bob"},
            {"attributes": {"n": 3}}, {"attributes": {"n": 3.0}}, {"attributes": {"f": [1]}},
            {"attributes": {"f": [1, "x"]}, "type": "even"}, {"attributes": {"missing": None}}, {},
        ]  # fmt: skip
        for query in queries:
            got = [g.group.id for g in store.query_groups("n", query)]
            assert got == [g.group.id for g in memory.query_groups("n", query)], query
        assert store.query_groups("absent", tags=["all"]) == []
        many = NetworkState({f"h{i:04}": GroupState(Group(f"h{i:04}", "H", attributes=(
            {"tags": ["rare"]} if i % 100 == 0 else {"tags": ["common"], "n": i}))) for i in range(3000)})  # fmt: skip
        store.save_network_state("big", many)
        assert [g.group.id for g in store.query_groups("big", tags=["rare"])] == [
            f"h{i:04}" for i in range(0, 3000, 100)
        ]
        where, params = conditions(query_filter(tags=["rare"]))[0]
        with _psycopg().connect(postgres_server.url, autocommit=True) as conn:
            conn.execute(f'ANALYZE "{_schema(url)}".groups')
            conn.execute("SET enable_seqscan = off")  # at 3,000 rows a scan is cheaper: is the GIN usable, and best?
            plan = conn.execute(
                f'EXPLAIN SELECT group_id FROM "{_schema(url)}".groups WHERE network_id = %s AND {where}',
                ("big", *params),
            ).fetchall()
        assert "groups_attributes_gin" in " ".join(r[0] for r in plan)


def test_ref_names_beyond_the_btree_limit_work_and_old_stores_migrate(postgres_server: PgTestServer) -> None:
    url = postgres_server.fresh_url()
    schema = _schema(url)
    with _psycopg().connect(postgres_server.url, autocommit=True) as conn:  # a store at schema version 1
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".schema_version (version int PRIMARY KEY,'
                     " applied_at timestamptz NOT NULL DEFAULT now(), description text NOT NULL)")  # fmt: skip
        conn.execute(f'INSERT INTO "{schema}".schema_version (version, description) VALUES (1, %s)', ("v1",))
        conn.execute(f'CREATE TABLE "{schema}".objects (id bytea PRIMARY KEY, frame bytea NOT NULL,'
                     " written_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        conn.execute(f'CREATE TABLE "{schema}".refs (name text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)')
        conn.execute(f'INSERT INTO "{schema}".refs VALUES (%s, %s)', ("config/old", bytes(32)))
    with open_store(url) as store:
        assert store.refs.get("config/old") == bytes(32)  # kept by the migration
        digest = store.blobs.put(codec.encode_value("x"))
        long_name = "a/" + "b" * 4000
        store.refs.compare_and_swap(long_name, None, digest)
        assert store.refs.get(long_name) == digest
        assert store.refs.list("a/" + "b" * 3000) == {long_name: digest}
        network = "é" * 500  # 1,000 UTF-8 bytes, %-escaped into 3,000 characters of each ref name
        store.save_group_state(network, "g", sample_group("g"))
        store.save_snapshot(network, "long")
        assert store.list_networks() == [network]
        assert store.query_groups(network, tags=["t"]) == []
        assert_tables_match(store, postgres_server.url, schema)
        with _psycopg().connect(postgres_server.url, autocommit=True) as conn:
            conn.execute("SET enable_seqscan = off")  # a few rows: is a lookup by name an index lookup?
            plan = conn.execute(
                f'EXPLAIN SELECT value FROM "{schema}".refs WHERE key = "{schema}".ref_key(%s)', ("x",)
            ).fetchall()
        assert "refs_key" in " ".join(r[0] for r in plan)
