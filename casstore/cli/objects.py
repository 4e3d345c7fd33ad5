"""Verbs on the store and its objects: ``init``, ``put``, ``cat``, ``stats``, ``verify`` and ``gc``."""

from __future__ import annotations

import json
from typing import Any, TextIO

import click
from rich.table import Table

from casstore import codec
from casstore.cli.common import err, fail, human_bytes, opened, out, progress_bar, resolve_id, to_json, user_errors
from casstore.gc import DEFAULT_GRACE_MINUTES, collect_garbage
from casstore.verify import verify as verify_store

__all__ = ["cat", "gc", "init", "put", "stats", "verify"]


@click.command()
@click.argument("path", required=False)
@click.pass_context
@user_errors
def init(ctx: click.Context, path: str | None) -> None:
    """Create a store at PATH (default: the --store URL)."""
    if path:
        ctx.obj["url"] = path
    with opened(ctx, create=True) as store:
        out.print(f"initialised {store.url}", highlight=False)


@click.command()
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


@click.command()
@click.pass_context
@user_errors
def verify(ctx: click.Context) -> None:
    """Re-hash every object; exit 1 if any is corrupt."""
    with opened(ctx) as store:
        total = store.blobs.stats().objects
        with progress_bar("verifying") as progress:
            task = progress.add_task("verify", total=total)
            report = verify_store(store, progress=lambda n: progress.advance(task, n))
        for object_id in report.corrupt:
            err.print(f"[red]corrupt[/] {object_id}", highlight=False)
        for object_id in report.missing:
            err.print(f"[red]missing[/] {object_id} (named by a reachable object)", highlight=False)
        summary = f"{report.objects:,} objects, {human_bytes(report.bytes)} checked"
        if not report.ok:
            fail(f"{summary}: {len(report.corrupt)} corrupt, {len(report.missing)} missing")
        out.print(f"ok: {summary}", highlight=False)


@click.command()
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


@click.command()
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


@click.command()
@click.option(
    "--grace",
    type=float,
    default=DEFAULT_GRACE_MINUTES,
    show_default=True,
    help="Never sweep objects written in the last MINUTES.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be swept; delete nothing.")
@click.pass_context
@user_errors
def gc(ctx: click.Context, grace: float, dry_run: bool) -> None:
    """Delete objects no ref reaches (older than the grace period)."""
    with opened(ctx) as store:
        total = store.blobs.stats().objects
        with progress_bar("gc") as progress:
            tasks: dict[str, Any] = {}

            def advance(phase: str, n: int) -> None:
                if phase not in tasks:
                    tasks[phase] = progress.add_task(phase, total=total)
                progress.advance(tasks[phase], n)

            report = collect_garbage(store, grace_minutes=grace, dry_run=dry_run, progress=advance)
        verb = "would sweep" if dry_run else "swept"
        out.print(
            f"{report.reachable:,} reachable, {report.unreachable:,} unreachable "
            f"({report.kept_recent:,} kept within the {grace:g}-minute grace period); "
            f"{verb} {report.swept:,} objects, {human_bytes(report.swept_bytes)}",
            highlight=False,
        )
        if report.missing:
            fail(f"{len(report.missing)} reachable objects are missing, e.g. {report.missing[0]}; run verify")
