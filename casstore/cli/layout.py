"""Verbs on a ``filesystem://`` store's files: ``status`` (hand edits) and ``commit`` (apply them).

``export --layout seed DIR`` and ``import NET DIR`` (in :mod:`casstore.cli.networks`) write and read
the same layout from and to any store, through :mod:`casstore.layout.transfer`.
"""

from __future__ import annotations

import click

from casstore.cli.common import opened
from casstore.cli.output import committing, emit, out, say, verb
from casstore.errors import NetworkNotFound
from casstore.layout.edits import commit_networks, filesystem_store
from casstore.layout.keeper import layout_state, network_status
from casstore.layout.render import network_dir
from casstore.layout.snapshots import restore_snapshots
from casstore.layout.transfer import layout_networks
from casstore.model.network import NetworkStore

__all__ = ["commit_edits", "status"]


def _networks(store: NetworkStore, network: str | None) -> list[str]:
    """NETWORK, or every network the store holds or the directory has files for."""
    base = layout_state(filesystem_store(store)).base
    if network is not None:
        if not store.exists(network) and not (base / network_dir(network)).is_dir():
            raise NetworkNotFound(f"network {network!r} not found: the store has no head for it and {base} no files")
        return [network]
    return sorted(set(store.list_networks()) | set(layout_networks(base)))


@verb("casstore status\ncasstore --store filesystem:///srv/nets status main --full")
@click.argument("network", required=False)
@click.option("--full", is_flag=True, help="Read and hash every file (not only those whose mtime or size moved).")
@click.pass_context
def status(ctx: click.Context, network: str | None, full: bool) -> None:
    """List the files of NETWORK (default: every network) changed, added or removed by hand."""
    with opened(ctx) as store:
        fs = filesystem_store(store)
        found = {net: network_status(fs, net, full) for net in _networks(store, network)}
        why = {net: restore_snapshots(fs, net, dry_run=True).absent for net, st in found.items() if st.unrestored}
    unrestored = {
        net: {path: why.get(net, {}).get(path, "restorable: run commit") for path in st.unrestored}
        for net, st in found.items()
    }
    doc = {
        net: {
            "modified": st.modified,
            "added": st.added,
            "removed": st.removed,
            "unrestored_snapshots": unrestored[net],
        }
        for net, st in found.items()
    }

    def render() -> None:
        clean = True
        for net, st in found.items():
            for mark, paths in (("modified", st.modified), ("added", st.added), ("removed", st.removed)):
                for path in paths:
                    clean = False
                    out.print(f"{mark:9} {network_dir(net)}/{path}", highlight=False, soft_wrap=True)
            for path, reason in unrestored[net].items():
                out.print(
                    f"snapshot not restored: {network_dir(net)}/{path}: {reason}", highlight=False, soft_wrap=True
                )
        if clean:
            say("nothing to commit: the files are as last written")

    emit({"networks": doc}, render)


@verb(
    "casstore commit main -m 'fixed the bio'\ngit clone … nets && casstore --store filesystem://$PWD/nets commit",
    name="commit",
)
@click.argument("network", required=False)
@click.option("-m", "--message", "label", help="Also take a snapshot of the result, with this label.")
@click.pass_context
def commit_edits(ctx: click.Context, network: str | None, label: str | None) -> None:
    """Apply the hand edits of NETWORK's files (default: every network) to the store, as one write each."""
    with opened(ctx, create=True) as store, committing("hand edits applied"):
        reports = commit_networks(store, _networks(store, network), label)
    doc = [
        {
            "network": r.network_id,
            "paths": r.paths,
            "snapshot": r.snapshot,
            "whole_directory": r.whole,
            "restored_snapshots": r.restored,
            "unrestored_snapshots": r.unrestored,
        }
        for r in reports
    ]

    def render() -> None:
        for report in reports:
            if not report.paths:
                say(f"{report.network_id}: nothing to commit")
                continue
            how = " (the whole directory)" if report.whole else ""
            say(f"{report.network_id}: committed {len(report.paths):,} files{how}")
            if report.snapshot:
                say(f"{report.network_id}: snapshot {report.snapshot}")
        for report in reports:
            if report.restored:
                say(f"{report.network_id}: {len(report.restored):,} snapshots restored from their files")
            for path, reason in report.unrestored.items():
                say(f"{report.network_id}: snapshot not restored: {path}: {reason}")

    emit({"commits": doc}, render)
