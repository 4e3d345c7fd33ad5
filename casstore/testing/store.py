"""Conformance suite for blob/ref store backends (needs pytest).

A backend's test module subclasses :class:`StoreTests` and provides
:meth:`StoreTests.make_store`; persistent backends also give a URL (for the
multi-process tests) and a way to damage one object on disk::

    class TestMyStore(StoreTests):
        persistent = True
        def make_store(self, path): return MyStore(path)
        def url(self, path): return f"my://{path}"
        def corrupt_object(self, store_path, digest): ...

A ``Test*`` subclass that leaves out a hook its flags require fails when the
class is created (at collection), naming the hook: see :mod:`casstore.testing.suite`.

Every test here states a property of the protocols in :mod:`casstore.store.base`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from casstore import codec
from casstore.errors import CorruptObject, InvalidRefName, ObjectNotFound, RefConflict
from casstore.store.base import ObjectStore, RefUpdate
from casstore.testing.suite import ConformanceSuite, abstract_hook
from casstore.testing.workers import bump_counter, counter_value, run_in_processes, write_objects
from casstore.verify import verify

__all__ = ["StoreTests"]


class StoreTests(ConformanceSuite):
    """Protocol tests every backend must pass (flags: see :class:`~casstore.testing.suite.ConformanceSuite`)."""

    @classmethod
    def required_hooks(cls) -> list[str]:
        hooks = super().required_hooks()
        if cls.persistent:
            hooks.append("corrupt_object")
        return hooks

    @abstract_hook
    def make_store(self, path: Path) -> ObjectStore:
        """A fresh (or, called again with the same path, reopened) store rooted under ``path``."""
        raise NotImplementedError

    @abstract_hook
    def url(self, path: Path) -> str:
        """The URL another process can open the store at ``path`` with."""
        raise NotImplementedError

    @abstract_hook
    def corrupt_object(self, path: Path, digest: bytes) -> None:
        """Flip a byte of the stored object ``digest`` on disk (the store is closed)."""
        raise NotImplementedError

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[ObjectStore]:
        store = self.make_store(tmp_path)
        yield store
        store.close()

    def require_persistent(self) -> None:
        if not self.persistent:
            pytest.skip("backend is not persistent")

    def require_shared(self) -> None:
        self.require_persistent()
        if not self.shared:
            pytest.skip("backend cannot be opened from another process in this setup")

    # ------------------------------------------------------------ blobs

    def test_put_get_roundtrip(self, store: ObjectStore) -> None:
        datas = [codec.encode_value({"n": i, "pad": "x" * (i % 700)}) for i in range(300)]
        ids = store.blobs.put_many(datas)
        assert ids == [codec.hash_bytes(d) for d in datas]
        assert store.blobs.get_many(ids[::-1]) == datas[::-1]
        assert store.blobs.get(ids[7]) == datas[7]

    def test_put_is_idempotent_and_deduplicates(self, store: ObjectStore) -> None:
        data = codec.encode_value("same")
        first = store.blobs.put_many([data, data])
        second = store.blobs.put(data)
        assert first == [second, second]
        assert store.blobs.stats().objects == 1

    def test_large_and_empty_objects(self, store: ObjectStore) -> None:
        big = codec.encode_value({"blob": bytes(range(256)) * 4000, "text": "abc" * 50_000})
        empty = b""
        ids = store.blobs.put_many([big, empty])
        assert store.blobs.get_many(ids) == [big, empty]

    def test_get_missing_raises_object_not_found(self, store: ObjectStore) -> None:
        absent = codec.hash_bytes(b"never stored")
        with pytest.raises(ObjectNotFound) as info:
            store.blobs.get(absent)
        assert info.value.code == "OBJECT_NOT_FOUND"
        assert codec.format_id(absent) in str(info.value)

    def test_missing_is_exact(self, store: ObjectStore) -> None:
        present = store.blobs.put_many([codec.encode_value(i) for i in range(50)])
        absent = [codec.hash_bytes(f"absent {i}".encode()) for i in range(50)]
        assert store.blobs.missing(present + absent) == set(absent)
        assert store.blobs.missing([]) == set()
        assert present[0] in store.blobs
        assert absent[0] not in store.blobs

    def test_iter_hashes_lists_every_object_once(self, store: ObjectStore) -> None:
        ids = store.blobs.put_many([codec.encode_value(i) for i in range(20_000)])
        listed = list(store.blobs.iter_hashes())
        assert len(listed) == len(ids)
        assert set(listed) == set(ids)

    def test_delete_many(self, store: ObjectStore) -> None:
        ids = store.blobs.put_many([codec.encode_value(i) for i in range(10)])
        absent = codec.hash_bytes(b"x")
        assert store.blobs.delete_many([*ids[:4], absent]) == 4
        assert store.blobs.missing(ids) == set(ids[:4])
        assert store.blobs.stats().objects == 6

    def test_written_since_sees_new_and_refreshed_objects(self, store: ObjectStore) -> None:
        import time

        old = store.blobs.put(codec.encode_value("old"))
        time.sleep(0.05)
        mark = time.time()
        time.sleep(0.05)
        new = store.blobs.put(codec.encode_value("new"))
        recent = store.blobs.written_since(mark)
        assert new in recent and old not in recent
        store.blobs.put(codec.encode_value("old"))  # a re-put refreshes the write time
        assert old in store.blobs.written_since(mark)

    def test_stats_counts_objects(self, store: ObjectStore) -> None:
        store.blobs.put_many([codec.encode_value(i) for i in range(123)])
        st = store.blobs.stats()
        assert st.objects == 123
        assert st.stored_bytes > 0

    def test_corrupt_frame_header_is_detected(self, store: ObjectStore) -> None:
        data = codec.encode_value("header")
        digest = codec.hash_bytes(data)
        if self.verifies_writes:
            with pytest.raises(CorruptObject, match=codec.format_id(digest)):
                store.blobs.put_frames([(digest, b"\x07" + data)])
            assert store.blobs.missing([digest]) == {digest}
            return
        store.blobs.put_frames([(digest, b"\x07" + data)])
        with pytest.raises(CorruptObject, match=codec.format_id(digest)):
            store.blobs.get(digest)
        assert verify(store).corrupt == [codec.format_id(digest)]

    def test_wrong_content_is_never_returned(self, store: ObjectStore) -> None:
        good = codec.encode_value("good")
        digest = codec.hash_bytes(good)
        if self.verifies_writes:
            with pytest.raises(CorruptObject) as refused:
                store.blobs.put_frames([(digest, b"\x00" + codec.encode_value("evil"))])
            assert refused.value.code == "STORAGE_CORRUPTION_ERROR"
            assert store.blobs.missing([digest]) == {digest}
            return
        store.blobs.put_frames([(digest, b"\x00" + codec.encode_value("evil"))])
        with pytest.raises(CorruptObject) as info:
            store.blobs.get_many([digest])
        assert info.value.code == "STORAGE_CORRUPTION_ERROR"

    # ------------------------------------------------------------ refs

    def test_ref_compare_and_swap(self, store: ObjectStore) -> None:
        a, b = store.blobs.put_many([codec.encode_value("a"), codec.encode_value("b")])
        refs = store.refs
        assert refs.get("networks/n1/head") is None
        refs.compare_and_swap("networks/n1/head", None, a)
        assert refs.get("networks/n1/head") == a
        with pytest.raises(RefConflict) as info:
            refs.compare_and_swap("networks/n1/head", None, b)
        assert info.value.code == "REF_CONFLICT"
        with pytest.raises(RefConflict):
            refs.compare_and_swap("networks/n1/head", b, b)
        assert refs.get("networks/n1/head") == a
        refs.compare_and_swap("networks/n1/head", codec.format_id(a), codec.format_id(b))
        assert refs.get("networks/n1/head") == b

    def test_ref_delete_needs_expected(self, store: ObjectStore) -> None:
        a, b = store.blobs.put_many([codec.encode_value("a"), codec.encode_value("b")])
        store.refs.compare_and_swap("x/y", None, a)
        with pytest.raises(RefConflict):
            store.refs.delete("x/y", b)
        store.refs.delete("x/y", a)
        assert store.refs.get("x/y") is None
        store.refs.delete("x/y", None)  # absent and expected absent: a no-op
        assert store.refs.list() == {}

    def test_ref_list_prefix(self, store: ObjectStore) -> None:
        a = store.blobs.put(codec.encode_value("a"))
        names = ["networks/a/head", "networks/a/snapshots/s1", "networks/ab/head", "remotes/o/networks/a/head"]
        for name in names:
            store.refs.compare_and_swap(name, None, a)
        assert set(store.refs.list()) == set(names)
        assert set(store.refs.list("networks/a/")) == {"networks/a/head", "networks/a/snapshots/s1"}
        assert set(store.refs.list("networks/a")) == {"networks/a/head", "networks/a/snapshots/s1", "networks/ab/head"}
        assert store.refs.list("nothing/") == {}

    def test_ref_names_of_4000_characters(self, store: ObjectStore) -> None:
        a, b = store.blobs.put_many([codec.encode_value("a"), codec.encode_value("b")])
        stem = "networks/" + "%E2%9C%93" * 440  # a long network id, %-escaped, as the model writes it
        head = stem + "x" * (4000 - len(stem) - len("/head")) + "/head"
        other = head[: -len("/head")] + "/tip1"  # the same 3,995 first characters
        assert len(head) == len(other) == 4000
        refs = store.refs
        refs.compare_and_swap(head, None, a)
        refs.compare_and_swap(other, None, b)
        with pytest.raises(RefConflict):
            refs.compare_and_swap(head, None, b)
        assert refs.get(head) == a and refs.get(other) == b
        refs.compare_and_swap(head, a, b)
        assert refs.get(head) == b
        assert refs.list() == {head: b, other: b}
        assert refs.list(stem) == {head: b, other: b}
        assert refs.list(head[:3990]) == {head: b, other: b}
        assert refs.list(head[:-2]) == {head: b}
        refs.delete(head, b)
        assert refs.get(head) is None and refs.list() == {other: b}
        refs.delete(other, b)
        assert refs.list() == {}

    @pytest.mark.parametrize(
        "name", ["", "/abs", "a//b", "../escape", "a/../../b", "a/./b", ".hidden", "a/", "sp ace", "nul\x00", "a\\b"]
    )
    def test_bad_ref_names_are_rejected(self, store: ObjectStore, name: str) -> None:
        a = store.blobs.put(codec.encode_value("a"))
        with pytest.raises(InvalidRefName) as info:
            store.refs.compare_and_swap(name, None, a)
        assert info.value.code == "INVALID_REF_NAME"
        assert store.refs.list() == {}

    def test_commit_writes_objects_then_moves_refs(self, store: ObjectStore) -> None:
        a, b = codec.encode_value("commit a"), codec.encode_value("commit b")
        frames = codec.frame_many([a, b])
        da, db = (digest for digest, _ in frames)
        store.commit(frames, [RefUpdate("x/one", None, da), RefUpdate("x/tip", None, da, required=False)])
        assert store.blobs.get(da) == a and store.refs.get("x/one") == da and store.refs.get("x/tip") == da
        # an optional update whose ref moved is skipped; the required one still lands
        store.commit([], [RefUpdate("x/one", da, db), RefUpdate("x/tip", db, db, required=False)])
        assert store.refs.get("x/one") == db and store.refs.get("x/tip") == da
        # a required conflict raises and leaves that ref alone
        c = codec.encode_value("commit c")
        frames_c = codec.frame_many([c])
        (dc, _) = frames_c[0]
        with pytest.raises(RefConflict):
            store.commit(frames_c, [RefUpdate("x/new", None, dc), RefUpdate("x/one", da, dc)])
        assert store.refs.get("x/one") == db
        if store.atomic_commit:  # all or nothing: no object, no earlier ref move
            assert store.refs.get("x/new") is None
            assert dc not in store.blobs

    def test_cas_race_between_threads_loses_no_update(self, store: ObjectStore) -> None:
        if not self.threads:
            pytest.skip("the test double is not thread-safe; the race runs against a server instead")
        threads = [threading.Thread(target=bump_counter, args=(store, "counter", 40)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counter_value(store, "counter") == 160

    # ------------------------------------------------------------ persistence, processes, disk damage

    def test_reopen_keeps_everything(self, tmp_path: Path) -> None:
        self.require_persistent()
        with self.make_store(tmp_path) as store:
            ids = store.blobs.put_many([codec.encode_value(i) for i in range(100)])
            store.refs.compare_and_swap("keep", None, ids[3])
        with self.make_store(tmp_path) as store:
            assert store.blobs.missing(ids) == set()
            assert store.refs.get("keep") == ids[3]

    @pytest.mark.slow
    def test_cas_race_between_processes_loses_no_update(self, tmp_path: Path) -> None:
        self.require_shared()
        self.make_store(tmp_path).close()
        url = self.url(tmp_path)
        run_in_processes(bump_counter, [(url, "counter", 60)] * 2)
        with self.make_store(tmp_path) as store:
            assert counter_value(store, "counter") == 120

    @pytest.mark.slow
    def test_concurrent_writers_in_processes(self, tmp_path: Path) -> None:
        self.require_shared()
        self.make_store(tmp_path).close()
        run_in_processes(write_objects, [(self.url(tmp_path), k, 3000) for k in range(2)])
        with self.make_store(tmp_path) as store:
            assert store.blobs.stats().objects == 6000
            assert verify(store).ok

    def test_flipped_byte_on_disk_is_caught(self, tmp_path: Path) -> None:
        self.require_persistent()
        datas = [codec.encode_value(f"object {i} " + "~" * 40) for i in range(50)]
        with self.make_store(tmp_path) as store:
            ids = store.blobs.put_many(datas)
            victim = ids[17]
        self.corrupt_object(tmp_path, victim)
        with self.make_store(tmp_path) as store:
            with pytest.raises(CorruptObject, match=codec.format_id(victim)):
                store.blobs.get(victim)
            assert store.blobs.get_many(ids[:17]) == datas[:17]  # the damage stays in its own object
            assert store.blobs.get_many(ids[18:]) == datas[18:]
            report = verify(store)
            assert not report.ok
            assert report.corrupt == [codec.format_id(victim)]
            assert report.objects == 50
