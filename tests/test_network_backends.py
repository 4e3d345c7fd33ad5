"""The network conformance suite against every built-in backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BUCKET

from casstore.model import NetworkStore
from casstore.store.file import FileStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.store.s3 import S3Store
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


class TestS3Networks(NetworkTests):
    """The whole network interface on moto's in-process S3."""

    persistent = True
    shared = False
    threads = False  # moto in-process: concurrent requests from threads can fail inside moto

    @pytest.fixture(autouse=True)
    def _s3(self, mock_s3: None, tmp_path: Path) -> None:
        self.cache = tmp_path / "s3-cache"

    def make_store(self, path: Path) -> NetworkStore:
        return NetworkStore(S3Store(BUCKET, f"n/{path.name}", cache_dir=self.cache, workers=1))


class TestS3NetworksOverHTTP(NetworkTests):
    """A moto server over real HTTP, so two processes can write one network."""

    persistent = True

    @pytest.fixture(autouse=True)
    def _server(self, moto_server: str) -> None:
        self.endpoint = moto_server

    def make_store(self, path: Path) -> NetworkStore:
        return NetworkStore(S3Store(BUCKET, f"nh/{path.name}", endpoint_url=self.endpoint, cache=False))

    def url(self, path: Path) -> str:
        return f"s3://{BUCKET}/nh/{path.name}?endpoint_url={self.endpoint}&cache=off"
