"""Verbs on the store and its objects: ``init``, ``put``, ``cat``, ``stats`` (also of one network), ``verify``
and ``gc``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import click
from rich.markup import escape
from rich.table import Table

from casstore import codec
from casstore.cli.common import human_bytes, load_json, opened, progress_bar, require_network, resolve_id, to_json
from casstore.cli.locations import local_kind
from casstore.cli.output import committing, emit, err, fail, json_mode, out, say, verb
from casstore.errors import CorruptObject
from casstore.gc import DEFAULT_GRACE_MINUTES, collect_garbage
from casstore.store.deltas import frame_census
from casstore.store.registry import parse_location
from casstore.verify import verify as verify_store

__all__ = ["cat", "gc", "init", "put", "stats", "verify"]


@verb("casstore init\ncasstore init /var/lib/casstore\ncasstore --store file:///srv/casstore init")
@click.argument("path", required=False)
@click.pass_context
def init(ctx: click.Context, path: str | None) -> None:
    """Create a store at PATH (default: the --store URL)."""
    if path is not None:
        ctx.obj["url"] = path
    location = parse_location(ctx.obj["url"])
    existed = location.scheme in ("lmdb", "file") and local_kind(Path(location.where)) == location.scheme
    with opened(ctx, create=True) as store:
        emit(
            {"store": store.url, "created": not existed},
            lambda: say(f"{'reinitialised existing' if existed else 'initialised'} {store.url}"),
        )


@verb("casstore stats\ncasstore stats --frames\ncasstore stats thermostat --json")
@click.argument("network", required=False)
@click.option(
    "--frames", "census", is_flag=True, help="Also read every frame: bytes by kind, delta chain lengths, overhead."
)
@click.pass_context
def stats(ctx: click.Context, network: str | None, census: bool) -> None:
    """Show what the store holds, or (with NETWORK) what one network holds."""
    if network is not None:
        _network_stats(ctx, network)
        return
    with opened(ctx) as store:
        st = store.blobs.stats()
        refs = store.refs.list()
        document = {
            "store": store.url,
            "objects": st.objects,
            "stored_bytes": st.stored_bytes,
            "extra": dict(st.extra or {}),
            "refs": len(refs),
        }
        frames: dict[str, Any] = {}
        if census:
            frames = frame_census(store.blobs.get_frames, list(store.blobs.iter_hashes()))
            frames["overhead_bytes"] = st.stored_bytes - frames["frame_bytes"]  # pages, index, partly filled pages
            document["frames"] = frames

        def render() -> None:
            table = Table(show_header=False)
            table.add_row("store", store.url)
            table.add_row("objects", f"{st.objects:,}")
            table.add_row("stored bytes", human_bytes(st.stored_bytes))
            for key, value in (st.extra or {}).items():
                shown = human_bytes(value) if isinstance(value, int) and key.endswith(("bytes", "size")) else str(value)
                table.add_row(key.replace("_", " "), shown)
            table.add_row("refs", f"{len(refs):,}")
            if census:
                for kind, figures in frames["frames"].items():
                    table.add_row(f"{kind} frames", f"{figures['objects']:,} ({human_bytes(figures['bytes'])})")
                chains = ", ".join(f"{length}: {n:,}" for length, n in frames["chain_lengths"].items())
                table.add_row("chain lengths", chains or "-")
                table.add_row("overhead", human_bytes(frames["overhead_bytes"]))
            out.print(table)

        emit(document, render)


def _network_stats(ctx: click.Context, network: str) -> None:
    with opened(ctx) as store:
        require_network(store, network)
        figures = store.network_stats(network)

    def when(moment: datetime | None) -> str:
        return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")

    def render() -> None:
        table = Table(show_header=False, title=f"network {network}")
        table.add_row("head", figures.head)
        table.add_row("groups", f"{figures.groups:,}")
        table.add_row("contacts", f"{figures.contacts:,}")
        table.add_row("wires", f"{figures.wires:,}")
        table.add_row("logical size", human_bytes(figures.logical_bytes))
        table.add_row("snapshots", f"{figures.snapshots:,}")
        table.add_row("last snapshot", when(figures.last_snapshot_at))
        last = when(figures.last_change_at)
        if figures.changed_since_snapshot:
            last = "after the last snapshot" if figures.last_snapshot_at else "not recorded (no snapshot yet)"
        table.add_row("last change", last)
        out.print(table)

    document = {
        "network": network,
        "head": figures.head,
        "groups": figures.groups,
        "contacts": figures.contacts,
        "wires": figures.wires,
        "logical_bytes": figures.logical_bytes,
        "snapshots": figures.snapshots,
        "current_group_id": figures.current_group_id,
        "root_group_id": figures.root_group_id,
        "last_snapshot_at": None if figures.last_snapshot_at is None else figures.last_snapshot_at.isoformat(),
        "changed_since_snapshot": figures.changed_since_snapshot,
        "last_change_at": None if figures.last_change_at is None else figures.last_change_at.isoformat(),
    }
    emit(document, render)


@verb("casstore verify\ncasstore --quiet verify && echo intact")
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Re-hash every object and check its structure; exit 1 if anything is corrupt, invalid, missing or damaged."""
    with opened(ctx) as store:
        try:
            total: int | None = store.blobs.stats().objects
        except CorruptObject:  # a damaged store file (an S3 index): verify reads past it and reports it
            total = None
        with progress_bar() as progress:
            task = progress.add_task("verifying", total=total)
            report = verify_store(store, progress=lambda n: progress.advance(task, n))
        document = {
            "ok": report.ok,
            "objects": report.objects,
            "bytes": report.bytes,
            "reachable": report.reachable,
            "corrupt": report.corrupt,
            "missing": report.missing,
            "invalid": report.invalid,
            "damaged": report.damaged,
        }
        summary = f"{report.objects:,} objects, {human_bytes(report.bytes)} checked"
        if json_mode():
            emit(document, lambda: None)
        else:
            for object_id in report.corrupt:
                err.print(f"[red]corrupt[/] {object_id}", highlight=False)
            for object_id in report.missing:
                err.print(f"[red]missing[/] {object_id} (named by a reachable object)", highlight=False)
            for object_id, problem in report.invalid.items():
                err.print(f"[red]invalid[/] {object_id}: {escape(problem)}", highlight=False)
            for name, problem in report.damaged.items():
                err.print(f"[red]damaged[/] {escape(name)}: {escape(problem)}", highlight=False)
        if not report.ok:
            counts = f"{len(report.corrupt)} corrupt, {len(report.missing)} missing"
            if report.invalid or report.damaged:
                counts += f", {len(report.invalid)} invalid, {len(report.damaged)} damaged"
            fail(f"{summary}: {counts}", "VERIFY_FAILED")
        say(f"ok: {summary}")


