"""Verbs on a network's current state: ``networks``, ``show``, ``get``, ``query``, ``set``, ``import``, ``export``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from casstore import codec
from casstore.cli.common import (
    human_bytes,
    load_json,
    opened,
    parse_json_argument,
    record_json,
    require_network,
    resolve_snapshot,
    to_json,
)
from casstore.cli.output import committing, emit, fail, out, say, verb
from casstore.layout.transfer import export_layout, import_layouts, layout_networks
from casstore.model import GroupState
from casstore.model.bassline_json import NetworkJSONError, network_from_json, network_to_json
from casstore.model.refs import head_ref

__all__ = [
    "export_network",
    "get",
    "group_summary",
    "import_network",
    "networks",
    "preview",
    "query",
    "set_content",
    "show",
]


def preview(value: Any, width: int = 48) -> str:
    text = json.dumps(to_json(value), ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def group_summary(gid: str, state: GroupState) -> dict[str, Any]:
    """One group as a row of ``show``/``query --json``."""
    return {
        "id": gid,
        "name": state.group.name,
        "contacts": len(state.contacts),
        "wires": len(state.wires),
        "attributes": to_json(state.group.attributes),
    }


def _groups_table(title: str, groups: dict[str, GroupState]) -> Table:
    table = Table("group", "name", "contacts", "wires", "type", "author", "tags", title=title)
    for gid, gs in groups.items():
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
    return table


@verb("casstore networks\ncasstore networks --json | jq -r '.networks[].id'")
@click.pass_context
def networks(ctx: click.Context) -> None:
    """List the networks in the store."""
    with opened(ctx) as store:
        rows: list[dict[str, Any]] = []
        for network in store.list_networks():
            head = store.refs.get(head_ref(network))
            root = store.network_root(head) if head else {"size": 0}
            rows.append(
                {
                    "id": network,
                    "head": codec.format_id(head) if head else None,
                    "size": root["size"],
                    "snapshots": len(store.list_snapshots(network)),
                }
            )

    def render() -> None:
        table = Table("network", "head", "logical size", "snapshots")
        for row in rows:
            head = row["head"][:16] if row["head"] else "-"
            table.add_row(row["id"], head, human_bytes(row["size"]), str(row["snapshots"]))
        out.print(table)

    emit({"networks": rows}, render)


@verb("casstore show thermostat\ncasstore show thermostat --group sensors --json")
@click.argument("network")
@click.option("--group", "group_id", help="Show one group's contacts and wires.")
@click.pass_context
def show(ctx: click.Context, network: str, group_id: str | None) -> None:
    """Show a network's groups, or one group in detail."""
    with opened(ctx) as store:
        require_network(store, network)
        if group_id is None:
            state = store.load_network_state(network)
            assert state is not None
            document: dict[str, Any] = {
                "network": network,
                "current_group_id": state.current_group_id,
                "root_group_id": state.root_group_id,
                "groups": [group_summary(gid, gs) for gid, gs in state.groups.items()],
            }
            title = f"{network} (current group {state.current_group_id})"
            emit(document, lambda: out.print(_groups_table(title, state.groups)))
            return
        one = store.load_group_state(network, group_id)
    if one is None:
        fail(f"group {group_id!r} not found in network {network!r}", "GROUP_NOT_FOUND")
    group_document: dict[str, Any] = {
        "network": network,
        "group": record_json(one.group),
        "contacts": {cid: record_json(c) for cid, c in one.contacts.items()},
        "wires": {wid: record_json(w) for wid, w in one.wires.items()},
    }

    def render() -> None:
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

    emit(group_document, render)


