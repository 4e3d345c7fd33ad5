"""Group commit (casstore.model.groupcommit): concurrent writes of one process share one head move.

A group behaves exactly as its writes applied one after another in arrival order:
the same final state, and each write raises what it would have raised alone
(checked by hypothesis, with failing writes mixed in).  With real threads on
LMDB: writes queued behind a busy commit go into the next one together, a bad
write fails only its own caller, an interrupted leader's writes are handed on,
and a subscriber writing from inside a commit does not wait for itself.  A commit
the backend refused fails the group at once; one refused for a value is retried
write by write.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from txn_workers import group_with

from casstore.errors import (
    GroupNotFound,
    NetworkNotFound,
    SerializationError,
    StorageConnectionError,
    StorageError,
)
from casstore.model import NetworkStore
from casstore.model.groupcommit import QueuedWrite
from casstore.store.base import RefUpdate
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore

NET = "net"
GROUPS = ["a", "b", "c"]
CONTACTS = ["x", "y"]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("content"), st.sampled_from(GROUPS), st.sampled_from(CONTACTS), st.integers(0, 9)),
        st.tuples(st.just("group"), st.sampled_from(GROUPS), st.integers(0, 9)),
        st.tuples(st.just("delete_contact"), st.sampled_from(GROUPS), st.sampled_from(CONTACTS)),
        st.tuples(st.just("delete_group"), st.sampled_from(GROUPS)),
        st.tuples(st.just("resolve"), st.sampled_from(GROUPS), st.sampled_from(CONTACTS)),
    ),
    min_size=1,
    max_size=12,
)


def perform(store: NetworkStore, op: tuple[Any, ...]) -> None:
    kind, gid, *rest = op
    if kind == "content":
        store.save_contact_content(NET, gid, rest[0], {"v": rest[1]})
    elif kind == "group":
        store.save_group_state(NET, gid, group_with(gid, {"x": rest[0]}))
    elif kind == "delete_contact":
        store.delete_contact(NET, gid, rest[0])
    elif kind == "delete_group":
        store.delete_group(NET, gid)
    else:  # nothing is ever in conflict here: ConflictNotFound
        store.resolve_conflict(NET, gid, rest[0], "ours")


def seeded() -> NetworkStore:
    store = NetworkStore(MemoryStore())
    store.save_group_state(NET, "a", group_with("a", {"x": 0, "y": 1}))
    return store


def queued(store: NetworkStore, op: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch) -> QueuedWrite:
    """The write ``op`` hands the writer, queued instead of run."""
    caught: list[QueuedWrite] = []
    with monkeypatch.context() as patch:
        patch.setattr(store._writer, "write", lambda _net, apply, create: caught.append(QueuedWrite(apply, create)))
        try:
            perform(store, op)
        except IndexError:  # resolve_conflict returns what its write settled: nothing, as it did not run
            assert op[0] == "resolve"
    assert len(caught) == 1
    return caught[0]


@settings(max_examples=60, deadline=None)
@given(ops)
@example([("group", "a", 0), ("content", "a", "y", 0)])  # a contact re-created after its group was replaced
def test_a_group_commits_what_its_writes_one_by_one_would(batch: list[tuple[Any, ...]]) -> None:
    one_by_one, grouped = seeded(), seeded()
    raised: list[type[BaseException] | None] = []
    for op in batch:
        try:
            perform(one_by_one, op)
            raised.append(None)
        except Exception as exc:
            raised.append(type(exc))
    with pytest.MonkeyPatch.context() as monkeypatch:
        group = [queued(grouped, op, monkeypatch) for op in batch]
    grouped._writer.commit_group(NET, group)
    assert all(write.done for write in group)
    assert [type(write.error) if write.error else None for write in group] == raised
    assert grouped.load_network_state(NET) == one_by_one.load_network_state(NET)


def test_on_an_absent_network_a_write_after_one_that_creates_it_lands(monkeypatch: pytest.MonkeyPatch) -> None:
    store = NetworkStore(MemoryStore())
    early = queued(store, ("content", "a", "x", 1), monkeypatch)
    create = queued(store, ("group", "a", 5), monkeypatch)
    late = queued(store, ("content", "a", "x", 2), monkeypatch)
    store._writer.commit_group(NET, [early, create, late])
    assert isinstance(early.error, NetworkNotFound)
    assert create.error is None and late.error is None
    assert store.load_contact_content(NET, "a", "x") == {"v": 2}


@contextmanager
def first_commit_held(store: NetworkStore, queued_behind: int) -> Iterator[list[int]]:
    """The first commit waits until ``queued_behind`` writes queue behind it; yields each commit's size."""
    writer, sizes = store._writer, []
    commit_group = writer.commit_group

    def held(network_id: str, group: list[QueuedWrite]) -> None:
        sizes.append(len(group))
        if len(sizes) == 1:
            deadline = time.monotonic() + 30
            while len(writer._groups._queues.get(network_id, ())) < queued_behind:
                assert time.monotonic() < deadline, "the other writes never queued"
                time.sleep(0.001)
        commit_group(network_id, group)

    writer._groups._commit_group = held
    try:
        yield sizes
    finally:
        writer._groups._commit_group = commit_group


