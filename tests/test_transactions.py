"""Transactions with reads (issue #11, case 1), delete_network in one commit (case 2), failed saves write nothing (3a).

The process-level halves are in ``tests/test_contention.py`` (4 processes x 100
increments) and ``tests/test_crashes.py`` (SIGKILL at random points).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import FILE, LMDB, MEMORY, S3_IN_PROCESS, BackendCase

from casstore import Contact, Group, GroupState, NetworkState
from casstore.errors import (
    GroupNotFound,
    NetworkNotFound,
    RefConflict,
    SerializationError,
    StorageError,
)
from casstore.model import NetworkStore, rootrecords
from casstore.model import writes as writes_module
from casstore.model.refs import head_ref, snapshots_prefix, tip_ref
from casstore.model.transactions import NetworkTransaction
from casstore.store.base import ObjectStore, RefUpdate
from casstore.store.file import JOURNAL, FileStore
from casstore.store.lmdb import LmdbStore
from casstore.verify import verify

NET = "net"


def group(gid: str, contents: dict[str, Any] | None = None, **attributes: Any) -> GroupState:
    contents = contents or {}
    return GroupState(
        Group(gid, gid, contact_ids=list(contents), attributes=attributes),
        {cid: Contact(cid, gid, content=value) for cid, value in contents.items()},
        {},
    )


@pytest.fixture(params=[MEMORY, LMDB, FILE, S3_IN_PROCESS], ids=lambda case: case.name)
def case(request: pytest.FixtureRequest) -> BackendCase:
    backend: BackendCase = request.param
    for name in backend.fixtures:
        request.getfixturevalue(name)
    return backend


@pytest.fixture
def store(case: BackendCase, tmp_path: Path) -> Iterator[NetworkStore]:
    with NetworkStore(case.open(tmp_path, {})) as opened:
        yield opened


@pytest.fixture
def lmdb_store(tmp_path: Path) -> Iterator[NetworkStore]:
    with NetworkStore(LmdbStore(tmp_path / "lmdb")) as opened:
        yield opened


def fingerprint(store: NetworkStore) -> tuple[int, int, dict[str, bytes]]:
    """What a failed call must leave exactly as it was: object count, bytes, every ref."""
    stats = store.blobs.stats()
    return stats.objects, stats.stored_bytes, store.refs.list()


def counter(store: NetworkStore | NetworkTransaction) -> int:
    value = store.load_contact_content(NET, "g", "counter")
    return 0 if value is None else int(value)


def increment(tx: NetworkTransaction) -> int:
    value = counter(tx) + 1
    tx.save_contact_content(NET, "g", "counter", value)
    return value


# ---------------------------------------------------------------- case 1: read-modify-write


def test_case_1_a_batch_loses_an_update_that_transact_keeps(lmdb_store: NetworkStore) -> None:
    """The lost update, made deterministic: another write lands between the read and the commit."""
    store = lmdb_store
    store.save_group_state(NET, "g", group("g", {"counter": 0}))

    value = counter(store)
    store.save_contact_content(NET, "g", "counter", 10)  # the other writer
    with store.batch(NET) as batch:  # blind: writes what it computed from its stale read
        batch.save_contact_content(NET, "g", "counter", value + 1)
    assert counter(store) == 1  # the other writer's 10 is lost: why transact exists

    interfered: list[bool] = []

    def bump(tx: NetworkTransaction) -> int:
        value = counter(tx)
        if not interfered:
            interfered.append(True)
            store.save_contact_content(NET, "g", "counter", 10)  # lands after this attempt's read
        tx.save_contact_content(NET, "g", "counter", value + 1)
        return value + 1

    assert store.transact(NET, bump) == 11
    assert counter(store) == 11


@pytest.mark.parametrize("threaded", [MEMORY, LMDB, FILE], ids=lambda case: case.name)
def test_case_1_transact_from_threads_loses_no_update(threaded: BackendCase, tmp_path: Path) -> None:
    """(moto in-process is not safe for concurrent requests: tests/test_contention.py races S3 over HTTP.)"""
    store = NetworkStore(threaded.open(tmp_path, {}))
    store.save_group_state(NET, "g", group("g", {"counter": 0}))

    def work() -> None:
        for _ in range(25):
            store.transact(NET, increment)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter(store) == 100
    store.close()


def test_case_1_a_transaction_reads_its_start_state_and_its_own_writes(store: NetworkStore) -> None:
    store.save_group_state(NET, "g", group("g", {"a": 1, "b": "x" * 5000}, type="sensor"))
    with store.transaction(NET) as tx:
        assert tx.exists(NET)
        assert tx.load_contact_content(NET, "g", "a") == 1
        tx.save_contact_content(NET, "g", "a", 2)
        tx.save_contact_content(NET, "g", "new", {"v": [1, 2]})
        assert tx.load_contact_content(NET, "g", "a") == 2
        assert tx.load_contact_content(NET, "g", "b") == "x" * 5000
        state = tx.load_group_state(NET, "g")
        assert state is not None and state.group.contact_ids == ["a", "b", "new"]
        tx.save_group_state(NET, "h", group("h", {"big": "y" * 3000}, type="sensor"))
        assert [g.group.id for g in tx.query_groups(NET, type="sensor")] == ["g", "h"]
        tx.delete_group(NET, "g")
        assert tx.load_group_state(NET, "g") is None
        assert tx.load_contact_content(NET, "h", "big") == "y" * 3000
        inside = tx.load_network_state(NET)
        assert store.load_contact_content(NET, "g", "a") == 1  # nothing visible outside yet
    assert store.load_network_state(NET) == inside
    assert verify(store.objects).ok


def test_case_1_a_transaction_writes_what_one_batch_of_the_same_writes_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Previews built for reads stay in memory: the commit writes exactly the final state's new objects."""
    monkeypatch.setattr(rootrecords, "now_text", lambda: "2026-01-01T00:00:00.000000+00:00")  # one clock

    def run(store: NetworkStore, reads: bool) -> tuple[int, int, dict[str, bytes]]:
        store.save_group_state(NET, "g", group("g", {f"c{i}": i for i in range(300)}))
        writes = [("g", f"c{i}", {"v": i, "pad": "p" * (2000 if i % 7 == 0 else 10)}) for i in range(0, 300, 3)]
        if reads:
            with store.transaction(NET) as tx:
                for gid, cid, value in writes:
                    tx.save_contact_content(NET, gid, cid, value)
                    assert tx.load_contact_content(NET, gid, cid) == value
        else:
            with store.batch(NET) as batch:
                for gid, cid, value in writes:
                    batch.save_contact_content(NET, gid, cid, value)
        return fingerprint(store)

    with NetworkStore(LmdbStore(tmp_path / "a")) as a, NetworkStore(LmdbStore(tmp_path / "b")) as b:
        assert run(a, reads=True) == run(b, reads=False)


