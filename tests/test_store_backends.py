"""The store conformance suite against every backend case in ``tests/backends.py``: one class each."""

from __future__ import annotations

from pathlib import Path

import pytest
from backends import CASES, case_named, store_suite

from casstore.store import open_object_store
from casstore.store.base import ObjectStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.store.wrappers import CachingStore, MetricsStore, WrappedStore
from casstore.testing import StoreTests

for _case in CASES:
    _suite = store_suite(_case)
    globals()[_suite.__name__] = _suite
del _case, _suite


def test_a_suite_missing_a_hook_fails_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match=r"TestForgetful must define make_store \(persistent=False"):

        class TestForgetful(StoreTests):
            pass

    with pytest.raises(TypeError, match=r"must define url, corrupt_object \(persistent=True, shared=True\)"):

        class TestPersistentWithoutHooks(StoreTests):
            persistent = True

            def make_store(self, path: Path) -> ObjectStore:
                return MemoryStore()

    with pytest.raises(TypeError, match=r"must define corrupt_object \(persistent=True, shared=False\)"):

        class TestUnsharedWithoutCorruption(StoreTests):  # not shared: no url needed, damage still is
            persistent = True
            shared = False

            def make_store(self, path: Path) -> ObjectStore:
                return MemoryStore()


def test_a_partial_base_is_not_checked_but_its_test_classes_are() -> None:
    class PersistentBase(StoreTests):
        persistent = True

        def make_store(self, path: Path) -> ObjectStore:
            return MemoryStore()

    with pytest.raises(TypeError, match="TestHalfDone must define corrupt_object"):

        class TestHalfDone(PersistentBase):
            def url(self, path: Path) -> str:
                return "memory://"

    class TestDone(PersistentBase):
        def url(self, path: Path) -> str:
            return "memory://"

        def corrupt_object(self, path: Path, digest: bytes) -> None:
            pass

    assert TestDone.required_hooks() == ["make_store", "url", "corrupt_object"]


def test_a_stacked_case_builds_the_stack_its_url_opens(tmp_path: Path) -> None:
    def layers(store: ObjectStore) -> list[type]:
        out: list[type] = []
        while isinstance(store, WrappedStore):
            out.append(type(store))
            store = store.unwrap()
        return [*out, type(store)]

    case = case_named("lmdb").stacked("lmdb-mc", "LmdbMC", "metrics=on&frame_cache_mb=1")
    assert (case.name, case.persistent, case.sync_pairs) == ("lmdb-mc", True, False)
    assert case.url is not None
    url = case.url(tmp_path, {})
    assert url.endswith("&metrics=on&frame_cache_mb=1")
    with case.open(tmp_path, {}) as store:
        assert layers(store) == [CachingStore, MetricsStore, LmdbStore]
    with open_object_store(url) as again:
        assert layers(again) == [CachingStore, MetricsStore, LmdbStore]
    assert store_suite(case).__name__ == "TestLmdbMCStore"
