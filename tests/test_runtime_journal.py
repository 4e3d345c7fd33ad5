"""The live image's journal (casstore.runtime.journal): durable entries, folds, recovery, failures.

The crash tests (``test_runtime_crash.py``) kill writers whose immediate, batch and
transactional flushes go through the journal on LMDB; these check each piece alone.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_runtime import NET, FlakyStore, network

import casstore
from casstore import codec
from casstore.errors import StorageError
from casstore.gc import collect_garbage
from casstore.model import Contact, Group, GroupState, NetworkStore
from casstore.runtime import NetworkImage, SchedulerStorageConfig, recover_journal
from casstore.runtime.flushing import Persisting
from casstore.runtime.journal import Journal, JournalEntry, pending_entries, read_entries
from casstore.store import open_object_store
from casstore.store.base import RefUpdate


def lmdb_store(tmp_path: Path) -> NetworkStore:
    store = casstore.open_store(str(tmp_path / "store"))
    store.save_network_state(NET, network())
    return store


def content(store: NetworkStore, gid: str, cid: str) -> object:
    return store.load_contact_content(NET, gid, cid)


def wait_folded(live: NetworkImage, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while live.status().journal_entries:
        assert time.monotonic() < deadline, "the background thread never folded the journal"
        time.sleep(0.005)


def test_a_cycle_is_durable_in_the_journal_and_folded_into_the_head_with_its_entry_deleted(tmp_path: Path) -> None:
    store = lmdb_store(tmp_path)
    head = store.objects.refs.get(f"networks/{NET}/head")
    live = NetworkImage(store, NET, SchedulerStorageConfig("immediate"), flush_process=False)
    live.set("g0", "c0", "journalled")
    assert live.cycle_done() and live.durable()
    assert live.status().flushes == 1
    wait_folded(live)
    assert content(store, "g0", "c0") == "journalled"
    assert store.objects.refs.get(f"networks/{NET}/head") != head
    assert pending_entries(store, NET) == []  # deleted by the fold's own commit
    assert live.status().folds >= 1
    live.close()
    store.close()


def test_entries_left_by_a_dead_image_are_folded_oldest_first_by_the_next_image(tmp_path: Path) -> None:
    store = lmdb_store(tmp_path)
    journal = Journal(store, NET)
    for value in ("first", "second", "third"):  # as a killed image leaves them: committed, never folded
        entry, rejected = journal.append({("g0", "c0"): value, ("g1", f"c-{value}"[:3]): value})
        assert entry is not None and not rejected
    assert len(pending_entries(store, NET)) == 3
    assert content(store, "g0", "c0") == 0  # the head does not have them yet
    assert collect_garbage(store, grace_minutes=0).swept == 0  # the entries' objects are kept
    assert casstore.verify(store).ok
    live = NetworkImage(store, NET, SchedulerStorageConfig("manual"))
    assert live.get("g0", "c0") == "third"
    assert content(store, "g0", "c0") == "third" and pending_entries(store, NET) == []
    assert recover_journal(store, NET) is None  # nothing left
    live.close()
    store.close()


def test_deleting_a_network_deletes_its_journal_so_a_new_network_of_that_id_starts_clean(tmp_path: Path) -> None:
    store = lmdb_store(tmp_path)
    Journal(store, NET).append({("g0", "c0"): "of the deleted network"})
    Journal(store, "other").append({("g0", "c0"): "kept"})
    store.delete_network(NET)
    assert pending_entries(store, NET) == []  # gone in the same commit as the head
    assert len(pending_entries(store, "other")) == 1  # another network's journal is not touched
    store.save_network_state(NET, network())
    live = NetworkImage(store, NET, SchedulerStorageConfig("manual"))  # recovers before it loads
    assert live.get("g0", "c0") == 0 and content(store, "g0", "c0") == 0
    live.close()
    store.close()


def test_a_version_1_entry_left_by_an_earlier_build_is_folded(tmp_path: Path) -> None:
    """Version 1 held each content encoded alone; version 2 one encoding of the list (docs/format.md)."""
    store = lmdb_store(tmp_path)
    rows = [["g0", "c0", codec.encode_value({"old": "format"})], ["g1", "c1", codec.encode_value([1, 2])]]
    body = codec.encode({"t": "journal", "v": 1, "net": NET, "c": rows})
    ((digest, frame),) = codec.frame_many([body])
    store.objects.commit([(digest, frame)], [RefUpdate(f"journal/{NET}/{0:020d}-{0:08x}-{0:010d}", None, digest)])
    assert recover_journal(store, NET) is not None
    assert content(store, "g0", "c0") == {"old": "format"} and content(store, "g1", "c1") == [1, 2]
    assert pending_entries(store, NET) == []
    store.close()


def test_contents_that_look_like_links_or_nest_to_the_limit_go_through_an_entry_unchanged(tmp_path: Path) -> None:
    store = lmdb_store(tmp_path)
    cid_like = codec.link(bytes(32))  # bytes a plain encode would write as a link (tag 42)
    deepest: object = 0
    for _ in range(codec.MAX_DEPTH):
        deepest = [deepest]
    too_deep: object = [deepest]
    values = {("g0", "c0"): cid_like, ("g0", "c1"): {"b": [cid_like]}, ("g1", "c0"): deepest}
    entry, rejected = Journal(store, NET).append({**values, ("g1", "c1"): too_deep})
    assert entry is not None and [(r.group_id, r.contact_id) for r in rejected] == [("g1", "c1")]
    (read,) = read_entries(store, [JournalEntry(entry.name, entry.digest)])
    assert read.contents == values
    store.close()


def test_a_bad_value_is_rejected_when_journalled_and_the_rest_is_durable(tmp_path: Path) -> None:
    store = lmdb_store(tmp_path)
    errors: list[StorageError] = []
    live = NetworkImage(store, NET, SchedulerStorageConfig("immediate"), on_error=errors.append, flush_process=False)
    live.set("g0", "c0", {"ok": 1})
    live.set("g0", "c1", {1, 2})  # a set is outside the data model
    assert live.cycle_done() is False
    assert [(r.group_id, r.contact_id) for r in live.status().rejected] == [("g0", "c1")]
    assert errors and "g0/c1" in str(errors[0])
    live.close()
    assert content(store, "g0", "c0") == {"ok": 1} and content(store, "g0", "c1") == 0
    store.close()


def test_a_failed_entry_keeps_its_changes_dirty_and_a_failed_fold_keeps_its_entries(tmp_path: Path) -> None:
    flaky = FlakyStore(open_object_store(str(tmp_path / "store")))
    store = NetworkStore(flaky)
    store.save_network_state(NET, network())
    errors: list[StorageError] = []
    live = NetworkImage(store, NET, SchedulerStorageConfig("immediate"), on_error=errors.append)
    assert live._worker is None  # a wrapped store: folds run in this process, where the failures are injected
    flaky.down = True
    live.set("g0", "c0", "kept")
    assert live.cycle_done() is False and not live.durable()
    assert live.status().dirty == 1 and live.status().failures == 1 and errors
    flaky.down = False
    assert live.cycle_done() and live.status().journal_entries in (0, 1)
    wait_folded(live)
    live._flusher.stop()  # type: ignore[union-attr]  # folds from here on are the test's own
    live.set("g0", "c0", "entry kept")
    assert live.cycle_done() and live.status().journal_entries == 1
    flaky.down = True  # now the fold fails: the entry stays in the journal, and the image durable
    assert live._fold() is False
    assert live.durable() and live.status().journal_entries == 1 and live.status().failures == 1
    assert content(store, "g0", "c0") == "kept"
    flaky.down = False
    assert live.flush()  # an explicit flush folds what the journal holds
    assert content(store, "g0", "c0") == "entry kept" and pending_entries(store, NET) == []
    live.close()
    store.close()


def test_an_entry_another_image_folded_first_is_not_an_error(tmp_path: Path) -> None:
    store = lmdb_store(tmp_path)
    a = NetworkImage(store, NET, SchedulerStorageConfig("immediate"), flush_process=False)
    a._flusher.stop()  # type: ignore[union-attr]  # a's entries stay unfolded until its own flush
    a.set("g0", "c0", "from a")
    assert a.cycle_done() and a.status().journal_entries == 1
    b = NetworkImage(casstore.NetworkStore(store.objects), NET, SchedulerStorageConfig("manual"))
    assert b.get("g0", "c0") == "from a"  # b folded a's entry before loading
    b.set("g0", "c0", "from b, later")
    assert b.save()
    a.set("g0", "c1", "a again")
    assert a.flush() and a.status().journal_entries == 0
    # a's entry is not written a second time over b's later change
    assert content(store, "g0", "c0") == "from b, later" and content(store, "g0", "c1") == "a again"
    assert a.get("g0", "c0") == "from b, later"  # taken in from the head
    assert pending_entries(store, NET) == []
    a.close()
    b.close()
    store.close()


def test_a_whole_group_change_goes_to_the_head_with_the_journal_folded_in(tmp_path: Path) -> None:
    store = lmdb_store(tmp_path)
    live = NetworkImage(store, NET, SchedulerStorageConfig("immediate"), flush_process=False)
    live._flusher.stop()  # type: ignore[union-attr]
    live.set("g0", "c0", "journalled")
    assert live.cycle_done() and live.status().journal_entries == 1
    live.delete_group("g2")
    live.set("g0", "c0", "newer")
    assert live.cycle_done() and live.status().journal_entries == 0
    assert content(store, "g0", "c0") == "newer" and store.load_group_state(NET, "g2") is None
    live.close()
    store.close()


def test_a_group_put_or_deleted_after_an_unfolded_entry_is_not_overwritten_by_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole-group flush folds the older entries in: their changes to that group are superseded."""
    monkeypatch.setattr(Persisting, "_fold", lambda self: False)  # no background fold: the entries wait
    store = lmdb_store(tmp_path)
    live = NetworkImage(store, NET, SchedulerStorageConfig("immediate"), flush_process=False)
    live.set("g0", "c0", "journalled")
    live.set("g1", "c0", "journalled")
    live.set("g2", "c0", "journalled")
    assert live.cycle_done() and live.status().journal_entries == 1
    live.put_group("g0", GroupState(Group("g0", "g0", contact_ids=["c0"]), {"c0": Contact("c0", "g0", "replaced")}))
    live.delete_group("g1")
    assert live.cycle_done()  # a whole-group change: flushed to the head, the entry folded in
    assert live.status().journal_entries == 0 and live.status().rejected == []
    assert live.get("g0", "c0") == content(store, "g0", "c0") == "replaced"
    after = store.load_network_state(NET)
    assert after is not None and "g1" not in after.groups  # not re-created, nothing rejected
    assert content(store, "g2", "c0") == "journalled"  # the entry's other changes are in the head
    live.close()
    store.close()


