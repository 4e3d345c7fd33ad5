"""Running the app under uvicorn: TLS, the loopback rule, graceful shutdown, one log line per request.

On SIGTERM (or SIGINT) uvicorn stops accepting connections and waits for the
requests in flight (up to ``graceful_seconds``); event streams end at once, so
they do not hold shutdown up.  Every write is one backend transaction or a
sequence of complete objects, so nothing half-written is left either way.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field

import uvicorn

from casstore.errors import StorageError
from casstore.server.app import create_app
from casstore.server.auth import Tokens
from casstore.server.state import Limits
from casstore.store.base import ObjectStore

__all__ = ["ServeOptions", "is_loopback", "make_server", "serve"]


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8750
    tokens: Tokens = field(default_factory=Tokens)
    append_only: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    insecure: bool = False
    limits: Limits = field(default_factory=Limits)
    graceful_seconds: float = 30.0
    log_requests: bool = True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except (OSError, ValueError):
            return False


def make_server(store: ObjectStore, options: ServeOptions) -> uvicorn.Server:
    """A uvicorn server for ``store``; refuses a non-loopback address without TLS unless ``insecure``."""
    if (options.tls_cert is None) != (options.tls_key is None):
        raise StorageError("--tls-cert and --tls-key go together")
    if options.tls_cert is None and not options.insecure and not is_loopback(options.host):
        raise StorageError(
            f"refusing to serve {options.host} without TLS: give --tls-cert/--tls-key, or --insecure"
            " (e.g. behind a TLS-terminating reverse proxy)"
        )
    app = create_app(store, tokens=options.tokens, append_only=options.append_only, limits=options.limits)
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        ssl_certfile=options.tls_cert,
        ssl_keyfile=options.tls_key,
        access_log=False,  # casstore.server logs its own line (method, path, status, bytes, ms)
        log_level="info" if options.log_requests else "warning",
        timeout_graceful_shutdown=int(options.graceful_seconds),
        lifespan="off",
    )
    if options.log_requests:  # after uvicorn's own logging setup, which would otherwise leave ours silent
        _log_to_stderr()
    server = uvicorn.Server(config)
    _end_streams_on_exit(server, app.state.casstore.stopping)
    return server


def _end_streams_on_exit(server: uvicorn.Server, stopping: threading.Event) -> None:
    """Set ``stopping`` when uvicorn begins to shut down, so open event streams finish."""
    original = server.handle_exit

    def handle_exit(sig: int, frame: object) -> None:
        stopping.set()
        original(sig, frame)  # type: ignore[arg-type]
        if sig == signal.SIGTERM:  # a requested stop, done gracefully: exit 0 rather than re-raise it
            server._captured_signals.clear()

    server.handle_exit = handle_exit  # type: ignore[method-assign]


def _log_to_stderr() -> None:
    logger = logging.getLogger("casstore.server")
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s casstore %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def serve(store: ObjectStore, options: ServeOptions) -> None:
    """Serve ``store`` until SIGTERM/SIGINT."""
    make_server(store, options).run()
