"""The streamed fetch answer: one pack, children first, in parts; a client that takes nothing cut or incomplete.

Everything runs in process through the ASGI transport (no socket).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import casstore
from casstore import codec
from casstore.errors import ObjectNotFound, StorageConnectionError
from casstore.model import NetworkStore
from casstore.model.refs import head_ref
from casstore.model.walk import Reached, children, walk
from casstore.pack import MAGIC, read_pack
from casstore.server import create_app
from casstore.server import fetch as server_fetch
from casstore.store import open_object_store
from casstore.store.http.transport import AsgiTransport
from casstore.store.http.wire import read_fetch_parts
from casstore.store.memory import MemoryStore
from casstore.testing.network import sample_group


def served_network(groups: int = 30, contacts: int = 40) -> tuple[MemoryStore, bytes]:
    backing = MemoryStore()
    store = NetworkStore(backing)
    for g in range(groups):
        store.save_group_state("net", f"g{g}", sample_group(f"g{g}", contacts))
    head = backing.refs.get(head_ref("net"))
    assert head is not None
    return backing, head


def remote(backing: MemoryStore) -> NetworkStore:
    return NetworkStore(open_object_store("http://casstore.asgi", transport=AsgiTransport(create_app(backing))))


def test_the_answer_is_one_pack_in_parts_children_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_fetch, "PART_BYTES", 2048)
    backing, head = served_network()
    parts = list(read_fetch_parts(server_fetch.stream_fetch(backing, [(head, "net")], [], {})))
    assert parts[0] == MAGIC and len(parts) > 5  # streamed as walked, not as one answer
    order = [entry.digest for entry in read_pack(b"".join(parts))]
    position = {digest: at for at, digest in enumerate(order)}
    assert len(position) == len(order)  # each object once
    links: list[tuple[bytes, bytes]] = []

    def fetch(digests: list[bytes]) -> list[bytes | None]:
        return backing.blobs.get_whole_frames(digests)

    def visit(level: list[Reached]) -> None:
        for reached in level:
            links.extend((reached.digest, child) for child, _ in children(reached.kind, reached.data))

    walk(fetch, [(head, "net")], visit=visit)
    assert links and set(position) == {parent for parent, _ in links} | {child for _, child in links}
    assert all(position[child] < position[parent] for parent, child in links)


def test_a_pull_sends_deltas_and_skips_what_the_client_holds(tmp_path: Path) -> None:
    backing, _ = served_network()
    server = remote(backing)
    local = casstore.open_store(tmp_path / "local")
    casstore.clone(server, local)
    server.save_contact_content("net", "g3", "c1", "changed")
    report = casstore.pull(local, server, force=True)  # (an in-process origin is not recorded as a remote)
    assert report.round_trips <= 3 and 0 < report.objects_sent < 12
    assert local.load_network_state("net") == server.load_network_state("net")


def _leaves_one_out(inner: Iterator[bytes]) -> Iterator[bytes]:
    """The answer with the first object of its second part left out (parts are cut at entry boundaries)."""
    for index, part in enumerate(inner):
        if index == 2:
            _, at = codec.read_varint(part, 1)  # after the b"D" tag
            entries = list(read_pack(MAGIC + part[at:]))
            assert len(entries) > 1 and all(entry.base is None for entry in entries)
            body = b"".join(b"\x00" + e.digest + codec.varint(len(e.payload)) + e.payload for e in entries[1:])
            yield b"D" + codec.varint(len(body)) + body
            continue
        yield part


@pytest.mark.parametrize("fault", ["left out", "cut short"])
def test_a_clone_takes_no_incomplete_answer(fault: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_fetch, "PART_BYTES", 100)
    backing, _ = served_network(groups=4, contacts=3)
    original = server_fetch.stream_fetch

    def faulty(*args: object) -> Iterator[bytes]:
        parts = original(*args)  # type: ignore[arg-type]
        if fault == "cut short":
            yield from list(parts)[:-3]
        else:
            yield from _leaves_one_out(parts)

    monkeypatch.setattr("casstore.server.objects.stream_fetch", faulty)
    local = casstore.open_store(tmp_path / "local")
    with pytest.raises(ObjectNotFound if fault == "left out" else StorageConnectionError):
        casstore.clone(remote(backing), local)
    assert local.list_networks() == []  # no ref moved


def test_an_answer_cut_part_way_is_asked_for_again_and_the_clone_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fetch is a read: cut mid-stream (after some packs were stored), it is asked for again."""
    monkeypatch.setattr(server_fetch, "PART_BYTES", 100)
    backing, _ = served_network(groups=4, contacts=3)
    original = server_fetch.stream_fetch
    answers: list[int] = []

    def cut_once(*args: object) -> Iterator[bytes]:
        answers.append(len(answers))
        parts = list(original(*args))  # type: ignore[arg-type]
        yield from parts if len(answers) > 1 else parts[: len(parts) // 2]

    monkeypatch.setattr("casstore.server.objects.stream_fetch", cut_once)
    url = "http://casstore.asgi/?retries=2&retry_delay=0"
    origin = NetworkStore(open_object_store(url, transport=AsgiTransport(create_app(backing))))
    local = casstore.open_store(tmp_path / "local")
    casstore.clone(origin, local)
    assert len(answers) == 2
    assert local.load_network_state("net") == origin.load_network_state("net")
    assert casstore.verify(local).ok