def test_a_fold_that_takes_in_another_writers_group_keeps_the_changes_being_journalled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A background fold may run while an entry is being written: that entry's changes are the image's
    own (not yet in the head), and another writer's group taken in by the fold must not replace them."""
    store = lmdb_store(tmp_path)
    live = NetworkImage(store, NET, SchedulerStorageConfig("immediate"), flush_process=False)
    live._flusher.stop()  # type: ignore[union-attr]  # folds only when the test says
    live.set("g0", "c0", "first")
    assert live.cycle_done()  # one entry, not folded
    store.save_contact_content(NET, "g0", "c1", "another writer's")  # the head moves under the image
    entered, go = threading.Event(), threading.Event()
    append = Journal.append

    def held_append(self: Journal, contents: Any) -> Any:
        entered.set()
        assert go.wait(10)
        return append(self, contents)

    monkeypatch.setattr(Journal, "append", held_append)

    acknowledged: list[bool] = []

    def write_one() -> None:
        live.set("g0", "c2", "mine")
        acknowledged.append(live.cycle_done())

    writer = threading.Thread(target=write_one)
    writer.start()
    assert entered.wait(10)
    assert live._fold()  # folds the first entry, sees the other writer's change, takes g0 in
    go.set()
    writer.join(10)
    assert acknowledged == [True]
    assert live.get("g0", "c1") == "another writer's" and live.get("g0", "c0") == "first"
    assert live.get("g0", "c2") == "mine"  # the change being journalled meanwhile
    assert live.flush()
    assert content(store, "g0", "c2") == "mine" and content(store, "g0", "c1") == "another writer's"
    live.close()
    store.close()


