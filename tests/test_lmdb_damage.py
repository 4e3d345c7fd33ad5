"""A damaged LMDB file: every verb answers with one clean error (or a verify report), never a traceback,
and opening it never writes over the damage (no table is silently recreated)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import lmdb

from casstore.errors import StorageError
from casstore.verify import REF_NAME_CHARACTERS, list_refs_tolerantly

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sample-network.json"


def _store(cli: Any) -> Path:
    cli("init")
    cli("import", "t", str(SAMPLE))
    cli("snapshot", "t", "-m", "first")
    return Path(".casstore").resolve()


def test_a_store_whose_table_is_gone_is_reported_and_left_as_it_is(cli) -> None:  # type: ignore[no-untyped-def]
    path = _store(cli)
    env = lmdb.open(str(path), max_dbs=8)
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(b"blobs", txn=txn), delete=True)
    env.close()
    before = (path / "data.mdb").read_bytes()
    for verb in (["verify"], ["networks"], ["stats"], ["export", "t"]):
        message = cli(*verb, code=1).stderr.strip()
        assert message.startswith("error:") and "damaged" in message and "'blobs' table is gone" in message, message
        assert "Traceback" not in message and len(message.splitlines()) == 1
    assert (path / "data.mdb").read_bytes() == before  # nothing recreated an empty table over the damage


def test_flipped_bytes_anywhere_in_the_file_give_clean_answers(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = _store(cli)
    pristine = tmp_path / "pristine"
    shutil.copytree(path, pristine)
    size = (pristine / "data.mdb").stat().st_size
    failed_verifies = 0
    for offset in range(8192, size, 383):  # past LMDB's two meta pages (a damaged meta page is rolled back)
        shutil.rmtree(path)
        shutil.copytree(pristine, path)
        with open(path / "data.mdb", "r+b") as data:
            data.seek(offset)
            byte = data.read(1)[0]
            data.seek(offset)
            data.write(bytes([byte ^ 0xFF]))
        verified = cli("verify", code=None)
        assert verified.exit_code in (0, 1) and "Traceback" not in verified.stderr, (offset, verified.stderr)
        failed_verifies += verified.exit_code
        exported = cli("export", "t", code=None)
        assert exported.exit_code in (0, 1), (offset, exported.stderr)
        if exported.exit_code:
            assert len(exported.stderr.strip().splitlines()) == 1 and exported.stderr.startswith("error:"), offset
    assert failed_verifies > 0  # the damage was seen, so the clean answers above were answers to damage


class _BrokenRefs:
    """A ref store whose every listing fails, as a damaged LMDB file's does."""

    def __init__(self) -> None:
        self.listings = 0

    def list(self, prefix: str = "") -> dict[str, bytes]:
        self.listings += 1
        raise StorageError("cannot be read: MDB_BAD_TXN")


def test_narrowing_stops_at_once_when_no_listing_works() -> None:
    refs = _BrokenRefs()
    good, damaged = list_refs_tolerantly(refs)  # type: ignore[arg-type]
    assert good == {} and list(damaged) == ["*"] and "MDB_BAD_TXN" in damaged["*"]
    assert refs.listings == 1 + len(REF_NAME_CHARACTERS)
