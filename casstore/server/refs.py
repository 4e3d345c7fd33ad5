"""Ref routes: list, get, compare-and-swap (``If-Match`` / ``If-None-Match: *``), delete, and the event stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from casstore import codec
from casstore.errors import InvalidId, RefConflict
from casstore.server.appendonly import keep_replaced_heads, refuse_deletes
from casstore.server.auth import Role
from casstore.server.common import TEXT_BODY, read_body, require
from casstore.server.errors import HttpError
from casstore.server.state import ServerState
from casstore.store.base import RefUpdate, validate_ref_name
from casstore.store.http.wire import API

__all__ = ["router"]

router = APIRouter(prefix=API)
#: A comment line sent this often on an idle event stream keeps proxies from closing it.
KEEPALIVE_SECONDS = 15.0


@router.get("/refs")
async def list_refs(request: Request, prefix: str = "") -> dict[str, str]:
    """Every ref under ``prefix``: name → hex id."""
    state = require(request, Role.READ)
    refs = await run_in_threadpool(state.store.refs.list, prefix)
    return {name: digest.hex() for name, digest in refs.items()}


@router.get("/ref", response_class=Response)
async def get_ref(request: Request, name: str) -> Response:
    """The hex id ``name`` points at (also its ``ETag``), or 404."""
    state = require(request, Role.READ)
    digest = await run_in_threadpool(state.store.refs.get, name)
    if digest is None:
        return JSONResponse({"code": "REF_NOT_FOUND", "message": f"no ref {name!r}"}, status_code=404)
    return Response(digest.hex(), media_type="text/plain", headers={"ETag": f'"{digest.hex()}"'})


def _expected(request: Request) -> bytes | None:
    """The old value a move is conditional on: ``If-Match: "<hex>"``, or ``If-None-Match: *`` for none."""
    if request.headers.get("if-none-match", "").strip() == "*":
        return None
    match = request.headers.get("if-match")
    if match is None:
        raise HttpError(428, "PRECONDITION_REQUIRED", 'a ref move needs If-Match: "<old id>" or If-None-Match: *')
    try:
        return codec.parse_id(match.strip().strip('"'))
    except InvalidId:
        raise HttpError(400, "INVALID_ID", f"If-Match is not an object id: {match!r}") from None


def _move(state: ServerState, name: str, expected: bytes | None, new: bytes | None) -> Response:
    validate_ref_name(name)
    update = RefUpdate(name, expected, new)
    kept: list[RefUpdate] = []
    if state.append_only:
        refuse_deletes([update])
        kept = keep_replaced_heads(state.store, [update])
    try:
        if kept:  # the replaced head's snapshot in the same commit as the move
            state.store.commit([], [update, *kept])
        elif new is None:
            state.store.refs.delete(name, expected)
        else:
            state.store.refs.compare_and_swap(name, expected, new)
    except RefConflict:
        actual = state.store.refs.get(name)
        body = {
            "code": RefConflict.code,
            "message": f"ref {name!r} moved",
            "actual": None if actual is None else actual.hex(),
        }
        return JSONResponse(body, status_code=412)
    return Response(status_code=204)


@router.put("/ref", status_code=204, response_class=Response, openapi_extra=TEXT_BODY)
async def put_ref(request: Request, name: str) -> Response:
    """Point ``name`` at the hex id in the body, if it is at ``If-Match`` (412 otherwise)."""
    state = require(request, Role.WRITE)
    expected = _expected(request)
    text = (await read_body(request, 1024)).decode("ascii", "replace").strip()
    try:
        new = codec.parse_id(text)
    except InvalidId:
        raise HttpError(400, "INVALID_ID", f"the body must be the new object id, not {text[:80]!r}") from None
    return await run_in_threadpool(_move, state, name, expected, new)


@router.delete("/ref", status_code=204, response_class=Response)
async def delete_ref(request: Request, name: str) -> Response:
    """Remove ``name`` if it is at ``If-Match`` (``If-None-Match: *``: it must be absent); 403 when append-only."""
    state = require(request, Role.WRITE)
    if state.append_only:
        raise HttpError(403, "APPEND_ONLY", f"the server is append-only: ref {name!r} cannot be deleted")
    return await run_in_threadpool(_move, state, name, _expected(request), None)


def _event(kind: str, ident: int, items: Mapping[str, bytes | None]) -> bytes:
    data = json.dumps({k: None if v is None else v.hex() for k, v in items.items()}, separators=(",", ":"))
    return f"event: {kind}\nid: {ident}\ndata: {data}\n\n".encode()


def _watch(state: ServerState, prefix: str, report: Callable[[Mapping[str, bytes | None]], None]) -> Callable[[], None]:
    """The backing store's change feed (``watch_refs``: NOTIFY on PostgreSQL, a listing poll elsewhere)."""
    return state.store.watch_refs(prefix, report)


async def _stream(state: ServerState, prefix: str, first_id: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Mapping[str, bytes | None]] = asyncio.Queue()

    def report(moves: Mapping[str, bytes | None]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, dict(moves))

    stop = await run_in_threadpool(_watch, state, prefix, report)
    try:
        ident = first_id
        listing = await run_in_threadpool(state.store.refs.list, prefix)
        yield _event("state", ident, listing)
        while not state.stopping.is_set():
            try:
                moves = await asyncio.wait_for(queue.get(), timeout=min(KEEPALIVE_SECONDS, 1.0))
            except TimeoutError:
                yield b": keepalive\n\n"
                continue
            ident += 1
            yield _event("moved", ident, moves)
    finally:
        stop()


@router.get("/subscribe", response_class=StreamingResponse)
async def subscribe(request: Request, prefix: str = "") -> StreamingResponse:
    """Server-sent events of ref moves under ``prefix``.

    Every connection opens with ``event: state`` (the listing); then ``event:
    moved`` with ``{ref: hex or null}``.  The server keeps no history: a
    client resuming with ``Last-Event-ID`` gets the listing again and reports
    what differs from what it last saw.
    """
    state = require(request, Role.READ)
    try:
        first = int(request.headers.get("last-event-id", "-1")) + 1
    except ValueError:
        first = 0
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_stream(state, prefix, first), media_type="text/event-stream", headers=headers)
