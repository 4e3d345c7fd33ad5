"""Property-based API tests generated from the server's own ``/openapi.json`` (schemathesis), in process.

Every operation gets generated (mostly malformed) query strings, headers and
bodies, with a write token, a read token and none: the server must answer each
with a 4xx or a success, never a 5xx, and a JSON error body for every 4xx.
Bounded examples per operation keep it within the test budget.
"""

from __future__ import annotations

import itertools
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

with warnings.catch_warnings():  # schemathesis pulls in Starlette's test client
    warnings.simplefilter("ignore")
    import schemathesis

from casstore.server import Limits, Tokens, create_app
from casstore.store.memory import MemoryStore

WRITE, READ = "w-token", "r-token"
#: Each example's token, in turn: write, read, none, unknown.
TOKENS = itertools.cycle([WRITE, READ, None, "wrong"])
APP = create_app(MemoryStore(), tokens=Tokens(WRITE, READ), limits=Limits(max_body_bytes=1 << 16, max_ids=64))
#: Every operation but the event stream (which never ends by itself).
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/v1/subscribe")


def test_every_operation_is_described() -> None:
    paths = set(SCHEMA.raw_schema["paths"])
    assert {"/v1/missing", "/v1/get", "/v1/receive", "/v1/fetch", "/v1/ref", "/v1/refs", "/metrics"} <= paths
    body = SCHEMA.raw_schema["paths"]["/v1/receive"]["post"]["requestBody"]
    assert "application/octet-stream" in body["content"]


@SCHEMA.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@pytest.mark.filterwarnings("ignore")
def test_no_input_makes_a_server_error(case: Any) -> None:
    token = next(TOKENS)
    headers = dict(case.headers or {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    case.headers = headers
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.content[:300])
    if 400 <= response.status_code < 500:
        detail = response.json()
        assert isinstance(detail, dict) and detail.get("code"), detail
