"""The rough CLI edges of issue #12, each reproduced as it was hit and checked against the new behaviour."""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import click
import pytest
from click.testing import CliRunner
from rich.console import Console

import casstore
from casstore import Wire
from casstore.cli import images, main
from casstore.cli.output import EXIT_INTERRUPTED

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sample-network.json"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@pytest.fixture
def net(cli):  # type: ignore[no-untyped-def]
    """A fresh default store holding the sample network as ``t``."""
    cli("init")
    cli("import", "t", str(SAMPLE))
    return cli


def one_line(result: Any) -> str:
    text: str = result.stderr.strip()
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    return text


def test_set_text_hints_at_quoting_and_string_stores_it(net) -> None:  # type: ignore[no-untyped-def]
    message = one_line(net("set", "t", "sensors", "temperature", "Now in NYC", code=1))
    assert "not valid JSON" in message and "'\"Now in NYC\"'" in message and "--string" in message
    net("set", "t", "sensors", "temperature", "--string", "Now in NYC")
    assert json.loads(net("get", "t", "sensors", "temperature").stdout) == "Now in NYC"
    net("set", "t", "sensors", "temperature", "--string", "42")  # text, though it parses as JSON
    assert json.loads(net("get", "t", "sensors", "temperature").stdout) == "42"


