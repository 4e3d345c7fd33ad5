"""Faults and load through ``casstore serve``: dropped and truncated connections, aborted uploads, many writers.

``CASSTORE_REMOTE_LOAD=PROCESSESxWRITES`` (e.g. ``8x1000``) sizes the load test; the default is small.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FaultyProxy, uvicorn_thread

import casstore
from casstore import codec
from casstore.errors import StorageError
from casstore.model import NetworkStore
from casstore.pack import PackBuilder
from casstore.server import create_app
from casstore.store import open_object_store
from casstore.store.http.wire import encode_receive
from casstore.store.memory import MemoryStore
from casstore.testing.network import rich_state, sample_group
from casstore.testing.workers import run_in_processes, write_contacts
from casstore.verify import verify


@pytest.fixture
def served() -> Iterator[tuple[MemoryStore, int]]:
    backing = MemoryStore()
    with uvicorn_thread(create_app(backing)) as port:
        yield backing, port


def until_done(what: str, call: object, attempts: int = 20) -> None:
    """Run ``call`` until it succeeds; every failure on the way must be a clean StorageError."""
    for _ in range(attempts):
        try:
            call()  # type: ignore[operator]
            return
        except StorageError:
            continue
    raise AssertionError(f"{what} never completed")


def test_dropped_and_truncated_connections_lose_no_acknowledged_write(
    served: tuple[MemoryStore, int], tmp_path: Path
) -> None:
    backing, port = served
    proxy = FaultyProxy(port, seed=7)
    url = f"http://127.0.0.1:{proxy.port}/?retries=4&retry_delay=0.01&timeout=5"
    local = NetworkStore(MemoryStore())
    local.save_network_state("pushed", rich_state())
    acknowledged: dict[str, int] = {}
    try:
        until_done("open", lambda: NetworkStore(open_object_store(url)).close())
        remote = NetworkStore(open_object_store(url))
        remote.save_network_state("net", rich_state())
        proxy.rate = 0.10
        errors = 0
        for step in range(20):
            try:
                remote.save_contact_content("net", "root", f"fault-{step}", step)
                acknowledged[f"fault-{step}"] = step
            except StorageError:
                errors += 1
            if step == 10:
                try:
                    casstore.push(local, remote.objects)
                except StorageError:
                    errors += 1
        until_done("push", lambda: casstore.push(local, remote.objects))
        for step in range(20):  # re-running finishes what failed
            name = f"fault-{step}"
            if name not in acknowledged:
                until_done(name, lambda n=name, s=step: remote.save_contact_content("net", "root", n, s))
                acknowledged[name] = step
        remote.close()
        assert proxy.faults, "the proxy injected no fault"
    finally:
        proxy.close()
    served_store = NetworkStore(backing)
    assert verify(served_store).ok
    for name, value in acknowledged.items():
        assert served_store.load_contact_content("net", "root", name) == value
    assert served_store.load_network_state("pushed") == local.load_network_state("pushed")


def test_an_upload_aborted_mid_body_leaves_the_good_copy(served: tuple[MemoryStore, int]) -> None:
    backing, port = served
    datas = [codec.encode_value({"i": i, "pad": "x" * 300}) for i in range(200)]
    frames = codec.frame_many(datas)
    builder = PackBuilder()
    builder.add_frames(frames)
    body = b"".join(encode_receive(builder.finish(), []))

    def aborted() -> None:
        with socket.create_connection(("127.0.0.1", port)) as raw:
            head = f"POST /v1/receive HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            raw.sendall(head + body[: len(body) // 2])
            time.sleep(0.05)

    threads = [threading.Thread(target=aborted) for _ in range(3)]
    for thread in threads:
        thread.start()
    with open_object_store(f"http://127.0.0.1:{port}/") as client:
        client.blobs.put_frames(frames)
        assert client.blobs.get_many([d for d, _ in frames]) == datas
    for thread in threads:
        thread.join()
    assert backing.blobs.get_many([d for d, _ in frames]) == datas
    assert backing.blobs.stats().objects == len(frames)


def _load_size() -> tuple[int, int]:
    text = os.environ.get("CASSTORE_REMOTE_LOAD", "4x25")
    processes, _, writes = text.partition("x")
    return int(processes), int(writes)


def test_many_writer_processes_lose_no_contact(served: tuple[MemoryStore, int]) -> None:
    backing, port = served
    processes, writes = _load_size()
    url = f"http://127.0.0.1:{port}/"
    with NetworkStore(open_object_store(url)) as store:
        store.save_group_state("net", "g", sample_group("g", 0))
    start = time.perf_counter()
    run_in_processes(write_contacts, [(url, worker, writes) for worker in range(processes)], timeout=900)
    elapsed = time.perf_counter() - start
    served_store = NetworkStore(backing)
    group = served_store.load_group_state("net", "g")
    assert group is not None
    assert set(group.contacts) == {f"p{k}-{i}" for k in range(processes) for i in range(writes)}
    assert verify(served_store).ok
    print(f"{processes * writes} contact writes through the server in {elapsed:.1f}s")
