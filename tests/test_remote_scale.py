"""Scale-out and the ``casstore serve`` command: two servers over one shared store, SIGTERM, the TLS rule."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import BUCKET, free_port, uvicorn_thread

from casstore import codec
from casstore.model import NetworkStore
from casstore.server import create_app
from casstore.store import open_object_store
from casstore.store.base import ObjectStore
from casstore.store.s3 import S3Store
from casstore.store.wrappers import innermost
from casstore.testing.network import sample_group
from casstore.verify import verify

ROOT = Path(__file__).resolve().parent.parent


def _s3_opener(request: pytest.FixtureRequest) -> Callable[[], ObjectStore]:
    endpoint = request.getfixturevalue("moto_server")
    prefix = f"two/{uuid.uuid4().hex[:8]}"
    return lambda: S3Store(BUCKET, prefix, endpoint_url=endpoint, cache=False)


def _postgres_opener(request: pytest.FixtureRequest) -> Callable[[], ObjectStore]:
    url = request.getfixturevalue("postgres_server").fresh_url()
    return lambda: open_object_store(url)


@pytest.fixture(params=["s3", "postgres"])
def two_servers(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, ObjectStore]]:
    """Two servers, each with its own connection to one shared store: (url A, url B, a third connection)."""
    opener = _s3_opener(request) if request.param == "s3" else _postgres_opener(request)
    first, second, checker = opener(), opener(), opener()
    with uvicorn_thread(create_app(first)) as port_a, uvicorn_thread(create_app(second)) as port_b:
        yield f"http://127.0.0.1:{port_a}/", f"http://127.0.0.1:{port_b}/", checker
    for store in (first, second, checker):
        store.close()


def test_two_servers_over_one_store_lose_no_update_and_share_subscriptions(
    two_servers: tuple[str, str, ObjectStore],
) -> None:
    url_a, url_b, shared = two_servers
    with NetworkStore(open_object_store(url_a)) as setup:
        setup.save_group_state("net", "g", sample_group("g", 0))
    seen: list[Mapping[str, bytes | None]] = []
    moved = threading.Event()

    def callback(moves: Mapping[str, bytes | None]) -> None:
        seen.append(dict(moves))
        moved.set()

    watcher = open_object_store(url_a)
    stop = innermost(watcher).watch_refs("networks/", callback)
    try:
        with NetworkStore(open_object_store(url_b)) as through_b:
            start = time.monotonic()
            through_b.save_contact_content("net", "g", "first", 1)
            assert moved.wait(5), "a write through B never reached A's subscriber"
            latency = time.monotonic() - start
        assert latency < 1.5, latency

        def writer(url: str, worker: int) -> None:
            with NetworkStore(open_object_store(url)) as store:
                for i in range(6):
                    store.save_contact_content("net", "g", f"w{worker}-{i}", i)

        threads = [threading.Thread(target=writer, args=(url, k)) for k, url in enumerate([url_a, url_b] * 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop()
        watcher.close()
    state = NetworkStore(shared).load_group_state("net", "g")
    assert state is not None
    assert {f"w{k}-{i}" for k in range(4) for i in range(6)} | {"first"} <= set(state.contacts)
    assert verify(NetworkStore(shared)).ok


def test_serve_refuses_a_public_address_without_tls(cli: Any) -> None:
    result = cli("--json", "serve", "memory://", "--host", "0.0.0.0", "--port", "0", code=1)
    assert "without TLS" in json.loads(result.output)["error"]["message"]


def test_serve_refuses_a_missing_store_unless_init(cli: Any, tmp_path: Path) -> None:
    result = cli("--json", "serve", f"lmdb://{tmp_path / 'absent'}", code=1)
    assert json.loads(result.output)["error"]["code"] == "STORE_NOT_FOUND"


def test_casstore_serve_with_tokens_and_a_graceful_sigterm(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("sekrit-write\n")
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "casstore", "serve", f"lmdb://{tmp_path / 'store'}", "--init"]
    command += ["--port", str(port), "--token-file", str(token_file)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr and proc.stderr.read()
            time.sleep(0.1)
        assert httpx.get(f"{base}/v1/capabilities").status_code == 401
        with NetworkStore(open_object_store(f"{base}/?token_file={token_file}")) as store:
            store.save_group_state("net", "g", sample_group("g", 3))
            digest = store.objects.refs.get("networks/net/head")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "POST /v1/receive 200" in err  # one log line per request: method, path, status, bytes, ms
        assert "sekrit-write" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with NetworkStore(open_object_store(f"lmdb://{tmp_path / 'store'}", create=False)) as local:
        assert local.objects.refs.get("networks/net/head") == digest
        assert verify(local).ok
    assert codec.format_id(digest or b"\x00" * 32)
