"""Sync, append-only, subscriptions and TLS through a real ``casstore serve`` app on loopback (uvicorn in a thread)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from conftest import FaultyProxy, ServedStores, TlsFiles, uvicorn_thread

import casstore
from casstore import codec
from casstore.errors import StorageError, StoragePermissionError
from casstore.model import GroupState, NetworkStore
from casstore.server import Tokens, create_app
from casstore.store import open_object_store
from casstore.store.http import HttpStore
from casstore.store.memory import MemoryStore
from casstore.store.wrappers import innermost
from casstore.testing.network import rich_state, sample_group
from casstore.testing.workers import run_in_processes, write_contacts
from casstore.verify import verify

TOKEN, READ_TOKEN = "write-token-123", "read-token-456"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[MemoryStore, str]]:
    """An append-only server with tokens over a fresh memory store: (the store, its base URL)."""
    backing = MemoryStore()
    with uvicorn_thread(create_app(backing, tokens=Tokens(TOKEN, READ_TOKEN), append_only=True)) as port:
        yield backing, f"http://127.0.0.1:{port}"


def test_clone_and_pull_fetch_whole_closures_in_one_round_trip(served_stores: ServedStores, tmp_path: Path) -> None:
    origin = NetworkStore(MemoryStore())
    origin.save_network_state("net", rich_state())
    remote_url = served_stores.url_for(tmp_path / "remote")
    assert casstore.push(origin, remote_url).networks == {"net": "created"}

    with NetworkStore(MemoryStore()) as copy:
        cloned = casstore.clone(remote_url, copy)
        assert copy.load_network_state("net") == origin.load_network_state("net")
        assert cloned.round_trips <= 3, cloned  # the refs listing and one fetch
        full_bytes = cloned.bytes_sent

        with NetworkStore(open_object_store(remote_url)) as remote:
            remote.save_contact_content("net", "root", "root-c3", "changed on the server")
        pulled = casstore.pull(copy, remote_url, remote="origin")
        assert pulled.networks == {"net": "updated"} and pulled.round_trips <= 3, pulled
        assert 0 < pulled.bytes_sent < full_bytes / 4, (pulled.bytes_sent, full_bytes)  # deltas, not the tree
        assert copy.load_contact_content("net", "root", "root-c3") == "changed on the server"
        assert verify(copy).ok


def test_a_forced_push_to_an_append_only_server_keeps_the_replaced_head(server: tuple[MemoryStore, str]) -> None:
    backing, base = server
    url = f"{base}/?token={TOKEN}"
    mine, theirs = NetworkStore(MemoryStore()), NetworkStore(MemoryStore())
    mine.save_network_state("net", rich_state())
    casstore.push(mine, url)
    casstore.clone(url, theirs)
    theirs.save_contact_content("net", "root", "root-c3", "theirs")
    casstore.push(theirs, url)
    replaced = backing.refs.get("networks/net/head")
    mine.save_contact_content("net", "root", "root-c3", "mine")
    assert casstore.push(mine, url).networks == {"net": "diverged"}
    assert casstore.push(mine, url, force=True).networks == {"net": "updated"}
    with NetworkStore(open_object_store(url)) as remote:
        assert remote.load_contact_content("net", "root", "root-c3") == "mine"
        kept = {info.root for info in remote.list_snapshots("net")}
        assert replaced is not None and codec.format_id(replaced) in kept
        with pytest.raises(StoragePermissionError, match=r"127\.0\.0\.1"):
            remote.delete_network("net")
    with (
        NetworkStore(open_object_store(f"{base}/?token={READ_TOKEN}")) as reader,
        pytest.raises(StoragePermissionError) as refused,
    ):
        reader.save_contact_content("net", "root", "root-c3", "no")
    assert READ_TOKEN not in str(refused.value) and "127.0.0.1" in str(refused.value)
    assert verify(NetworkStore(backing)).ok


def test_watch_refs_reports_moves_through_the_server_and_resumes_after_a_drop(
    served_stores: ServedStores, tmp_path: Path
) -> None:
    upstream_port = int(served_stores.base.rsplit(":", 1)[1])
    proxy = FaultyProxy(upstream_port)
    key = served_stores.key_for(tmp_path)
    watched = open_object_store(f"http://127.0.0.1:{proxy.port}/t/{key}")
    writer = open_object_store(served_stores.url_for(tmp_path))
    seen: list[Mapping[str, bytes | None]] = []
    event = threading.Event()

    def callback(moves: Mapping[str, bytes | None]) -> None:
        seen.append(dict(moves))
        event.set()

    a, b, c = writer.blobs.put_many([codec.encode_value(v) for v in "abc"])
    stop = innermost(watched).watch_refs("networks/", callback)
    try:
        start = time.monotonic()
        writer.refs.compare_and_swap("networks/x/head", None, a)
        assert event.wait(5) and time.monotonic() - start < 1.5
        assert seen[-1] == {"networks/x/head": a}
        event.clear()
        proxy.drop_all()  # the stream drops; a move made meanwhile is reported on reconnect
        writer.refs.compare_and_swap("networks/x/head", a, b)
        writer.refs.compare_and_swap("networks/y/head", None, c)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (seen and seen[-1].get("networks/y/head") == c):
            event.wait(0.2)
        merged: dict[str, bytes | None] = {}
        for moves in seen[1:]:
            merged.update(moves)
        assert merged == {"networks/x/head": b, "networks/y/head": c}
    finally:
        stop()
        watched.close()
        writer.close()
        proxy.close()


def test_https_with_a_self_signed_certificate(
    served_stores_tls: ServedStores, tls_files: TlsFiles, tmp_path: Path
) -> None:
    url = served_stores_tls.url_for(tmp_path, ca_file=str(tls_files.cert))
    assert url.startswith("https://")
    with NetworkStore(open_object_store(url)) as store:
        store.save_network_state("net", rich_state())
        assert store.load_network_state("net") == rich_state()
    with pytest.raises(StorageError, match=r"127\.0\.0\.1"):  # without the certificate the client refuses
        open_object_store(served_stores_tls.url_for(tmp_path))
    with open_object_store(url) as opened:
        assert isinstance(innermost(opened), HttpStore)


def test_subscribe_hears_a_write_made_by_another_process(served_stores: ServedStores, tmp_path: Path) -> None:
    url = served_stores.url_for(tmp_path)
    heard: list[GroupState] = []
    event = threading.Event()

    def callback(state: GroupState) -> None:
        heard.append(state)
        event.set()

    with NetworkStore(open_object_store(url)) as store:
        store.save_group_state("net", "g", sample_group("g", 0))
        unsubscribe = store.subscribe("net/g", callback)
        run_in_processes(write_contacts, [(url, 0, 1)])
        written = time.monotonic()
        assert event.wait(5), "the other process's write was never reported"
        assert time.monotonic() - written < 1.0
        assert "p0-0" in heard[-1].contacts
        unsubscribe()