@verb("casstore get thermostat sensors temperature\ncasstore get thermostat sensors temperature --full")
@click.argument("network")
@click.argument("group_id", metavar="GROUP")
@click.argument("contact_id", metavar="CONTACT")
@click.option("--full", is_flag=True, help="The whole contact record, not only its content.")
@click.pass_context
def get(ctx: click.Context, network: str, group_id: str, contact_id: str, full: bool) -> None:
    """Print one contact's content as JSON (--full: the whole contact record)."""
    with opened(ctx) as store:
        require_network(store, network)
        contact = store.load_contact(network, group_id, contact_id)
        if contact is None:  # which is missing, the group or the contact (reading the group only then)
            if store.load_group_state(network, group_id) is None:
                fail(f"group {group_id!r} not found in network {network!r}", "GROUP_NOT_FOUND")
            fail(f"contact {contact_id!r} not found in group {group_id!r} of network {network!r}", "CONTACT_NOT_FOUND")
    record = record_json(contact)
    shown = record if full else record["content"]
    document = (
        {"network": network, **record}
        if full
        else {
            "network": network,
            "group_id": group_id,
            "id": contact_id,
            "content": record["content"],
        }
    )
    emit(document, lambda: click.echo(json.dumps(shown, indent=2, ensure_ascii=False)))


def _attribute_filters(pairs: tuple[str, ...]) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--attr takes KEY=JSON (e.g. --attr 'bassline.author=\"bob\"'), not {pair!r}", "INVALID_INPUT")
        filters[key] = parse_json_argument(value, f"the value of --attr {key}")
    return filters


@verb("casstore query thermostat --type sensor-bank\ncasstore query thermostat --tag hvac --attr 'floor=2' --json")
@click.argument("network")
@click.option("--type", "type_", metavar="T", help="Groups whose type (bassline.type or type) is T.")
@click.option("--author", metavar="A", help="Groups whose author (bassline.author or author) is A.")
@click.option("--tag", "tags", multiple=True, metavar="X", help="Groups tagged X (repeat: every tag).")
@click.option("--attr", "attrs", multiple=True, metavar="KEY=JSON", help="Groups whose attribute KEY equals JSON.")
@click.pass_context
def query(
    ctx: click.Context,
    network: str,
    type_: str | None,
    author: str | None,
    tags: tuple[str, ...],
    attrs: tuple[str, ...],
) -> None:
    """Groups matching every filter given (through the attribute index), in group-id order."""
    attributes = _attribute_filters(attrs)
    with opened(ctx) as store:
        require_network(store, network)
        found = store.query_groups(
            network, attributes=attributes or None, author=author, tags=list(tags) or None, type=type_
        )
    groups = {state.group.id: state for state in found}
    document = {"network": network, "groups": [group_summary(gid, gs) for gid, gs in groups.items()]}
    emit(document, lambda: out.print(_groups_table(f"{network}: {len(groups)} group(s) match", groups)))


@verb(
    "casstore set thermostat sensors temperature '{\"celsius\": 23.5}'\n"
    "casstore set thermostat room note --string 'Now in NYC'",
    name="set",
)
@click.argument("network")
@click.argument("group_id", metavar="GROUP")
@click.argument("contact_id", metavar="CONTACT")
@click.argument("value")
@click.option("--string", "as_string", is_flag=True, help="Store VALUE as a text string, not JSON.")
@click.pass_context
def set_content(ctx: click.Context, network: str, group_id: str, contact_id: str, value: str, as_string: bool) -> None:
    """Set a contact's content to the JSON VALUE (--string: to the text VALUE)."""
    content = value if as_string else parse_json_argument(value, "VALUE", "--string")
    with opened(ctx) as store, committing(f"{network}/{group_id}/{contact_id} set"):
        store.save_contact_content(network, group_id, contact_id, content)
    emit(
        {"network": network, "group_id": group_id, "id": contact_id, "content": to_json(content)},
        lambda: say(f"set {network}/{group_id}/{contact_id}"),
    )


