"""Issue 11's hardening, cases 3 and 8-10 and the read-only stores and leftovers it asks for.

Each ``test_case_N_…`` reproduces what the issue reported and checks the fix:
failures that wrote (3), raw S3 exceptions (8), a ``verify`` that raised or
checked a cache (9), crafted images restored or crashing restore (10).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard
from conftest import BUCKET, s3_faults

from casstore import codec
from casstore.archive import MAX_BLOCK_BYTES, archive, header_bytes, restore, section
from casstore.errors import (
    CorruptObject,
    InvalidArchive,
    RemoteExists,
    StorageError,
    StoragePermissionError,
    StoreReadOnly,
)
from casstore.gc import collect_garbage
from casstore.model import NetworkStore
from casstore.model.records import encode_snapshot
from casstore.store.file import FileStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.store.s3 import INDEX_MAGIC, S3Store, encode_index
from casstore.store.wrappers import CachingStore
from casstore.sync import add_remote, remotes
from casstore.testing.network import rich_state, sample_group
from casstore.verify import verify

ROOT = Path(__file__).resolve().parents[1]


def footprint(store: NetworkStore) -> tuple[dict[str, bytes], int]:
    """What a failed call must leave exactly as it was: every ref, and the object count."""
    return store.refs.list(), store.blobs.stats().objects


@pytest.fixture
def net() -> NetworkStore:
    store = NetworkStore(MemoryStore())
    store.save_network_state("net", rich_state())
    return store


# ---------------------------------------------------------------- 3: failures that still wrote


def test_case_3_add_remote_of_an_existing_name_writes_nothing(net: NetworkStore) -> None:
    add_remote(net, "origin", "lmdb:///srv/a")
    before = footprint(net)
    with pytest.raises(RemoteExists):
        add_remote(net, "origin", "lmdb:///srv/b")
    assert footprint(net) == before and remotes(net) == {"origin": "lmdb:///srv/a"}
    add_remote(net, "origin", "lmdb:///srv/a")  # the same URL again: a no-op
    assert footprint(net) == before


def test_case_3_archiving_the_current_state_writes_nothing_to_the_source(net: NetworkStore, tmp_path: Path) -> None:
    before = footprint(net)
    with pytest.raises(StorageError):
        archive(net, "net", str(tmp_path / "no" / "such" / "dir" / "x.car"))
    assert footprint(net) == before, "a failed archive wrote"
    report = archive(net, "net", str(tmp_path / "x.car.zst"))
    assert footprint(net) == before and net.list_snapshots("net") == [], "archive wrote a snapshot"
    into = NetworkStore(MemoryStore())
    restored = restore(into, str(tmp_path / "x.car.zst"))
    assert restored.snapshot_id == report.snapshot_id
    assert [s.label for s in into.list_snapshots("net")] == ["archive"]
    assert into.load_network_state("net") == net.load_network_state("net") and verify(into).ok


def test_case_3_cli_archive_without_snapshot_leaves_no_snapshot(cli: Any, tmp_path: Path) -> None:
    store = f"lmdb://{tmp_path / 's'}"
    cli("--store", store, "init")
    cli("--store", store, "import", "t", str(ROOT / "docs" / "examples" / "sample-network.json"))
    cli("--store", store, "archive", "t", str(tmp_path / "t.car"))
    cli("--store", store, "archive", "t", str(tmp_path / "missing-dir" / "t.car"), code=1)
    assert json.loads(cli("--json", "--store", store, "log", "t").stdout)["snapshots"] == []


# ---------------------------------------------------------------- 8: S3 errors


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore sleeps between retries (seconds, for throttling): not in tests."""
    import botocore.endpoint

    monkeypatch.setattr(botocore.endpoint.time, "sleep", lambda _: None)


