"""Verbs on a network's snapshots: ``snapshot``, ``log``, ``diff`` (its rendering, ``--stat`` included) and
``history`` (one contact's values across the snapshots)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import click
from rich.table import Column, Table

from casstore.cli.common import human_bytes, opened, record_json, require_network, resolve_snapshot, snapshot_json
from casstore.cli.networks import preview
from casstore.cli.output import committing, emit, fail, out, verb
from casstore.model import Change, Group, Wire
from casstore.model.history import HistoryEntry

__all__ = ["change_json", "changed_fields", "diff", "history", "history_json", "log", "snapshot"]

KIND_ORDER = ("group", "contact", "wire")


@verb("A=$(casstore snapshot thermostat -m 'before the upgrade')\ncasstore snapshot thermostat --json")
@click.argument("network")
@click.option("-m", "--label", help="A label for the snapshot.")
@click.pass_context
def snapshot(ctx: click.Context, network: str, label: str | None) -> None:
    """Snapshot a network's current state; prints the snapshot id."""
    with opened(ctx) as store, committing("the snapshot was saved"):
        snapshot_id = store.save_snapshot(network, label)
    emit({"network": network, "id": snapshot_id, "label": label}, lambda: click.echo(snapshot_id))


@verb("casstore log thermostat\ncasstore log thermostat --json | jq -r '.snapshots[0].id'")
@click.argument("network")
@click.pass_context
def log(ctx: click.Context, network: str) -> None:
    """List a network's snapshots, newest first."""
    with opened(ctx) as store:
        require_network(store, network)
        infos = store.list_snapshots(network)

    def render() -> None:
        table = Table("snapshot", "label", "created (UTC)", "logical size", title=f"snapshots of {network}")
        for info in infos:
            created = info.created_at.strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(info.id, info.label or "", created, human_bytes(info.size))
        out.print(table)

    emit({"network": network, "snapshots": [snapshot_json(info) for info in infos]}, render)


def changed_fields(old: Any, new: Any) -> list[str]:
    """The fields that differ between two records of one kind; ``attributes.KEY`` for each attribute."""
    if old is None or new is None:
        return []
    fields = []
    for field in dataclasses.fields(old):
        before, after = getattr(old, field.name), getattr(new, field.name)
        if field.name == "attributes":
            keys = sorted(set(before) | set(after))
            fields += [f"attributes.{k}" for k in keys if k not in before or k not in after or before[k] != after[k]]
        elif before != after:
            fields.append(field.name)
    return fields


def change_json(change: Change) -> dict[str, Any]:
    document: dict[str, Any] = {
        "kind": change.kind,
        "group_id": change.group_id,
        "item_id": change.item_id,
        "old": None if change.old is None else record_json(change.old),
        "new": None if change.new is None else record_json(change.new),
    }
    if change.kind.endswith("-updated"):
        document["fields"] = changed_fields(change.old, change.new)
    return document


def _describe(item: Any) -> str:
    if item is None:
        return ""
    if isinstance(item, Wire):
        return f"{item.from_id} → {item.to_id} ({item.type})"
    if isinstance(item, Group):
        return preview(item.name)
    return preview(item.content)


def _field_values(item: Any, fields: list[str]) -> str:
    parts = []
    for name in fields:
        if name.startswith("attributes."):
            key = name.split(".", 1)[1]
            parts.append(f"{name}={preview(item.attributes.get(key), 24)}")
        else:
            parts.append(f"{name}={preview(getattr(item, name), 24)}")
    return " ".join(parts)


def _change_row(change: Change) -> tuple[str, str, str]:
    """``(item, old, new)`` for a table row: updated records show only the fields that changed."""
    if change.kind in ("group-updated", "wire-updated"):
        fields = changed_fields(change.old, change.new)
        return (
            f"{change.item_id} ({', '.join(fields)})",
            _field_values(change.old, fields),
            _field_values(change.new, fields),
        )
    return change.item_id, _describe(change.old), _describe(change.new)


def _stat(changes: list[Change]) -> dict[str, dict[str, int]]:
    counts: dict[str, Counter[str]] = {}
    for change in changes:
        counts.setdefault(change.group_id, Counter())[change.kind] += 1
    return {gid: dict(sorted(counter.items())) for gid, counter in sorted(counts.items())}


def _render_stat(title: str, stat: dict[str, dict[str, int]], total: int) -> None:
    def cell(counts: dict[str, int], family: str) -> str:
        marks = (("added", "+"), ("removed", "-"), ("updated", "~"))
        return " ".join(f"{mark}{counts[f'{family}-{what}']}" for what, mark in marks if counts.get(f"{family}-{what}"))

    table = Table(Column("group", no_wrap=True), "group change", "contacts", "wires")
    for gid, counts in stat.items():
        group_kind = next((k.split("-", 1)[1] for k in counts if k.startswith("group-")), "")
        table.add_row(gid, group_kind, cell(counts, "contact"), cell(counts, "wire"))
    out.print(title, highlight=False, soft_wrap=True)
    out.print(table)
    out.print(f"{total} change(s) in {len(stat)} group(s)", highlight=False)


