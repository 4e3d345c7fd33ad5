"""Replication verbs: ``remote add|remove|list``, ``push``, ``pull`` and ``clone``.

Remotes are kept in the store itself; a remote is named by a remote name or given as a URL.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from casstore import sync
from casstore.cli.common import human_bytes, opened, to_json, transfer_progress
from casstore.cli.locations import check_store_url, looks_like_url
from casstore.cli.output import committing, emit, err, fail, json_mode, out, say, verb
from casstore.errors import RemoteNotFound, StoreNotFound
from casstore.model import NetworkStore
from casstore.store import open_object_store
from casstore.store.registry import parse_location, redact_url

__all__ = [
    "canonical_url",
    "clone",
    "divergence_json",
    "divergence_text",
    "pull",
    "push",
    "remote",
    "report_json",
    "resolve_remote",
]

_PARTIAL = "each network that finished moved whole (objects first, then its head); run it again to finish"


@click.group()
def remote() -> None:
    """Remotes: other stores this one pushes to and pulls from (kept in the store itself)."""


@verb(
    "casstore remote add origin lmdb:///srv/casstore\ncasstore remote add backup 's3://bucket/casstore?region=eu-west-1'",
    group=remote,
    name="add",
)
@click.argument("name")
@click.argument("url")
@click.pass_context
def remote_add(ctx: click.Context, name: str, url: str) -> None:
    """Remember URL as remote NAME."""
    with opened(ctx) as store:
        url = canonical_url(url)
        with committing(f"remote {name} added"):
            sync.add_remote(store, name, url)
    shown = redact_url(url)
    emit({"name": name, "url": shown}, lambda: say(f"remote {name} → {shown}"))


@verb("casstore remote remove backup", group=remote, name="remove")
@click.argument("name")
@click.pass_context
def remote_remove(ctx: click.Context, name: str) -> None:
    """Forget remote NAME."""
    with opened(ctx) as store, committing(f"remote {name} removed"):
        sync.remove_remote(store, name)
    emit({"removed": name}, lambda: say(f"removed remote {name}"))


@verb("casstore remote list\ncasstore remote list --json", group=remote, name="list")
@click.pass_context
def remote_list(ctx: click.Context) -> None:
    """Show the remotes."""
    with opened(ctx) as store:
        known = {name: redact_url(url) for name, url in sorted(sync.remotes(store).items())}

    def render() -> None:
        for name, url in known.items():
            click.echo(f"{name}\t{url}")  # a real tab, for cut and read

    emit({"remotes": known}, render)


def canonical_url(url: str) -> str:
    """Check that ``url`` opens; a local path becomes absolute so it means the same from any directory."""
    check_store_url(url, create=False)
    with open_object_store(url, create=False) as other:  # a typo fails now, not at the first push
        return other.url if other.url.startswith(("lmdb://", "file://")) else url


def resolve_remote(store: NetworkStore, text: str, verb_name: str = "push") -> tuple[str, str]:
    """``(tracking name, url)`` for a remote name or a URL (a URL of a known remote uses its name)."""
    known = sync.remotes(store)
    if text in known:
        return text, known[text]
    if text == "origin":
        raise RemoteNotFound("no remote named 'origin': pass a URL or run `casstore remote add origin URL`")
    try:
        url = canonical_url(text)
    except StoreNotFound:
        if looks_like_url(text):
            raise
        _not_a_remote(store, text, verb_name, known)
    for name, known_url in known.items():
        if known_url == url:
            return name, url
    return "", url


def _not_a_remote(store: NetworkStore, text: str, verb_name: str, known: dict[str, str]) -> None:
    network = f" ({text!r} is a network here)" if store.exists(text) else ""
    if known:
        remotes = f"the remotes are {', '.join(sorted(known))}"
    else:
        remotes = "this store has no remotes yet: add one with `casstore remote add origin URL`"
    first = "origin" if "origin" in known or not known else sorted(known)[0]
    fail(
        f"{text!r} is neither a remote nor a store{network}; {remotes}; "
        f"to {verb_name} network {text}, name the remote first: `casstore {verb_name} {first} {text}`",
        "REMOTE_NOT_FOUND",
    )


def divergence_json(divergence: sync.Divergence) -> dict[str, Any]:
    return {
        "local_head": divergence.local_head,
        "remote_head": divergence.remote_head,
        "agreed_head": divergence.agreed_head,
        "local_only_snapshots": divergence.local_only_snapshots,
        "remote_only_snapshots": divergence.remote_only_snapshots,
    }


def report_json(report: sync.SyncReport, verb_name: str, remote_name: str, url: str) -> dict[str, Any]:
    """The JSON of a push, pull or clone; ``url`` as printed (redacted by :func:`summarise`)."""
    return {
        "verb": verb_name,
        "remote": remote_name or None,
        "url": url,
        "networks": dict(sorted(report.networks.items())),
        "objects_sent": report.objects_sent,
        "bytes_sent": report.bytes_sent,
        "deltas": report.deltas,
        "objects_skipped": report.objects_skipped,
        "snapshots_copied": report.snapshots_copied,
        "round_trips": report.round_trips,
        "diverged": {n: divergence_json(d) for n, d in sorted(report.diverged.items())},
        "merged": {n: _merged_json(r) for n, r in sorted(report.merged.items())},
    }


def _merged_json(result: Any) -> dict[str, Any]:
    """A ``MergeResult`` of ``pull --merge`` (outcome, heads, base, the conflicts recorded)."""
    return {
        "outcome": result.outcome,
        "head": result.head,
        "base": result.base,
        "base_source": result.base_source,
        "snapshot": result.snapshot,
        "conflicts": [to_json(c.as_json()) for c in result.conflicts],
    }


def _ids(ids: list[str]) -> str:
    shown = ", ".join(i[:16] for i in ids[:3])
    return f"{len(ids)}" + (f" ({shown}{', …' if len(ids) > 3 else ''})" if ids else "")


def divergence_text(divergence: sync.Divergence, remote_label: str, pushing: bool) -> str:
    """What diverged in one network, and what each way out does (several lines)."""
    net, there = divergence.network_id, remote_label

    def head(digest: str | None) -> str:
        return "none" if digest is None else digest[:16] + "…"

    agreed = head(divergence.agreed_head) if divergence.agreed_head else "none (never exchanged from this store)"
    travelled = f"this store's went to {there}" if pushing else f"{there}'s came here"
    return "\n".join(
        [
            f"diverged: {net}: both heads moved since they last agreed; neither moved now",
            f"  here: {head(divergence.local_head)}   {there}: {head(divergence.remote_head)}   agreed: {agreed}",
            f"  snapshots only here: {_ids(divergence.local_only_snapshots)}; only on {there}: "
            f"{_ids(divergence.remote_only_snapshots)} (before this {'push' if pushing else 'pull'}; {travelled})",
            f"  `casstore pull {there} {net} --force`: this store takes {there}'s state "
            "(its own changes since the agreed head leave its current state; snapshots keep what they recorded)",
            f"  `casstore push {there} {net} --force`: {there} takes this store's state (its changes leave its current "
            "state the same way)",
            f"  to keep both: `casstore pull {there} {net} --merge` merges them by blend mode (docs/merge.md), "
            "then push",
        ]
    )


def summarise(report: sync.SyncReport, verb_name: str, remote_name: str, url: str) -> None:
    url = redact_url(url)  # for the eyes only: a token in it is never printed

    def render() -> None:
        # the title is a line of its own, not a table title, so a long URL is never broken mid-URL
        out.print(f"{verb_name} {remote_name or url}", highlight=False, soft_wrap=True)
        table = Table()
        table.add_column("network", overflow="fold")
        table.add_column("result")
        styles = {"created": "green", "updated": "green", "up-to-date": "dim", "diverged": "bold red"}
        for network_id, outcome in sorted(report.networks.items()):
            table.add_row(network_id, f"[{styles[outcome]}]{outcome}[/]")
        out.print(table)
        deltas = f" ({report.deltas:,} as deltas)" if report.deltas else ""
        for network_id, result in sorted(report.merged.items()):
            recorded = f", {len(result.conflicts)} conflict(s) recorded" if result.conflicts else ", clean"
            say(f"merged {network_id}: {result.outcome}{recorded}")
        say(
            f"{report.objects_sent:,} objects ({human_bytes(report.bytes_sent)}) sent{deltas}, "
            f"{report.objects_skipped:,} already there, {report.snapshots_copied:,} snapshots copied, "
            f"{report.round_trips:,} round trips"
        )

    emit(report_json(report, verb_name, remote_name, url), render)
    diverged = sorted(n for n, outcome in report.networks.items() if outcome == "diverged")
    if diverged:
        label = remote_name or url
        details = [
            divergence_text(report.diverged[n], label, verb_name == "push")
            if n in report.diverged
            else f"diverged: {n}: its head did not move"
            for n in diverged
        ]
        message = "\n".join(details)
        if json_mode():
            fail(message, "DIVERGED")
        err.print(message, highlight=False, soft_wrap=True)
        sys.exit(1)


def exchange(
    ctx: click.Context, verb_name: str, target: str, networks: tuple[str, ...], force: bool, merge: bool = False
) -> None:
    with opened(ctx) as store:
        name, url = resolve_remote(store, target, verb_name)
        with NetworkStore(open_object_store(url, create=False)) as other:
            progress, advance = transfer_progress(f"{verb_name}ing")
            kwargs: dict[str, Any] = {"networks": networks or None, "force": force, "progress": advance}
            with progress:
                if verb_name == "push":
                    report = sync.push(store, other, remote=name or None, **kwargs)
                else:
                    report = sync.pull(store, other, remote=name or None, merge=merge, **kwargs)
        summarise(report, verb_name, name, url)


@verb("casstore push\ncasstore push origin thermostat\ncasstore push lmdb:///mnt/backup --json", partial=_PARTIAL)
@click.argument("target", default="origin", metavar="[REMOTE|URL]")
@click.argument("networks", nargs=-1)
@click.option("--force", is_flag=True, help="Move diverged heads too (the destination's changes are dropped).")
@click.pass_context
def push(ctx: click.Context, target: str, networks: tuple[str, ...], force: bool) -> None:
    """Send NETWORKS (default: all) and their snapshots to a remote (default: origin)."""
    exchange(ctx, "push", target, networks, force)


@verb("casstore pull\ncasstore pull origin thermostat", partial=_PARTIAL)
@click.argument("target", default="origin", metavar="[REMOTE|URL]")
@click.argument("networks", nargs=-1)
@click.option("--force", is_flag=True, help="Move diverged heads too (this store's changes are dropped).")
@click.option("--merge", is_flag=True, help="Merge diverged networks by blend mode (docs/merge.md) instead.")
@click.pass_context
def pull(ctx: click.Context, target: str, networks: tuple[str, ...], force: bool, merge: bool) -> None:
    """Fetch NETWORKS (default: all of the remote's) and their snapshots from a remote (default: origin)."""
    if merge and force:
        fail("give --merge or --force, not both", "USAGE_ERROR", exit_code=2)
    exchange(ctx, "pull", target, networks, force, merge)


@verb(
    "casstore clone lmdb:///srv/casstore ./copy\ncasstore clone 's3://bucket/casstore?region=eu-west-1' ./local",
    partial="the clone was undone (every ref it moved put back, a directory it made removed); run it again",
)
@click.argument("url")
@click.argument("path")
def clone(url: str, path: str) -> None:
    """Copy every network and snapshot of the store at URL into a new store at PATH (remote: origin)."""
    url = canonical_url(url)  # first: a bad URL creates nothing
    check_store_url(path, create=True)
    source = NetworkStore(open_object_store(url, create=False))
    created = _new_local_directory(path)
    try:
        with source, NetworkStore(open_object_store(path, create=True)) as store:
            if store.refs.list():
                created = None  # not ours to remove
                raise click.UsageError(f"{path} already holds a store with refs; clone into a new path")
            with sync.refs_undone_on_failure(store):  # a failed clone can be retried as it was given
                sync.add_remote(store, "origin", url)
                progress, advance = transfer_progress("cloning")
                with progress:
                    report = sync.pull(store, source, remote="origin", progress=advance)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    summarise(report, "cloned", "", url)


def _new_local_directory(url: str) -> Path | None:
    """The directory a local store at ``url`` would create (``None`` if it exists or is not local)."""
    location = parse_location(url)
    if location.scheme not in ("lmdb", "file", "filesystem") or not location.where:
        return None
    path = Path(location.where).absolute()
    if path.exists():
        return None
    while not path.parent.exists():  # the parents it would create go too
        path = path.parent
    return path