def public_calls(store: NetworkStore, tmp_path: Path) -> list[tuple[str, Callable[[], object]]]:
    """A run through the public API of a network store, each call as ``(name, thunk)``."""
    local = NetworkStore(MemoryStore())
    batch_state = sample_group("b", 3)

    def batch() -> None:
        with store.batch("net") as b:
            b.save_group_state("net", "b", batch_state)
            b.save_contact_content("net", "b", "b-c0", 1)

    def snapshot_roundtrip() -> None:
        snap = store.save_snapshot("net", "s")
        store.load_snapshot("net", snap)
        store.diff("net", snap, None)

    return [
        ("save_network_state", lambda: store.save_network_state("net", rich_state())),
        ("load_network_state", lambda: store.load_network_state("net")),
        ("save_contact_content", lambda: store.save_contact_content("net", "root", "root-c1", {"x": 1})),
        ("load_contact_content", lambda: store.load_contact_content("net", "root", "root-c1")),
        ("save_group_state", lambda: store.save_group_state("net", "g", sample_group("g", 5, parent="root"))),
        ("load_group_state", lambda: store.load_group_state("net", "g")),
        ("query_groups", lambda: store.query_groups("net", type="app")),
        ("batch", batch),
        ("snapshots", snapshot_roundtrip),
        ("list_snapshots", lambda: store.list_snapshots("net")),
        ("list_networks", lambda: store.list_networks()),
        ("delete_group", lambda: store.delete_group("net", "g")),
        ("sync", lambda: local.sync(store)),
        ("stats", lambda: store.blobs.stats()),
        ("verify", lambda: verify(store)),
        ("gc", lambda: collect_garbage(store, grace_minutes=0)),
        ("archive", lambda: archive(store, "net", str(tmp_path / "n.car"))),
        ("restore", lambda: restore(store, str(tmp_path / "n.car"), "copy", force=True)),
        ("add_remote", lambda: add_remote(store, "r", "lmdb:///x")),
        ("delete_network", lambda: store.delete_network("copy")),
    ]


@pytest.mark.parametrize("rate", [0.5, 1.0])
def test_case_8_s3_faults_only_ever_raise_storage_errors(
    mock_s3: None, no_backoff: None, tmp_path: Path, rate: float
) -> None:
    """At 50% injected throttles and 500s some calls exhaust botocore's retries; at 100% every call does.
    Every public call either succeeds or raises a StorageError — never a botocore exception."""
    with NetworkStore(S3Store(BUCKET, f"faults-{rate}", cache=False, workers=2)) as store:
        store.save_network_state("net", rich_state())
        archive(store, "net", str(tmp_path / "n.car"))
        outcomes: dict[str, str] = {}
        with s3_faults(store.objects.client, rate=rate, seed=11) as injected:  # type: ignore[attr-defined]
            for name, call in public_calls(store, tmp_path):
                try:
                    call()
                    outcomes[name] = "ok"
                except StorageError as exc:
                    outcomes[name] = exc.code
        assert injected
        if rate == 1.0:
            # verify reports instead of raising; archive reads through the walk, which cannot fetch
            raised = {name for name, outcome in outcomes.items() if outcome != "ok"}
            assert raised >= {"save_network_state", "load_network_state", "sync", "gc", "archive"}, outcomes
            assert "STORAGE_CONNECTION_ERROR" in outcomes.values()
    with S3Store(BUCKET, f"faults-{rate}", cache=False) as after:
        report = verify(after)
        assert not report.corrupt and not report.invalid, report


def damage_index(store: S3Store, data: bytes) -> str:
    key: str = next(item["Key"] for item in store.client.list_keys(store.prefix + "index/"))
    store.client.call("put_object", Key=key, Body=data)
    return key


