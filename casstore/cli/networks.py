"""Verbs on networks: ``networks``, ``show``, ``set``, ``import``, ``export``, ``snapshot``, ``log`` and ``diff``."""

from __future__ import annotations

import json
from typing import Any, TextIO

import click
from rich.table import Column, Table

from casstore import codec
from casstore.cli.common import fail, human_bytes, opened, out, require_network, resolve_snapshot, to_json, user_errors
from casstore.model import Change
from casstore.model.bassline_json import NetworkJSONError, network_from_json, network_to_json
from casstore.model.refs import head_ref

__all__ = ["diff", "export_network", "import_network", "log", "networks", "set_content", "show", "snapshot"]


def preview(value: Any, width: int = 48) -> str:
    text = json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command()
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


@click.command()
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


@click.command("set")
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


@click.command()
@click.argument("network")
@click.option("-m", "--label", help="A label for the snapshot.")
@click.pass_context
@user_errors
def snapshot(ctx: click.Context, network: str, label: str | None) -> None:
    """Snapshot a network's current state; prints the snapshot id."""
    with opened(ctx) as store:
        click.echo(store.save_snapshot(network, label))


@click.command()
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


@click.command()
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


@click.command("import")
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


@click.command("export")
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