def test_case_1_a_transaction_commits_by_one_compare_and_swap_from_its_start_head(store: NetworkStore) -> None:
    store.save_group_state(NET, "g", group("g", {"counter": 0}))
    start = store.refs.get(head_ref(NET))
    with pytest.raises(RefConflict), store.transaction(NET) as tx:
        assert tx.start_head is not None
        tx.save_contact_content(NET, "g", "counter", counter(tx) + 1)
        store.save_contact_content(NET, "g", "counter", 10)  # moves the head under the transaction
        assert counter(tx) == 1  # the view stays on its own state
        before = fingerprint(store)
    assert fingerprint(store)[2] == before[2] and counter(store) == 10
    assert store.refs.get(head_ref(NET)) != start


def test_case_1_a_failed_block_writes_nothing(store: NetworkStore) -> None:
    store.save_group_state(NET, "g", group("g", {"a": 1}))
    before = fingerprint(store)
    with pytest.raises(KeyError), store.transaction(NET) as tx:
        tx.save_contact_content(NET, "g", "a", "z" * 10_000)
        tx.save_network_state(NET, NetworkState({"k": group("k", {"big": "q" * 50_000})}, "k", "k"))
        assert tx.load_contact_content(NET, "k", "big") == "q" * 50_000
        raise KeyError("the caller's own failure")
    assert fingerprint(store) == before
    with pytest.raises(StorageError, match="is over"):
        tx.load_contact_content(NET, "g", "a")
    with pytest.raises(StorageError, match="is over"):
        tx.save_contact_content(NET, "g", "a", 2)


def test_case_1_a_transaction_without_writes_commits_nothing_and_never_conflicts(store: NetworkStore) -> None:
    store.save_group_state(NET, "g", group("g", {"a": 1}))
    with store.transaction(NET) as tx:
        assert tx.load_contact_content(NET, "g", "a") == 1
        tx.delete_group(NET, "absent")  # an edit that changes nothing
        store.save_contact_content(NET, "g", "a", 2)
    assert store.load_contact_content(NET, "g", "a") == 2
    before = fingerprint(store)
    with store.transaction("nothing-here") as tx:
        assert not tx.exists("nothing-here") and tx.start_head is None
        assert tx.load_network_state("nothing-here") is None
        tx.delete_group("nothing-here", "g")  # deleting from an absent network: nothing, as outside
    assert fingerprint(store) == before


