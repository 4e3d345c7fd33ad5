"""Object routes: capabilities, missing, get, receive (packs), fetch (whole closures), listing, stats, delete."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from casstore import codec
from casstore.errors import InvalidPack, StorageError
from casstore.server.appendonly import keep_replaced_heads, refuse_deletes
from casstore.server.auth import Role
from casstore.server.common import BINARY_BODY, JSON_BODY, read_body, require
from casstore.server.errors import HttpError
from casstore.server.fetch import stream_fetch
from casstore.server.state import ServerState
from casstore.store.base import validate_ref_name
from casstore.store.http.wire import API, decode_receive, encode_frames, encode_indexes, split_ids

__all__ = ["router"]

router = APIRouter(prefix=API)
BINARY = "application/octet-stream"


def _ids(state: ServerState, body: bytes) -> list[bytes]:
    ids = split_ids(body)
    if len(ids) > state.limits.max_ids:
        raise HttpError(413, "TOO_LARGE", f"{len(ids)} ids in one request; the limit is {state.limits.max_ids}")
    return ids


@router.get("/capabilities")
def capabilities(request: Request) -> dict[str, Any]:
    """Hash, format, limits and features of this server."""
    state = require(request, Role.READ)
    return {
        "protocol": "casstore/1",
        "hash": "blake3-256",
        "format_version": 1,
        "max_ids": state.limits.max_ids,
        "max_body_bytes": state.limits.max_body_bytes,
        "max_updates": state.limits.max_updates,
        "append_only": state.append_only,
        "atomic_commit": state.store.atomic_commit,
        "features": ["missing", "get", "receive", "fetch", "refs", "subscribe", "deltas"],
    }


@router.post("/missing", openapi_extra=BINARY_BODY, response_class=Response)
async def missing(request: Request) -> Response:
    """Packed 32-byte ids in; the indexes of the absent ones out (little-endian uint32 each)."""
    state = require(request, Role.READ)
    ids = _ids(state, await read_body(request, state.limits.max_body_bytes))
    absent = await run_in_threadpool(state.store.blobs.missing, ids)
    return Response(encode_indexes([i for i, digest in enumerate(ids) if digest in absent]), media_type=BINARY)


@router.post("/get", openapi_extra=BINARY_BODY, response_class=StreamingResponse)
async def get(request: Request) -> StreamingResponse:
    """Packed ids in; per id a varint (frame length + 1, 0 when absent) and the frame, streamed."""
    state = require(request, Role.READ)
    ids = _ids(state, await read_body(request, state.limits.max_body_bytes))
    frames = await run_in_threadpool(state.store.blobs.get_frames, ids)
    return StreamingResponse(encode_frames(frames), media_type=BINARY)


def _receive(state: ServerState, body: bytes) -> int:
    updates, pack = decode_receive(body)
    if len(updates) > state.limits.max_updates:
        raise HttpError(413, "TOO_LARGE", f"{len(updates)} ref updates; the limit is {state.limits.max_updates}")
    for update in updates:
        validate_ref_name(update.name)
    if state.append_only:
        refuse_deletes(updates)
        updates = [*updates, *keep_replaced_heads(state.store, updates)]
    # A received delta may be kept at rest (casstore.store.received's rules).  That is safe for clients:
    # one caches what it sent as it sent it (a delta as a delta frame on a base it caches); a cached
    # chain that does not rebuild is read again from here, and gc and verify read chains past its cache.
    return state.store.receive_pack(pack, updates)


@router.post("/receive", openapi_extra=BINARY_BODY)
async def receive(request: Request) -> dict[str, int]:
    """A pack (whole frames and deltas against objects the server holds) and ref moves.

    Every object is rebuilt and re-hashed; any mismatch rejects the whole pack
    (400, nothing stored).  Storing is idempotent.  On a ref conflict (409)
    the objects are stored all the same and no required move is applied
    (on a store with atomic commits, none at all).
    """
    state = require(request, Role.WRITE)
    body = await read_body(request, state.limits.max_body_bytes)
    stored = await run_in_threadpool(_receive, state, body)
    return {"stored": stored}


def _roots(value: Any, what: str) -> list[tuple[bytes, str]]:
    if not isinstance(value, list):
        raise InvalidPack(f"{what} must be a list of [hex id, kind]")
    out = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2 and all(isinstance(x, str) for x in item)):
            raise InvalidPack(f"each of {what} must be [hex id, kind], not {item!r}")
        out.append((_hex_id(item[0]), item[1]))
    return out


def _hex_id(text: Any) -> bytes:
    try:
        digest = bytes.fromhex(text)
    except (TypeError, ValueError):
        digest = b""
    if len(digest) != codec.DIGEST_SIZE:
        raise InvalidPack(f"not a hex object id: {text!r}")
    return digest


def _fetch(state: ServerState, body: bytes) -> Iterator[bytes]:
    try:
        request = json.loads(body)
    except (ValueError, RecursionError):  # nested too deep for the parser: bad input, not a 500
        raise InvalidPack("a fetch body must be JSON {want, have, bases}") from None
    if not isinstance(request, dict):
        raise InvalidPack("a fetch body must be a JSON object")
    want, have = _roots(request.get("want", []), "want"), _roots(request.get("have", []), "have")
    kinds = {"net", "snap", "opaque", "data"}
    for _, kind in want + have:
        if kind not in kinds and not kind.startswith("tree:"):
            raise InvalidPack(f"unknown object kind {kind!r}")
    raw_bases = request.get("bases", {})
    if not isinstance(raw_bases, dict):
        raise InvalidPack("bases must be an object {new hex: old hex}")
    bases = {_hex_id(new): _hex_id(old) for new, old in raw_bases.items()}
    if len(want) + len(have) > state.limits.max_ids:
        raise HttpError(413, "TOO_LARGE", "too many roots in one fetch")
    return stream_fetch(state.store, want, have, bases)


@router.post("/fetch", openapi_extra=JSON_BODY, response_class=StreamingResponse)
async def fetch(request: Request) -> StreamingResponse:
    """``{want: [[hex, kind]], have: [[hex, kind]], bases: {new: old}}`` → one pack of the whole missing closure.

    Streamed as the server walks it, children first, in parts and then an end marker (or an error part).
    """
    state = require(request, Role.READ)
    body = await read_body(request, state.limits.max_body_bytes)
    parts = _fetch(state, body)  # the request is checked here; the walk runs as the answer is sent
    return StreamingResponse(parts, media_type=BINARY, headers={"X-Accel-Buffering": "no"})


@router.get("/objects", response_class=Response)
async def objects(request: Request) -> Response:
    """Every stored id, packed."""
    state = require(request, Role.READ)
    ids = await run_in_threadpool(lambda: b"".join(state.store.blobs.iter_hashes()))
    return Response(ids, media_type=BINARY)


@router.get("/written-since", response_class=Response)
async def written_since(request: Request, t: float) -> Response:
    state = require(request, Role.READ)
    ids = await run_in_threadpool(state.store.blobs.written_since, t)
    return Response(b"".join(ids), media_type=BINARY)


@router.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    state = require(request, Role.READ)
    answer = await run_in_threadpool(state.store.blobs.stats)
    return {"objects": answer.objects, "stored_bytes": answer.stored_bytes, "extra": answer.extra}


@router.post("/delete", openapi_extra=BINARY_BODY)
async def delete(request: Request) -> dict[str, int]:
    """Remove objects (gc); refused on an append-only server."""
    state = require(request, Role.WRITE)
    if state.append_only:
        raise HttpError(403, "APPEND_ONLY", "the server is append-only: objects cannot be deleted")
    ids = _ids(state, await read_body(request, state.limits.max_body_bytes))
    return {"deleted": await run_in_threadpool(state.store.blobs.delete_many, ids)}


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the store answers a ref read; 503 otherwise (no token needed)."""
    state = request.app.state.casstore
    try:
        await run_in_threadpool(state.store.refs.list, "config/")
    except StorageError as exc:
        return JSONResponse({"status": "unavailable", "code": exc.code}, status_code=503)
    return JSONResponse({"status": "ok"})
