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
from rich.table import Column, Table

from casstore import archive as images
from casstore import codec, sync
from casstore.errors import InvalidId, ObjectNotFound, RemoteNotFound, SnapshotNotFound, StorageError
from casstore.gc import DEFAULT_GRACE_MINUTES, collect_garbage
from casstore.model import Change, NetworkStore
from casstore.model.bassline_json import NetworkJSONError, network_from_json, network_to_json
from casstore.model.refs import head_ref
from casstore.store import open_object_store
from casstore.verify import verify as verify_store

DEFAULT_STORE = "./.casstore"
MIN_PREFIX = 8

F = TypeVar("F", bound=Callable[..., Any])
PIPE_WIDTH = 200  # tables written to a pipe or file keep whole ids instead of eliding them


class _Console:
    """A rich console made at use, so it sees the current streams (and their width) each time."""

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr

    def __getattr__(self, name: str) -> Any:
        stream = sys.stderr if self.stderr else sys.stdout
        width = None if stream.isatty() else PIPE_WIDTH
        return getattr(Console(stderr=self.stderr, width=width), name)


out = _Console()
err = _Console(stderr=True)


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
def opened(ctx: click.Context, create: bool = False) -> Iterator[NetworkStore]:
    store = NetworkStore(open_object_store(ctx.obj["url"], create=create))
    try:
        yield store
    finally:
        store.close()