def test_case_1_transaction_errors_are_raised_by_the_call_that_caused_them(store: NetworkStore) -> None:
    store.save_group_state(NET, "g", group("g", {"a": 1}))
    with store.transaction(NET) as tx:
        with pytest.raises(GroupNotFound):
            tx.save_contact_content(NET, "nope", "a", 1)
        with pytest.raises(SerializationError):
            tx.save_contact_content(NET, "g", "a", {1, 2})  # a set is outside the data model
        with pytest.raises(SerializationError, match="this transaction writes network 'net'"):
            tx.save_contact_content("other", "g", "a", 1)
        with pytest.raises(SerializationError):
            tx.load_contact_content("other", "g", "a")
        tx.save_contact_content(NET, "g", "a", 2)  # the failed calls recorded nothing
    assert store.load_group_state(NET, "g") == group("g", {"a": 2})
    with pytest.raises(NetworkNotFound), store.transaction("absent") as tx:
        tx.save_contact_content("absent", "g", "a", 1)
    with store.transaction("created") as tx:  # a network created inside can then be written and read
        tx.save_group_state("created", "g", group("g"))
        tx.save_contact_content("created", "g", "a", 1)
        assert tx.exists("created") and tx.load_contact_content("created", "g", "a") == 1
    assert store.load_contact_content("created", "g", "a") == 1


def test_case_1_transact_runs_fn_again_on_the_new_head(lmdb_store: NetworkStore) -> None:
    store = lmdb_store
    store.save_group_state(NET, "g", group("g", {"counter": 0}))
    seen: list[int] = []

    def fn(tx: NetworkTransaction) -> str:
        seen.append(counter(tx))
        if len(seen) < 3:
            store.save_contact_content(NET, "g", "counter", 100 * len(seen))
        tx.save_contact_content(NET, "g", "counter", counter(tx) + 1)
        return f"attempt {len(seen)}"

    assert store.transact(NET, fn) == "attempt 3"
    assert seen == [0, 100, 200] and counter(store) == 201


def test_case_1_transact_gives_up_with_ref_conflict(lmdb_store: NetworkStore) -> None:
    store = lmdb_store
    store.save_group_state(NET, "g", group("g", {"counter": 0}))
    calls = []

    def always_beaten(tx: NetworkTransaction) -> None:
        calls.append(1)
        store.save_contact_content(NET, "g", "counter", len(calls) * 7)
        tx.save_contact_content(NET, "g", "counter", -1)

    with pytest.raises(RefConflict) as info:
        store.transact(NET, always_beaten, attempts=3)
    assert info.value.code == "REF_CONFLICT" and len(calls) == 3
    assert counter(store) == 21


def test_case_1_transact_stops_at_fn_s_own_error_and_checks_attempts(lmdb_store: NetworkStore) -> None:
    store = lmdb_store
    store.save_group_state(NET, "g", group("g", {"counter": 0}))
    before = fingerprint(store)
    calls = []

    def fails(tx: NetworkTransaction) -> None:
        calls.append(1)
        tx.save_contact_content(NET, "g", "counter", 5)
        raise GroupNotFound("from fn")

    with pytest.raises(GroupNotFound, match="from fn"):
        store.transact(NET, fails)
    assert calls == [1] and fingerprint(store) == before
    for bad in (0, -1, 1.5, "3", True):
        with pytest.raises(SerializationError, match="attempts"):
            store.transact(NET, increment, attempts=bad)  # type: ignore[arg-type]


def test_case_1_subscribers_hear_a_committed_transaction(store: NetworkStore) -> None:
    store.save_group_state(NET, "g", group("g", {"counter": 0}))
    heard: list[GroupState] = []
    store.subscribe(f"{NET}/g", heard.append)
    with store.transaction(NET) as tx:
        increment(tx)
        increment(tx)
    assert [state.contacts["counter"].content for state in heard] == [2]


