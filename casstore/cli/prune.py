"""``casstore prune``: delete a network's old unlabelled snapshots (retention without a live image).

The rules are :func:`casstore.runtime.retention.snapshots_to_prune`'s: ``--keep N`` keeps the N
newest unlabelled snapshots, ``--keep-within DURATION`` those taken within it (both: either keeps
one); labelled snapshots always stay.  Only refs are deleted: ``casstore gc`` reclaims the bytes.
"""

from __future__ import annotations

import click

from casstore.cli.common import opened, require_network, snapshot_json
from casstore.cli.output import emit, fail, out, say, verb
from casstore.errors import StorageError
from casstore.runtime.retention import parse_duration, prune_snapshots

__all__ = ["prune"]


@verb(
    "casstore prune thermostat --keep 10 --dry-run\ncasstore prune thermostat --keep-within 7d --json",
    partial="the snapshots deleted so far stay deleted",
)
@click.argument("network")
@click.option("--keep", type=click.IntRange(min=0), help="Keep the N newest unlabelled snapshots.")
@click.option(
    "--keep-within", "keep_within", metavar="DURATION", help="Keep those taken within DURATION (30m, 12h, 7d)."
)
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@click.pass_context
def prune(ctx: click.Context, network: str, keep: int | None, keep_within: str | None, dry_run: bool) -> None:
    """Delete NETWORK's unlabelled snapshots beyond --keep / --keep-within (labelled ones always stay)."""
    if keep is None and keep_within is None:
        fail("give --keep N and/or --keep-within DURATION", "USAGE_ERROR", exit_code=2)
    try:
        within = None if keep_within is None else parse_duration(keep_within)
    except StorageError as exc:
        fail(f"--keep-within: {exc}", exc.code, exit_code=2)
    with opened(ctx) as store:
        require_network(store, network)
        doomed = prune_snapshots(store, network, keep=keep, keep_within=within, dry_run=dry_run)
        remaining = len(store.list_snapshots(network))

    def render() -> None:
        verb_text = "would delete" if dry_run else "deleted"
        for info in doomed:
            created = info.created_at.strftime("%Y-%m-%d %H:%M:%S")
            out.print(f"{verb_text} {info.id}  {created}{'  (automatic)' if info.automatic else ''}", highlight=False)
        say(f"{verb_text} {len(doomed)} snapshot{'s' * (len(doomed) != 1)} of {network}; {remaining} remain")

    document = {
        "network": network,
        "dry_run": dry_run,
        "deleted": [snapshot_json(info) for info in doomed],
        "remaining": remaining,
    }
    emit(document, render)