def progress_bar(label: str) -> Progress:
    columns = (TextColumn(label + " {task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=Console(stderr=True), transient=True)


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
    help="Store URL: a path, lmdb:///p, file:///p, s3://bucket/prefix?endpoint_url=…, memory://. Env: CASSTORE_URL.",
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


# ---------------------------------------------------------------- networks


def require_network(store: NetworkStore, network: str) -> None:
    if not store.exists(network):
        fail(f"network {network!r} not found in {store.url}")


def resolve_snapshot(store: NetworkStore, network: str, text: str) -> str:
    """A snapshot id of ``network`` from a full id or a unique prefix of at least 8 characters."""
    ids = [info.id for info in store.list_snapshots(network)]
    if text in ids:
        return text
    if len(text) < MIN_PREFIX:
        raise SnapshotNotFound(f"{text!r} is not a snapshot id of {network!r} (give 8 or more characters)")
    matches = [i for i in ids if i.startswith(text)]
    if len(matches) != 1:
        detail = "matches several snapshots" if matches else "matches no snapshot"
        raise SnapshotNotFound(f"{text!r} {detail} of network {network!r}")
    return matches[0]


def preview(value: Any, width: int = 48) -> str:
    text = json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


@main.command()
@click.pass_context
@user_errors
def networks(ctx: click.Context) -> None:
    """List the networks in the store."""
    with opened(ctx) as store:
        table = Table("network", "head", "logical size", "snapshots")
        for network in store.list_networks():
            head = store.refs.get(head_ref(network))
            root = store.network_root(head) if head else {"size": 0}
            table.add_row(
                network,
                codec.format_id(head)[:16] if head else "-",
                human_bytes(root["size"]),
                str(len(store.list_snapshots(network))),
            )
        out.print(table)


@main.command()
@click.argument("network")
@click.option("--group", "group_id", help="Show one group's contacts and wires.")
@click.pass_context
@user_errors
def show(ctx: click.Context, network: str, group_id: str | None) -> None:
    """Show a network's groups, or one group in detail."""
    with opened(ctx) as store:
        require_network(store, network)
        if group_id is None:
            state = store.load_network_state(network)
            assert state is not None
            table = Table(
                "group",
                "name",
                "contacts",
                "wires",
                "type",
                "author",
                "tags",
                title=f"{network} (current group {state.current_group_id})",
            )
            for gid, gs in state.groups.items():
                attrs = gs.group.attributes
                table.add_row(
                    gid,
                    gs.group.name,
                    str(len(gs.contacts)),
                    str(len(gs.wires)),
                    str(attrs.get("bassline.type", attrs.get("type", ""))),
                    str(attrs.get("bassline.author", attrs.get("author", ""))),
                    ", ".join(map(str, attrs.get("bassline.tags", attrs.get("tags", [])))),
                )
            out.print(table)
            return
        one = store.load_group_state(network, group_id)
        if one is None:
            fail(f"group {group_id!r} not found in network {network!r}")
        assert one is not None
        table = Table("contact", "blend", "content", title=f"{network}/{group_id}: {one.group.name}")
        for cid in one.group.contact_ids or list(one.contacts):
            contact = one.contacts.get(cid)
            if contact is not None:
                table.add_row(cid, contact.blend_mode, preview(contact.content))
        out.print(table)
        if one.wires:
            wires = Table("wire", "from", "to", "type")
            for wid, wire in one.wires.items():
                wires.add_row(wid, wire.from_id, wire.to_id, wire.type)
            out.print(wires)


@main.command("set")
@click.argument("network")
@click.argument("group_id", metavar="GROUP")
@click.argument("contact_id", metavar="CONTACT")
@click.argument("value")
@click.pass_context
@user_errors
def set_content(ctx: click.Context, network: str, group_id: str, contact_id: str, value: str) -> None:
    """Set a contact's content to the JSON VALUE."""
    try:
        content = json.loads(value)
    except json.JSONDecodeError as exc:
        fail(f"VALUE is not valid JSON: {exc}")
    with opened(ctx) as store:
        store.save_contact_content(network, group_id, contact_id, content)


@main.command()
@click.argument("network")
@click.option("-m", "--label", help="A label for the snapshot.")
@click.pass_context
@user_errors
def snapshot(ctx: click.Context, network: str, label: str | None) -> None:
    """Snapshot a network's current state; prints the snapshot id."""
    with opened(ctx) as store:
        click.echo(store.save_snapshot(network, label))


@main.command()
@click.argument("network")
@click.pass_context
@user_errors
def log(ctx: click.Context, network: str) -> None:
    """List a network's snapshots, newest first."""
    with opened(ctx) as store:
        require_network(store, network)
        table = Table("snapshot", "label", "created (UTC)", "logical size", title=f"snapshots of {network}")
        for info in store.list_snapshots(network):
            table.add_row(
                info.id, info.label or "", info.created_at.strftime("%Y-%m-%d %H:%M:%S"), human_bytes(info.size)
            )
        out.print(table)


@main.command()
@click.argument("network")
@click.argument("a")
@click.argument("b", required=False)
@click.pass_context
@user_errors
def diff(ctx: click.Context, network: str, a: str, b: str | None) -> None:
    """Changes from snapshot A to snapshot B (default: the current state)."""
    with opened(ctx) as store:
        require_network(store, network)
        old = resolve_snapshot(store, network, a)
        new = resolve_snapshot(store, network, b) if b else None
        changes = store.diff(network, old, new)
        table = Table(
            Column("change", no_wrap=True),
            Column("group", no_wrap=True),
            "item",
            "old",
            "new",
            title=f"{network}: {old[:16]}… → {(new[:16] + '…') if new else 'current'}",
        )
        for change in changes:
            table.add_row(change.kind, change.group_id, change.item_id, *_change_values(change))
        out.print(table)
        out.print(f"{len(changes)} change(s)", highlight=False)


def _change_values(change: Change) -> tuple[str, str]:
    def show_one(item: Any) -> str:
        if item is None:
            return ""
        return preview(item.content) if hasattr(item, "content") else preview(getattr(item, "name", ""))

    return show_one(change.old), show_one(change.new)


@main.command("import")
@click.argument("network")
@click.argument("source", type=click.File("r", encoding="utf-8"))
@click.pass_context
@user_errors
def import_network(ctx: click.Context, network: str, source: TextIO) -> None:
    """Replace NETWORK's current state with SOURCE (Bassline JSON; - for stdin)."""
    name = getattr(source, "name", "input")
    try:
        doc = json.load(source)
    except json.JSONDecodeError as exc:
        fail(f"{name} is not valid JSON: {exc}")
    try:
        state = network_from_json(doc)
    except NetworkJSONError as exc:
        fail(f"{name}: {exc}")
    with opened(ctx) as store:
        store.save_network_state(network, state)
        contacts = sum(len(g.contacts) for g in state.groups.values())
        out.print(f"imported {len(state.groups):,} groups, {contacts:,} contacts into {network}", highlight=False)


@main.command("export")
@click.argument("network")
@click.option("--snapshot", "snapshot_id", help="Export this snapshot instead of the current state.")
@click.pass_context
@user_errors
def export_network(ctx: click.Context, network: str, snapshot_id: str | None) -> None:
    """Write NETWORK (or one of its snapshots) as Bassline JSON to stdout."""
    with opened(ctx) as store:
        require_network(store, network)
        if snapshot_id:
            state = store.load_snapshot(network, resolve_snapshot(store, network, snapshot_id))
        else:
            loaded = store.load_network_state(network)
            assert loaded is not None
            state = loaded
    click.echo(json.dumps(network_to_json(state), indent=2, ensure_ascii=False))


@main.command()
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


# ---------------------------------------------------------------- replication


@main.group()
def remote() -> None:
    """Remotes: other stores this one pushes to and pulls from (kept in the store itself)."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@click.pass_context
@user_errors
def remote_add(ctx: click.Context, name: str, url: str) -> None:
    """Remember URL as remote NAME."""
    with opened(ctx) as store:
        url = canonical_url(url)
        sync.add_remote(store, name, url)
        out.print(f"remote {name} → {url}", highlight=False)


@remote.command("remove")
@click.argument("name")
@click.pass_context
@user_errors
def remote_remove(ctx: click.Context, name: str) -> None:
    """Forget remote NAME."""
    with opened(ctx) as store:
        sync.remove_remote(store, name)


@remote.command("list")
@click.pass_context
@user_errors
def remote_list(ctx: click.Context) -> None:
    """Show the remotes."""
    with opened(ctx) as store:
        for name, url in sorted(sync.remotes(store).items()):
            out.print(f"{name}\t{url}", highlight=False)


def canonical_url(url: str) -> str:
    """Check that ``url`` opens; a local path becomes absolute so it means the same from any directory."""
    with open_object_store(url, create=False) as other:  # a typo fails now, not at the first push
        return other.url if other.url.startswith(("lmdb://", "file://")) else url


def resolve_remote(store: NetworkStore, text: str) -> tuple[str, str]:
    """``(tracking name, url)`` for a remote name or a URL (a URL of a known remote uses its name)."""
    known = sync.remotes(store)
    if text in known:
        return text, known[text]
    if text == "origin":
        raise RemoteNotFound("no remote named 'origin': pass a URL or run `casstore remote add origin URL`")
    url = canonical_url(text)
    for name, known_url in known.items():
        if known_url == url:
            return name, url
    return "", url


def transfer_progress(label: str) -> tuple[Progress, sync.Progress]:
    """A progress bar of objects and bytes, and the callback that drives it."""
    columns = (
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("objects {task.fields[sent]}", table_column=Column(no_wrap=True)),
        TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=Console(stderr=True), transient=True)
    task = progress.add_task(label, total=None, sent="0 B")

    def advance(objects: int, sent_bytes: int, known: int) -> None:
        progress.update(task, completed=objects, total=known, sent=human_bytes(sent_bytes))

    return progress, advance


def summarise(report: sync.SyncReport, verb: str, other: str, hint: str = "") -> None:
    table = Table(title=f"{verb} {other}", title_justify="left")
    table.add_column("network", overflow="fold")
    table.add_column("result")
    styles = {"created": "green", "updated": "green", "up-to-date": "dim", "diverged": "bold red"}
    for network_id, outcome in sorted(report.networks.items()):
        table.add_row(network_id, f"[{styles[outcome]}]{outcome}[/]")
    out.print(table)
    deltas = f" ({report.deltas:,} as deltas)" if report.deltas else ""
    out.print(
        f"{report.objects_sent:,} objects ({human_bytes(report.bytes_sent)}) sent{deltas}, "
        f"{report.objects_skipped:,} already there, {report.snapshots_copied:,} snapshots copied, "
        f"{report.round_trips:,} round trips",
        highlight=False,
    )
    if "diverged" in report.networks.values():
        err.print(f"some networks diverged: their heads did not move; {hint}", highlight=False)
        sys.exit(1)


def exchange(ctx: click.Context, verb: str, target: str, networks: tuple[str, ...], force: bool) -> None:
    with opened(ctx) as store:
        name, url = resolve_remote(store, target)
        with NetworkStore(open_object_store(url, create=False)) as other:
            progress, advance = transfer_progress(f"{verb}ing")
            kwargs: dict[str, Any] = {"networks": networks or None, "force": force, "progress": advance}
            with progress:
                if verb == "push":
                    report = sync.push(store, other, remote=name or None, **kwargs)
                else:
                    report = sync.pull(store, other, remote=name or None, **kwargs)
        hint = "pull first, or push --force" if verb == "push" else "push first, or pull --force"
        summarise(report, verb, name or url, hint)


@main.command()
@click.argument("target", default="origin", metavar="[REMOTE|URL]")
@click.argument("networks", nargs=-1)
@click.option("--force", is_flag=True, help="Move diverged heads too (the destination's changes are dropped).")
@click.pass_context
@user_errors
def push(ctx: click.Context, target: str, networks: tuple[str, ...], force: bool) -> None:
    """Send NETWORKS (default: all) and their snapshots to a remote (default: origin)."""
    exchange(ctx, "push", target, networks, force)


@main.command()
@click.argument("target", default="origin", metavar="[REMOTE|URL]")
@click.argument("networks", nargs=-1)
@click.option("--force", is_flag=True, help="Move diverged heads too (this store's changes are dropped).")
@click.pass_context
@user_errors
def pull(ctx: click.Context, target: str, networks: tuple[str, ...], force: bool) -> None:
    """Fetch NETWORKS (default: all of the remote's) and their snapshots from a remote (default: origin)."""
    exchange(ctx, "pull", target, networks, force)


@main.command()
@click.argument("url")
@click.argument("path")
@user_errors
def clone(url: str, path: str) -> None:
    """Copy every network and snapshot of the store at URL into a new store at PATH (remote: origin)."""
    url = canonical_url(url)  # first: a bad URL creates nothing
    source = NetworkStore(open_object_store(url, create=False))
    with source, NetworkStore(open_object_store(path, create=True)) as store:
        if store.refs.list():
            raise click.UsageError(f"{path} already holds a store with refs; clone into a new path")
        sync.add_remote(store, "origin", url)
        progress, advance = transfer_progress("cloning")
        with progress:
            report = sync.pull(store, source, remote="origin", progress=advance)
    summarise(report, "cloned", url)


# ---------------------------------------------------------------- images


@main.command("archive")
@click.argument("network")
@click.argument("target")
@click.option("--snapshot", "snapshot_id", help="Archive this snapshot (default: a fresh one of the current state).")
@click.pass_context
@user_errors
def archive_network(ctx: click.Context, network: str, target: str, snapshot_id: str | None) -> None:
    """Write NETWORK as one CAR v1 image to TARGET (a path or s3://bucket/key; .zst compresses)."""
    with opened(ctx) as store:
        require_network(store, network)
        if snapshot_id:
            snapshot_id = resolve_snapshot(store, network, snapshot_id)
        progress, advance = transfer_progress("archiving")
        with progress:
            report = images.archive(store, network, target, snapshot_id, progress=advance)
    out.print(
        f"archived snapshot {report.snapshot_id} of {network}: {report.objects:,} objects, "
        f"{human_bytes(report.bytes)} → {target}",
        highlight=False,
    )


@main.command("restore")
@click.argument("source")
@click.option("--as", "network", help="Restore under this network id (default: the one in the image).")
@click.option("--force", is_flag=True, help="Replace the network's current state if it differs.")
@click.pass_context
@user_errors
def restore_network(ctx: click.Context, source: str, network: str | None, force: bool) -> None:
    """Load the image at SOURCE (a path or s3://bucket/key) and set its network's head and snapshot."""
    with opened(ctx) as store:
        progress, advance = transfer_progress("restoring")
        with progress:
            report = images.restore(store, source, network, force=force, progress=advance)
    sent = report.written.objects_sent if report.written else 0
    out.print(
        f"restored {report.network_id} at snapshot {report.snapshot_id}: {report.objects:,} objects in the image, "
        f"{sent:,} new to this store",
        highlight=False,
    )
