"""The ``casstore`` command line (click + rich); also ``python -m casstore``.

The store is chosen by ``--store URL`` (before the verb) or ``CASSTORE_URL``,
default ``./.casstore`` (LMDB).  Errors a user can cause print one line and
exit non-zero; they never show a traceback.
"""

from __future__ import annotations

import base64
import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from casstore import codec
from casstore.errors import InvalidId, ObjectNotFound, StorageError
from casstore.store import ObjectStore, open_object_store
from casstore.verify import verify as verify_store

DEFAULT_STORE = "./.casstore"
MIN_PREFIX = 8

F = TypeVar("F", bound=Callable[..., Any])
out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(code)


def user_errors(fn: F) -> F:
    """Turn the errors a user can cause into one line and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StorageError as exc:
            fail(f"{exc} [{exc.code}]")
        except (OSError, ValueError) as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]


@contextmanager
def opened(ctx: click.Context, create: bool = False) -> Iterator[ObjectStore]:
    store = open_object_store(ctx.obj["url"], create=create)
    try:
        yield store
    finally:
        store.close()


def resolve_id(store: ObjectStore, text: str) -> bytes:
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


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    "url",
    envvar="CASSTORE_URL",
    default=DEFAULT_STORE,
    show_default=True,
    help="Store URL: a path or lmdb:///path, file:///path, memory://. Env: CASSTORE_URL.",
)
@click.version_option(package_name="casstore")
@click.pass_context
def main(ctx: click.Context, url: str) -> None:
    """casstore: a content-addressed store for Bassline network state."""
    ctx.obj = {"url": url}


@main.command()
@click.argument("path", required=False)
@click.pass_context
@user_errors
def init(ctx: click.Context, path: str | None) -> None:
    """Create a store at PATH (default: the --store URL)."""
    if path:
        ctx.obj["url"] = path
    with opened(ctx, create=True) as store:
        out.print(f"initialised {store.url}", highlight=False)


@main.command()
@click.pass_context
@user_errors
def stats(ctx: click.Context) -> None:
    """Show what the store holds."""
    with opened(ctx) as store:
        st = store.blobs.stats()
        refs = store.refs.list()
        table = Table(show_header=False)
        table.add_row("store", store.url)
        table.add_row("objects", f"{st.objects:,}")
        table.add_row("stored bytes", human_bytes(st.stored_bytes))
        for key, value in (st.extra or {}).items():
            shown = human_bytes(value) if isinstance(value, int) and key.endswith(("bytes", "size")) else str(value)
            table.add_row(key.replace("_", " "), shown)
        table.add_row("refs", f"{len(refs):,}")
        out.print(table)


@main.command()
@click.pass_context
@user_errors
def verify(ctx: click.Context) -> None:
    """Re-hash every object; exit 1 if any is corrupt."""
    with opened(ctx) as store:
        total = store.blobs.stats().objects
        columns = (TextColumn("verifying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("verify", total=total)
            report = verify_store(store, progress=lambda n: progress.advance(task, n))
        for object_id in report.corrupt:
            err.print(f"[red]corrupt[/] {object_id}", highlight=False)
        summary = f"{report.objects:,} objects, {human_bytes(report.bytes)} checked"
        if not report.ok:
            fail(f"{summary}: {len(report.corrupt)} corrupt")
        out.print(f"ok: {summary}", highlight=False)


@main.command()
@click.argument("source", type=click.File("r", encoding="utf-8"))
@click.pass_context
@user_errors
def put(ctx: click.Context, source: TextIO) -> None:
    """Store a JSON value from SOURCE (a file, or - for stdin) and print its id."""
    try:
        value = json.load(source)
    except json.JSONDecodeError as exc:
        fail(f"{getattr(source, 'name', 'input')} is not valid JSON: {exc}")
    data = codec.encode_value(value)
    with opened(ctx) as store:
        click.echo(codec.format_id(store.blobs.put(data)))


@main.command()
@click.argument("object_id")
@click.pass_context
@user_errors
def cat(ctx: click.Context, object_id: str) -> None:
    """Pretty-print the object OBJECT_ID (a full id or a unique prefix of 8+ characters)."""
    with opened(ctx) as store:
        digest = resolve_id(store, object_id)
        value = codec.decode_value(store.blobs.get(digest))
    text = json.dumps(to_json(value), indent=2, ensure_ascii=False)
    if out.is_terminal:
        out.print_json(text)
    else:
        click.echo(text)


if __name__ == "__main__":
    main()