def test_malformed_scheme_is_an_error_not_a_path(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for url, fixed in (("s3:/bkt", "s3://bkt"), ("lmdb:/srv/x", "lmdb:///srv/x"), ("file:x", "file:///x")):
        message = one_line(cli("--store", url, "init", code=1))
        assert "malformed" in message and repr(fixed) in message
    assert "unknown scheme 'foo'" in one_line(cli("--store", "foo:bar", "stats", code=1))
    assert list(tmp_path.iterdir()) == []  # nothing was created under a name like "s3:"


def test_store_of_another_backend_or_a_regular_file_says_what_is_there(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("--store", "db", "init")  # LMDB
    cli("--store", f"file://{tmp_path / 'fs'}", "init")
    message = one_line(cli("--store", f"file://{tmp_path / 'db'}", "stats", code=1))
    assert "holds a casstore lmdb store" in message and f"lmdb://{tmp_path / 'db'}" in message
    assert "holds a casstore file store" in one_line(cli("--store", "fs", "stats", code=1))
    assert "holds a casstore file store" in one_line(cli("--store", "fs", "init", code=1))
    (tmp_path / "plain").write_text("not a store")
    for args in (("--store", "plain", "stats"), ("init", "plain"), ("--store", f"file://{tmp_path / 'plain'}", "init")):
        message = one_line(cli(*args, code=1))
        assert "is a regular file, not a casstore store" in message and "casstore init" not in message
    assert (tmp_path / "plain").read_text() == "not a store"


def test_push_of_a_network_name_suggests_naming_the_remote(net) -> None:  # type: ignore[no-untyped-def]
    message = one_line(net("push", "t", code=1))
    assert "'t' is neither a remote nor a store" in message and "is a network here" in message
    assert "`casstore push origin t`" in message and "remote add origin" in message
    net("--store", "there", "init")
    net("remote", "add", "backup", "there")
    message = one_line(net("pull", "main", code=1))
    assert "the remotes are backup" in message and "`casstore pull backup main`" in message
    assert "STORE_NOT_FOUND" in net("push", "lmdb:///nowhere/at/all", code=1).stderr  # a URL stays a URL


def test_long_urls_in_titles_are_not_broken(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 8, "store")
    url = f"lmdb://{deep}"
    assert len(url) > 200  # wider than the console the table is drawn in
    cli("--store", url, "init")
    cli("init")
    cli("import", "t", str(SAMPLE))
    assert url in cli("push", url).stdout.splitlines()[0]


def test_diff_shows_changed_fields_wire_endpoints_and_stat(net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = net("snapshot", "t").stdout.strip()
    with casstore.open_store(tmp_path / ".casstore", create=False) as store:
        sensors = store.load_group_state("t", "sensors")
        assert sensors is not None
        sensors.group.name = "Sensors (east)"
        sensors.group.attributes["floor"] = 2
        sensors.wires["w-new"] = Wire("w-new", "sensors", "humidity", "readings", "directed")
        del sensors.wires["w-temp"]
        store.save_group_state("t", "sensors", sensors)
        store.delete_group("t", "controller")
        changes = store.diff("t", first, None)
    shown = net("diff", "t", first).stdout
    rows = {line.split("│")[1].strip(): line for line in shown.splitlines() if line.count("│") > 3}
    assert "name, attributes.floor" in rows["group-updated"]
    assert '"Sensors"' in rows["group-updated"] and '"Sensors (east)"' in rows["group-updated"]
    assert "humidity → readings (directed)" in rows["wire-added"]
    assert "temperature → readings (directed)" in rows["wire-removed"]
    # the removed group is one row: its members are counted there, not listed
    assert "controller (and 4 members)" in shown and "contact-removed" not in shown
    assert f"{len(changes)} change(s)" in shown
    stat = net("diff", "t", first, "--stat").stdout
    line = next(row for row in stat.splitlines() if "controller" in row)
    assert "removed" in line and "-3" in line and "-1" in line
    line = next(row for row in stat.splitlines() if "sensors" in row)
    assert "updated" in line and "+1 -1" in line
    line = next(row for row in stat.splitlines() if "root" in row)  # its subgroup_ids lost controller (#11, 13)
    assert "updated" in line
    assert f"{len(changes)} change(s) in 3 group(s)" in stat


def test_archive_to_a_directory_or_over_a_file(net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "images").mkdir()
    message = one_line(net("archive", "t", "images", code=1))
    assert "is a directory" in message and "images/network.car.zst" in message
    assert list((tmp_path / "images").iterdir()) == []  # no stray temp file
    net("archive", "t", "images/t.car")
    before = (tmp_path / "images" / "t.car").read_bytes()
    assert "already exists; pass --force" in one_line(net("archive", "t", "images/t.car", code=1))
    assert (tmp_path / "images" / "t.car").read_bytes() == before
    net("set", "t", "sensors", "temperature", "1")
    net("archive", "t", "images/t.car", "--force")
    assert (tmp_path / "images" / "t.car").read_bytes() != before


def test_zst_is_detected_on_the_s3_key_not_the_query(net, moto_server: str) -> None:  # type: ignore[no-untyped-def]
    assert images.image_location("s3://b/x.car.zst?endpoint_url=http://h:1").endswith(".zst")
    assert not images.image_location("s3://b/x.car?endpoint_url=http://h/y.zst").endswith(".zst")
    assert images.image_location("s3://b/x.car.zst") == "s3://b/x.car.zst"
    url = f"s3://casstore-test/images/t.car.zst?endpoint_url={moto_server}"
    net("archive", "t", url)
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    body = client.get_object(Bucket="casstore-test", Key="images/t.car.zst")["Body"].read()
    assert body.startswith(ZSTD_MAGIC)  # compressed, as the key says
    assert "restored copy" in net("restore", url, "--as", "copy").stdout
    assert json.loads(net("export", "copy").stdout) == json.loads(net("export", "t").stdout)


def test_delete_asks_on_a_terminal_and_refuses_without_one(net, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    message = one_line(net("delete", "group", "t", "sensors", code=1))
    assert "without confirmation" in message and "--yes" in message
    monkeypatch.setattr("casstore.cli.deletes.stdin_is_terminal", lambda: True)
    declined = net("delete", "group", "t", "sensors", input="n\n", code=1)
    assert "delete group t/sensors (3 contacts, 1 wires)?" in declined.stderr and "not deleted" in declined.stderr
    assert "sensors" in net("show", "t").stdout
    accepted = net("delete", "group", "t", "sensors", input="y\n")
    assert "deleted group t/sensors (3 contacts, 1 wires)" in accepted.stdout
    assert "group 'sensors' not found" in one_line(net("delete", "group", "t", "sensors", "--yes", code=1))
    missing = one_line(net("delete", "snapshot", "t", "bafyr4izzzzzzzzzz", "--yes", code=1))
    assert missing.startswith("error: no such snapshot")
    assert "CONTACT_NOT_FOUND" not in missing
    assert "contact 'x' not found" in one_line(net("delete", "contact", "t", "controller", "x", "--yes", code=1))


def test_contact_delete_is_one_write_with_its_groups_wires(net, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = net("snapshot", "t").stdout.strip()
    said = net("delete", "contact", "t", "sensors", "temperature", "--yes").stdout
    # the wire from the contact goes with it now (NetworkStore.delete_contact), and is named
    assert "deleted contact t/sensors/temperature and its 1 wire(s) (w-temp)" in said
    with casstore.open_store(tmp_path / ".casstore", create=False) as store:
        sensors = store.load_group_state("t", "sensors")
        assert sensors is not None and set(sensors.contacts) == {"humidity", "readings"}
        assert sensors.group.contact_ids == ["humidity", "readings"]
        changes = store.diff("t", before, None)
    assert [(c.kind, c.group_id, c.item_id) for c in changes] == [
        ("contact-removed", "sensors", "temperature"),
        ("wire-removed", "sensors", "w-temp"),
    ]


def test_ctrl_c_after_a_commit_exits_130_and_says_so(net, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("casstore.cli.networks.emit", interrupt)  # Ctrl-C just after the write returned
    result = net("set", "t", "sensors", "temperature", "7", code=EXIT_INTERRUPTED)
    assert "interrupted after the write had committed (t/sensors/temperature set)" in one_line(result)
    assert "Aborted" not in result.output + result.stderr
    with casstore.open_store(tmp_path / ".casstore", create=False) as store:
        assert store.load_contact_content("t", "sensors", "temperature") == 7
    monkeypatch.setattr("casstore.model.NetworkStore.save_contact_content", interrupt)  # before it committed
    result = net("--json", "set", "t", "sensors", "temperature", "8", code=EXIT_INTERRUPTED)
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "INTERRUPTED" and error["committed"] is None and "during the write" in error["message"]
    with casstore.open_store(tmp_path / ".casstore", create=False) as store:
        assert store.load_contact_content("t", "sensors", "temperature") == 7


def test_progress_label_is_not_doubled(net, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    screen = io.StringIO()
    monkeypatch.setattr("casstore.cli.common._progress_off", lambda: False)
    monkeypatch.setattr("casstore.cli.common.Console", lambda **_: Console(file=screen, force_terminal=True, width=100))
    net("verify")
    assert "verifying" in screen.getvalue() and "verifying verify" not in screen.getvalue()


def test_quiet_keeps_ids_and_drops_chatter(net) -> None:  # type: ignore[no-untyped-def]
    assert net("-q", "import", "u", str(SAMPLE)).stdout == ""
    snapshot_id = net("-q", "snapshot", "u").stdout.strip()
    assert snapshot_id.startswith("bafyr4")
    assert net("-q", "put", "-", input="1").stdout.strip().startswith("bafyr4")
    assert net("-q", "set", "u", "sensors", "temperature", "3").stdout == ""
    assert json.loads(net("-q", "--json", "delete", "snapshot", "u", snapshot_id, "--yes").stdout)["deleted"]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found += _commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_every_verb_has_an_example_and_json(cli) -> None:  # type: ignore[no-untyped-def]
    verbs = _commands(main)
    assert {("get",), ("query",), ("delete", "contact"), ("delete", "snapshot"), ("remote", "list")} <= set(verbs)
    for path in verbs:
        text = cli(*path, "--help").stdout
        assert "Example:" in text and f"casstore {' '.join(path)}" in text, path
        assert "--json" in text, path
    completion = CliRunner().invoke(main, [], prog_name="casstore", env={"_CASSTORE_COMPLETE": "bash_source"})
    assert completion.exit_code == 0 and "_casstore_completion" in completion.stdout


def _read_until(fd: int, wanted: bytes, timeout: float = 120) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            seen += os.read(fd, 4096)
    return seen


def _wait_reading_terminal(pid: int, timeout: float = 30) -> None:
    """Until ``pid`` is in read(2) on its stdin (``/proc/PID/syscall`` reads ``0 0x0 …`` on x86-64 Linux)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/syscall").read_text().startswith("0 0x0 "):
                return
        except OSError:  # no such file here, or the process is gone
            return
        time.sleep(0.01)


def _process_state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        syscall = Path(f"/proc/{pid}/syscall").read_text().strip()
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except OSError as exc:
        return f"unreadable ({exc})"
    signals = " ".join(line.replace("\t", "") for line in status if line.startswith(("Sig", "State")))
    return f"{signals} syscall={syscall} threads={threads}"


def test_delete_asks_on_a_real_terminal_and_ctrl_c_exits_130(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    base = [sys.executable, "-m", "casstore"]
    subprocess.run([*base, "init"], cwd=tmp_path, env=env, check=True, timeout=120, capture_output=True)
    subprocess.run([*base, "import", "t", str(SAMPLE)], cwd=tmp_path, env=env, check=True, timeout=120)
    prompt = b"delete network t and its 0 snapshot(s)? [y/N]"
    for answer in (None, b"y\n"):  # first Ctrl-C at the prompt, then a yes
        controller, terminal = pty.openpty()
        try:
            proc = subprocess.Popen(
                [*base, "delete", "network", "t"],
                cwd=tmp_path,
                env=env,
                stdin=terminal,
                stdout=subprocess.PIPE,
                stderr=terminal,
            )
            seen = _read_until(controller, prompt)
            assert prompt in seen
            if answer is None:
                # CPython loses a SIGINT that lands after the prompt is written and before the read blocks
                # (the handler runs, then read() sleeps): signal once the process waits on the terminal,
                # and again if one was lost all the same
                for _ in range(10):
                    _wait_reading_terminal(proc.pid)
                    proc.send_signal(signal.SIGINT)
                    try:
                        proc.wait(timeout=10)
                        break
                    except subprocess.TimeoutExpired:
                        seen += _read_until(controller, b"\0", timeout=0.1)  # keep the terminal drained
                if proc.poll() is None:
                    pytest.fail(f"Ctrl-C did not stop the prompt: {_process_state(proc.pid)}; terminal: {seen!r}")
                assert proc.wait(timeout=120) == EXIT_INTERRUPTED
                said = _read_until(controller, b"committed", timeout=10).decode()
                assert "interrupted: nothing was committed" in said and "Aborted" not in said
                assert "Traceback" not in said
            else:
                os.write(controller, answer)
                assert proc.wait(timeout=120) == 0
                assert proc.stdout is not None and "deleted network t" in proc.stdout.read().decode()
            if proc.stdout is not None:
                proc.stdout.close()
        finally:
            os.close(controller)
            os.close(terminal)
        with casstore.open_store(tmp_path / ".casstore", create=False) as store:
            assert store.list_networks() == ([] if answer else ["t"])


def test_the_cli_runs_without_the_server_and_postgres_extras() -> None:
    """A plain `pip install casstore` has no fastapi, uvicorn, httpx or psycopg: every other verb works."""
    script = (
        "import sys\n"
        "for name in ('fastapi', 'uvicorn', 'httpx', 'psycopg', 'psycopg_pool'):\n"
        "    sys.modules[name] = None  # importing it raises ImportError, as when it is not installed\n"
        "from casstore.cli import main\n"
        "main(['--store', 'memory://', 'serve'])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "pip install 'casstore[server]'" in result.stderr and "Traceback" not in result.stderr