def test_a_retried_group_save_carries_its_large_contents(lmdb_store: NetworkStore) -> None:
    """A write that lost a race on LMDB (whose losing commit is dropped whole) used to commit a head
    naming a large content that was never stored."""
    store = lmdb_store
    store.save_group_state(NET, "g", group("g"))
    real_commit = store.objects.commit
    raced: list[bool] = []

    def racing_commit(frames: Any, updates: Any) -> None:
        if not raced:
            raced.append(True)
            real_commit(*store_one_write())
        real_commit(frames, updates)

    def store_one_write() -> tuple[Any, Any]:
        head = store.refs.get(head_ref(NET))
        from casstore.model.transaction import Transaction

        tx = Transaction(store._reader, NET, head)
        tx.set_content("g", "other", b"\x01")
        new = tx.commit()
        return tx.pending.frames(), [RefUpdate(head_ref(NET), head, new)]

    store._writer.objects = _CommitThrough(store.objects, racing_commit)
    store.save_group_state(NET, "h", group("h", {"big": "x" * 5000}))
    assert raced and store.load_contact_content(NET, "h", "big") == "x" * 5000
    assert verify(store.objects).ok


class _CommitThrough(ObjectStore):
    def __init__(self, inner: ObjectStore, commit: Any) -> None:
        self.blobs, self.refs, self.url = inner.blobs, inner.refs, inner.url
        self.commit = commit  # type: ignore[method-assign]


# ---------------------------------------------------------------- case 2: delete_network


def with_snapshots(store: NetworkStore, network_id: str, count: int) -> None:
    store.save_group_state(network_id, "g", group("g", {"a": 0}))
    for i in range(count):
        store.save_contact_content(network_id, "g", "a", i)
        store.save_snapshot(network_id, f"s{i}")


def network_refs(store: NetworkStore, network_id: str) -> dict[str, bytes]:
    return {name: value for name, value in store.refs.list().items() if name.startswith(head_ref(network_id)[:-4])}


def test_case_2_delete_network_moves_every_ref_in_one_commit_head_first(store: NetworkStore) -> None:
    with_snapshots(store, NET, 12)
    with_snapshots(store, "kept", 2)
    kept = network_refs(store, "kept")
    snapshots = store.refs.list(snapshots_prefix(NET))
    commits: list[list[RefUpdate]] = []
    real_commit = store.objects.commit

    def counting(frames: Any, updates: Any) -> None:
        commits.append(list(updates))
        real_commit(frames, updates)

    store._writer.objects = _CommitThrough(store.objects, counting)
    store.delete_network(NET)
    assert len(commits) == 1
    (updates,) = commits
    assert [u.name for u in updates[:2]] == [head_ref(NET), tip_ref(NET)]  # S3 applies in order: head first
    assert sorted(u.name for u in updates[2:]) == sorted(snapshots) and len(snapshots) == 12
    assert len(updates) == 14 and all(u.new is None and u.required for u in updates)
    assert network_refs(store, NET) == {} and not store.exists(NET) and store.list_snapshots(NET) == []
    assert network_refs(store, "kept") == kept
    store.delete_network(NET)  # absent: a no-op
    assert len(commits) == 1


def test_case_2_delete_network_reads_again_after_a_concurrent_change(lmdb_store: NetworkStore) -> None:
    store = lmdb_store
    with_snapshots(store, NET, 3)
    real_commit = store.objects.commit
    raced: list[bool] = []

    def racing(frames: Any, updates: Any) -> None:
        if not raced:
            raced.append(True)
            store.save_snapshot(NET, "meanwhile")  # moves the tip: the planned delete conflicts
        real_commit(frames, updates)

    store._writer.objects = _CommitThrough(store.objects, racing)
    store.delete_network(NET)
    assert raced and network_refs(store, NET) == {}


def test_case_2_a_file_commit_left_half_done_is_finished_by_the_next_open(tmp_path: Path) -> None:
    with FileStore(tmp_path / "files") as files, NetworkStore(files) as store:
        with_snapshots(store, NET, 5)
        refs = files.refs
        assert not (tmp_path / "files" / JOURNAL).exists()
        real_apply = refs._apply

        def crash_after_one(moves: list[tuple[str, bytes | None]]) -> None:
            real_apply(moves[:1])
            raise OSError(28, "No space left on device")  # the process dies here, in effect

        refs._apply = crash_after_one  # type: ignore[method-assign]
        with pytest.raises(StorageError, match="completed by the next writer"):
            store.delete_network(NET)
        assert (tmp_path / "files" / JOURNAL).exists()
    with NetworkStore(FileStore(tmp_path / "files")) as reopened:  # open finishes the journal
        assert network_refs(reopened, NET) == {} and not (tmp_path / "files" / JOURNAL).exists()
        assert verify(reopened.objects).ok


