"""The network-interface state machine (:mod:`casstore.testing.state_machine`) on memory and on LMDB."""

from __future__ import annotations

import pytest
from hypothesis import settings

from casstore.model import NetworkStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.testing.state_machine import NetworkStateMachine


class MemoryNetworkModel(NetworkStateMachine):
    def make_store(self) -> NetworkStore:
        return NetworkStore(MemoryStore())


class LmdbNetworkModel(NetworkStateMachine):
    def make_store(self) -> NetworkStore:
        return NetworkStore(LmdbStore(self.scratch_path()))


TestNetworkModel = MemoryNetworkModel.TestCase
TestNetworkModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestLmdbNetworkModel = LmdbNetworkModel.TestCase
TestLmdbNetworkModel.settings = settings(max_examples=15, stateful_step_count=25, deadline=None)


def test_a_machine_without_make_store_fails_when_the_class_is_made() -> None:
    with pytest.raises(TypeError, match=r"Forgetful must define make_store\(\)"):

        class Forgetful(NetworkStateMachine):
            pass

    class PartialBase(NetworkStateMachine, abstract=True):
        pass

    with pytest.raises(TypeError, match=r"StillForgetful must define make_store\(\)"):

        class StillForgetful(PartialBase):
            pass
