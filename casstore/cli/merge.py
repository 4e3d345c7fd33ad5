"""Merge verbs: ``fetch``, ``merge``, ``conflicts`` and ``resolve`` (docs/merge.md, docs/cli.md).

``fetch`` copies a remote's heads into remote-tracking refs; ``merge NET OTHER``
merges OTHER (``REMOTE/NET`` after a fetch, or a snapshot id) into the local
head and exits 1 when it recorded conflicts, as git does; ``conflicts`` lists
what merges recorded and ``resolve`` settles one.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.table import Table

from casstore import merge as merging
from casstore import sync
from casstore.cli.common import opened, parse_json_argument, require_network, to_json, transfer_progress
from casstore.cli.output import committing, emit, fail, out, say, verb
from casstore.cli.remotes import resolve_remote
from casstore.model import NetworkStore
from casstore.model.conflicts import Conflict
from casstore.store import open_object_store
from casstore.store.registry import redact_url

__all__ = ["conflicts", "fetch", "merge", "resolve"]


def conflict_json(conflict: Conflict) -> Any:
    return to_json(conflict.as_json())


def _short(value: Any) -> str:
    text = json.dumps(to_json(value), ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 40 else text[:39] + "…"


def _table(found: list[Conflict]) -> Table:
    table = Table("group", "item", "kind", "reason", "base", "ours", "theirs", "kept")
    for c in found:
        reason = c.reason + (f" ({', '.join(c.fields)})" if c.fields else "")
        table.add_row(c.group, c.item, c.kind, reason, _short(c.base), _short(c.ours), _short(c.theirs), c.kept_side)
    return table


def result_json(result: merging.MergeResult) -> dict[str, Any]:
    return {
        "network": result.network_id,
        "outcome": result.outcome,
        "ours": result.ours,
        "theirs": result.theirs,
        "base": result.base,
        "base_source": result.base_source,
        "head": result.head,
        "snapshot": result.snapshot,
        "dry_run": result.dry_run,
        "conflicts": [conflict_json(c) for c in result.conflicts],
    }


def _say_result(result: merging.MergeResult) -> None:
    what = "would merge" if result.dry_run else "merged"
    if result.outcome == "up-to-date":
        say(f"{result.network_id}: already up to date ({result.theirs[:16]} is in its history)")
        return
    if result.outcome == "fast-forward":
        say(f"{result.network_id}: fast-forward{' (dry run)' if result.dry_run else ''} to {result.theirs[:16]}")
        return
    base = {
        "agreed": f"the head last agreed with the remote ({(result.base or '')[:16]})",
        "ancestor": f"their common ancestor ({(result.base or '')[:16]})",
        "given": f"{(result.base or '')[:16]}",
        "none": "the empty network (no common ancestor: a two-way merge)",
    }[result.base_source]
    say(f"{result.network_id}: {what} {result.theirs[:16]} into {result.ours[:16]} from {base}")
    if result.conflicts:
        out.print(_table(result.conflicts))
        say(f"{len(result.conflicts)} conflict(s) recorded: see `casstore conflicts {result.network_id}`")


@verb(
    "casstore merge thermostat origin/thermostat\ncasstore merge thermostat bafyr4i… --dry-run --json",
    name="merge",
)
@click.argument("network")
@click.argument("other")
@click.option("--dry-run", is_flag=True, help="Show what the merge would do and which conflicts it would record.")
@click.pass_context
def merge(ctx: click.Context, network: str, other: str, dry_run: bool) -> None:
    """Merge OTHER (REMOTE/NETWORK after `casstore fetch`, or a snapshot id) into NETWORK's head.

    Exits 0 when the merge is clean, 1 when it recorded conflicts.
    """
    with opened(ctx) as store:
        require_network(store, network)
        theirs, remote = merging.resolve_other(store, network, other)
        with committing(f"merge of {other} into {network}"):
            result = merging.merge_network(store, network, theirs, remote=remote, dry_run=dry_run)
    emit(result_json(result), lambda: _say_result(result))
    if result.conflicts:
        sys.exit(1)


@verb("casstore conflicts thermostat\ncasstore conflicts thermostat --json", name="conflicts")
@click.argument("network")
@click.pass_context
def conflicts(ctx: click.Context, network: str) -> None:
    """List the conflicts merges recorded in NETWORK's current state."""
    with opened(ctx) as store:
        require_network(store, network)
        found = store.conflicts(network)

    def render() -> None:
        if not found:
            say(f"{network}: no conflicts")
        else:
            out.print(_table(found))

    emit({"network": network, "conflicts": [conflict_json(c) for c in found]}, render)