@verb("casstore put value.json\necho '{\"celsius\": 21.5}' | casstore put -")
@click.argument("source", type=click.File("r", encoding="utf-8"))
@click.pass_context
def put(ctx: click.Context, source: TextIO) -> None:
    """Store a JSON value from SOURCE (a file, or - for stdin) and print its id."""
    try:
        value = load_json(source.read(), getattr(source, "name", "input"))
    except json.JSONDecodeError as exc:
        fail(f"{getattr(source, 'name', 'input')} is not valid JSON: {exc}", "INVALID_JSON")
    data = codec.encode_value(value)
    with opened(ctx) as store, committing("the object was stored"):
        object_id = codec.format_id(store.blobs.put(data))
    emit({"id": object_id}, lambda: click.echo(object_id))


@verb("casstore cat bafyr4iabc123de\ncasstore cat --json bafyr4iabc123de | jq .value")
@click.argument("object_id")
@click.pass_context
def cat(ctx: click.Context, object_id: str) -> None:
    """Pretty-print the object OBJECT_ID (a full id or a unique prefix of 8+ characters)."""
    with opened(ctx) as store:
        digest = resolve_id(store, object_id)
        value = codec.decode_value(store.blobs.get(digest))

    def render() -> None:
        text = json.dumps(to_json(value), indent=2, ensure_ascii=False)
        if out.is_terminal:
            out.print_json(text)
        else:
            click.echo(text)

    emit({"id": codec.format_id(digest), "value": to_json(value)}, render)


@verb("casstore gc --dry-run\ncasstore gc --grace 0", partial="objects swept so far stay deleted; refs are untouched")
@click.option(
    "--grace",
    type=float,
    default=DEFAULT_GRACE_MINUTES,
    show_default=True,
    help="Never sweep objects written in the last MINUTES.",
)
@click.option("--dry-run", is_flag=True, help="Report what would be swept; delete nothing.")
@click.pass_context
def gc(ctx: click.Context, grace: float, dry_run: bool) -> None:
    """Delete objects no ref reaches (older than the grace period)."""
    with opened(ctx) as store:
        try:
            total: int | None = store.blobs.stats().objects
        except CorruptObject:  # a damaged store file (an S3 index): verify reads past it and reports it
            total = None
        with progress_bar() as progress:
            tasks: dict[str, Any] = {}

            def advance(phase: str, n: int) -> None:
                if phase not in tasks:
                    tasks[phase] = progress.add_task(f"gc: {phase}", total=total)
                progress.advance(tasks[phase], n)

            report = collect_garbage(store, grace_minutes=grace, dry_run=dry_run, progress=advance)
        document = {
            "dry_run": dry_run,
            "grace_minutes": grace,
            "reachable": report.reachable,
            "unreachable": report.unreachable,
            "kept_recent": report.kept_recent,
            "swept": report.swept,
            "swept_bytes": report.swept_bytes,
            "missing": report.missing,
        }
        verb_text = "would sweep" if dry_run else "swept"
        emit(
            document,
            lambda: say(
                f"{report.reachable:,} reachable, {report.unreachable:,} unreachable "
                f"({report.kept_recent:,} kept within the {grace:g}-minute grace period); "
                f"{verb_text} {report.swept:,} objects, {human_bytes(report.swept_bytes)}"
            ),
        )
        if report.missing:
            missing = f"{len(report.missing)} reachable objects are missing, e.g. {report.missing[0]}"
            fail(f"{missing}; run verify", "MISSING_OBJECTS")
