"""The network conformance suite on a ``filesystem://`` store, with its tree checked after every test (#16)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from casstore import open_store
from casstore.layout import network_status
from casstore.layout.edits import filesystem_store
from casstore.layout.transfer import export_layout
from casstore.model import NetworkStore
from casstore.testing.network import NetworkTests
from casstore.verify import verify


class TestFilesystemNetworks(NetworkTests):
    """The suite but its two large-workload object-count tests (12,000 contacts each: they count objects a
    write adds, which the layout does not change, and the LMDB case underneath runs them)."""

    persistent = True
    test_contact_update_rewrites_few_objects = None  # type: ignore[assignment]
    test_selective_query_reads_few_objects = None  # type: ignore[assignment]

    def make_store(self, path: Path) -> NetworkStore:
        return open_store(f"filesystem://{path / 'P'}")

    def url(self, path: Path) -> str:
        return f"filesystem://{path / 'P'}"

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[NetworkStore]:
        store = self.make_store(tmp_path)
        yield store
        store.close()
        # whatever the test did, every network's files are its head's, exactly
        with open_store(self.url(tmp_path)) as reopened:
            if not verify(reopened).ok:  # a test that damaged the store on purpose
                return
            for network_id in reopened.list_networks():
                out = tmp_path / "expected"
                export_layout(reopened, network_id, out)
                fs = filesystem_store(reopened)
                assert not network_status(fs, network_id, full=True), network_id
                base = fs.base / "networks"
                mine = {p.relative_to(base): p.read_bytes() for p in base.rglob("*.json")}
                theirs = {p.relative_to(out / "networks"): p.read_bytes() for p in (out / "networks").rglob("*.json")}
                assert {p: b for p, b in mine.items() if p.parts[0] in theirs_dirs(theirs)} == theirs


def theirs_dirs(files: dict[Path, bytes]) -> set[str]:
    return {p.parts[0] for p in files}