@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"\xff\xfe not an index",
        INDEX_MAGIC + b"\x00\x00",
        INDEX_MAGIC + b"\xff\xff\xff\xff" * 3,
        encode_index(["\udcff".encode("utf-8", "surrogatepass").decode("latin-1")], []),
        encode_index(["a" * 64 + ".pack"], [(bytes(32), 7, 0, 10)]),
        encode_index(["../../escape"], []),
    ],
    ids=["empty", "garbage", "short", "huge-lengths", "bad-utf8", "pack-out-of-range", "bad-pack-name"],
)
def test_case_8_a_damaged_index_file_is_a_clean_error_and_a_verify_finding(mock_s3: None, damage: bytes) -> None:
    with NetworkStore(S3Store(BUCKET, "idx", cache=False, workers=1)) as store:
        store.save_network_state("net", rich_state())
        key = damage_index(store.objects, damage)  # type: ignore[arg-type]
        report = verify(store)
        assert not report.ok and key in report.damaged, report
        with NetworkStore(S3Store(BUCKET, "idx", cache=False, workers=1)) as reopened:  # opens: verify can start
            fresh_report = verify(reopened)
            assert not fresh_report.ok and key in fresh_report.damaged, fresh_report
            with pytest.raises(CorruptObject) as reading:  # every read needs the index: it raises, naming it
                reopened.load_network_state("net")
        assert key in str(reading.value) and reading.value.code == "STORAGE_CORRUPTION_ERROR"


def test_case_8_casstore_verify_reports_a_damaged_index_instead_of_failing_to_start(mock_s3: None) -> None:
    from click.testing import CliRunner

    from casstore.cli import main

    with NetworkStore(S3Store(BUCKET, "cli-idx", cache=False, workers=1)) as store:
        store.save_network_state("net", rich_state())
        key = damage_index(store.objects, b"garbage")  # type: ignore[arg-type]
    result = CliRunner().invoke(main, ["--json", "--store", f"s3://{BUCKET}/cli-idx?cache=off", "verify"])
    assert result.exit_code == 1
    assert key in json.loads(result.stdout)["damaged"]


def test_case_8_an_index_naming_bytes_past_a_pack_is_a_finding(mock_s3: None) -> None:
    with NetworkStore(S3Store(BUCKET, "range", cache=False, workers=1)) as store:
        store.save_network_state("net", rich_state())
        pack = next(item["Key"] for item in store.objects.client.list_keys("range/packs/"))  # type: ignore[attr-defined]
        ghost = codec.hash_bytes(b"never written")
        data = encode_index([pack.rsplit("/", 1)[1]], [(ghost, 0, 1 << 40, 100)])
        store.objects.client.call("put_object", Key="range/index/00000000000000000001-0123456789abcdef.idx", Body=data)  # type: ignore[attr-defined]
        with S3Store(BUCKET, "range", cache=False, workers=1) as fresh, pytest.raises(CorruptObject):
            fresh.blobs.get(ghost)
        report = verify(store)  # the InvalidRange a ranged GET past the end gets: a finding, not a raise
        assert report.corrupt == [codec.format_id(ghost)] and codec.format_id(ghost) in report.damaged


# ---------------------------------------------------------------- 9: verify never raises, checks the store itself


def test_case_9_a_damaged_ref_file_is_a_finding(tmp_path: Path) -> None:
    with NetworkStore(FileStore(tmp_path / "f")) as store:
        store.save_network_state("net", rich_state())
        store.save_network_state("other", store.load_network_state("net"), keep_times=True)  # type: ignore[arg-type]
        snapshot = store.save_snapshot("other")
        (tmp_path / "f" / "refs" / "networks" / "net" / "head").write_bytes(b"\xffnot an id\n")
        (tmp_path / "f" / "refs" / "networks" / "other" / "snapshots" / snapshot).write_bytes(b"")
        started = time.monotonic()
        report = verify(store)
        assert sorted(report.damaged) == ["networks/net/head", f"networks/other/snapshots/{snapshot}"], report
        assert time.monotonic() - started < 60
        assert report.reachable == store.blobs.stats().objects > 0, "the other refs were still walked"


def test_case_9_a_damaged_s3_ref_is_a_finding(mock_s3: None) -> None:
    with NetworkStore(S3Store(BUCKET, "refdamage", cache=False, workers=1)) as store:
        store.save_network_state("net", rich_state())
        store.save_network_state("other", store.load_network_state("net"), keep_times=True)  # type: ignore[arg-type]
        client = store.objects.client  # type: ignore[attr-defined]
        key = next(item["Key"] for item in client.list_keys("refdamage/refs/") if "other" in item["Key"])
        for body in (b"garbage", b""):
            client.call("put_object", Key=key, Body=body)
            report = verify(store)
            assert list(report.damaged) == ["networks/other/head"], report.damaged
            assert report.reachable == store.blobs.stats().objects > 0, "the other refs were still walked"


