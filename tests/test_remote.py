"""The server's HTTP API, request by request (in process, through Starlette's test client).

Auth on every endpoint, uploads that do not hash, append-only refusals, body
limits, malformed bodies (never a 500), and the OpenAPI description.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():  # Starlette >= 1.x would rather use httpx2; httpx is what the client uses
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from casstore import codec
from casstore.pack import PackBuilder
from casstore.server import Limits, Tokens, create_app
from casstore.store.base import RefUpdate
from casstore.store.http.wire import encode_receive, join_ids
from casstore.store.memory import MemoryStore

WRITE, READ = "w-secret-token", "r-secret-token"


def frames_of(*values: object) -> list[tuple[bytes, bytes]]:
    datas = [codec.encode_value(v) for v in values]
    return codec.frame_many(datas)


def pack_of(frames: list[tuple[bytes, bytes]]) -> bytes:
    builder = PackBuilder()
    builder.add_frames(frames)
    return builder.finish()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def backing() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def client(backing: MemoryStore) -> Iterator[TestClient]:
    app = create_app(backing, tokens=Tokens(WRITE, READ), limits=Limits(max_body_bytes=1 << 20, max_ids=100))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def append_only(backing: MemoryStore) -> Iterator[TestClient]:
    app = create_app(backing, tokens=Tokens(WRITE, READ), append_only=True)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _receive_body() -> bytes:
    return b"".join(encode_receive(pack_of(frames_of("x")), []))


#: (method, path, body, headers) of every endpoint that writes.
WRITES: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("POST", "/v1/receive", _receive_body(), {}),
    ("POST", "/v1/delete", b"\x00" * 32, {}),
    ("PUT", "/v1/ref?name=a", b"00" * 32, {"If-None-Match": "*"}),
    ("DELETE", "/v1/ref?name=a", b"", {"If-Match": '"' + "00" * 32 + '"'}),
]
READS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("GET", "/v1/capabilities", b"", {}),
    ("POST", "/v1/missing", b"\x00" * 32, {}),
    ("POST", "/v1/get", b"\x00" * 32, {}),
    ("POST", "/v1/fetch", b'{"want": [], "have": []}', {}),
    ("GET", "/v1/refs", b"", {}),
    ("GET", "/v1/ref?name=a", b"", {}),
    ("GET", "/v1/objects", b"", {}),
    ("GET", "/v1/stats", b"", {}),
    ("GET", "/v1/written-since?t=0", b"", {}),
]


def test_every_write_needs_the_write_token_and_every_read_a_token(client: TestClient, backing: MemoryStore) -> None:
    for method, path, body, headers in WRITES:
        assert client.request(method, path, content=body, headers=headers).status_code == 401, path
        unknown = client.request(method, path, content=body, headers={**headers, **auth("guess")})
        assert unknown.status_code == 401, path
        refused = client.request(method, path, content=body, headers={**headers, **auth(READ)})
        assert refused.status_code == 403, path
        assert refused.json()["code"] == "STORAGE_PERMISSION_ERROR"
    assert backing.blobs.stats().objects == 0 and backing.refs.list() == {}
    for method, path, body, headers in READS:
        assert client.request(method, path, content=body, headers=headers).status_code == 401, path
        for token in (READ, WRITE):
            answer = client.request(method, path, content=body, headers={**headers, **auth(token)})
            assert answer.status_code in (200, 404), (path, answer.text)
    for method, path, body, headers in WRITES:
        answer = client.request(method, path, content=body, headers={**headers, **auth(WRITE)})
        assert answer.status_code in (200, 204), (path, answer.text)
    assert client.get("/v1/health").status_code == 200  # health and metrics need no token
    assert "casstore_requests_total" in client.get("/metrics").text


def test_a_pack_whose_objects_do_not_hash_is_refused_whole_and_stores_nothing(
    client: TestClient, backing: MemoryStore
) -> None:
    good = frames_of("good-1", "good-2")
    bad_digest = codec.hash_bytes(codec.encode_value("claimed"))
    bad = (bad_digest, codec.frame_many([codec.encode_value("actual")])[0][1])
    ref = RefUpdate("networks/n/head", None, good[0][0])
    body = b"".join(encode_receive(pack_of([*good, bad]), [ref]))
    answer = client.post("/v1/receive", content=body, headers=auth(WRITE))
    assert answer.status_code == 400
    assert answer.json()["code"] == "STORAGE_CORRUPTION_ERROR"
    assert backing.blobs.stats().objects == 0 and backing.refs.list() == {}
    # the same objects, honest this time: stored, and storing them twice is harmless
    honest = b"".join(encode_receive(pack_of(good), [ref]))
    for _ in range(2):
        answer = client.post("/v1/receive", content=honest, headers=auth(WRITE))
        assert answer.status_code == 200 and answer.json() == {"stored": 2}
        ref = RefUpdate("networks/n/head", good[0][0], good[0][0])
        honest = b"".join(encode_receive(pack_of(good), [ref]))
    assert backing.blobs.missing([d for d, _ in good]) == set()


def test_compare_and_swap_over_http(client: TestClient, backing: MemoryStore) -> None:
    (a, _), (b, _) = frames_of("a", "b")
    backing.blobs.put_frames(frames_of("a", "b"))
    put = client.put("/v1/ref?name=x", content=a.hex(), headers={**auth(WRITE), "If-None-Match": "*"})
    assert put.status_code == 204
    again = client.put("/v1/ref?name=x", content=b.hex(), headers={**auth(WRITE), "If-None-Match": "*"})
    assert again.status_code == 412 and again.json()["actual"] == a.hex()
    stale = client.put("/v1/ref?name=x", content=b.hex(), headers={**auth(WRITE), "If-Match": f'"{b.hex()}"'})
    assert stale.status_code == 412
    moved = client.put("/v1/ref?name=x", content=b.hex(), headers={**auth(WRITE), "If-Match": f'"{a.hex()}"'})
    assert moved.status_code == 204 and backing.refs.get("x") == b
    got = client.get("/v1/ref?name=x", headers=auth(READ))
    assert got.text == b.hex() and got.headers["etag"] == f'"{b.hex()}"'
    unconditional = client.put("/v1/ref?name=x", content=a.hex(), headers=auth(WRITE))
    assert unconditional.status_code == 428 and backing.refs.get("x") == b
    bad_name = client.put("/v1/ref?name=../x", content=a.hex(), headers={**auth(WRITE), "If-None-Match": "*"})
    assert bad_name.status_code == 400 and bad_name.json()["code"] == "INVALID_REF_NAME"


def test_append_only_refuses_every_delete(append_only: TestClient, backing: MemoryStore) -> None:
    (a, _) = frames_of("a")[0]
    backing.blobs.put_frames(frames_of("a"))
    backing.refs.compare_and_swap("keep", None, a)
    headers = {**auth(WRITE), "If-Match": f'"{a.hex()}"'}
    assert append_only.delete("/v1/ref?name=keep", headers=headers).status_code == 403
    assert append_only.post("/v1/delete", content=a, headers=auth(WRITE)).status_code == 403
    body = b"".join(encode_receive(pack_of([]), [RefUpdate("keep", a, None)]))
    refused = append_only.post("/v1/receive", content=body, headers=auth(WRITE))
    assert refused.status_code == 403 and refused.json()["code"] == "APPEND_ONLY"
    assert backing.refs.get("keep") == a and backing.blobs.missing([a]) == set()
    assert append_only.get("/v1/capabilities", headers=auth(READ)).json()["append_only"] is True


def test_bodies_and_batches_are_bounded(client: TestClient) -> None:
    too_many = client.post("/v1/missing", content=b"\x01" * 32 * 101, headers=auth(READ))
    assert too_many.status_code == 413
    too_big = client.post("/v1/receive", content=b"\x00" * ((1 << 20) + 1), headers=auth(WRITE))
    assert too_big.status_code == 413


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    endpoint=st.sampled_from(["/v1/missing", "/v1/get", "/v1/receive", "/v1/fetch", "/v1/delete"]),
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda x: json.dumps(x).encode(), st.recursive(st.none() | st.text(max_size=5), st.lists)),
        st.builds(lambda n, rest: bytes([n]) + rest, st.integers(0, 255), st.binary(max_size=80)),
    ),
)
def test_a_malformed_body_is_a_4xx_never_a_500(client: TestClient, endpoint: str, body: bytes) -> None:
    answer = client.post(endpoint, content=body, headers=auth(WRITE))
    assert answer.status_code < 500, (endpoint, body, answer.text)
    if answer.status_code >= 400:
        assert "code" in answer.json()


def test_the_openapi_description_names_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("/v1/missing", "/v1/get", "/v1/receive", "/v1/fetch", "/v1/refs", "/v1/ref", "/v1/subscribe"):
        assert route in paths
    assert join_ids([]) == b""
