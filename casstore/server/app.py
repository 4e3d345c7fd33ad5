"""The ASGI application: routes, error answers, and one log line and metric per request."""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from casstore.errors import StorageError
from casstore.server import objects, refs
from casstore.server.auth import Tokens
from casstore.server.errors import HttpError, error_response
from casstore.server.state import Limits, ServerState
from casstore.store.base import ObjectStore

__all__ = ["create_app"]

log = logging.getLogger("casstore.server")


class RequestLog:
    """Pure ASGI middleware: counts bytes both ways (streamed bodies too) and logs one line per request."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status, sent, got = 500, 0, 0

        async def counting_receive() -> Message:
            nonlocal got
            message = await receive()
            got += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            path = str(scope.get("path", ""))
            ms = (time.perf_counter() - start) * 1000
            # the route's template, not the path a client chose: a bounded set of series, nothing injected
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.state.metrics.count(str(scope.get("method", "")), route, status, got, sent)
            shown = path.encode("unicode_escape").decode("ascii")  # one line per request, whatever the path
            log.info("%s %s %d %d %.1fms", scope.get("method"), shown, status, sent, ms)


def create_app(
    store: ObjectStore,
    *,
    tokens: Tokens | None = None,
    append_only: bool = False,
    limits: Limits | None = None,
) -> FastAPI:
    """A server over ``store`` (which it does not close). Its OpenAPI description is at ``/openapi.json``."""
    state = ServerState(store, tokens or Tokens(), append_only, limits or Limits())
    app = FastAPI(
        title="casstore",
        version="1",
        description="A casstore object store over HTTP (see docs/remote.md).",
        docs_url=None,
        redoc_url=None,
    )
    app.state.casstore = state
    app.include_router(objects.router)
    app.include_router(refs.router)

    @app.exception_handler(HttpError)
    async def _http_error(request: Request, exc: HttpError) -> Response:
        return error_response(exc)

    @app.exception_handler(StorageError)
    async def _storage_error(request: Request, exc: StorageError) -> Response:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _routing_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Starlette's own answers (no such route, method not allowed) in the casstore error shape too."""
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
        return JSONResponse(
            {"code": code, "message": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        return JSONResponse({"code": "BAD_REQUEST", "message": str(exc.errors())[:500]}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error_response(exc)

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> str:
        """Requests, bytes and errors, in Prometheus text format."""
        return state.metrics.text()

    app.add_middleware(RequestLog, state=state)
    return app