def test_case_9_verify_on_s3_checks_the_bucket_not_the_warm_cache(mock_s3: None, tmp_path: Path) -> None:
    with NetworkStore(S3Store(BUCKET, "warm", cache_dir=tmp_path / "cache", workers=1)) as store:
        store.save_network_state("net", rich_state())
        assert store.load_network_state("net") == rich_state()
        store.blobs.get_many(list(store.blobs.iter_hashes()))  # every object warm in memory and on disk
        client = store.objects.client  # type: ignore[attr-defined]
        for item in client.list_keys("warm/packs/"):
            body = client.read(item["Key"])
            client.call("put_object", Key=item["Key"], Body=bytes(b ^ 0x55 for b in body))
        report = verify(store)
        assert len(report.corrupt) == store.blobs.stats().objects > 0, report


def test_case_9_verify_bypasses_a_wrappers_frame_cache() -> None:
    backend = MemoryStore()
    store = NetworkStore(CachingStore(backend, frame_bytes=64 << 20))
    store.save_network_state("net", rich_state())
    assert verify(store).ok
    frames = backend.blobs._frames  # type: ignore[attr-defined]  # damage every object under the warm cache
    for digest in list(frames):
        frames[digest] = b"\x00damaged"
    assert len(verify(store).corrupt) == len(frames)


def craft(store: MemoryStore, value: Any) -> bytes:
    return store.blobs.put(codec.encode(value))


def broken_roots(store: NetworkStore) -> dict[str, dict[str, Any]]:
    """Network roots that re-hash but break the schema, by what is wrong."""
    root = codec.decode(store.blobs.get(store.refs.get("networks/net/head") or b""))
    not_a_node = codec.link(store.blobs.put(codec.encode("a string, not a tree node")))
    contacts_node = root["contacts"]
    return {
        "wires-not-a-node": {**root, "wires": not_a_node},
        "wires-is-the-contacts-tree": {**root, "wires": contacts_node},
        "wrong-field-types": {**root, "current": 5, "size": "big"},
        "no-contacts-link": {k: v for k, v in root.items() if k != "contacts"},
    }


def test_case_9_verify_reports_structure_violations(net: NetworkStore) -> None:
    assert verify(net).ok
    for problem, root in broken_roots(net).items():
        digest = net.blobs.put(codec.encode(root))
        net.refs.compare_and_swap(f"networks/{problem}/head", None, digest)
    bad_body = net.blobs.put(codec.encode_value({"name": "no n field"}))
    leaf = codec.encode({"t": "groups", "h": 0, "k": ["g"], "v": [codec.encode({"b": codec.link(bad_body)})]})
    net.refs.compare_and_swap("networks/bad-body/head", None, net.blobs.put(codec.encode(broken_root(net, leaf))))
    report = verify(net)
    assert not report.ok and not report.corrupt and not report.missing
    # three roots (wrong types, no contacts link, wires naming the contacts tree), the string reached as a
    # wires node, the body without a name
    assert len(report.invalid) == 5, report.invalid
    assert codec.format_id(bad_body) in report.invalid


def broken_root(store: NetworkStore, groups_leaf: bytes) -> dict[str, Any]:
    root = codec.decode(store.blobs.get(store.refs.get("networks/net/head") or b""))
    return {**root, "groups": codec.link(store.blobs.put(groups_leaf))}


# ---------------------------------------------------------------- 10: crafted images


def write_image(path: Path, snapshot: bytes, blocks: list[tuple[bytes, bytes]]) -> None:
    raw = header_bytes(snapshot) + b"".join(section(d, data) for d, data in blocks)
    path.write_bytes(zstandard.ZstdCompressor().compress(raw) if path.name.endswith(".zst") else raw)


