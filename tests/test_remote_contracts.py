"""The server and the http(s):// client at their edges (found by a fuzzing pass, session 17): tokens never
printed, a path a client chose never reaches the metrics or the log as-is, bad input a 4xx, and
``casstore serve`` start-up failures as one clean line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_remote import READ, WRITE, auth

from casstore import codec
from casstore.errors import InvalidStoreURL
from casstore.server import create_app
from casstore.server.auth import Tokens
from casstore.store import open_object_store
from casstore.store.memory import MemoryStore


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(create_app(MemoryStore(), tokens=Tokens(WRITE, READ)), raise_server_exceptions=False) as test:
        yield test


def test_a_path_cannot_forge_metrics_lines(client: TestClient) -> None:
    forged = "/nope%22%7D%201%0Acasstore_server_errors_total%2099999%0A%23"
    for n in range(5):
        assert client.get(f"{forged}{n}").status_code == 404
    client.get("/v1/health")
    metrics = client.get("/metrics").text
    assert "99999" not in metrics
    assert [line for line in metrics.splitlines() if line.startswith("casstore_server_errors_total")] == [
        "casstore_server_errors_total 0"
    ]
    assert 'route="unmatched",status="404"} 5' in metrics  # one series for every unknown path
    assert 'route="/v1/health",status="200"' in metrics


def test_json_nested_too_deep_is_a_4xx(client: TestClient) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    fetched = client.post("/v1/fetch", content=deep, headers=auth(READ))
    assert fetched.status_code == 400 and fetched.json()["code"] == "INVALID_PACK"
    received = client.post("/v1/receive", content=codec.varint(len(deep)) + deep, headers=auth(WRITE))
    assert received.status_code == 400 and received.json()["code"] == "INVALID_PACK"
    assert "casstore_server_errors_total 0" in client.get("/metrics").text


def test_a_token_with_a_control_character_is_refused_at_open(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidStoreURL, match="whitespace or a control character") as info:
        open_object_store("http://127.0.0.1:1/?token=tok-SECRET%0A")
    assert "tok-SECRET" not in str(info.value)


def test_the_cli_never_prints_a_remote_token(cli: Any, served_stores: Any, tmp_path: Path) -> None:
    url = served_stores.url_for(tmp_path / "remote", token="tok-SECRET-42")
    cli("init")
    sample = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sample-network.json"
    cli("import", "t", str(sample))
    printed = [
        cli("remote", "add", "origin", url).stdout,
        cli("remote", "list").stdout,
        cli("--json", "remote", "list").stdout,
        cli("push").stdout,
        cli("--json", "push").stdout,
        cli("pull").stdout,
    ]
    assert all("tok-SECRET-42" not in text for text in printed), printed
    assert "token=***" in printed[1] and json.loads(printed[4])["url"].endswith("token=***")


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "casstore", "--store", "memory://", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_start_up_failures_are_one_error_line() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        busy = _serve("--port", str(taken.getsockname()[1]))
    finally:
        taken.close()
    assert busy.returncode == 1 and busy.stdout == "" and "Traceback" not in busy.stderr
    assert busy.stderr.strip().startswith("error: cannot listen on 127.0.0.1:") and "in use" in busy.stderr
    out_of_range = _serve("--port", "70000")
    assert out_of_range.returncode == 2 and "Traceback" not in out_of_range.stderr


def test_an_append_only_move_that_loses_records_no_snapshot() -> None:
    from casstore.model import Group, GroupState, NetworkState, NetworkStore
    from casstore.model.refs import head_ref, snapshots_prefix

    backing = MemoryStore()
    with NetworkStore(backing) as store:
        store.save_network_state("net", NetworkState({"g": GroupState(Group("g", "first"), {})}))
        first = backing.refs.get(head_ref("net"))
        store.save_network_state("net", NetworkState({"g": GroupState(Group("g", "second"), {})}))
        second = backing.refs.get(head_ref("net"))
    assert first is not None and second is not None
    app = create_app(backing, tokens=Tokens(WRITE, READ), append_only=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        for _ in range(3):  # a writer that lost a race: its If-Match is a head replaced long ago
            stale = client.put(
                f"/v1/ref?name={head_ref('net')}",
                content=first.hex(),
                headers={**auth(WRITE), "If-Match": f'"{first.hex()}"'},
            )
            assert stale.status_code == 412
        assert backing.refs.list(snapshots_prefix("net")) == {} and backing.refs.get(head_ref("net")) == second
        moved = client.put(
            f"/v1/ref?name={head_ref('net')}",
            content=first.hex(),
            headers={**auth(WRITE), "If-Match": f'"{second.hex()}"'},
        )
        assert moved.status_code == 204 and len(backing.refs.list(snapshots_prefix("net"))) == 1  # the one replaced


def test_an_object_bigger_than_the_servers_body_limit_is_refused_before_sending() -> None:
    import os

    from conftest import uvicorn_thread

    import casstore
    from casstore import sync
    from casstore.errors import StorageError
    from casstore.server import Limits

    backing = MemoryStore()
    app = create_app(backing, limits=Limits(max_body_bytes=1 << 20))
    with uvicorn_thread(app) as port, casstore.open_store("memory://") as local:
        from casstore.model import Group, GroupState, NetworkState

        local.save_network_state("net", NetworkState({"g": GroupState(Group("g", "G"), {})}))
        local.save_contact_content("net", "g", "big", os.urandom(3 << 20))  # incompressible: 3 MiB at rest
        refused = pytest.raises(StorageError, match="request body the server accepts: this pack was not sent")
        with casstore.open_store(f"http://127.0.0.1:{port}/") as remote, refused:
            sync.push(local, remote)
        assert backing.refs.list() == {}
