"""Network images: CAR v1 archive and restore, local and on S3, and damaged images."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import boto3
import libipld
import pytest
from conftest import BUCKET

import casstore
from casstore import archive, codec
from casstore.errors import InvalidArchive, InvalidPack, NetworkExists, NetworkNotFound, SnapshotNotFound
from casstore.model import NetworkState, NetworkStore
from casstore.pack import PackBuilder, read_pack
from casstore.store.base import RefUpdate
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.testing.network import rich_state, sample_group
from casstore.verify import verify

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sample-network.json"


@pytest.fixture
def source(tmp_path: Path) -> NetworkStore:
    store = NetworkStore(LmdbStore(tmp_path / "src"))
    state = rich_state()
    state.groups.update({f"g{i}": sample_group(f"g{i}", 200, parent="root") for i in range(10)})
    store.save_network_state("net", state)
    return store


@pytest.mark.parametrize("name", ["image.car", "image.car.zst"])
def test_archive_restores_exactly_and_car_readers_accept_it(source: NetworkStore, tmp_path: Path, name: str) -> None:
    target = str(tmp_path / name)
    refs_before = source.refs.list()
    report = archive.archive(source, "net", target)
    # the current state is archived under a snapshot that exists only in the image: the source is unwritten
    assert report.objects > 10 and source.refs.list() == refs_before and source.list_snapshots("net") == []

    into = NetworkStore(MemoryStore())
    restored = archive.restore(into, target)
    assert restored.network_id == "net" and restored.snapshot_id == report.snapshot_id
    assert into.load_network_state("net") == source.load_network_state("net")
    assert [s.id for s in into.list_snapshots("net")] == [report.snapshot_id]
    assert verify(into).ok

    if name.endswith(".car"):
        header, blocks = libipld.decode_car(Path(target).read_bytes())
        assert header == {"version": 1, "roots": [codec.link(codec.parse_id(report.snapshot_id))]}
        assert len(blocks) == report.objects
        for cid, value in blocks.items():  # every block re-hashes to its CID
            assert codec.link(codec.hash_bytes(libipld.encode_dag_cbor(value))) == cid


def test_archive_of_a_named_snapshot_and_restore_under_another_name(source: NetworkStore, tmp_path: Path) -> None:
    first = source.save_snapshot("net", "first")
    old = source.load_network_state("net")
    source.save_contact_content("net", "g1", "g1-c0", "changed later")
    archive.archive(source, "net", str(tmp_path / "first.car"), snapshot_id=first)
    into = NetworkStore(MemoryStore())
    into.save_network_state("net", NetworkState({"x": sample_group("x", 1)}, "x", "x"))
    report = archive.restore(into, str(tmp_path / "first.car"), "copy")
    assert report.network_id == "copy" and into.load_network_state("copy") == old
    with pytest.raises(NetworkExists) as info:
        archive.restore(into, str(tmp_path / "first.car"))  # "net" exists there with another state
    assert info.value.code == "NETWORK_EXISTS"
    archive.restore(into, str(tmp_path / "first.car"), force=True)
    assert into.load_network_state("net") == old


def test_archive_errors(source: NetworkStore, tmp_path: Path) -> None:
    with pytest.raises(NetworkNotFound):
        archive.archive(source, "nope", str(tmp_path / "x.car"))
    with pytest.raises(SnapshotNotFound):
        archive.archive(source, "net", str(tmp_path / "x.car"), snapshot_id="bafyr4inotanid")
    with pytest.raises(casstore.errors.ObjectNotFound):
        archive.restore(NetworkStore(MemoryStore()), str(tmp_path / "absent.car"))
    assert not list(tmp_path.glob("x.car*"))  # nothing left behind


def _damage(data: bytes, how: str) -> bytes:
    if how == "flipped":
        return data[:-40] + bytes([data[-40] ^ 0xFF]) + data[-39:]
    if how == "truncated":
        return data[: len(data) * 2 // 3]
    if how == "not-car":
        return b"\x05hello world"
    # "missing": drop one block from the middle (sections are length-prefixed, so walk them)
    sections, at = [], 0
    while at < len(data):
        start = at
        length, at = codec.read_varint(data, at)
        sections.append(data[start : at + length])
        at += length
    del sections[len(sections) // 2]
    return b"".join(sections)


@pytest.mark.parametrize("how", ["flipped", "truncated", "missing", "not-car"])
def test_a_damaged_image_fails_clearly_and_changes_nothing(source: NetworkStore, tmp_path: Path, how: str) -> None:
    image = tmp_path / "image.car"
    archive.archive(source, "net", str(image))
    image.write_bytes(_damage(image.read_bytes(), how))
    into = NetworkStore(LmdbStore(tmp_path / "into"))
    into.save_network_state("other", NetworkState({"x": sample_group("x", 1)}, "x", "x"))
    refs_before, objects_before = into.refs.list(), into.blobs.stats().objects
    with pytest.raises(InvalidArchive) as info:
        archive.restore(into, str(image))
    assert info.value.code == "INVALID_ARCHIVE"
    assert into.refs.list() == refs_before and into.blobs.stats().objects == objects_before


def test_archive_to_s3_streams_in_parts_and_restores(
    source: NetworkStore, mock_s3: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archive.locations, "PART_BYTES", 5 << 20)  # S3's minimum part size
    groups = {f"big{i}": sample_group(f"big{i}", 0) for i in range(3)}
    for i, state in groups.items():
        state.contacts = {"c": casstore.Contact("c", i, os.urandom(4 << 20))}  # incompressible, 12 MiB in all
    for gid, state in groups.items():
        source.save_group_state("net", gid, state)
    report = archive.archive(source, "net", f"s3://{BUCKET}/images/net.car")
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key="images/net.car", PartNumber=1)
    assert head["PartsCount"] >= 3 and report.bytes > 12 << 20
    into = NetworkStore(MemoryStore())
    archive.restore(into, f"s3://{BUCKET}/images/net.car")
    assert into.load_network_state("net") == source.load_network_state("net")


def test_an_interrupted_s3_archive_leaves_no_image(
    source: NetworkStore, mock_s3: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> None:
        raise ConnectionError("lost")

    monkeypatch.setattr(archive.images._CarBlocks, "put_frames", fail)
    with pytest.raises(ConnectionError):
        archive.archive(source, "net", f"s3://{BUCKET}/images/broken.car")
    client = boto3.client("s3")
    assert "Contents" not in client.list_objects_v2(Bucket=BUCKET, Prefix="images/")
    assert client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []


def test_an_archive_is_written_through_the_sinks_receive_pack(
    source: NetworkStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[bytes] = []
    original = archive.images._CarSink.receive_pack

    def recording(self: archive.images._CarSink, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        received.append(pack)
        return original(self, pack, updates)

    monkeypatch.setattr(archive.images._CarSink, "receive_pack", recording)
    report = archive.archive(source, "net", str(tmp_path / "image.car"))
    entries = [entry for pack in received for entry in read_pack(pack)]
    assert received and len(entries) == report.objects and all(entry.base is None for entry in entries)
    _, blocks = libipld.decode_car((tmp_path / "image.car").read_bytes())
    assert {codec.link(entry.digest) for entry in entries} == set(blocks)


def test_the_image_sink_refuses_a_delta() -> None:
    base, data = codec.encode({"v": "x" * 200}), codec.encode({"v": "x" * 199 + "y"})
    [(digest, frame)] = codec.frame_many([data])
    builder = PackBuilder()
    builder.add(digest, frame, data, codec.hash_bytes(base), base)
    assert builder.deltas == 1
    out = io.BytesIO()
    with pytest.raises(InvalidPack):
        archive.images._CarSink(out, "image.car").receive_pack(builder.finish())
    assert out.getvalue() == b""


def test_end_to_end_over_http_with_the_cli(moto_server: str, tmp_path: Path) -> None:
    """import, snapshot, archive to S3, restore into a fresh LMDB store, verify, compare: each a new process."""
    prefix = f"e2e-{tmp_path.name}"
    store_url = f"s3://{BUCKET}/{prefix}?endpoint_url={moto_server}&cache_dir={tmp_path / 'cache'}"
    image = f"s3://{BUCKET}/{prefix}-images/thermostat.car.zst?endpoint_url={moto_server}"
    env = {**os.environ, "COLUMNS": "200"}

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "casstore", *args], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    cli("--store", store_url, "init")
    cli("--store", store_url, "import", "thermostat", str(SAMPLE))
    snapshot = cli("--store", store_url, "snapshot", "thermostat", "-m", "before archive").strip()
    cli("--store", store_url, "set", "thermostat", "sensors", "temperature", '{"celsius": 30}')
    assert "archived" in cli("--store", store_url, "archive", "thermostat", "--snapshot", snapshot, image)
    fresh = str(tmp_path / "fresh")
    cli("--store", fresh, "init")
    assert "restored thermostat" in cli("--store", fresh, "restore", image)
    assert "ok" in cli("--store", fresh, "verify").lower()
    restored = json.loads(cli("--store", fresh, "export", "thermostat"))
    original = json.loads(cli("--store", store_url, "export", "thermostat", "--snapshot", snapshot))
    assert restored == original
    assert "requests" in cli("--store", store_url, "stats")