def in_threads(calls: list[Callable[[], None]]) -> list[BaseException | None]:
    """Run each call in its own thread, the first alone until it is committing; what each raised."""
    outcomes: list[BaseException | None] = [None] * len(calls)

    def run(number: int) -> None:
        try:
            calls[number]()
        except BaseException as exc:
            outcomes[number] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    threads[0].start()
    time.sleep(0.05)
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    return outcomes


def test_writes_queued_behind_a_commit_go_into_the_next_one_and_a_bad_one_fails_alone(tmp_path: Path) -> None:
    with NetworkStore(LmdbStore(tmp_path / "store")) as store:
        store.save_group_state(NET, "a", group_with("a", {f"c{n}": 0 for n in range(8)}))
        calls: list[Callable[[], None]] = [
            partial(store.save_contact_content, NET, "a", f"c{n}", n + 100) for n in range(8)
        ]
        calls.insert(4, partial(store.save_contact_content, NET, "missing", "c0", 1))
        with first_commit_held(store, queued_behind=len(calls) - 1) as sizes:
            outcomes = in_threads(calls)
        assert sizes == [1, 8]  # the first write alone, then everything that queued behind it
        assert isinstance(outcomes.pop(4), GroupNotFound)
        assert outcomes == [None] * 8
        assert {cid: c.content for cid, c in store.load_group_state(NET, "a").contacts.items()} == {  # type: ignore[union-attr]
            f"c{n}": n + 100 for n in range(8)
        }


def test_an_interrupted_leader_hands_the_others_writes_on(tmp_path: Path) -> None:
    with NetworkStore(LmdbStore(tmp_path / "store")) as store:
        store.save_group_state(NET, "a", group_with("a", {f"c{n}": 0 for n in range(4)}))
        commit_transaction = store._writer.commit_transaction
        interrupted: list[int] = []

        def interrupting(tx: Any, ref: str, head: bytes | None, also: Sequence[RefUpdate] = ()) -> bytes:
            if not interrupted and len(sizes) == 2:  # the second commit: three writes
                interrupted.append(1)
                raise KeyboardInterrupt
            return commit_transaction(tx, ref, head, also)

        store._writer.commit_transaction = interrupting  # type: ignore[method-assign]
        calls: list[Callable[[], None]] = [
            partial(store.save_contact_content, NET, "a", f"c{n}", n + 100) for n in range(4)
        ]
        with first_commit_held(store, queued_behind=3) as sizes:
            outcomes = in_threads(calls)
        assert interrupted and sizes[:2] == [1, 3]
        assert sum(isinstance(outcome, KeyboardInterrupt) for outcome in outcomes) == 1
        leader = next(n for n, outcome in enumerate(outcomes) if outcome is not None)
        contents = {cid: c.content for cid, c in store.load_group_state(NET, "a").contacts.items()}  # type: ignore[union-attr]
        # the interrupted leader's own write is not retried for it; every other write landed
        assert contents == {f"c{n}": (0 if n == leader else n + 100) for n in range(4)}


def test_a_subscriber_writing_the_network_it_was_told_about_does_not_wait_for_itself(tmp_path: Path) -> None:
    with NetworkStore(LmdbStore(tmp_path / "store")) as store:
        store.save_group_state(NET, "a", group_with("a", {"x": 0, "y": 0}))
        echoed: list[Any] = []

        def echo(state: Any) -> None:  # called inside the commit that moved the head, in the writer's thread
            x = state.contacts["x"].content
            if x != state.contacts["y"].content:
                echoed.append(x)
                store.save_contact_content(NET, "a", "y", x)

        store.subscribe(f"{NET}/a", echo)
        writer = threading.Thread(target=store.save_contact_content, args=(NET, "a", "x", 7), daemon=True)
        writer.start()
        writer.join(30)
        assert not writer.is_alive(), "the write waited for its own commit"
        assert echoed == [7]
        assert store.load_contact_content(NET, "a", "y") == 7


@pytest.mark.parametrize(
    ("failure", "commits"),
    [(StorageConnectionError("backend down"), 1), (SerializationError("refused when the root was built"), 4)],
)
def test_a_failed_commit_fails_the_group_at_once_if_the_backend_failed_else_write_by_write(
    failure: StorageError, commits: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = seeded()
    group = [queued(store, ("content", "a", "x", n), monkeypatch) for n in range(3)]
    attempts: list[int] = []

    def failing(tx: Any, ref: str, head: bytes | None) -> bytes:
        attempts.append(1)
        raise type(failure)(str(failure))

    monkeypatch.setattr(store._writer, "commit_transaction", failing)
    store._writer.commit_group(NET, group)
    assert len(attempts) == commits  # the backend's failure is not retried once per write
    assert all(type(write.error) is type(failure) and str(write.error) == str(failure) for write in group)
    assert len({id(write.error) for write in group}) == 3  # each caller raises an exception of its own
    assert store.load_contact_content(NET, "a", "x") == 0