@verb(
    "casstore resolve thermostat sensors temperature --theirs\n"
    "casstore resolve thermostat sensors temperature --value '21.5'\n"
    'casstore resolve thermostat sensors w1 --value \'{"fromId": "a", "toId": "b"}\'\n'
    "casstore resolve thermostat sensors sensors --ours --json",
    name="resolve",
)
@click.argument("network")
@click.argument("group_id", metavar="GROUP")
@click.argument("item_id", metavar="ITEM")
@click.option("--ours", is_flag=True, help="Put our side's recorded version back.")
@click.option("--theirs", is_flag=True, help="Put their side's recorded version back.")
@click.option(
    "--value", "value_text", metavar="JSON", help="A contact's content, or a wire's or group's record (camelCase JSON)."
)
@click.option(
    "--fields",
    "fields_text",
    metavar="JSON",
    help='Some of the fields a contact conflict recorded, e.g. \'{"blendMode": "merge"}\' (the rest as kept).',
)
@click.pass_context
def resolve(
    ctx: click.Context,
    network: str,
    group_id: str,
    item_id: str,
    ours: bool,
    theirs: bool,
    value_text: str | None,
    fields_text: str | None,
) -> None:
    """Settle one conflict and clear its record, in one write.

    ITEM is the contact's id, the wire's id, or (a group conflict) GROUP again. --ours / --theirs put
    that side's recorded version back (the side that had deleted the item deletes it); --value sets
    a contact's content, or a wire's or group's record as `export` writes it; --fields sets some of
    the fields a contact conflict recorded (`conflicts` lists them), the others staying as kept.
    """
    given = [name for name, on in (("ours", ours), ("theirs", theirs)) if on]
    if len(given) + (value_text is not None) + (fields_text is not None) != 1:
        fail("give exactly one of --ours, --theirs, --value JSON, --fields JSON", "USAGE_ERROR", exit_code=2)
    choice = given[0] if given else None
    if value_text is not None:
        choice, value = "value", parse_json_argument(value_text, "--value")
    elif fields_text is not None:
        choice, value = "fields", parse_json_argument(fields_text, "--fields")
    else:
        value = None
    assert choice is not None
    with opened(ctx) as store:
        require_network(store, network)
        with committing(f"resolve of {item_id!r} in {network}"):
            settled = store.resolve_conflict(network, group_id, item_id, choice, value)
        left = len(store.conflicts(network))
    emit(
        {"resolved": conflict_json(settled), "choice": choice, "remaining": left},
        lambda: say(f"resolved {settled.kind} {item_id!r} of group {group_id!r}; {left} conflict(s) left"),
    )


@verb("casstore fetch\ncasstore fetch origin thermostat --json", partial="fetched heads moved whole; run it again")
@click.argument("target", default="origin", metavar="[REMOTE|URL]")
@click.argument("networks", nargs=-1)
@click.pass_context
def fetch(ctx: click.Context, target: str, networks: tuple[str, ...]) -> None:
    """Copy a remote's heads and snapshots into remote-tracking refs (REMOTE/NET); local heads do not move."""
    with opened(ctx) as store:
        name, url = resolve_remote(store, target, "fetch")
        if not name:
            fail(
                f"fetch needs a named remote (it records REMOTE/NET): `casstore remote add NAME {redact_url(url)}`",
                "USAGE_ERROR",
                exit_code=2,
            )
        with NetworkStore(open_object_store(url, create=False)) as other:
            progress, advance = transfer_progress("fetching")
            with progress:
                report = sync.fetch(store, other, networks or None, name=name, progress=advance)
    document = {
        "remote": name,
        "url": url,
        "networks": {n: {"outcome": o, "ref": f"{name}/{n}"} for n, o in report.networks.items()},
        "snapshots_copied": report.snapshots_copied,
        "objects_sent": report.objects_sent,
        "bytes_sent": report.bytes_sent,
    }

    def render() -> None:
        for network_id, outcome in sorted(report.networks.items()):
            say(f"{name}/{network_id}: {outcome}")
        say(f"{report.objects_sent:,} objects, {report.snapshots_copied} snapshots fetched")

    emit(document, render)
