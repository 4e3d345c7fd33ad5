"""The casstore CLI, driven in-process (click's runner) and once as `python -m casstore`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from casstore import codec
from casstore.cli import main
from casstore.store.lmdb import LmdbStore


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CASSTORE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, code: int = 0):  # type: ignore[no-untyped-def]
        result = runner.invoke(main, list(args), input=input, catch_exceptions=False)
        assert result.exit_code == code, result.output + result.stderr
        return result

    return invoke


def test_init_put_cat_verify_on_default_store(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "initialised" in run("init").output
    assert (tmp_path / ".casstore" / "data.mdb").exists()
    value = {"temperature": 21.5, "tags": ["a", "b"], "nested": {"x": None}}
    object_id = run("put", "-", input=json.dumps(value)).stdout.strip()
    assert object_id == codec.format_id(codec.hash_bytes(codec.encode_value(value)))
    assert json.loads(run("cat", object_id).stdout) == value
    assert json.loads(run("cat", object_id[:14]).stdout) == value
    assert json.loads(run("cat", codec.parse_id(object_id).hex()[:10]).stdout) == value
    assert "1 objects" in run("verify").stdout
    assert "objects" in run("stats").stdout


def test_put_from_file_and_store_option(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "v.json"
    source.write_text("[1, 2, 3]")
    url = f"file://{tmp_path / 'fs'}"
    run("--store", url, "init")
    object_id = run("--store", url, "put", str(source)).stdout.strip()
    assert json.loads(run("--store", url, "cat", object_id).stdout) == [1, 2, 3]


def test_env_var_selects_store(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CASSTORE_URL", f"lmdb://{tmp_path / 'env-store'}")
    run("init")
    assert (tmp_path / "env-store" / "data.mdb").exists()


@pytest.mark.parametrize(
    ("args", "stdin", "words"),
    [
        (("--store", "nope://x", "stats"), None, "unknown store scheme"),
        (("--store", "lmdb://", "stats"), None, "names no location"),
        (("stats",), None, "no casstore store"),
        (("put", "-"), '{"a": NaN}', 'value["a"]'),
        (("put", "-"), "{broken", "not valid JSON"),
        (("cat", "bafyr4"), None, "at least 8"),
        (("cat", "bafyr4iaaaaaaaaa"), None, "not found"),
        (("cat", "b" + "z" * 58), None, "not a prefix of an object id"),
    ],
)
def test_user_errors_are_one_line(run, args, stdin, words) -> None:  # type: ignore[no-untyped-def]
    if args[-1] != "stats" or args[0] != "stats":
        run("init")
    result = run(*args, input=stdin, code=1)
    assert words in result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_verify_reports_corruption_and_fails(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("init")
    object_id = run("put", "-", input='"victim object with enough bytes to find"').stdout.strip()
    run("put", "-", input='"bystander"')
    digest = codec.parse_id(object_id)
    with LmdbStore(tmp_path / ".casstore") as store:
        store.blobs.delete_many([digest])
        store.blobs.put_frames([(digest, b"\x00" + codec.encode_value("something else"))])
    result = run("verify", code=1)
    assert object_id in result.stderr and "1 corrupt" in result.stderr
    assert "corrupt" in run("cat", object_id, code=1).stderr


def test_python_dash_m(tmp_path: Path) -> None:
    store = tmp_path / "s"
    proc = subprocess.run(
        [sys.executable, "-m", "casstore", "--store", str(store), "init"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "casstore", "--store", str(tmp_path / "missing"), "verify"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "no casstore store" in bad.stderr and "Traceback" not in bad.stderr
