"""What every route shares: the server state, auth checks and bounded body reading."""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect, Request

from casstore.server.auth import Role
from casstore.server.errors import HttpError
from casstore.server.state import ServerState

__all__ = ["BINARY_BODY", "JSON_BODY", "TEXT_BODY", "read_body", "require", "state_of"]


def _body(media_type: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads its body itself (``openapi_extra``)."""
    return {"requestBody": {"required": True, "description": description, "content": {media_type: {"schema": schema}}}}


#: Raw bytes (ids back to back, or a receive body).
BINARY_BODY = _body("application/octet-stream", {"type": "string", "format": "binary"}, "binary (docs/remote.md)")
#: A hex object id as text.
TEXT_BODY = _body("text/plain", {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "the new hex id")
_ROOTS = {"type": "array", "items": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 2}}
#: The fetch request.
JSON_BODY = _body(
    "application/json",
    {
        "type": "object",
        "properties": {
            "want": _ROOTS,
            "have": _ROOTS,
            "bases": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    },
    "{want: [[hex id, kind]], have: [[hex id, kind]], bases: {new hex: old hex}}",
)


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.casstore
    return state


def require(request: Request, role: Role) -> ServerState:
    """The server state, if the request's token may do ``role`` (else 401 or 403)."""
    state = state_of(request)
    granted = state.tokens.role(request.headers.get("authorization"))
    if granted is Role.NONE:
        raise HttpError(401, "STORAGE_PERMISSION_ERROR", "a valid bearer token is required")
    if granted.value < role.value:
        raise HttpError(403, "STORAGE_PERMISSION_ERROR", "this token may only read")
    return state


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it passes ``limit`` bytes (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise HttpError(413, "TOO_LARGE", f"the body is {declared} bytes; the limit is {limit}")
        except ValueError:
            raise HttpError(400, "BAD_REQUEST", "Content-Length is not a number") from None
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpError(413, "TOO_LARGE", f"the body passed the limit of {limit} bytes")
            parts.append(chunk)
    except ClientDisconnect:  # an upload aborted mid-body: nothing of it is stored
        raise HttpError(400, "ABORTED", "the client went away before the body was complete") from None
    return b"".join(parts)