def image_of(store: NetworkStore, root: dict[str, Any], time: str | None = None) -> tuple[bytes, list[Any]]:
    """A hash-correct image of every object of ``store`` plus ``root`` and a snapshot of it."""
    digests = list(store.blobs.iter_hashes())
    blocks = list(zip(digests, store.blobs.get_many(digests), strict=True))
    root_bytes = codec.encode(root)
    root_digest = codec.hash_bytes(root_bytes)
    snap = codec.decode(encode_snapshot("crafted", root_digest, None, None, 1))
    if time is not None:
        snap["time"] = time
    snap_bytes = codec.encode(snap)
    return codec.hash_bytes(snap_bytes), [
        *blocks,
        (root_digest, root_bytes),
        (codec.hash_bytes(snap_bytes), snap_bytes),
    ]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[NetworkStore]:
    with NetworkStore(LmdbStore(tmp_path / "target")) as store:
        store.save_network_state("crafted", rich_state())
        yield store


def test_case_10_schema_broken_images_are_refused_and_the_target_untouched(
    net: NetworkStore, target: NetworkStore, tmp_path: Path
) -> None:
    good_root = codec.decode(net.blobs.get(net.refs.get("networks/net/head") or b""))
    cases = {name: image_of(net, root) for name, root in broken_roots(net).items()}
    cases["bad-snapshot-time"] = image_of(net, good_root, time="yesterday")
    cases["naive-snapshot-time"] = image_of(net, good_root, time="2024-01-01T00:00:00")
    before = footprint(target)
    for name, (snapshot, blocks) in cases.items():
        for suffix in (".car", ".car.zst"):
            path = tmp_path / (name + suffix)
            write_image(path, snapshot, blocks)
            with pytest.raises(InvalidArchive):
                restore(target, str(path), force=True)
            assert footprint(target) == before, name
    snapshot, blocks = image_of(net, good_root)  # the same image, intact, is restored
    write_image(tmp_path / "good.car", snapshot, blocks)
    restore(target, str(tmp_path / "good.car"), force=True)
    assert target.load_network_state("crafted") == net.load_network_state("net") and verify(target).ok


def test_case_10_a_block_claiming_2_to_the_40_bytes_is_refused(target: NetworkStore, tmp_path: Path) -> None:
    before = footprint(target)
    snapshot = codec.hash_bytes(b"x")
    for claimed in (1 << 40, MAX_BLOCK_BYTES + 1):
        path = tmp_path / "huge.car"
        path.write_bytes(header_bytes(snapshot) + codec.varint(claimed) + codec.link(snapshot) + b"\x00" * 100)
        with pytest.raises(InvalidArchive, match="claims"):
            restore(target, str(path))
    assert footprint(target) == before


BOMB = textwrap.dedent(
    """
    import resource, sys
    from casstore.archive import restore
    from casstore.errors import InvalidArchive
    from casstore.model import NetworkStore
    from casstore.store.lmdb import LmdbStore
    store = NetworkStore(LmdbStore(sys.argv[2]))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        restore(store, sys.argv[1], scratch=sys.argv[3])
        print("restored")
    except InvalidArchive as exc:
        print("refused", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, exc)
    """
)


