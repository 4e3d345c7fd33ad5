"""CLI edges found by a fuzzing pass over the verbs (session 17): each pins the answer a user gets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sample-network.json"


def error_of(result: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(result.stderr)["error"]
    return doc


def test_resolve_takes_one_side_and_names_a_bad_value(cli) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    both = cli("--json", "resolve", "n", "g", "i", "--ours", "--theirs", code=2)
    assert error_of(both) == {"code": "USAGE_ERROR", "message": error_of(both)["message"]}
    assert "exactly one of --ours, --theirs" in error_of(both)["message"]
    bad = error_of(cli("--json", "resolve", "n", "g", "i", "--value", "{oops", code=1))
    assert bad["code"] == "INVALID_JSON" and bad["message"].startswith("--value is not valid JSON")


def test_a_duration_too_long_is_a_clean_error(cli) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    cli("import", "t", str(SAMPLE))
    message = cli("prune", "t", "--keep-within", "1000000000d", code=2).stderr
    assert "too long" in message and "Traceback" not in message
    assert "deleted 0 snapshots" in cli("prune", "t", "--keep-within", "999999999d").stdout


def test_an_id_with_trailing_junk_is_refused(cli) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    object_id = cli("put", "-", input='"hello"').stdout.strip()
    assert json.loads(cli("cat", object_id).stdout) == "hello"
    refused = error_of(cli("--json", "cat", object_id + "a", code=1))
    assert refused["code"] == "INVALID_ID" and "longer than an object id" in refused["message"]


def test_usage_mistakes_exit_2_with_usage_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    cli("import", "t", str(SAMPLE))
    cli("--store", str(tmp_path / "other"), "init")
    for args in (
        ("import", "t"),  # no SOURCE
        ("import", "t", str(SAMPLE), "--as", "u"),  # --as with a JSON file
        ("export",),  # no network
        ("export", "--layout", "seed"),  # no directory
        ("fetch", str(tmp_path / "other")),  # a URL no remote names
    ):
        assert error_of(cli("--json", *args, code=2))["code"] == "USAGE_ERROR", args


def test_a_bad_config_file_is_invalid_config(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "bad.toml").write_text("url = 5\n")
    refused = error_of(cli("--json", "--config", "bad.toml", "stats", code=1))
    assert refused["code"] == "INVALID_CONFIG" and "bad.toml" in refused["message"]
    plain = cli("--config", "bad.toml", "stats", code=1).stderr.strip()
    assert plain.startswith("error: --config:") and plain.endswith("[INVALID_CONFIG]")


def test_empty_arguments_are_not_defaults(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert error_of(cli("--json", "init", "", code=1))["code"] == "INVALID_STORE_URL"
    assert not (tmp_path / ".casstore").exists()  # not the default store instead
    cli("init")
    cli("import", "t", str(SAMPLE))
    cli("archive", "t", "t.car")
    refused = error_of(cli("--json", "restore", "t.car", "--as", "", code=1))
    assert "network_id" in refused["message"]
    assert [row["id"] for row in json.loads(cli("--json", "networks").stdout)["networks"]] == ["t"]


def test_every_plain_error_ends_in_its_code(cli) -> None:  # type: ignore[no-untyped-def]
    cli("init")
    for args, code in (
        (("show", "nosuch"), "NETWORK_NOT_FOUND"),
        (("get", "nosuch", "g", "c"), "NETWORK_NOT_FOUND"),
        (("--store", "s3://", "stats"), "INVALID_STORE_URL"),
    ):
        line = cli(*args, code=1).stderr.strip()
        assert line.startswith("error:") and line.endswith(f"[{code}]") and len(line.splitlines()) == 1, line
    assert "e.g. s3://my-bucket/casstore" in cli("--store", "s3://", "stats", code=1).stderr


def test_version_follows_json(cli) -> None:  # type: ignore[no-untyped-def]
    import casstore

    assert json.loads(cli("--json", "--version").stdout) == {"version": casstore.__version__}
    assert cli("--version").stdout.strip() == f"casstore, version {casstore.__version__}"


_INTERRUPT_DURING_IMPORT = """
import sys
class Interrupt:  # Ctrl-C arriving while casstore's modules are still being imported
    def find_spec(self, name, path=None, target=None):
        if name == "casstore.model":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
sys.argv = ["casstore", *sys.argv[1:]]
from casstore_launch import main
main()
"""


def test_ctrl_c_while_starting_is_one_line_and_exit_130(tmp_path: Path) -> None:
    import subprocess
    import sys

    plain = subprocess.run([sys.executable, "-c", _INTERRUPT_DURING_IMPORT, "stats"], capture_output=True, text=True)
    assert plain.returncode == 130 and "Traceback" not in plain.stderr
    assert plain.stderr == "error: interrupted while starting: nothing was done [INTERRUPTED]\n"
    as_json = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_DURING_IMPORT, "--json", "stats"], capture_output=True, text=True
    )
    assert as_json.returncode == 130 and json.loads(as_json.stderr)["error"]["code"] == "INTERRUPTED"
    launch = "import sys; sys.argv = ['casstore', '--version']; from casstore_launch import main; main()"
    ran = subprocess.run([sys.executable, "-c", launch], capture_output=True, text=True)  # uninterrupted
    assert ran.returncode == 0 and ran.stdout.startswith("casstore, version")
