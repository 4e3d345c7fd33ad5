"""Image verbs: ``archive`` writes one snapshot of a network as a CAR v1 image, ``restore`` loads one."""

from __future__ import annotations

import click

from casstore import archive as images
from casstore.cli.common import (
    human_bytes,
    opened,
    out,
    require_network,
    resolve_snapshot,
    transfer_progress,
    user_errors,
)

__all__ = ["archive_network", "restore_network"]


@click.command("archive")
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


@click.command("restore")
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
