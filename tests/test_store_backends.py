"""The store conformance suite against every backend case in ``tests/backends.py``: one class each."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from backends import CASES, case_named, store_suite

from casstore.store.base import ObjectStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
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


def test_a_wrapped_case_opens_its_backend_through_each_wrapper_in_order(tmp_path: Path) -> None:
    stacked: list[tuple[str, ObjectStore]] = []

    def note(label: str) -> Callable[[ObjectStore], ObjectStore]:
        def wrap(store: ObjectStore) -> ObjectStore:
            stacked.append((label, store))
            return store

        return wrap

    case = case_named("lmdb").wrapped("lmdb-a", "LmdbA", note("a")).wrapped("lmdb-ab", "LmdbAB", note("b"))
    assert (case.name, case.title, case.persistent, case.url) == ("lmdb-ab", "LmdbAB", True, case_named("lmdb").url)
    with case.open(tmp_path, {}) as store:
        assert isinstance(store, LmdbStore)
        assert [label for label, _ in stacked] == ["a", "b"] and all(inner is store for _, inner in stacked)
    assert store_suite(case).__name__ == "TestLmdbABStore"
