"""What one server process is configured with: its store, tokens, limits and counters (no cached store state)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

from casstore.server.auth import Tokens
from casstore.store.base import ObjectStore

__all__ = ["Limits", "Metrics", "ServerState"]


@dataclass(frozen=True)
class Limits:
    #: Largest request body accepted (413 beyond).
    max_body_bytes: int = 64 << 20
    #: Most ids in one missing/get/delete request (413 beyond).
    max_ids: int = 65536
    #: Most ref updates in one receive.
    max_updates: int = 4096


class Metrics:
    """Counters for ``/metrics`` (Prometheus text format); thread-safe."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.bytes_in = 0
        self.bytes_out = 0
        self.errors = 0

    def count(self, method: str, route: str, status: int, bytes_in: int, bytes_out: int) -> None:
        with self.lock:
            self.requests[(method, route, status)] += 1
            self.bytes_in += bytes_in
            self.bytes_out += bytes_out
            if status >= 500:
                self.errors += 1

    def text(self) -> str:
        with self.lock:
            lines = [
                "# HELP casstore_requests_total Requests answered, by method, route and status.",
                "# TYPE casstore_requests_total counter",
            ]
            for (method, route, status), n in sorted(self.requests.items()):
                labels = f'method="{_label(method)}",route="{_label(route)}",status="{status}"'
                lines.append(f"casstore_requests_total{{{labels}}} {n}")
            lines += [
                "# TYPE casstore_request_bytes_total counter",
                f"casstore_request_bytes_total {self.bytes_in}",
                "# TYPE casstore_response_bytes_total counter",
                f"casstore_response_bytes_total {self.bytes_out}",
                "# TYPE casstore_server_errors_total counter",
                f"casstore_server_errors_total {self.errors}",
            ]
        return "\n".join(lines) + "\n"


@dataclass
class ServerState:
    store: ObjectStore
    tokens: Tokens = field(default_factory=Tokens)
    append_only: bool = False
    limits: Limits = field(default_factory=Limits)
    metrics: Metrics = field(default_factory=Metrics)
    #: Set when the process is shutting down: event streams end so in-flight requests can finish.
    stopping: threading.Event = field(default_factory=threading.Event)


def _label(value: str) -> str:
    """A Prometheus label value, escaped as its text format asks (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