def _render_changes(title: str, changes: list[Change]) -> None:
    whole = {c.group_id: c.kind for c in changes if c.kind in ("group-added", "group-removed")}
    folded = Counter(c.group_id for c in changes if not c.kind.startswith("group-") and c.group_id in whole)
    table = Table(Column("change", no_wrap=True), Column("group", no_wrap=True), "item", "old", "new")
    for change in changes:
        if change.group_id in whole and not change.kind.startswith("group-"):
            continue  # a whole group added or removed is one row; its members are counted there
        item, old, new = _change_row(change)
        if change.kind in ("group-added", "group-removed") and folded[change.group_id]:
            item += f" (and {folded[change.group_id]:,} members)"
        table.add_row(change.kind, change.group_id, item, old, new)
    out.print(title, highlight=False, soft_wrap=True)
    out.print(table)
    out.print(f"{len(changes)} change(s)", highlight=False)


@verb("casstore diff thermostat bafyr4iabc123de\ncasstore diff thermostat bafyr4iabc123de bafyr4ixyz98765 --stat")
@click.argument("network")
@click.argument("a")
@click.argument("b", required=False)
@click.option("--stat", "stat_only", is_flag=True, help="Counts of changes per group and kind, not each change.")
@click.pass_context
def diff(ctx: click.Context, network: str, a: str, b: str | None, stat_only: bool) -> None:
    """Changes from snapshot A to snapshot B (default: the current state)."""
    with opened(ctx) as store:
        require_network(store, network)
        old = resolve_snapshot(store, network, a)
        new = resolve_snapshot(store, network, b) if b else None
        changes = store.diff(network, old, new)
    title = f"{network}: {old[:16]}… → {(new[:16] + '…') if new else 'current'}"
    document: dict[str, Any] = {"network": network, "from": old, "to": new, "total": len(changes)}
    if stat_only:
        stat = _stat(changes)
        emit({**document, "groups": stat}, lambda: _render_stat(title, stat, len(changes)))
    else:
        emit({**document, "changes": [change_json(c) for c in changes]}, lambda: _render_changes(title, changes))


def history_json(entry: HistoryEntry) -> dict[str, Any]:
    """One entry of ``history --json``."""
    return {
        "snapshot_id": entry.snapshot_id,
        "created_at": None if entry.created_at is None else entry.created_at.isoformat(),
        "label": entry.label,
        "exists": entry.exists,
        "content": record_json(entry.contact)["content"] if entry.contact is not None else None,
        "contact": None if entry.contact is None else record_json(entry.contact),
    }


@verb("casstore history thermostat sensors temperature\ncasstore history thermostat sensors temperature -n 5 --json")
@click.argument("network")
@click.argument("group_id", metavar="GROUP")
@click.argument("contact_id", metavar="CONTACT")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Show only the newest N entries.")
@click.pass_context
def history(ctx: click.Context, network: str, group_id: str, contact_id: str, limit: int | None) -> None:
    """The values one contact had across the snapshots, newest first (one row per change).

    Consecutive snapshots holding the same value are one row, at the oldest of them (where the value
    appeared); the current state is the first row when it differs from the newest snapshot.
    """
    with opened(ctx) as store:
        require_network(store, network)
        entries = store.contact_history(network, group_id, contact_id, limit)
    truncated = limit is not None and len(entries) == limit
    if not truncated and not any(entry.exists for entry in entries):
        fail(
            f"contact {contact_id!r} of group {group_id!r} is in neither the current state of {network!r} "
            "nor any of its snapshots",
            "CONTACT_NOT_FOUND",
        )

    def render() -> None:
        table = Table(
            Column("snapshot", no_wrap=True),
            Column("created (UTC)", no_wrap=True),
            "label",
            "content",
            title=f"history of {network}/{group_id}/{contact_id}",
        )
        for entry in entries:
            created = "" if entry.created_at is None else entry.created_at.strftime("%Y-%m-%d %H:%M:%S")
            shown = preview(entry.content, 64) if entry.exists else "(absent)"
            table.add_row(entry.snapshot_id or "(current state)", created, entry.label or "", shown)
        out.print(table)

    document = {
        "network": network,
        "group_id": group_id,
        "id": contact_id,
        "history": [history_json(entry) for entry in entries],
    }
    emit(document, render)
