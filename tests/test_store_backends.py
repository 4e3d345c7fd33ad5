"""The conformance suite against every built-in backend: each adds a subclass, not a copy."""

from __future__ import annotations

from pathlib import Path

from casstore.store.base import ObjectStore
from casstore.store.file import FileStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
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
