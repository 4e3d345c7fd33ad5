"""Choosing a backend by URL."""

from __future__ import annotations

from pathlib import Path

import pytest

import casstore
from casstore.errors import InvalidStoreURL, StoreNotFound
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
