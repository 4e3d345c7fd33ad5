"""The conformance suite against every built-in backend: each adds a subclass, not a copy."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import BUCKET

from casstore.store.base import ObjectStore
from casstore.store.file import FileStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.store.s3 import S3Store
from casstore.testing import StoreTests


def flip_byte_in(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, f"object bytes not found in {path}"
    data[at + len(needle) // 2] ^= 0x01
    path.write_bytes(bytes(data))


class TestMemoryStore(StoreTests):
    def make_store(self, path: Path) -> ObjectStore:
        return MemoryStore()


class TestLmdbStore(StoreTests):
    persistent = True

    def make_store(self, path: Path) -> ObjectStore:
        # A deliberately small map: the suite also exercises automatic growth.
        return LmdbStore(path / "lmdb", map_size=1 << 20)

    def url(self, path: Path) -> str:
        return f"lmdb://{path / 'lmdb'}?map_size={1 << 20}"

    def corrupt_object(self, path: Path, digest: bytes) -> None:
        with LmdbStore(path / "lmdb") as store:
            (frame,) = store.blobs.get_frames([digest])
        assert frame is not None
        flip_byte_in(path / "lmdb" / "data.mdb", frame)


class TestFileStore(StoreTests):
    persistent = True

    def make_store(self, path: Path) -> ObjectStore:
        return FileStore(path / "files")

    def url(self, path: Path) -> str:
        return f"file://{path / 'files'}"

    def corrupt_object(self, path: Path, digest: bytes) -> None:
        hexid = digest.hex()
        target = path / "files" / "objects" / hexid[:2] / hexid[2:]
        flip_byte_in(target, target.read_bytes()[1:])


def flip_byte_in_s3(store: S3Store, digest: bytes) -> None:
    """Damage one object inside its pack, in S3 itself."""
    pack, offset, length = store.blobs._where[digest]
    body = bytearray(store.client.call("get_object", Key=pack)["Body"].read())
    body[offset + length // 2] ^= 0x01
    store.client.call("put_object", Key=pack, Body=bytes(body))


class TestS3StoreInProcess(StoreTests):
    """moto's in-process S3: the whole suite except what needs another process."""

    persistent = True
    shared = False
    threads = False  # moto in-process: concurrent requests from threads can fail inside moto

    @pytest.fixture(autouse=True)
    def _s3(self, mock_s3: None) -> None:
        pass

    def make_store(self, path: Path) -> ObjectStore:
        # no local cache: a cached good copy would (rightly) hide the damage the corruption test makes
        return S3Store(BUCKET, f"t/{path.name}", cache=False, workers=1)

    def corrupt_object(self, path: Path, digest: bytes) -> None:
        with S3Store(BUCKET, f"t/{path.name}", cache=False, workers=1) as store:
            flip_byte_in_s3(store, digest)


class TestS3StoreOverHTTP(StoreTests):
    """A moto server over real HTTP: the whole suite, processes included."""

    persistent = True

    @pytest.fixture(autouse=True)
    def _server(self, moto_server: str) -> None:
        self.endpoint = moto_server

    def make_store(self, path: Path) -> ObjectStore:
        return S3Store(BUCKET, f"h/{path.name}", endpoint_url=self.endpoint, cache=False)

    def url(self, path: Path) -> str:
        return f"s3://{BUCKET}/h/{path.name}?endpoint_url={self.endpoint}&cache=off"

    def corrupt_object(self, path: Path, digest: bytes) -> None:
        with S3Store(BUCKET, f"h/{path.name}", endpoint_url=self.endpoint, cache=False) as store:
            flip_byte_in_s3(store, digest)