@verb(
    "casstore import thermostat docs/examples/sample-network.json\ncat net.json | casstore import thermostat -\n"
    "casstore import main ./checkout --as main-copy\ncasstore import ./checkout",
    name="import",
)
@click.argument("network")
@click.argument("source", required=False)
@click.option("--as", "as_id", help="With a layout directory: import NETWORK under this id.")
@click.pass_context
def import_network(ctx: click.Context, network: str, source: str | None, as_id: str | None) -> None:
    """Replace NETWORK's current state with SOURCE (Bassline JSON; - for stdin; a directory: the seed layout).

    The times SOURCE gives (its "network" key, metadata.json) are kept. A directory holds
    networks/NETWORK/... (see docs/layout.md); given alone, every network in it.
    """
    if source is None and Path(network).is_dir():
        network, source = "", network  # `import DIR`: every network the directory holds
    if source is None:
        fail("missing SOURCE: a Bassline JSON file, - for stdin, or a layout directory", "USAGE_ERROR", exit_code=2)
    if Path(source).is_dir():
        _import_layout(ctx, network or None, Path(source), as_id)
        return
    if as_id is not None:
        fail(
            "--as is for a layout directory (for a JSON file, name the network you import into)",
            "USAGE_ERROR",
            exit_code=2,
        )
    name = "<stdin>" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read {name}: {exc.strerror}", "NOT_FOUND")
    try:
        doc = load_json(text, name)
    except json.JSONDecodeError as exc:
        fail(f"{name} is not valid JSON: {exc}", "INVALID_JSON")
    try:
        state = network_from_json(doc)
    except NetworkJSONError as exc:
        fail(f"{name}: {exc}", "INVALID_NETWORK_JSON")
    with opened(ctx) as store, committing(f"network {network} replaced"):
        store.save_network_state(network, state, keep_times=True)  # the document's times, where it has them
    contacts = sum(len(g.contacts) for g in state.groups.values())
    emit(
        {"network": network, "groups": len(state.groups), "contacts": contacts},
        lambda: say(f"imported {len(state.groups):,} groups, {contacts:,} contacts into {network}"),
    )


def _import_layout(ctx: click.Context, network: str | None, directory: Path, as_id: str | None) -> None:
    networks = [network] if network else layout_networks(directory)
    if as_id is not None and len(networks) != 1:
        fail("--as renames one network: name it", "USAGE_ERROR", exit_code=2)
    with opened(ctx) as store, committing("networks imported"):
        done = import_layouts(store, directory, networks, as_id)
    emit({"networks": done}, lambda: say(f"imported {', '.join(done) or 'no networks'} from {directory}"))


@verb(
    "casstore export thermostat > thermostat.json\ncasstore export thermostat --snapshot bafyr4iabc123de\n"
    "casstore export thermostat --layout seed ./checkout",
    name="export",
)
@click.argument("network", required=False)
@click.argument("directory", required=False)
@click.option("--snapshot", "snapshot_id", help="Export this snapshot instead of the current state.")
@click.option("--layout", type=click.Choice(["seed"]), help="Write the seed's directory layout into DIRECTORY.")
@click.pass_context
def export_network(
    ctx: click.Context, network: str | None, directory: str | None, snapshot_id: str | None, layout: str | None
) -> None:
    """Write NETWORK (or one of its snapshots) as Bassline JSON to stdout (with or without --json).

    With --layout seed: write DIRECTORY/networks/NETWORK/... (without NETWORK: every network).
    """
    if layout is not None:
        if directory is None:
            network, directory = None, network
        if directory is None:
            fail("--layout seed needs a DIRECTORY to write into", "USAGE_ERROR", exit_code=2)
        if snapshot_id:
            fail(
                "--layout writes the current state (snapshots are listed in it): drop --snapshot",
                "USAGE_ERROR",
                exit_code=2,
            )
        with opened(ctx) as store:
            networks = [network] if network else store.list_networks()
            if network:
                require_network(store, network)
            files = {net: export_layout(store, net, Path(directory)) for net in networks}
        emit(
            {"directory": directory, "networks": files},
            lambda: say(f"wrote {sum(files.values()):,} files of {len(files)} networks under {directory}"),
        )
        return
    if network is None or directory is not None:
        fail("export takes one NETWORK (a DIRECTORY only with --layout seed)", "USAGE_ERROR", exit_code=2)
    with opened(ctx) as store:
        require_network(store, network)
        if snapshot_id:
            state = store.load_snapshot(network, resolve_snapshot(store, network, snapshot_id))
        else:
            loaded = store.load_network_state(network)
            assert loaded is not None
            state = loaded
    click.echo(json.dumps(network_to_json(state), indent=2, ensure_ascii=False))
