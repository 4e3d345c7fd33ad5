"""The network conformance suite against every backend case in ``tests/backends.py``: one class each."""

from __future__ import annotations

from pathlib import Path

import pytest
from backends import CASES, network_suite

from casstore.model import NetworkStore
from casstore.store.memory import MemoryStore
from casstore.testing.network import NetworkTests

for _case in CASES:
    _suite = network_suite(_case)
    globals()[_suite.__name__] = _suite
del _case, _suite


def test_a_network_suite_missing_a_hook_fails_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match=r"TestForgetful must define make_store \("):

        class TestForgetful(NetworkTests):
            pass

    with pytest.raises(TypeError, match=r"TestNoUrl must define url \(persistent=True, shared=True\)"):

        class TestNoUrl(NetworkTests):
            persistent = True

            def make_store(self, path: Path) -> NetworkStore:
                return NetworkStore(MemoryStore())

    class TestUnshared(NetworkTests):  # persistent but not shared: no other process opens it, no url
        persistent = True
        shared = False

        def make_store(self, path: Path) -> NetworkStore:
            return NetworkStore(MemoryStore())

    assert TestUnshared.required_hooks() == ["make_store"]
