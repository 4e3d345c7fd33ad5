"""The S3 backend beyond the conformance suites: errors, request counts, the local cache, faults, the CLI."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.stub import Stubber
from conftest import BUCKET, s3_faults

from casstore import codec
from casstore.errors import (
    CorruptObject,
    InvalidStoreURL,
    ObjectNotFound,
    RefConflict,
    StorageConnectionError,
    StoragePermissionError,
    StoreNotFound,
)
from casstore.model import NetworkStore
from casstore.store.s3 import CONSOLIDATE_AT, MERGED_SUFFIX, PACK_BYTES, S3Client, S3Store
from casstore.testing.network import rich_state
from casstore.verify import verify

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sample-network.json"


def values(n: int, seed: int = 1) -> list[bytes]:
    rnd = random.Random(seed)
    return [codec.encode_value({"i": i, "pad": rnd.randbytes(rnd.randrange(60, 140)).hex()}) for i in range(n)]


def test_missing_bucket_and_store(moto_server: str) -> None:
    with pytest.raises(StorageConnectionError) as info:
        S3Store("no-such-bucket", endpoint_url=moto_server, cache=False)
    assert "no-such-bucket" in str(info.value) and moto_server in str(info.value)
    assert info.value.code == "STORAGE_CONNECTION_ERROR"
    with pytest.raises(StoreNotFound):
        S3Store(BUCKET, "never-created", endpoint_url=moto_server, create=False, cache=False)


@pytest.mark.slow
def test_unreachable_endpoint_is_a_connection_error() -> None:
    with pytest.raises(StorageConnectionError, match=r"127\.0\.0\.1:9"):
        S3Store(BUCKET, endpoint_url="http://127.0.0.1:9", cache=False)


def test_permission_denied_is_a_permission_error() -> None:
    client = S3Client(BUCKET, "http://127.0.0.1:9", None)
    with Stubber(client.s3) as stub:
        stub.add_client_error("head_bucket", "403", "Forbidden", 403)
        with pytest.raises(StoragePermissionError) as info:
            client.call("head_bucket")
    assert info.value.code == "STORAGE_PERMISSION_ERROR" and BUCKET in str(info.value)


def client_error(code: str, status: int, operation: str = "PutObject") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "test"}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


def translated(error: Exception) -> Exception:
    """What S3Client.call raises when botocore raises ``error`` (a hook raises it before anything is sent)."""
    client = S3Client(BUCKET, "http://127.0.0.1:9", None)

    def fail(**_: Any) -> None:
        raise error

    client.s3.meta.events.register("before-call.s3.HeadObject", fail)
    with pytest.raises(Exception) as info:
        client.call("head_object", Key="k")
    return info.value


def test_is_transient_classifies_errors(mock_s3: None) -> None:
    endpoint = "http://127.0.0.1:9"
    with S3Store(BUCKET, "transient", cache=False, workers=1) as store:
        transient: list[BaseException] = [
            client_error("SlowDown", 503),
            client_error("Throttling", 400),
            client_error("ThrottlingException", 400),
            client_error("ServiceUnavailable", 503),
            client_error("InternalError", 500),
            client_error("", 503),  # a bare status, no code
            client_error("", 500),
            client_error("RequestTimeout", 400),
            BotoConnectionError(error="connection reset by peer"),
            EndpointConnectionError(endpoint_url=endpoint),
            ConnectTimeoutError(endpoint_url=endpoint),
            ReadTimeoutError(endpoint_url=endpoint),
            ConnectionClosedError(endpoint_url=endpoint),
        ]
        wrapped = [
            translated(EndpointConnectionError(endpoint_url=endpoint)),
            translated(ReadTimeoutError(endpoint_url=endpoint)),
            # every other botocore failure is translated too (issue 11, case 8): none escapes a public call
            translated(ConnectionClosedError(endpoint_url=endpoint)),
            translated(client_error("SlowDown", 503, "HeadObject")),
        ]
        assert all(type(e) is StorageConnectionError for e in wrapped), wrapped
        for exc in [*transient, *wrapped]:
            assert store.is_transient(exc), repr(exc)

        with pytest.raises(ClientError) as no_key:
            store.client.call("get_object", Key="transient/absent")
        store.client.call("put_object", Key="transient/taken", Body=b"1")
        with pytest.raises(ClientError) as precondition:
            store.client.call("put_object", Key="transient/taken", Body=b"2", IfNoneMatch="*")
        assert {no_key.value.response["Error"]["Code"], precondition.value.response["Error"]["Code"]} == {
            "NoSuchKey",
            "PreconditionFailed",
        }
        digest = store.blobs.put(codec.encode_value("one"))
        store.refs.compare_and_swap("r", None, digest)
        with pytest.raises(RefConflict) as conflict:
            store.refs.compare_and_swap("r", None, digest)
        with pytest.raises(ObjectNotFound) as not_found:
            store.blobs.get(bytes(32))
        no_bucket = S3Client(BUCKET, endpoint, None)
        with Stubber(no_bucket.s3) as stub:
            stub.add_client_error("head_bucket", "NoSuchBucket", "gone", 404)
            with pytest.raises(StorageConnectionError) as bucket_gone:
                no_bucket.call("head_bucket")
        denied = S3Client(BUCKET, endpoint, None)
        with Stubber(denied.s3) as stub:
            stub.add_client_error("get_object", "AccessDenied", "no", 403)
            with pytest.raises(StoragePermissionError) as access_denied:
                denied.call("get_object", Key="k")
        permanent: list[BaseException] = [
            no_key.value,
            precondition.value,
            client_error("AccessDenied", 403),
            client_error("NoSuchKey", 404, "GetObject"),
            client_error("PreconditionFailed", 412),
            client_error("InvalidArgument", 400),
            conflict.value,
            not_found.value,
            bucket_gone.value,  # a StorageConnectionError, but the bucket will not come back by retrying
            access_denied.value,
            StorageConnectionError("no cause recorded"),
            CorruptObject("k", "not a casstore pack index"),
            InvalidStoreURL("s3://"),
            ValueError("bad input"),
            KeyError("k"),
        ]
        for exc in permanent:
            assert not store.is_transient(exc), repr(exc)


def test_a_large_write_costs_requests_per_pack_not_per_object(mock_s3: None, tmp_path: Path) -> None:
    with S3Store(BUCKET, "bulk", cache=False, workers=1) as store:
        datas = values(30_000)
        before = sum(store.client.requests.values())
        ids = store.blobs.put_many(datas)
        requests = sum(store.client.requests.values()) - before
        total = sum(len(d) for d in datas)
        assert requests <= total // PACK_BYTES + 3, requests  # packs, then one index
        before = sum(store.client.requests.values())
        assert store.blobs.missing(ids) == set()
        assert sum(store.client.requests.values()) == before, "missing() is answered from memory"
        sample = random.Random(2).sample(range(len(ids)), 2000)
        got = store.blobs.get_many([ids[i] for i in sample])
        assert got == [datas[i] for i in sample]
        assert sum(store.client.requests.values()) - before <= 10, "ranged GETs are coalesced per pack"


def test_second_open_reads_indexes_from_the_local_cache(mock_s3: None, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with S3Store(BUCKET, "cached", cache_dir=cache, workers=1) as store:
        for start in range(0, 5000, 500):
            store.blobs.put_many(values(500, seed=start))
        ids = list(store.blobs.iter_hashes())
        datas = store.blobs.get_many(ids)
    with S3Store(BUCKET, "cached", cache_dir=cache, workers=1) as again:
        assert again.client.requests["GetObject"] == 0, "index files came from the cache"
        assert again.blobs.get_many(ids[:100]) == datas[:100]
        assert again.client.requests["GetObject"] == 0, "objects came from the cache"
    with S3Store(BUCKET, "cached", cache=False, workers=1) as cold:
        assert cold.client.requests["GetObject"] == 10  # one per index file


def test_index_files_merge_without_extra_requests_and_gc_removes_the_covered(mock_s3: None) -> None:
    with S3Store(BUCKET, "merging", cache=False, workers=1) as store:
        costs, written, datas = [], [], []
        for i in range(CONSOLIDATE_AT * 2 + 3):
            before = sum(store.client.requests.values())
            datas += values(50, seed=i)
            written += store.blobs.put_many(datas[-50:])
            costs.append(sum(store.client.requests.values()) - before)
        assert set(costs) == {2}, costs  # one pack and one index file, merging or not
        keys = [item["Key"] for item in store.client.list_keys("merging/index/")]
        merged = [key for key in keys if key.endswith(MERGED_SUFFIX)]
        assert len(merged) == 2 and len(keys) == CONSOLIDATE_AT * 2 + 3
    with S3Store(BUCKET, "merging", cache=False, workers=1) as cold:
        assert cold.client.requests["GetObject"] <= 4, "a cold open skips covered index files"
        assert cold.blobs.missing(written) == set()
        assert cold.blobs.get_many(written[-100:]) == datas[-100:]
        assert cold.blobs.delete_many(written[:10]) == 10
        remaining = [item["Key"] for item in cold.client.list_keys("merging/index/")]
        assert len(remaining) <= 4, remaining
        assert cold.blobs.missing(written) == set(written[:10])
    with S3Store(BUCKET, "merging", cache=False, workers=1) as after_gc:
        assert after_gc.blobs.missing(written) == set(written[:10])
        assert verify(after_gc).ok


def test_listing_refs_reads_only_the_changed_ones(mock_s3: None) -> None:
    with (
        S3Store(BUCKET, "listing", cache=False, workers=1) as one,
        S3Store(BUCKET, "listing", cache=False, workers=1) as two,
    ):
        ids = one.blobs.put_many(values(30))
        for i, digest in enumerate(ids[:20]):
            one.refs.compare_and_swap(f"snaps/{i:02d}", None, digest)
        assert len(two.refs.list("snaps/")) == 20
        before = Counter(two.client.requests)
        assert two.refs.list("snaps/") == {f"snaps/{i:02d}": d for i, d in enumerate(ids[:20])}
        assert Counter(two.client.requests) - before == Counter({"ListObjectsV2": 1})
        one.refs.compare_and_swap("snaps/03", ids[3], ids[25])  # another writer moves one
        one.refs.delete("snaps/04", ids[4])
        before = Counter(two.client.requests)
        listed = two.refs.list("snaps/")
        assert listed["snaps/03"] == ids[25] and "snaps/04" not in listed and len(listed) == 19
        assert Counter(two.client.requests) - before == Counter({"ListObjectsV2": 1, "GetObject": 1})


def test_throttling_and_server_errors_are_retried(mock_s3: None) -> None:
    with S3Store(BUCKET, "faults", cache=False, workers=1) as store:
        with s3_faults(store.client, rate=0.3, seed=3) as injected:
            datas = values(20_000, seed=4)
            ids = store.blobs.put_many(datas)
            store.refs.compare_and_swap("keep", None, ids[0])
            assert store.blobs.get_many(ids[::97]) == datas[::97]
        assert injected, "the hook injected faults"
        assert verify(store).ok


def test_an_interrupted_write_leaves_refs_unmoved_and_verifies(mock_s3: None) -> None:
    with NetworkStore(S3Store(BUCKET, "interrupted", cache=False, workers=1)) as store:
        store.save_network_state("net", rich_state())
        head = store.refs.get("networks/net/head")
        calls = {"n": 0}

        def die_midway(**_: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 2:
                raise ConnectionError("lost the network mid-upload")

        store.objects.client.s3.meta.events.register("before-call.s3.PutObject", die_midway)  # type: ignore[attr-defined]
        state = rich_state()
        state.groups["root"].contacts["root-c3"].content = "x" * 300_000
        with pytest.raises(ConnectionError):
            store.save_network_state("net", state)
        store.objects.client.s3.meta.events.unregister("before-call.s3.PutObject", die_midway)  # type: ignore[attr-defined]
        assert store.refs.get("networks/net/head") == head
        assert verify(store).ok
        assert store.load_network_state("net") == rich_state()


def test_gc_releases_packs_and_repacks_sparse_ones(mock_s3: None) -> None:
    from casstore.gc import collect_garbage

    with NetworkStore(S3Store(BUCKET, "gc", cache=False, workers=1)) as store:
        store.save_network_state("net", rich_state())
        for i in range(6):
            store.save_contact_content("net", "root", "root-c3", f"value {i} " + "y" * 3000)
        packs_before = store.blobs.stats().extra or {}
        report = collect_garbage(store, grace_minutes=0)
        assert report.swept > 0
        packs_after = store.blobs.stats().extra or {}
        assert packs_after["packs"] < packs_before["packs"]  # type: ignore[operator]
        assert verify(store).ok
        assert store.load_contact_content("net", "root", "root-c3").startswith("value 5")
        assert store.load_network_state("net") is not None


def run_cli(url: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CASSTORE_URL": url, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "casstore", *args], capture_output=True, text=True, env=env, input=input, timeout=120
    )


@pytest.mark.slow
def test_cli_end_to_end_over_http(moto_server: str, tmp_path: Path) -> None:
    url = f"s3://{BUCKET}/cli-{tmp_path.name}?endpoint_url={moto_server}&cache_dir={tmp_path / 'cache'}"
    for args in (("init",), ("import", "thermostat", str(SAMPLE))):
        proc = run_cli(url, *args)
        assert proc.returncode == 0, proc.stderr
    first = run_cli(url, "snapshot", "thermostat", "-m", "one").stdout.strip()
    assert run_cli(url, "set", "thermostat", "sensors", "temperature", '{"celsius": 30}').returncode == 0
    diff = run_cli(url, "diff", "thermostat", first)
    assert "contact-updated" in diff.stdout and "temperature" in diff.stdout, diff.stderr
    assert "ok:" in run_cli(url, "verify").stdout
    stats = run_cli(url, "stats").stdout
    assert "packs" in stats and "requests" in stats
    exported = json.loads(run_cli(url, "export", "thermostat", "--snapshot", first).stdout)
    assert set(exported.pop("network")) == {"createdAt", "updatedAt"}  # the times the store keeps (#16)
    assert exported == json.loads(SAMPLE.read_text())
    missing = run_cli(f"s3://no-such-bucket/x?endpoint_url={moto_server}", "stats")
    assert missing.returncode == 1 and "no-such-bucket" in missing.stderr and "Traceback" not in missing.stderr