def test_a_store_whose_commit_is_not_one_transaction_has_no_journal(tmp_path: Path) -> None:
    store = casstore.open_store(f"file://{tmp_path / 'files'}")
    store.save_network_state(NET, network())
    with pytest.raises(StorageError, match="cannot hold one"):
        NetworkImage(store, NET, SchedulerStorageConfig("immediate"), journal=True)
    live = NetworkImage(store, NET, SchedulerStorageConfig("immediate"))
    live.set("g0", "c0", "direct")
    assert live.cycle_done() and content(store, "g0", "c0") == "direct"  # in the head at once
    assert live.status().folds == 0
    live.close()
    store.close()


KEYS = [(f"g{g}", f"c{c}") for g in range(3) for c in range(4)]
GROUPS = sorted({gid for gid, _ in KEYS})
#: What a contact of a deleted group reads as, in the model and in the store.
GONE = "(gone)"
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(KEYS), st.integers(0, 99)),
        st.tuples(st.just("put"), st.sampled_from(GROUPS), st.integers(100, 199)),
        st.tuples(st.just("delete"), st.sampled_from(GROUPS)),
        st.tuples(st.sampled_from(["persist", "fold", "flush", "crash"])),
    ),
    max_size=40,
)


def values_of(state: Any) -> dict[tuple[str, str], Any]:
    """Each of :data:`KEYS` in a network state (:data:`GONE` where its group is not there)."""
    groups = state.groups if state is not None else {}
    return {(g, c): groups[g].contacts[c].content if g in groups else GONE for g, c in KEYS}


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
@example(ops=[("set", ("g0", "c0"), 5), ("persist",), ("put", "g0", 150), ("flush",)])  # the entry is older
@example(ops=[("set", ("g1", "c2"), 5), ("persist",), ("delete", "g1"), ("persist",), ("crash",)])
def test_random_runs_with_crashes_keep_every_persisted_change_and_fold_to_the_image(ops: list[tuple[Any, ...]]) -> None:
    """Sets, whole groups put and deleted, entries, folds, flushes and crashes (the image dropped,
    its entries left): after each crash the next image holds exactly what was persisted; the head
    equals the image after a flush."""
    with tempfile.TemporaryDirectory() as tmp:
        store = casstore.open_store(str(Path(tmp) / "store"))
        store.save_network_state(NET, network(contacts=4))
        current: dict[tuple[str, str], Any] = {key: 0 for key in KEYS}
        persisted = dict(current)

        def opened() -> NetworkImage:
            image = NetworkImage(store, NET, SchedulerStorageConfig("batch", batch_size=1000), flush_process=False)
            image._flusher.stop()  # type: ignore[union-attr]  # folds only when the test says
            return image

        live = opened()
        for op in ops:
            if op[0] == "set":
                if current[op[1]] != GONE:  # a deleted group takes no sets
                    live.set(op[1][0], op[1][1], op[2])
                    current[op[1]] = op[2]
            elif op[0] == "put":
                cids = [cid for gid, cid in KEYS if gid == op[1]]
                contacts = {cid: Contact(cid, op[1], op[2]) for cid in cids}
                live.put_group(op[1], GroupState(Group(op[1], op[1], contact_ids=cids), contacts))
                current.update({(op[1], cid): op[2] for cid in cids})
            elif op[0] == "delete":
                live.delete_group(op[1])
                current.update({key: GONE for key in KEYS if key[0] == op[1]})
            elif op[0] == "persist":
                assert live.persist()
                persisted = dict(current)
            elif op[0] == "fold":
                assert live._fold()
            elif op[0] == "flush":
                assert live.flush()
                persisted = dict(current)
                assert values_of(store.load_network_state(NET)) == current
            else:  # the process dies: nothing more of this image is written
                live = opened()
                assert values_of(live.state) == persisted
                assert values_of(store.load_network_state(NET)) == persisted
                assert pending_entries(store, NET) == []
                current = dict(persisted)
        assert live.flush()
        assert values_of(store.load_network_state(NET)) == current
        assert values_of(live.state) == current
        store.close()