def test_case_10_a_zstd_bomb_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    """A ~40 KB ``.car.zst`` whose one block claims 1 GiB of zeros: refused, peak RSS growth under 100 MB."""
    bomb = tmp_path / "bomb.car.zst"
    snapshot = codec.hash_bytes(b"x")
    with bomb.open("wb") as out, zstandard.ZstdCompressor(level=3).stream_writer(out) as writer:
        writer.write(header_bytes(snapshot) + codec.varint(MAX_BLOCK_BYTES) + codec.link(snapshot))
        zeros = bytes(16 << 20)
        for _ in range(MAX_BLOCK_BYTES // len(zeros)):
            writer.write(zeros)
    assert bomb.stat().st_size < 200_000
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", BOMB, str(bomb), str(tmp_path / "t"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    verdict, growth_mb, *_ = proc.stdout.split()
    assert verdict == "refused" and int(growth_mb) < 100, proc.stdout


# ---------------------------------------------------------------- read-only stores, permission errors


def test_a_read_only_lmdb_directory_reads_and_refuses_writes(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = f"lmdb://{tmp_path / 'ro'}"
    cli("--store", store, "init")
    cli("--store", store, "import", "t", str(ROOT / "docs" / "examples" / "sample-network.json"))
    exported = cli("--store", store, "export", "t").stdout
    # as root chmod stops nothing: what the store sees is os.access saying the directory is not writable
    monkeypatch.setattr("casstore.store.lmdb.os.access", lambda path, mode: mode != os.W_OK)
    assert "sensors" in cli("--store", store, "show", "t").stdout
    assert cli("--store", store, "export", "t").stdout == exported
    assert "ok:" in cli("--store", store, "verify").stdout
    refused = cli("--store", store, "set", "t", "sensors", "temperature", "1", code=1).stderr
    assert "READ_ONLY" in refused and len(refused.strip().splitlines()) == 1
    with NetworkStore(LmdbStore(tmp_path / "ro")) as opened:
        before = footprint(opened)
        for write in (
            lambda: opened.save_contact_content("t", "sensors", "temperature", 2),
            lambda: opened.save_snapshot("t"),
            lambda: opened.delete_network("t"),
        ):
            with pytest.raises(StoreReadOnly):
                write()
        assert footprint(opened) == before


def test_file_store_permission_errors_are_storage_permission_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import casstore.store.file as file_backend

    store = NetworkStore(FileStore(tmp_path / "f"))
    store.save_network_state("net", rich_state())

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)  # the object files
    with pytest.raises(StoragePermissionError):
        store.save_contact_content("net", "root", "root-c1", "new value")
    monkeypatch.undo()
    monkeypatch.setattr(file_backend, "open", denied, raising=False)  # the refs lock file
    with pytest.raises(StoragePermissionError):
        store.save_snapshot("net")


# ---------------------------------------------------------------- leftovers of killed writes

WRITER = textwrap.dedent(
    """
    import os, sys
    from casstore.store.file import FileStore
    store = FileStore(sys.argv[1])
    print("ready", flush=True)
    while True:
        store.blobs.put_many([os.urandom(4 << 20) for _ in range(4)])
    """
)


def test_temp_files_of_a_killed_writer_are_removed_by_gc_and_on_open(tmp_path: Path) -> None:
    root = tmp_path / "f"
    FileStore(root)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    left: list[Path] = []
    for attempt in range(20):
        writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root)], stdout=subprocess.PIPE, env=env)
        assert writer.stdout is not None and writer.stdout.readline() == b"ready\n"
        time.sleep(0.3 + 0.05 * attempt)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        left = list((root / "tmp").glob("*.tmp"))
        if left:
            break
    assert left, "no kill landed inside a write"
    store = NetworkStore(FileStore(root))
    assert collect_garbage(store).temp_files == 0, "young temp files may be a live writer's: kept"
    old = time.time() - 2 * 3600
    for path in left:
        os.utime(path, (old, old))
    fresh = root / "tmp" / "fresh.tmp"
    fresh.write_bytes(b"a live writer's")
    dry = collect_garbage(store, dry_run=True)
    assert dry.temp_files == len(left) and all(path.exists() for path in left)
    assert collect_garbage(store).temp_files == len(left)
    assert list((root / "tmp").glob("*.tmp")) == [fresh]
    os.utime(fresh, (old, old))
    FileStore(root)  # opening removes those older than an hour too
    assert list((root / "tmp").iterdir()) == []
    assert verify(store).ok


def test_verify_cli_lists_damaged_refs_in_one_line_each(cli: Any, tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'f'}"
    cli("--store", store, "init")
    cli("--store", store, "import", "t", str(ROOT / "docs" / "examples" / "sample-network.json"))
    (tmp_path / "f" / "refs" / "networks" / "t" / "head").write_text("not an id\n")
    result = cli("--store", store, "verify", code=1)
    assert "damaged networks/t/head" in result.stderr and "Traceback" not in result.stderr
    document = json.loads(cli("--json", "--store", store, "verify", code=1).stdout)
    assert list(document["damaged"]) == ["networks/t/head"]
