"""The PostgreSQL backend beyond the shared suites: URLs and secrets, failures, schema, races, a server restart.

The shared suites (store, network, sync pairs) run on the ``postgres`` case of
``tests/backends.py``.  Tests here that must control a server (restart it,
check passwords over TCP) start their own throwaway cluster; the others use
the session's server (``postgres_server`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import PgTestServer, skip_or_fail
from hypothesis import settings

from casstore import codec, open_store
from casstore.errors import (
    InvalidStoreURL,
    RefConflict,
    StorageConnectionError,
    StorageError,
    StoragePermissionError,
    StoreNotFound,
)
from casstore.model import Group, GroupState, NetworkState, NetworkStore
from casstore.store import open_object_store
from casstore.testing.network import sample_group
from casstore.testing.state_machine import NetworkStateMachine
from casstore.testing.workers import run_in_processes, write_contacts
from casstore.verify import verify

PASSWORD = "s3cr3t-pa55word"


def _psycopg() -> Any:
    import psycopg

    return psycopg


@pytest.fixture
def server(postgres_server: PgTestServer) -> PgTestServer:
    return postgres_server


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A throwaway cluster of this module's own, which its tests may restart; with a password-protected role."""
    from casstore.store.postgres.throwaway import find_bin_dir, start_cluster

    if find_bin_dir() is None:
        skip_or_fail("PostgreSQL's initdb is not installed (these tests restart their own server)")
    running = start_cluster()
    with _psycopg().connect(running.url(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE casstore_pw LOGIN PASSWORD '{PASSWORD}'")
        conn.execute("CREATE ROLE casstore_noschema LOGIN PASSWORD 'other'")
        conn.execute("REVOKE CREATE ON DATABASE postgres FROM PUBLIC")
        conn.execute("GRANT CREATE ON DATABASE postgres TO casstore_pw")
    yield running
    running.stop()


# ---------------------------------------------------------------- URLs, options, secrets


def test_both_schemes_open_the_same_store(server: PgTestServer) -> None:
    url = server.fresh_url()
    with open_object_store(url) as store:
        digest = store.blobs.put(codec.encode_value("shared"))
        store.refs.compare_and_swap("x", None, digest)
    with open_object_store(url.replace("postgresql://", "postgres://", 1), create=False) as again:
        assert again.refs.get("x") == digest
        assert again.atomic_commit


def test_a_missing_schema_is_not_created_without_create(server: PgTestServer) -> None:
    with pytest.raises(StoreNotFound, match="no casstore store in schema"):
        open_object_store(server.fresh_url(), create=False)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("schema=bad-name", "schema must be"),
        ("schema=1abc", "schema must be"),
        ("pool_size=0", "pool_size"),
        ("pool_size=many", "pool_size"),
        ("insert=fast", "insert"),
        ("synchronous_commit=maybe", "synchronous_commit"),
        ("colour=blue", "unknown option"),
        ("pool_timeout=-5", "pool_timeout"),
        ("pool_timeout=nan", "pool_timeout"),
        ("pool_timeout=inf", "pool_timeout"),
        ("pool_timeout=0", "pool_timeout"),
        ("sslmode=bogus", "invalid sslmode value"),  # libpq's refusal: the URL is wrong, never retried
        ("target_session_attrs=bogus", "invalid target_session_attrs value"),
    ],
)
def test_bad_options_are_refused(server: PgTestServer, options: str, message: str) -> None:
    url = f"{server.url}&{options}" if "schema=" in options else f"{server.fresh_url()}&{options}"
    with pytest.raises(InvalidStoreURL, match=message):
        open_object_store(url)


