"""``delete contact|group|network|snapshot``: each checks that its target exists, asks on a terminal
(``--yes`` skips the question; without a terminal ``--yes`` is required), removes it in one write
and says what it removed.  Objects stay until ``gc`` sweeps them, so a snapshot still reaches them.
A contact goes with its group's wires from or to it (``NetworkStore.delete_contact``).
"""

from __future__ import annotations

from typing import Any

import click

from casstore.cli.common import opened, require_network, resolve_snapshot
from casstore.cli.output import committing, emit, fail, say, stdin_is_terminal, verb
from casstore.errors import SnapshotNotFound
from casstore.model import GroupState, NetworkStore

__all__ = ["delete"]

_yes = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")


@click.group()
def delete() -> None:
    """Delete a contact, a group, a network or a snapshot (asks first unless --yes)."""


def _confirm(what: str, yes: bool) -> None:
    if yes:
        return
    if not stdin_is_terminal():
        fail(f"refusing to delete {what} without confirmation: stdin is not a terminal; pass --yes", "NOT_CONFIRMED")
    if not click.confirm(f"delete {what}?", default=False, err=True):
        fail(f"not deleted: {what}", "NOT_CONFIRMED")


def _group_or_fail(store: NetworkStore, network: str, group_id: str) -> GroupState:
    require_network(store, network)
    state = store.load_group_state(network, group_id)
    if state is None:
        fail(f"group {group_id!r} not found in network {network!r}", "GROUP_NOT_FOUND")
    return state


def _done(document: dict[str, Any], message: str) -> None:
    emit({"deleted": document}, lambda: say(message))


@verb(
    "casstore delete contact thermostat sensors humidity\ncasstore delete contact thermostat sensors humidity --yes",
    group=delete,
    name="contact",
)
@click.argument("network")
@click.argument("group_id", metavar="GROUP")
@click.argument("contact_id", metavar="CONTACT")
@_yes
@click.pass_context
def delete_contact(ctx: click.Context, network: str, group_id: str, contact_id: str, yes: bool) -> None:
    """Delete one contact of a group, with the group's wires from or to it (one write)."""
    with opened(ctx) as store:
        state = _group_or_fail(store, network, group_id)
        if contact_id not in state.contacts:
            fail(f"contact {contact_id!r} not found in group {group_id!r} of network {network!r}", "CONTACT_NOT_FOUND")
        wires = sorted(wid for wid, w in state.wires.items() if contact_id in (w.from_id, w.to_id))
        with_wires = f" and its {len(wires)} wire(s) ({', '.join(wires)})" if wires else ""
        _confirm(f"contact {network}/{group_id}/{contact_id}{with_wires}", yes)
        with committing(f"contact {network}/{group_id}/{contact_id} deleted"):
            store.delete_contact(network, group_id, contact_id)
    _done(
        {"kind": "contact", "network": network, "group_id": group_id, "id": contact_id, "wires_deleted": wires},
        f"deleted contact {network}/{group_id}/{contact_id}{with_wires}",
    )


@verb("casstore delete group thermostat sensors --yes", group=delete, name="group")
@click.argument("network")
@click.argument("group_id", metavar="GROUP")
@_yes
@click.pass_context
def delete_group(ctx: click.Context, network: str, group_id: str, yes: bool) -> None:
    """Delete a group with its contacts and wires."""
    with opened(ctx) as store:
        state = _group_or_fail(store, network, group_id)
        counts = f"{len(state.contacts):,} contacts, {len(state.wires):,} wires"
        _confirm(f"group {network}/{group_id} ({counts})", yes)
        with committing(f"group {network}/{group_id} deleted"):
            store.delete_group(network, group_id)
    _done(
        {
            "kind": "group",
            "network": network,
            "id": group_id,
            "contacts": len(state.contacts),
            "wires": len(state.wires),
        },
        f"deleted group {network}/{group_id} ({counts})",
    )


@verb("casstore delete network scratch --yes", group=delete, name="network")
@click.argument("network")
@_yes
@click.pass_context
def delete_network(ctx: click.Context, network: str, yes: bool) -> None:
    """Delete a network: its current state and every snapshot (objects go at the next gc)."""
    with opened(ctx) as store:
        require_network(store, network)
        snapshots = len(store.list_snapshots(network))
        _confirm(f"network {network} and its {snapshots} snapshot(s)", yes)
        with committing(f"network {network} deleted"):
            store.delete_network(network)
    _done(
        {"kind": "network", "id": network, "snapshots": snapshots},
        f"deleted network {network} and {snapshots} snapshot(s); `casstore gc` frees their objects",
    )


@verb("casstore delete snapshot thermostat bafyr4iabc123de --yes", group=delete, name="snapshot")
@click.argument("network")
@click.argument("snapshot_id", metavar="SNAPSHOT")
@_yes
@click.pass_context
def delete_snapshot(ctx: click.Context, network: str, snapshot_id: str, yes: bool) -> None:
    """Delete one snapshot of a network (a full id or a unique prefix of 8+ characters)."""
    with opened(ctx) as store:
        require_network(store, network)
        try:
            full = resolve_snapshot(store, network, snapshot_id)
        except SnapshotNotFound as exc:  # Python's delete_snapshot is a no-op here; a user is told
            fail(f"no such snapshot: {exc}", "SNAPSHOT_NOT_FOUND")
        _confirm(f"snapshot {full} of {network}", yes)
        with committing(f"snapshot {full} deleted"):
            store.delete_snapshot(network, full)
    _done({"kind": "snapshot", "network": network, "id": full}, f"deleted snapshot {full} of {network}")
