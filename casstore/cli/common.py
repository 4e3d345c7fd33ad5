"""What every verb family shares: opening the store, progress bars, resolving ids and snapshot ids a
user typed, and turning objects, records and sizes into text or JSON.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Column

from casstore import codec, sync
from casstore.cli.locations import check_store_url
from casstore.cli.output import fail, json_mode, quiet_mode
from casstore.errors import InvalidId, ObjectNotFound
from casstore.model import NetworkStore, SnapshotInfo
from casstore.store import open_object_store

__all__ = [
    "MIN_PREFIX",
    "human_bytes",
    "load_json",
    "opened",
    "parse_json_argument",
    "progress_bar",
    "record_json",
    "require_network",
    "resolve_id",
    "resolve_snapshot",
    "snapshot_json",
    "to_json",
    "transfer_progress",
]

MIN_PREFIX = 8


@contextmanager
def opened(ctx: click.Context, create: bool = False) -> Iterator[NetworkStore]:
    url = ctx.find_root().obj["url"]
    check_store_url(url, create=create)
    store = NetworkStore(open_object_store(url, create=create))
    try:
        yield store
    finally:
        store.close()


def _progress_off() -> bool:
    return quiet_mode() or json_mode() or not sys.stderr.isatty()


def progress_bar() -> Progress:
    """A bar per task on stderr, labelled by the task's description; off under ``--quiet`` and ``--json``."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), transient=True, disable=_progress_off())


def resolve_id(store: NetworkStore, text: str) -> bytes:
    """A full id in any form, or a unique printable/hex prefix of at least 8 characters."""
    try:
        return codec.parse_id(text)
    except InvalidId:
        if len(text.strip()) < MIN_PREFIX:
            raise InvalidId(f"{text!r} is neither an id nor a prefix of at least {MIN_PREFIX} characters") from None
    low, high = codec.id_prefix_range(text)
    matches = [d for d in store.blobs.iter_hashes() if low <= d <= high]
    if not matches:
        raise ObjectNotFound(text)
    if len(matches) > 1:
        raise InvalidId(f"prefix {text!r} is ambiguous: {len(matches)} objects match")
    return matches[0]


def to_json(value: Any) -> Any:
    """A decoded object as JSON, bytes shown the DAG-JSON way (display only)."""
    if isinstance(value, bytes):
        if len(value) == codec.CID_SIZE and value.startswith(codec.CID_PREFIX):
            return {"/": codec.format_id(codec.link_digest(value))}
        return {"/": {"bytes": base64.b64encode(value).decode("ascii").rstrip("=")}}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def load_json(text: str, what: str) -> Any:
    """``text`` parsed as JSON; ``json.JSONDecodeError`` if it is not JSON, and a one-line
    ``STORAGE_SERIALIZATION_ERROR`` if it nests too deep for the parser (far past the depth limit)."""
    try:
        return json.loads(text)
    except RecursionError:
        _too_deep(what)


def parse_json_argument(text: str, what: str, string_flag: str | None = None) -> Any:
    """``text`` as JSON, or a one-line error that shows how to pass plain text."""
    try:
        return load_json(text, what)
    except json.JSONDecodeError as exc:
        quoted = json.dumps(text, ensure_ascii=False)
        hint = f"to store text, quote it as JSON: '{quoted}'"
        if string_flag:
            hint += f", or pass {string_flag}"
        fail(f"{what} is not valid JSON ({exc}); {hint}", "INVALID_JSON")


def _too_deep(what: str) -> NoReturn:
    fail(
        f"{what} nests lists and maps more than {codec.MAX_DEPTH} levels deep (the limit)",
        "STORAGE_SERIALIZATION_ERROR",
    )


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def require_network(store: NetworkStore, network: str) -> None:
    if not store.exists(network):
        fail(f"network {network!r} not found in {store.url}", "NETWORK_NOT_FOUND")


def resolve_snapshot(store: NetworkStore, network: str, text: str) -> str:
    """A snapshot id of ``network`` from a full id or a unique prefix of at least 8 characters.

    The model decides (:meth:`NetworkStore.resolve_snapshot`): ``SnapshotNotFound`` if none matches,
    ``InvalidId`` naming the candidates if several do.
    """
    return store.resolve_snapshot(network, text)


def transfer_progress(label: str) -> tuple[Progress, sync.Progress]:
    """A progress bar of objects and bytes, and the callback that drives it."""
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("objects {task.fields[sent]}", table_column=Column(no_wrap=True)),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=Console(stderr=True), transient=True, disable=_progress_off())
    task = progress.add_task(label, total=None, sent="0 B")

    def advance(objects: int, sent_bytes: int, known: int) -> None:
        progress.update(task, completed=objects, total=known, sent=human_bytes(sent_bytes))

    return progress, advance


def record_json(record: Any) -> Any:
    """A model record (a dataclass: ``Contact``, ``Wire``, ``Group``…) as JSON, its Python field names as keys."""
    return to_json(dataclasses.asdict(record))


def snapshot_json(info: SnapshotInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "network": info.network_id,
        "label": info.label,
        "created_at": info.created_at.isoformat(),
        "size": info.size,
        "root": info.root,
        "automatic": info.automatic,
    }
