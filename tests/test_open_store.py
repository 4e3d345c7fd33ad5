"""Choosing a backend by URL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

import casstore
from casstore.codec import frame_many
from casstore.errors import InvalidStoreURL, RefConflict, StoreNotFound
from casstore.model import NetworkStore
from casstore.pack import PackBuilder
from casstore.store.base import RefUpdate
from casstore.store.file import FileStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore


def test_schemes(tmp_path: Path) -> None:
    with casstore.open_store("memory://") as store:
        assert isinstance(store.objects, MemoryStore)
    with casstore.open_store(str(tmp_path / "bare")) as store:
        assert isinstance(store.objects, LmdbStore)
    with casstore.open_store(tmp_path / "pathlike") as store:
        assert isinstance(store.objects, LmdbStore)
    with casstore.open_store(f"lmdb://{tmp_path / 'l'}?map_size=1048576") as store:
        assert isinstance(store.objects, LmdbStore)
    for mode in ("full", "data", "off"):
        with casstore.open_store(f"lmdb://{tmp_path / mode}?sync={mode}") as store:
            assert isinstance(store.objects, LmdbStore) and store.objects.sync == mode
            store.save_network_state("n", casstore.NetworkState({}))
        with casstore.open_store(f"lmdb://{tmp_path / mode}") as store:
            assert store.load_network_state("n") is not None
    with casstore.open_store(f"file://{tmp_path / 'f'}") as store:
        assert isinstance(store.objects, FileStore)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "ftp://host/x",
        "lmdb://",
        "file://",
        "lmdb:///x?map_size=big",
        "lmdb:///x?colour=red",
        "file:///x?a=b",
        "s3x://bucket",
    ],
)
def test_bad_urls_are_value_errors(url: str) -> None:
    with pytest.raises(InvalidStoreURL) as info:
        casstore.open_store(url)
    assert isinstance(info.value, ValueError)
    assert info.value.code == "INVALID_STORE_URL"


def test_missing_store_without_create(tmp_path: Path) -> None:
    for url in (str(tmp_path / "no-lmdb"), f"file://{tmp_path / 'no-file'}"):
        with pytest.raises(StoreNotFound):
            casstore.open_store(url, create=False)


def test_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(casstore.StorageError):
        casstore.open_store(str(tmp_path / "f"))


def test_the_network_store_has_its_backends_capabilities(tmp_path: Path) -> None:
    with casstore.open_store(str(tmp_path / "l")) as store:
        assert isinstance(store.objects, LmdbStore)
        assert store.atomic_commit is True
        assert store.passive_remote is False
    with casstore.open_store("memory://") as store:
        assert store.atomic_commit is MemoryStore.atomic_commit
        assert store.passive_remote is MemoryStore.passive_remote
        assert store.url == store.objects.url
        assert store.blobs is store.objects.blobs and store.refs is store.objects.refs


def test_commit_on_the_network_store_is_the_backends_transaction(tmp_path: Path) -> None:
    with casstore.open_store(str(tmp_path / "l")) as store:
        held = store.blobs.put(b"held")
        store.refs.compare_and_swap("a", None, held)
        frames = frame_many([b"new object"])
        (digest, _) = frames[0]
        updates = [RefUpdate("b", None, digest), RefUpdate("a", digest, digest)]  # "a" is at `held`: a conflict
        with pytest.raises(RefConflict):
            store.commit(frames, updates)
        assert store.refs.get("b") is None  # the first update did not land either
        assert store.refs.get("a") == held
        assert digest not in store.blobs
        store.commit(frames, updates[:1])
        assert store.refs.get("b") == digest
        assert store.blobs.get(digest) == b"new object"


class _RecordingStore(MemoryStore):
    """A backend that records the calls a wrapper should forward to it."""

    atomic_commit = True  # claimed, so the test sees the flag come from here
    passive_remote = True

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        self.calls.append("commit")
        super().commit(frames, updates)

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        self.calls.append("receive_pack")
        return super().receive_pack(pack, updates)

    def is_transient(self, exc: BaseException) -> bool:
        self.calls.append("is_transient")
        return isinstance(exc, TimeoutError)

    def close(self) -> None:
        self.calls.append("close")


def test_the_network_store_forwards_to_its_backend() -> None:
    backend = _RecordingStore()
    store = NetworkStore(backend)
    assert store.atomic_commit is True and store.passive_remote is True
    builder = PackBuilder()
    ((digest, frame),) = frame_many([b"packed"])
    builder.add_frame(digest, frame)
    assert store.receive_pack(builder.finish(), [RefUpdate("p", None, digest)]) == 1
    assert store.refs.get("p") == digest and store.blobs.get(digest) == b"packed"
    assert store.is_transient(TimeoutError()) is True
    assert store.is_transient(ValueError()) is False
    store.save_network_state("n", casstore.NetworkState())  # the model's own writes commit through the backend
    store.close()
    assert backend.calls == ["receive_pack", "commit", "is_transient", "is_transient", "commit", "close"]