def test_case_2_a_reader_finishes_a_dead_writer_s_journal_before_reading(tmp_path: Path) -> None:
    files = FileStore(tmp_path / "files")
    with NetworkStore(files) as store, NetworkStore(FileStore(tmp_path / "files")) as other:
        with_snapshots(store, NET, 3)
        refs = files.refs
        moves: list[tuple[str, bytes | None]] = [(name, None) for name in sorted(network_refs(store, NET))]
        refs._write_journal(moves)  # a writer that died after its journal, before any move
        assert other.list_snapshots(NET) == [] and not other.exists(NET)
        assert not (tmp_path / "files" / JOURNAL).exists()


def test_case_2_a_damaged_file_journal_is_a_clear_error(tmp_path: Path) -> None:
    with FileStore(tmp_path / "files") as files:
        files.refs.compare_and_swap("x/a", None, files.blobs.put(b"\x01"))
        (tmp_path / "files" / JOURNAL).write_text("casstore refs journal 1\nset x/a not-an-id\n")
        with pytest.raises(StorageError, match=r"journal .* is damaged"):
            files.refs.get("x/a")


def test_case_2_file_commit_checks_every_move_before_any_lands(tmp_path: Path) -> None:
    with FileStore(tmp_path / "files") as files:
        a, b = files.blobs.put(b"\x01"), files.blobs.put(b"\x02")
        files.refs.compare_and_swap("x/a", None, a)
        with pytest.raises(RefConflict):
            files.commit([], [RefUpdate("x/new", None, a), RefUpdate("x/a", b, a)])
        assert files.refs.list() == {"x/a": a}
        from casstore.errors import InvalidRefName

        with pytest.raises(InvalidRefName, match="clashes"):
            files.commit([], [RefUpdate("x/b", None, a), RefUpdate("x/a/deeper", None, a)])
        with pytest.raises(InvalidRefName, match="clashes"):
            files.commit([], [RefUpdate("y/c", None, a), RefUpdate("y/c/d", None, a)])
        assert files.refs.list() == {"x/a": a}
        # later updates see earlier ones; a skipped optional one changes nothing
        files.commit([], [RefUpdate("x/a", a, b), RefUpdate("x/a", b, a), RefUpdate("x/t", b, a, required=False)])
        assert files.refs.list() == {"x/a": a}
        assert not (tmp_path / "files" / JOURNAL).exists()


# ---------------------------------------------------------------- case 3a: failed saves write nothing


def large_state(groups: int, bad_last: bool = False) -> NetworkState:
    states = {f"g{i}": group(f"g{i}", {f"c{j}": f"{i}-{j}-" + "x" * 20_000 for j in range(4)}) for i in range(groups)}
    if bad_last:
        states[f"g{groups - 1}"].contacts["c3"] = Contact("c3", f"g{groups - 1}", content={"bad": {1, 2}})
    return NetworkState(states, "g0", "g0")


def test_case_3a_a_save_past_the_early_flush_whose_last_group_is_invalid_writes_nothing(
    store: NetworkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writes_module, "FLUSH_BYTES", 100_000)  # the 32 MB flush, in small
    store.save_group_state(NET, "g", group("g", {"a": 1}))
    before = fingerprint(store)
    with pytest.raises(SerializationError):
        store.save_network_state("big", large_state(12, bad_last=True))
    with pytest.raises(SerializationError):
        store.save_network_state("big", NetworkState(large_state(3).groups, current_group_id=5))  # type: ignore[arg-type]
    with pytest.raises(StorageError):
        store.save_network_state(1.5, large_state(3))  # type: ignore[arg-type]
    with pytest.raises(SerializationError), store.batch(NET) as batch:
        batch.save_network_state(NET, large_state(12, bad_last=True))
    with pytest.raises(KeyError), store.batch(NET) as batch:  # a valid state in a block that fails
        batch.save_network_state(NET, large_state(12))
        raise KeyError("later")
    assert fingerprint(store) == before


def test_case_3a_a_save_past_the_early_flush_stores_every_group(
    store: NetworkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writes_module, "FLUSH_BYTES", 100_000)
    state = large_state(12)
    store.save_network_state("big", state)
    assert store.load_network_state("big") == state
    assert verify(store.objects).ok
    with store.batch("big2") as batch:
        batch.save_network_state("big2", state)
    assert store.load_network_state("big2") == state


@pytest.mark.slow
def test_case_3a_a_save_over_32_mb_whose_last_group_is_invalid_writes_nothing(lmdb_store: NetworkStore) -> None:
    store = lmdb_store
    before = fingerprint(store)
    state = large_state(420, bad_last=True)  # 420 groups x 4 x 20 KB: about 34 MB of large contents
    with pytest.raises(SerializationError):
        store.save_network_state("big", state)
    assert fingerprint(store) == before
