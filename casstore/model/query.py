"""Querying groups by attributes, author, tags and type, through the attribute index.

The index tree holds one key per group and attribute (name, value), and per
group and tag: a short hash of the pair, then the group id (see
:func:`casstore.model.records.index_keys`).  A query scans the key range of
each filter, intersects the group ids, loads only those groups, and checks each
against every filter again on its decoded attributes, so the index narrows the
search but never decides alone.
"""

from __future__ import annotations

from typing import Any

from casstore import codec
from casstore.model import records
from casstore.model.reads import NetworkReader
from casstore.model.types import GroupState

__all__ = ["matches", "query_groups"]


def query_groups(
    reader: NetworkReader,
    network_id: str,
    *,
    attributes: dict[str, Any] | None = None,
    author: str | None = None,
    tags: list[str] | None = None,
    type: str | None = None,
) -> list[GroupState]:
    """Groups matching every given filter, in group-id order, found through the attribute index."""
    root = reader.head_root(network_id)
    if root is None:
        return []
    index = reader.trees["index"]

    def scan(prefix: str) -> set[str]:
        return {key[len(prefix) :] for key, _ in index.items_with_prefix(root["index"], prefix)}

    candidates: set[str] | None = None

    def narrow(found: set[str]) -> None:
        nonlocal candidates
        candidates = found if candidates is None else candidates & found

    for name, value in (attributes or {}).items():
        narrow(scan(records.attribute_prefix(name, value)))
    for name, wanted in (("author", author), ("type", type)):
        if wanted is not None:
            narrow(
                scan(records.attribute_prefix(f"bassline.{name}", wanted))
                | scan(records.attribute_prefix(name, wanted))
            )
    for tag in tags or []:
        narrow(scan(records.tag_prefix(tag)))
    groups = reader.trees["groups"]
    if candidates is None:
        found = list(groups.items(root["groups"]))
    else:
        got = groups.get_many(root["groups"], candidates)
        found = sorted(got.items())
    states = reader.group_states(root, found)
    return [state for state in states.values() if matches(state.group.attributes, attributes, author, tags, type)]


def matches(
    attrs: dict[str, Any],
    attributes: dict[str, Any] | None,
    author: str | None,
    tags: list[str] | None,
    type: str | None,
) -> bool:
    """Whether a group's attributes pass every given filter (``bassline.``-prefixed names count too)."""
    if attributes and any(name not in attrs or not _same(attrs[name], v) for name, v in attributes.items()):
        return False
    for name, wanted in (("author", author), ("type", type)):
        if wanted is not None and wanted not in (attrs.get(f"bassline.{name}"), attrs.get(name)):
            return False
    if tags:
        have: set[str] = set()
        for name in records.TAG_ATTRIBUTES:
            value = attrs.get(name)
            if isinstance(value, list):
                have.update(t for t in value if isinstance(t, str))
        if not set(tags) <= have:
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    return codec.encode_value(a) == codec.encode_value(b)
