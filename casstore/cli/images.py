"""Image verbs: ``archive`` writes one snapshot of a network as a CAR v1 image, ``restore`` loads one.

The target is checked here before anything is written: a directory or an existing file (without
``--force``) is refused with a clear message instead of a failed rename or a silent overwrite.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import click

from casstore import archive as images
from casstore.cli.common import human_bytes, opened, require_network, resolve_snapshot, transfer_progress
from casstore.cli.output import committing, emit, fail, say, verb

__all__ = ["archive_network", "image_location", "restore_network"]

_RESTORE_PARTIAL = (
    "restore moves the network's refs only at its very end: unless it had finished, the network is unchanged "
    "(objects copied so far go at the next gc)"
)


def image_location(text: str) -> str:
    """The location to hand to :mod:`casstore.archive`, compressed exactly when the path or key ends in ``.zst``.

    ``casstore.archive`` decides on compression by the end of the whole string, so an S3 URL with a
    query (``s3://b/x.car.zst?endpoint_url=…``) would be written uncompressed.  A URL fragment is
    never part of the key or the query, so ending the string with one that agrees with the key
    makes the decision right without changing what is read or written.
    """
    if not text.startswith("s3://") or "#" in text:
        return text
    key_compressed = urlsplit(text).path.endswith(".zst")
    if key_compressed == text.endswith(".zst"):
        return text
    return text + ("#.zst" if key_compressed else "#raw")


def _check_local_target(target: str, force: bool) -> None:
    if "://" in target:
        return
    path = Path(target)
    if path.is_dir():
        fail(f"{target} is a directory: name the image file, e.g. {path / 'network.car.zst'}", "IS_A_DIRECTORY")
    if path.exists() and not force:
        fail(f"{target} already exists; pass --force to overwrite it", "TARGET_EXISTS")
    if not path.parent.is_dir():
        fail(f"{path.parent} is not a directory: create it first", "NO_SUCH_DIRECTORY")


@verb(
    "casstore archive thermostat thermostat.car.zst\ncasstore archive thermostat 's3://bucket/images/t.car.zst?region=eu-west-1'",
    name="archive",
)
@click.argument("network")
@click.argument("target")
@click.option(
    "--snapshot",
    "snapshot_id",
    help="Archive this snapshot (default: the current state; its snapshot is written only to the image).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing local image file.")
@click.pass_context
def archive_network(ctx: click.Context, network: str, target: str, snapshot_id: str | None, force: bool) -> None:
    """Write NETWORK as one CAR v1 image to TARGET (a path or s3://bucket/key; .zst compresses)."""
    _check_local_target(target, force)
    with opened(ctx) as store:
        require_network(store, network)
        if snapshot_id:
            snapshot_id = resolve_snapshot(store, network, snapshot_id)
        progress, advance = transfer_progress("archiving")
        with progress, committing(f"image written to {target}"):
            report = images.archive(store, network, image_location(target), snapshot_id, progress=advance)
    emit(
        {
            "network": network,
            "snapshot_id": report.snapshot_id,
            "objects": report.objects,
            "bytes": report.bytes,
            "target": target,
        },
        lambda: say(
            f"archived snapshot {report.snapshot_id} of {network}: {report.objects:,} objects, "
            f"{human_bytes(report.bytes)} → {target}"
        ),
    )


@verb(
    "casstore restore thermostat.car.zst\ncasstore restore thermostat.car.zst --as thermostat-copy",
    partial=_RESTORE_PARTIAL,
    name="restore",
)
@click.argument("source")
@click.option("--as", "network", help="Restore under this network id (default: the one in the image).")
@click.option("--force", is_flag=True, help="Replace the network's current state if it differs.")
@click.pass_context
def restore_network(ctx: click.Context, source: str, network: str | None, force: bool) -> None:
    """Load the image at SOURCE (a path or s3://bucket/key) and set its network's head and snapshot."""
    with opened(ctx) as store:
        progress, advance = transfer_progress("restoring")
        with progress:
            report = images.restore(store, image_location(source), network, force=force, progress=advance)
    sent = report.written.objects_sent if report.written else 0
    emit(
        {
            "network": report.network_id,
            "snapshot_id": report.snapshot_id,
            "objects": report.objects,
            "bytes": report.bytes,
            "new_objects": sent,
            "source": source,
        },
        lambda: say(
            f"restored {report.network_id} at snapshot {report.snapshot_id}: {report.objects:,} objects in the image, "
            f"{sent:,} new to this store"
        ),
    )