def test_the_schema_is_versioned_and_frames_are_stored_external(server: PgTestServer) -> None:
    url = server.fresh_url()
    with open_object_store(url) as store:
        schema = store.schema  # type: ignore[attr-defined]
    with _psycopg().connect(server.url) as conn:
        versions = conn.execute(f'SELECT version FROM "{schema}".schema_version').fetchall()
        storage = conn.execute(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'frame'",
            (f'"{schema}".objects',),
        ).fetchone()
        persistence = conn.execute(
            "SELECT relpersistence FROM pg_class WHERE oid = %s::regclass", (f'"{schema}".objects',)
        )
        assert sorted(versions) == [(1,), (2,)]  # version 2: refs keyed by the hash of the name
        assert storage == ("e",)  # EXTERNAL: frames are zstd already
        assert persistence.fetchone() == ("p",)  # permanent, never UNLOGGED


def test_concurrent_first_opens_create_the_schema_once(server: PgTestServer) -> None:
    url = server.fresh_url()
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            open_object_store(url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    schema = url.rsplit("schema=", 1)[1]
    with _psycopg().connect(server.url) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{schema}".schema_version').fetchone() == (2,)  # each step once


def test_a_schema_from_a_newer_casstore_is_refused(server: PgTestServer) -> None:
    url = server.fresh_url()
    open_object_store(url).close()
    schema = url.rsplit("schema=", 1)[1]
    with _psycopg().connect(server.url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO \"{schema}\".schema_version (version, description) VALUES (99, 'future')")
    with pytest.raises(StorageError, match="version 99, newer than"):
        open_object_store(url)


def test_synchronous_commit_off_applies_to_the_pooled_connections(server: PgTestServer) -> None:
    with open_object_store(server.fresh_url(synchronous_commit="off")) as store:
        assert store.db.run("show", lambda conn: conn.execute("SHOW synchronous_commit").fetchone()) == ("off",)  # type: ignore[attr-defined]
    with open_object_store(server.fresh_url()) as store:
        assert store.db.run("show", lambda conn: conn.execute("SHOW synchronous_commit").fetchone()) == ("on",)  # type: ignore[attr-defined]


@pytest.mark.parametrize("insert", ["unnest", "copy"])
def test_each_insert_method_stores_dedupes_and_refreshes(server: PgTestServer, insert: str) -> None:
    with open_object_store(server.fresh_url(insert=insert)) as store:
        datas = [codec.encode_value({"i": i}) for i in range(12_000)]  # more than one statement's batch
        ids = store.blobs.put_many(datas + datas[:10])
        assert store.blobs.stats().objects == 12_000
        assert store.blobs.get_many(ids[::997]) == datas[::997]
        mark = time.time()
        time.sleep(0.02)
        store.blobs.put(datas[5])
        assert store.blobs.written_since(mark) == {ids[5]}


def test_delete_many_in_batches_counts_what_was_there(server: PgTestServer) -> None:
    with open_object_store(server.fresh_url()) as store:
        ids = store.blobs.put_many([codec.encode_value(i) for i in range(2_500)])
        absent = codec.hash_bytes(b"never")
        assert store.blobs.delete_many([*ids[:2_300], absent]) == 2_300
        assert store.blobs.stats().objects == 200


def test_ref_names_with_like_wildcards_list_exactly(server: PgTestServer) -> None:
    with open_object_store(server.fresh_url()) as store:
        digest = store.blobs.put(codec.encode_value("a"))
        for name in ("a%b/x", "aXb/x", "a_b/y", "azb/y"):
            store.refs.compare_and_swap(name, None, digest)
        assert set(store.refs.list("a%b/")) == {"a%b/x"}
        assert set(store.refs.list("a_b")) == {"a_b/y"}


# ---------------------------------------------------------------- failures name the server, never the password


def test_a_wrong_password_is_a_permission_error_naming_the_server(cluster: Any) -> None:
    url = cluster.tcp_url("casstore_pw", "wrong-" + PASSWORD)
    with pytest.raises(StoragePermissionError) as info:
        open_object_store(url)
    text = str(info.value)
    assert f"127.0.0.1:{cluster.port}/postgres" in text and "casstore_pw" in text
    assert PASSWORD not in text and "wrong-" not in text
    assert not open_store_is_transient(info.value)


def test_the_password_never_appears_in_the_url_errors_or_logs(cluster: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with open_object_store(cluster.tcp_url("casstore_pw", PASSWORD) + "?schema=secrets&retries=1") as store:
        assert PASSWORD not in store.url and PASSWORD not in repr(store)
        store.blobs.put(codec.encode_value("fine"))
    url = f"postgresql://casstore_pw:{PASSWORD}@127.0.0.1:1/postgres?retries=2&retry_delay=0&connect_timeout=2"
    with pytest.raises(StorageConnectionError) as info:
        open_object_store(url)
    assert PASSWORD not in str(info.value)
    assert "127.0.0.1:1/postgres" in str(info.value)
    assert all(PASSWORD not in record.getMessage() for record in caplog.records)
    query_password = f"postgresql://casstore_pw@127.0.0.1:{cluster.port}/postgres?password=wrong{PASSWORD}"
    with pytest.raises(StoragePermissionError) as denied:
        open_object_store(query_password)
    assert PASSWORD not in str(denied.value)


@pytest.mark.parametrize("written", ["Hunter2Secret x", "Hunter2Secret%zz", "Hunter2Secret#1"])
def test_a_malformed_password_never_appears_in_errors(server: PgTestServer, written: str) -> None:
    """An unescaped space or ``#`` or a bad ``%`` escape: libpq echoes the password in pieces."""
    from casstore.sqlview.migrate import import_tables

    url = f"postgresql://postgres:{written}@/casstore?host=/tmp/nowhere&port=1&connect_timeout=1"
    with pytest.raises(StorageError) as info:
        open_object_store(url)
    assert "Hunter2Secret" not in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(StorageError) as imported:
        import_tables(open_store("memory://"), url)
    assert "Hunter2Secret" not in str(imported.value)


def test_a_schema_name_of_63_characters_writes_and_notifies(server: PgTestServer) -> None:
    from casstore.store.postgres.store import notify_channel

    schema = f"t{server.token}_" + "s" * (63 - len(server.token) - 2)
    assert len(schema) == 63 and len(notify_channel(schema)) <= 63 and notify_channel(schema) != notify_channel("x")
    url = f"{server.url}{'&' if '?' in server.url else '?'}schema={schema}"
    with open_store(url) as store:
        store.save_network_state("net", NetworkState({"g": GroupState(Group("g", "G"), {})}))
        assert store.list_networks() == ["net"]


def test_a_missing_database_is_a_connection_error_that_is_not_retried(cluster: Any) -> None:
    with pytest.raises(StorageConnectionError) as info:
        open_object_store(cluster.url("no_such_db"))
    assert "no_such_db" in str(info.value) and str(cluster.port) in str(info.value)
    assert not open_store_is_transient(info.value)


def test_no_create_privilege_is_a_permission_error(cluster: Any) -> None:
    with pytest.raises(StoragePermissionError, match="permission denied") as info:
        open_object_store(cluster.tcp_url("casstore_noschema", "other") + "?schema=notallowed")
    assert f"casstore_noschema@127.0.0.1:{cluster.port}/postgres" in str(info.value)


def test_a_refused_connection_is_transient(cluster: Any) -> None:
    with pytest.raises(StorageConnectionError) as info:
        open_object_store("postgresql://casstore_pw@127.0.0.1:1/postgres?connect_timeout=2")
    assert open_store_is_transient(info.value)


def test_libpq_environment_variables_apply(cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", str(cluster.port))
    monkeypatch.setenv("PGUSER", "casstore_pw")
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    with open_object_store("postgresql:///postgres?schema=fromenv") as store:
        store.blobs.put(codec.encode_value("env"))
        assert PASSWORD not in store.url


def open_store_is_transient(exc: BaseException) -> bool:
    from casstore.store.postgres.connection import is_transient_error

    return is_transient_error(exc)


@pytest.mark.parametrize(
    ("sqlstate", "transient"),
    [("40001", True), ("40P01", True), ("57P01", True), ("08006", True), ("28P01", False), ("3D000", False),
     ("42501", False), ("23505", False), ("54000", False)],
)  # fmt: skip
def test_transient_sqlstates(sqlstate: str, transient: bool) -> None:
    psycopg = _psycopg()
    error = psycopg.errors.lookup(sqlstate)("injected")
    assert open_store_is_transient(error) is transient
    import psycopg_pool

    assert open_store_is_transient(psycopg_pool.PoolTimeout("no connection"))
    assert not open_store_is_transient(RefConflict("r", None, None))


# ---------------------------------------------------------------- races between processes


def move_ref_worker(url: str, worker: int, moves: int, log_path: str) -> None:
    """Move ref ``race`` ``moves`` times by read + CAS (retrying conflicts); log each success's (old, new)."""
    successes: list[tuple[str, str]] = []
    with open_object_store(url, create=False) as store:
        for i in range(moves):
            while True:
                old = store.refs.get("race")
                new = store.blobs.put(codec.encode_value({"worker": worker, "move": i}))
                try:
                    store.refs.compare_and_swap("race", old, new)
                except RefConflict:
                    continue
                assert old is not None
                successes.append((old.hex(), new.hex()))
                break
    Path(log_path).write_text(json.dumps(successes))


def _cas_race(server: PgTestServer, tmp_path: Path, moves: int) -> None:
    url = server.fresh_url()
    with open_object_store(url) as store:
        start = store.blobs.put(codec.encode_value("start"))
        store.refs.compare_and_swap("race", None, start)
    logs = [str(tmp_path / f"w{k}.json") for k in range(4)]
    run_in_processes(move_ref_worker, [(url, k, moves, logs[k]) for k in range(4)], timeout=600)
    successes = [tuple(pair) for log in logs for pair in json.loads(Path(log).read_text())]
    assert len(successes) == 4 * moves
    following = dict(successes)
    assert len(following) == len(successes), "two successful moves started from the same value"
    at, chain = start.hex(), 0
    while at in following:  # every success's old value is the previous success's new value
        at, chain = following[at], chain + 1
    assert chain == 4 * moves
    with open_object_store(url) as store:
        assert store.refs.get("race") == bytes.fromhex(at)


def test_ref_moves_race_between_processes(server: PgTestServer, tmp_path: Path) -> None:
    _cas_race(server, tmp_path, 40)


@pytest.mark.slow
def test_ref_moves_race_between_processes_at_full_size(server: PgTestServer, tmp_path: Path) -> None:
    _cas_race(server, tmp_path, 500)


def write_contacts_persistently(url: str, worker: int, count: int, log_path: str) -> None:
    """``write_contacts``, but a write the model gave up on (too many conflicts in a row) is made again.

    Under four-way contention on one head a writer can lose :data:`casstore.model.writes.MAX_ATTEMPTS`
    races in a row; the model then raises a clean StorageError and changes nothing.  The write is
    repeated (and counted); what the test checks is that no acknowledged write is lost.
    """
    gave_up = 0
    with open_store(url, create=False) as store:
        for i in range(count):
            while True:
                try:
                    store.save_contact_content("net", "g", f"p{worker}-{i}", {"worker": worker, "i": i})
                    break
                except StorageError as exc:
                    if "conflicting concurrent writes" not in str(exc):
                        raise
                    gave_up += 1
    Path(log_path).write_text(str(gave_up))


def _contact_race(server: PgTestServer, count: int, tmp_path: Path | None = None) -> None:
    url = server.fresh_url()
    with open_store(url) as store:
        store.save_group_state("net", "g", sample_group("g", 0))
    if tmp_path is None:
        run_in_processes(write_contacts, [(url, k, count) for k in range(4)], timeout=900)
    else:
        logs = [str(tmp_path / f"gave-up-{k}") for k in range(4)]
        run_in_processes(write_contacts_persistently, [(url, k, count, logs[k]) for k in range(4)], timeout=1800)
        print("writes the model gave up on and the worker repeated:", [Path(log).read_text() for log in logs])
    with open_store(url, create=False) as store:
        state = store.load_group_state("net", "g")
        assert state is not None
        assert set(state.contacts) == {f"p{k}-{i}" for k in range(4) for i in range(count)}
        assert verify(store).ok


def test_contact_writes_race_between_processes(server: PgTestServer) -> None:
    _contact_race(server, 25)


@pytest.mark.slow
def test_contact_writes_race_between_processes_at_full_size(server: PgTestServer, tmp_path: Path) -> None:
    _contact_race(server, 500, tmp_path)


# ---------------------------------------------------------------- a server restart in the middle of writes


def _writes_across_restarts(cluster: Any, restarts: int, schema: str) -> None:
    store = open_store(cluster.url(schema=schema, pool_size="2"))
    store.save_group_state("net", "g", sample_group("g", 0))
    acknowledged: dict[str, int] = {}
    failures: list[tuple[int, StorageError]] = []
    unexpected: list[BaseException] = []
    restarted = threading.Event()
    done = threading.Event()
    after_restart: list[bool] = []  # outcome of each write made once the last restart is over

    def writer() -> None:
        i = 0
        while not done.is_set():
            cid = f"c{i}"
            try:
                store.save_contact_content("net", "g", cid, i)
            except StorageError as exc:  # clean failures only: anything else is a bug
                failures.append((i, exc))
                if restarted.is_set():
                    after_restart.append(False)
            except BaseException as exc:
                unexpected.append(exc)
                return
            else:
                acknowledged[cid] = i
                if restarted.is_set():
                    after_restart.append(True)
                    if after_restart.count(True) >= 20:
                        return
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(restarts):
            time.sleep(0.3)
            cluster.restart()
        restarted.set()
        thread.join(120)
    finally:
        done.set()
        thread.join(30)
    assert unexpected == []
    assert after_restart.count(True) >= 20, (after_restart, failures)
    # once the server is back, a failed call (a connection that died while idle) is followed by a good one
    assert after_restart.count(False) <= 1, failures
    state = store.load_group_state("net", "g")
    assert state is not None
    for cid, value in acknowledged.items():  # nothing acknowledged is lost
        assert state.contacts[cid].content == value
    assert verify(store).ok
    store.close()


def test_a_server_restart_mid_writes_loses_nothing_acknowledged(cluster: Any) -> None:
    _writes_across_restarts(cluster, 1, "restart1")


@pytest.mark.slow
def test_repeated_server_restarts_mid_writes(cluster: Any) -> None:
    _writes_across_restarts(cluster, 4, "restart4")


def test_the_store_recovers_after_a_restart_without_reopening(cluster: Any) -> None:
    with open_object_store(cluster.url(schema="recovers")) as store:
        digest = store.blobs.put(codec.encode_value("before"))
        cluster.restart()
        try:
            store.refs.get("anything")  # may fail once: its pooled connection died with the server
        except StorageConnectionError as exc:
            assert open_store_is_transient(exc)
        assert store.blobs.get(digest) == codec.encode_value("before")
    with open_object_store(cluster.url(schema="recovers", retries="3", retry_delay="0.05")) as retrying:
        cluster.restart()
        assert retrying.blobs.get(digest) == codec.encode_value("before")  # retried: no error at all


# ---------------------------------------------------------------- the stateful model


_SERVER: list[PgTestServer] = []


@pytest.fixture(autouse=True)
def _model_server(request: pytest.FixtureRequest) -> None:
    if request.node.cls is TestPostgresNetworkModel:
        _SERVER[:] = [request.getfixturevalue("postgres_server")]
        request.getfixturevalue("private_pool_jitter")


class PostgresNetworkModel(NetworkStateMachine):
    def make_store(self) -> NetworkStore:
        return NetworkStore(open_object_store(_SERVER[0].fresh_url(pool_size="2")))


TestPostgresNetworkModel = PostgresNetworkModel.TestCase
TestPostgresNetworkModel.settings = settings(max_examples=15, stateful_step_count=25, deadline=None)
