"""The network conformance suite against every built-in backend."""

from __future__ import annotations

from pathlib import Path

from casstore.model import NetworkStore
from casstore.store.file import FileStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.testing.network import NetworkTests


class TestMemoryNetworks(NetworkTests):
    def make_store(self, path: Path) -> NetworkStore:
        return NetworkStore(MemoryStore())


class TestLmdbNetworks(NetworkTests):
    persistent = True

    def make_store(self, path: Path) -> NetworkStore:
        return NetworkStore(LmdbStore(path / "lmdb"))

    def url(self, path: Path) -> str:
        return f"lmdb://{path / 'lmdb'}"


class TestFileNetworks(NetworkTests):
    persistent = True

    def make_store(self, path: Path) -> NetworkStore:
        return NetworkStore(FileStore(path / "files"))

    def url(self, path: Path) -> str:
        return f"file://{path / 'files'}"
