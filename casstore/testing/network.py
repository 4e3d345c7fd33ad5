"""Conformance suite for the ``NetworkStorage`` interface on any backend (needs pytest).

Subclass :class:`NetworkTests` and provide ``make_store(path)`` returning a
:class:`~casstore.model.NetworkStore`; persistent backends also set
``persistent = True`` and ``url(path)`` for the multi-process test.  A
``Test*`` subclass missing a hook its flags require fails at collection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from casstore import codec
from casstore.errors import GroupNotFound, NetworkNotFound, SerializationError, SnapshotNotFound
from casstore.gc import collect_garbage
from casstore.model import Contact, Group, GroupState, NetworkState, NetworkStore, Wire, rootrecords
from casstore.testing.state_machine import model_diff
from casstore.testing.suite import ConformanceSuite, abstract_hook
from casstore.testing.workers import run_in_processes, write_contacts
from casstore.verify import verify

__all__ = ["NetworkTests", "rich_state", "sample_group"]


def sample_group(gid: str, n_contacts: int = 3, parent: str | None = None, **attributes: Any) -> GroupState:
    """A group ``gid`` of ``n_contacts`` contacts wired in a chain, with ``attributes``."""
    contacts = {
        f"{gid}-c{i}": Contact(f"{gid}-c{i}", gid, {"value": i, "label": f"contact {i}"}) for i in range(n_contacts)
    }
    wires = {f"{gid}-w{i}": Wire(f"{gid}-w{i}", gid, f"{gid}-c{i}", f"{gid}-c{i + 1}") for i in range(n_contacts - 1)}
    group = Group(gid, f"Group {gid}", parent, list(reversed(contacts)), list(wires), [], [], dict(attributes))
    return GroupState(group, contacts, wires)


def rich_state() -> NetworkState:
    """A state that uses every field, unusual ids, bytes and a large content."""
    attrs: dict[str, Any] = {"bassline.type": "app", "bassline.tags": ["x", "y"]}
    root = sample_group("root", 4, None, **attrs)
    root.group.subgroup_ids = ["sub/1", "ünï ✓"]
    root.group.boundary_contact_ids = ["root-c0"]
    root.contacts["root-c0"] = Contact(
        "root-c0", "root", None, "merge", True, "input", "in", {"bassline.note": [1, 2.5, None]}
    )
    root.contacts["root-c1"].content = {"blob": codec.CID_PREFIX + bytes(32), "raw": b"\x00\x01", "big": 2**63}
    root.contacts["root-c2"].content = {"text": "large " * 800}  # over the inline threshold
    root.wires["root-w0"].type = "directed"
    root.wires["root-w0"].attributes = {"weight": 0.5}
    sub = sample_group("sub/1", 2, parent="root", **{"bassline.author": "ada", "tags": ["y"]})
    odd = sample_group("ünï ✓", 0, parent="root", **{"type": "widget", "author": "bob"})
    odd.group.name = ""
    return NetworkState({"root": root, "sub/1": sub, "ünï ✓": odd}, current_group_id="sub/1", root_group_id="root")


class NetworkTests(ConformanceSuite):
    """Semantics of the network interface, as Bassline's own storages behave.

    Flags and the hook check: see :class:`~casstore.testing.suite.ConformanceSuite`.
    """

    @abstract_hook
    def make_store(self, path: Path) -> NetworkStore:
        """A fresh (or, called again with the same path, reopened) network store rooted under ``path``."""
        raise NotImplementedError

    @abstract_hook
    def url(self, path: Path) -> str:
        """The URL another process can open the store at ``path`` with."""
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[NetworkStore]:
        store = self.make_store(tmp_path)
        yield store
        store.close()

    # ------------------------------------------------------------ round trips

    def test_network_state_round_trips_exactly(self, store: NetworkStore) -> None:
        state = rich_state()
        store.save_network_state("net", state)
        assert store.load_network_state("net") == state  # every field, and the order of every id list
        assert store.load_group_state("net", "sub/1") == state.groups["sub/1"]
        assert store.load_contact_content("net", "root", "root-c1") == state.groups["root"].contacts["root-c1"].content
        assert store.exists("net") and store.list_networks() == ["net"]
        assert verify(store).ok

    def test_same_state_same_root_whatever_the_history(
        self, store: NetworkStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # a root records when it was written: with one clock, the same state makes the same root
        monkeypatch.setattr(rootrecords, "now_text", lambda: "2026-01-01T00:00:00.000000+00:00")  # one clock
        state = rich_state()
        store.save_network_state("a", state)
        for gid in reversed(list(state.groups)):
            store.save_group_state("b", gid, state.groups[gid])
        store.save_network_state("c", NetworkState({}, "sub/1", "root"))
        for gid, group_state in state.groups.items():
            store.save_group_state("c", gid, group_state)
        store.save_network_state("d", NetworkState(state.groups, "root", "root"))
        head = store.refs.get
        assert head("networks/a/head") == head("networks/c/head")
        assert head("networks/b/head") == head("networks/d/head")
        assert head("networks/a/head") != head("networks/d/head")

    def test_missing_things_load_as_none_and_delete_as_noop(self, store: NetworkStore) -> None:
        assert store.load_network_state("nope") is None
        assert store.load_group_state("nope", "g") is None
        assert store.load_contact_content("nope", "g", "c") is None
        assert not store.exists("nope")
        store.delete_network("nope")
        store.delete_group("nope", "g")
        store.save_group_state("net", "g", sample_group("g"))
        assert store.load_group_state("net", "other") is None
        assert store.load_contact_content("net", "g", "missing") is None
        store.delete_group("net", "other")
        assert store.list_snapshots("nope") == []

    # ------------------------------------------------------------ contact content

    def test_save_contact_content_errors(self, store: NetworkStore) -> None:
        with pytest.raises(NetworkNotFound) as net_info:
            store.save_contact_content("nope", "g", "c", 1)
        assert net_info.value.code == "NETWORK_NOT_FOUND"
        store.save_group_state("net", "g", sample_group("g"))
        with pytest.raises(GroupNotFound) as group_info:
            store.save_contact_content("net", "other", "c", 1)
        assert group_info.value.code == "GROUP_NOT_FOUND"

    def test_save_contact_content_updates_or_creates(self, store: NetworkStore) -> None:
        state = sample_group("g", 2)
        state.contacts["g-c0"].blend_mode = "merge"
        state.contacts["g-c0"].name = "keep me"
        store.save_group_state("net", "g", state)
        store.save_contact_content("net", "g", "g-c0", {"new": True})
        loaded = store.load_group_state("net", "g")
        assert loaded is not None
        c0 = loaded.contacts["g-c0"]
        assert (c0.content, c0.blend_mode, c0.name) == ({"new": True}, "merge", "keep me")
        store.save_contact_content("net", "g", "fresh", [1, 2])
        loaded = store.load_group_state("net", "g")
        assert loaded is not None
        assert loaded.group.contact_ids == [*state.group.contact_ids, "fresh"]
        assert loaded.contacts["fresh"] == Contact("fresh", "g", [1, 2], "accept-last")
        store.save_contact_content("net", "g", "fresh", "x" * 5000)  # inline → large
        assert store.load_contact_content("net", "g", "fresh") == "x" * 5000
        store.save_contact_content("net", "g", "fresh", None)
        assert store.load_contact_content("net", "g", "fresh") is None

    def test_bad_content_names_its_path_and_writes_nothing(self, store: NetworkStore) -> None:
        store.save_group_state("net", "g", sample_group("g"))
        head = store.refs.get("networks/net/head")
        objects = store.blobs.stats().objects
        with pytest.raises(SerializationError) as info:
            store.save_contact_content("net", "g", "g-c0", {"a": [1, 2, 3, float("nan")]})
        assert info.value.path == 'content["a"][3]'
        bad = sample_group("h")
        bad.contacts["h-c1"].content = {"s": {1, 2}}
        with pytest.raises(SerializationError, match=r"contacts\['h-c1'\]\.content"):
            store.save_group_state("net", "h", bad)
        with pytest.raises(SerializationError):
            store.save_network_state("net", NetworkState({"g": GroupState(Group("g", 5))}))  # type: ignore[arg-type]
        with pytest.raises(SerializationError):
            bad_blend = sample_group("g")
            bad_blend.contacts["g-c0"].blend_mode = "sometimes"  # type: ignore[assignment]
            store.save_group_state("net", "g", bad_blend)
        assert store.refs.get("networks/net/head") == head
        assert store.blobs.stats().objects == objects

    # ------------------------------------------------------------ groups and networks

    def test_delete_group_and_network(self, store: NetworkStore) -> None:
        store.save_network_state("net", rich_state())
        snapshot = store.save_snapshot("net")
        store.delete_group("net", "sub/1")
        loaded = store.load_network_state("net")
        assert loaded is not None and set(loaded.groups) == {"root", "ünï ✓"}
        store.delete_network("net")
        assert not store.exists("net") and store.list_networks() == []
        assert store.list_snapshots("net") == []
        with pytest.raises(SnapshotNotFound):
            store.load_snapshot("net", snapshot)
        report = collect_garbage(store, grace_minutes=0)
        assert report.swept > 0 and store.blobs.stats().objects == 0

    def test_network_ids_are_escaped_in_refs(self, store: NetworkStore) -> None:
        for network_id in ["a/b", "..", ".hidden", "sp ace", "ü"]:
            store.save_group_state(network_id, "g", sample_group("g"))
        assert store.list_networks() == sorted(["a/b", "..", ".hidden", "sp ace", "ü"])
        with pytest.raises(SerializationError):
            store.save_group_state("", "g", sample_group("g"))

    # ------------------------------------------------------------ snapshots and diff

    def test_snapshots(self, store: NetworkStore) -> None:
        store.save_network_state("net", rich_state())
        with pytest.raises(NetworkNotFound):
            store.save_snapshot("nope")
        objects = store.blobs.stats().objects
        first = store.save_snapshot("net", "first")
        assert store.blobs.stats().objects == objects + 1, "a snapshot writes one object"
        store.save_contact_content("net", "root", "root-c3", "changed")
        second = store.save_snapshot("net")
        infos = store.list_snapshots("net")
        assert [i.id for i in infos] == [second, first]
        assert infos[1].label == "first" and infos[0].label is None
        assert infos[0].created_at >= infos[1].created_at and infos[0].created_at.tzinfo is not None
        assert infos[1].size > 0 and infos[1].network_id == "net"
        assert store.load_snapshot("net", first) == rich_state()
        assert store.load_snapshot("net", second).groups["root"].contacts["root-c3"].content == "changed"
        with pytest.raises(SnapshotNotFound) as info:
            store.load_snapshot("net", codec.format_id(codec.hash_bytes(b"x")))
        assert info.value.code == "SNAPSHOT_NOT_FOUND"
        with pytest.raises(SnapshotNotFound):
            store.load_snapshot("other", first)
        store.delete_snapshot("net", first)
        assert [i.id for i in store.list_snapshots("net")] == [second]
        store.delete_snapshot("net", first)  # no-op

    def test_diff_reports_every_kind(self, store: NetworkStore) -> None:
        store.save_network_state("net", rich_state())
        before = store.save_snapshot("net")
        state = rich_state()
        root = state.groups["root"]
        root.contacts["root-c3"].content = "updated"
        del root.contacts["root-c1"]
        root.group.contact_ids.remove("root-c1")  # an id listed with no contact is refused (#11, case 12)
        root.contacts["added"] = Contact("added", "root", 1)
        root.group.contact_ids.append("added")  # membership only: not a group update
        del root.wires["root-w1"]
        root.wires["root-w0"].type = "bidirectional"
        root.wires["new-w"] = Wire("new-w", "root", "added", "root-c0")
        state.groups["sub/1"].group.name = "renamed"
        del state.groups["ünï ✓"]
        state.groups["extra"] = sample_group("extra", 1)
        store.save_network_state("net", state)
        changes = store.diff("net", before, None)
        got = {(c.kind, c.group_id, c.item_id) for c in changes}
        assert got == {
            ("contact-updated", "root", "root-c3"),
            ("contact-removed", "root", "root-c1"),
            ("contact-added", "root", "added"),
            ("wire-removed", "root", "root-w1"),
            ("wire-updated", "root", "root-w0"),
            ("wire-added", "root", "new-w"),
            ("group-updated", "sub/1", "sub/1"),
            ("group-removed", "ünï ✓", "ünï ✓"),
            ("group-added", "extra", "extra"),
            ("contact-added", "extra", "extra-c0"),
        }
        updated = next(c for c in changes if c.kind == "contact-updated")
        assert updated.old.content == rich_state().groups["root"].contacts["root-c3"].content
        assert updated.new.content == "updated"
        assert store.diff("net", None, None) == []
        backwards = {(c.kind, c.group_id, c.item_id) for c in store.diff("net", None, before)}
        assert backwards == model_diff(state, rich_state()), "from the current head back to the snapshot"

    # ------------------------------------------------------------ query

    def test_query_groups(self, store: NetworkStore) -> None:
        store.save_network_state("net", rich_state())

        def ids(found: list[GroupState]) -> list[str]:
            return sorted(s.group.id for s in found)

        assert ids(store.query_groups("net", type="app")) == ["root"]
        assert ids(store.query_groups("net", type="widget")) == ["ünï ✓"]
        assert ids(store.query_groups("net", author="ada")) == ["sub/1"]
        assert ids(store.query_groups("net", author="bob")) == ["ünï ✓"]
        assert ids(store.query_groups("net", tags=["y"])) == ["root", "sub/1"]
        assert ids(store.query_groups("net", tags=["x", "y"])) == ["root"]
        assert ids(store.query_groups("net", tags=["y"], author="ada")) == ["sub/1"]
        assert ids(store.query_groups("net", attributes={"bassline.type": "app"})) == ["root"]
        assert ids(store.query_groups("net", attributes={"bassline.tags": ["x", "y"]})) == ["root"]
        assert ids(store.query_groups("net", attributes={"bassline.type": "nope"})) == []
        assert ids(store.query_groups("net")) == ["root", "sub/1", "ünï ✓"]
        assert store.query_groups("missing", type="app") == []
        state = store.load_group_state("net", "sub/1")
        assert state is not None
        state.group.attributes = {"bassline.type": "app"}
        store.save_group_state("net", "sub/1", state)  # the index follows attribute changes
        assert ids(store.query_groups("net", type="app")) == ["root", "sub/1"]
        assert ids(store.query_groups("net", author="ada")) == []
        store.delete_group("net", "root")
        assert ids(store.query_groups("net", type="app")) == ["sub/1"]

    def test_selective_query_reads_few_objects(self, store: NetworkStore) -> None:
        groups = {
            f"g{i:03d}": sample_group(f"g{i:03d}", 5, **{"bassline.type": "rare" if i % 50 == 0 else "common"})
            for i in range(300)
        }
        store.save_network_state("net", NetworkState(groups, "g000", "g000"))
        fresh = self.make_store_again(store)
        reads = 0
        real = fresh.blobs.get_many

        def counting(digests):  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += len(digests)
            return real(digests)

        fresh.blobs.get_many = counting  # type: ignore[method-assign]
        found = fresh.query_groups("net", type="rare")
        assert sorted(s.group.id for s in found) == ["g000", "g050", "g100", "g150", "g200", "g250"]
        assert reads < 60, f"selective query read {reads} objects"

    def make_store_again(self, store: NetworkStore) -> NetworkStore:
        """Same objects, cold caches."""
        return NetworkStore(store.objects)

    # ------------------------------------------------------------ batch, subscribe, concurrency

    def test_batch_is_atomic(self, store: NetworkStore) -> None:
        store.save_group_state("net", "g", sample_group("g", 3))
        head = store.refs.get("networks/net/head")
        with pytest.raises(RuntimeError), store.batch("net") as batch:
            batch.save_contact_content("net", "g", "g-c0", "one")
            raise RuntimeError("abandon")
        assert store.refs.get("networks/net/head") == head
        seen: list[str] = []
        store.subscribe("net", lambda s: seen.append(s.group.id))
        with store.batch("net") as batch:
            batch.save_contact_content("net", "g", "g-c0", "one")
            batch.save_contact_content("net", "g", "g-c1", "two")
            batch.save_group_state("net", "h", sample_group("h", 1))
            batch.delete_group("net", "h")
            with pytest.raises(SerializationError):
                batch.save_contact_content("net", "g", "g-c2", float("inf"))
        assert sorted(seen) == ["g"], "one notification per changed group, none for the deleted one"
        assert store.load_contact_content("net", "g", "g-c0") == "one"
        assert store.load_contact_content("net", "g", "g-c1") == "two"
        assert store.load_group_state("net", "h") is None
        with pytest.raises(GroupNotFound), store.batch("net") as batch:
            batch.save_contact_content("net", "g", "g-c0", "three")
            batch.save_contact_content("net", "missing", "c", 1)
        assert store.load_contact_content("net", "g", "g-c0") == "one"

    def test_subscribe(self, store: NetworkStore, caplog: pytest.LogCaptureFixture) -> None:
        store.save_group_state("net", "g", sample_group("g"))
        store.save_group_state("net", "h", sample_group("h"))
        by_group: list[Any] = []
        by_net: list[str] = []

        def broken(state: GroupState) -> None:
            raise ValueError("subscriber bug")

        unsubscribe = store.subscribe("net/g", by_group.append)
        store.subscribe("net", lambda s: by_net.append(s.group.id))
        store.subscribe("net/g", broken)
        store.save_contact_content("net", "g", "g-c0", 42)
        store.save_contact_content("net", "h", "h-c0", 43)
        assert [s.contacts["g-c0"].content for s in by_group] == [42]
        assert by_net == ["g", "h"]
        assert "subscriber bug" in caplog.text
        unsubscribe()
        store.save_contact_content("net", "g", "g-c0", 44)
        assert len(by_group) == 1 and by_net == ["g", "h", "g"]

    def test_subscribe_hears_another_writer_once_each(self, store: NetworkStore) -> None:
        store.save_group_state("net", "g", sample_group("g"))
        other = self.make_store_again(store)  # its writes bypass ``store``'s own notifications
        heard: list[Any] = []
        arrived = threading.Event()

        def listen(state: GroupState) -> None:
            heard.append(state.contacts["g-c0"].content)
            arrived.set()

        unsubscribe = store.subscribe("net/g", listen)
        try:
            other.save_contact_content("net", "g", "g-c0", "from elsewhere")
            assert arrived.wait(5), "a write through another store object was never reported"
            assert heard == ["from elsewhere"]
            store.save_contact_content("net", "g", "g-c0", "mine")
            time.sleep(3 * (store.watch_interval or 0.25) + 0.2)  # the watch sees the move too
            assert heard == ["from elsewhere", "mine"], "each move is reported exactly once"
        finally:
            unsubscribe()

    def test_concurrent_threads_lose_no_update(self, store: NetworkStore) -> None:
        if not self.threads:
            pytest.skip("the test double is not thread-safe; the race runs against a server instead")
        store.save_group_state("net", "g", sample_group("g", 0))

        def writer(k: int) -> None:
            for i in range(15):
                store.save_contact_content("net", "g", f"t{k}-{i}", i)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        state = store.load_group_state("net", "g")
        assert state is not None
        assert len(state.contacts) == 60 and len(state.group.contact_ids) == 60

    @pytest.mark.slow
    def test_two_processes_lose_no_update(self, tmp_path: Path) -> None:
        if not (self.persistent and self.shared):
            pytest.skip("backend cannot be opened from another process in this setup")
        with self.make_store(tmp_path) as store:
            store.save_group_state("net", "g", sample_group("g", 0))
        run_in_processes(write_contacts, [(self.url(tmp_path), k, 25) for k in range(2)])
        with self.make_store(tmp_path) as store:
            state = store.load_group_state("net", "g")
            assert state is not None
            assert {f"p{k}-{i}" for k in range(2) for i in range(25)} == set(state.contacts)
            assert verify(store).ok

    # ------------------------------------------------------------ rewrites, verify and gc

    def test_verify_finds_a_missing_subtree(self, store: NetworkStore) -> None:
        store.save_network_state("net", rich_state())
        snapshot_digest = codec.parse_id(store.save_snapshot("net"))
        report = verify(store)
        assert report.ok and report.reachable == report.objects
        head = store.refs.get("networks/net/head")
        assert head is not None
        groups_root = store.network_root(head)["groups"]
        store.blobs.delete_many([groups_root])
        report = verify(store)
        assert not report.ok and report.missing == [codec.format_id(groups_root)] and not report.corrupt
        assert snapshot_digest not in store.blobs.missing([snapshot_digest])

    def test_contact_update_rewrites_few_objects(self, store: NetworkStore) -> None:
        groups = {f"g{i:03d}": sample_group(f"g{i:03d}", 60) for i in range(200)}
        store.save_network_state("net", NetworkState(groups, "g000", "g000"))
        before = store.blobs.stats().objects
        store.save_contact_content("net", "g123", "g123-c7", "new value")
        written = store.blobs.stats().objects - before
        # contacts leaf (+ its parent), body unchanged, group record's leaf + groups path, network root
        assert 3 <= written <= 8, written

    def test_gc_keeps_everything_reachable_and_recent(self, store: NetworkStore) -> None:
        store.save_network_state("net", rich_state())
        snapshot = store.save_snapshot("net")
        for i in range(5):
            store.save_contact_content("net", "root", "root-c3", f"v{i}")
        recent = collect_garbage(store, grace_minutes=60, dry_run=True)
        assert recent.unreachable > 0 and recent.kept_recent == recent.unreachable and recent.swept == 0
        objects = store.blobs.stats().objects
        dry = collect_garbage(store, grace_minutes=0, dry_run=True)
        assert dry.swept == dry.unreachable > 0 and store.blobs.stats().objects == objects
        report = collect_garbage(store, grace_minutes=0)
        assert report.swept == dry.swept and not report.missing
        assert store.blobs.stats().objects == objects - report.swept
        assert store.load_snapshot("net", snapshot) == rich_state()
        assert store.load_contact_content("net", "root", "root-c3") == "v4"
        assert verify(store).ok
        time.sleep(0.01)
        assert collect_garbage(store, grace_minutes=0).swept == 0
