"""Replication verbs: ``remote add|remove|list``, ``push``, ``pull`` and ``clone``.

Remotes are kept in the store itself; a remote is named by a remote name or given as a URL.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table

from casstore import sync
from casstore.cli.common import err, human_bytes, opened, out, transfer_progress, user_errors
from casstore.errors import RemoteNotFound
from casstore.model import NetworkStore
from casstore.store import open_object_store

__all__ = ["clone", "pull", "push", "remote"]


@click.group()
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


@click.command()
@click.argument("target", default="origin", metavar="[REMOTE|URL]")
@click.argument("networks", nargs=-1)
@click.option("--force", is_flag=True, help="Move diverged heads too (the destination's changes are dropped).")
@click.pass_context
@user_errors
def push(ctx: click.Context, target: str, networks: tuple[str, ...], force: bool) -> None:
    """Send NETWORKS (default: all) and their snapshots to a remote (default: origin)."""
    exchange(ctx, "push", target, networks, force)


@click.command()
@click.argument("target", default="origin", metavar="[REMOTE|URL]")
@click.argument("networks", nargs=-1)
@click.option("--force", is_flag=True, help="Move diverged heads too (this store's changes are dropped).")
@click.pass_context
@user_errors
def pull(ctx: click.Context, target: str, networks: tuple[str, ...], force: bool) -> None:
    """Fetch NETWORKS (default: all of the remote's) and their snapshots from a remote (default: origin)."""
    exchange(ctx, "pull", target, networks, force)


@click.command()
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