def test_on_postgresql_cycles_are_journalled_folded_and_recovered(tmp_path: Path, postgres_server: Any) -> None:
    store = casstore.open_store(postgres_server.store_url(tmp_path / "pg"))
    store.save_network_state(NET, network())
    journal = Journal(store, NET)
    entry, _ = journal.append({("g0", "c0"): "left by a dead image"})
    assert entry is not None and content(store, "g0", "c0") == 0
    live = NetworkImage(store, NET, SchedulerStorageConfig("immediate"))
    assert live.get("g0", "c0") == "left by a dead image" and pending_entries(store, NET) == []
    for n in range(20):
        live.set("g1", f"c{n % 10}", n)
        assert live.cycle_done()
    wait_folded(live)
    assert live.status().folds >= 1 and pending_entries(store, NET) == []
    assert [content(store, "g1", f"c{n}") for n in range(10)] == list(range(10, 20))
    live.close()
    assert casstore.verify(store).ok
    store.close()


def test_the_recover_verb_folds_what_a_dead_image_left(tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from casstore.cli import main

    store = lmdb_store(tmp_path)
    Journal(store, NET).append({("g0", "c0"): "acknowledged"})
    store.close()
    runner = CliRunner()

    def run(*args: str) -> dict[str, Any]:
        result = runner.invoke(main, ["--store", str(tmp_path / "store"), "--json", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        document: dict[str, Any] = json.loads(result.output)
        return document

    dry = run("recover", NET, "--dry-run")
    assert dry["dry_run"] and len(dry["entries"]) == 1
    done = run("recover", NET)
    assert done["entries"] == dry["entries"] and done["head"] != dry["head"]
    assert run("recover", NET)["entries"] == []
    with casstore.open_store(str(tmp_path / "store")) as reopened:
        assert content(reopened, "g0", "c0") == "acknowledged"
