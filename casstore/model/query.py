"""Querying groups by attributes, author, tags and type, through the attribute index.

The index tree holds one key per group and attribute (name, value), and per
group and tag: a short hash of the pair, then the group id (see
:func:`casstore.model.records.index_keys`).  A query scans the key range of
each filter, intersects the group ids, loads only those groups, and checks each
against every filter again on its decoded attributes, so the index narrows the
search but never decides alone.

The filters come as keywords or, as in Bassline's ``queryGroups(networkId,
filter)``, as one mapping with the same keys (``{"author": "bob"}``); both may
be given if they name different filters.  Every filter is checked before
anything is read: a wrong type or text that is not valid Unicode raises
:class:`~casstore.errors.SerializationError`, whether or not the network exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from casstore import codec
from casstore.errors import SerializationError
from casstore.model import records
from casstore.model.reads import NetworkReader
from casstore.model.types import GroupState, check_id, check_str

__all__ = [
    "FILTER_KEYS",
    "GroupFinder",
    "QueryFilter",
    "install_group_finder",
    "matches",
    "query_filter",
    "query_groups",
]

#: The keys of a filter mapping (Bassline's ``QueryFilter``).
FILTER_KEYS = ("attributes", "author", "tags", "type")


@dataclass(frozen=True)
class QueryFilter:
    """A checked query: every field ``None`` (or empty) matches every group."""

    attributes: dict[str, Any] | None = None
    author: str | None = None
    tags: list[str] | None = None
    type: str | None = None


def query_filter(filters: Mapping[str, Any] | None = None, **keywords: Any) -> QueryFilter:
    """The filter a mapping and keywords describe together, every part checked.

    Raises :class:`~casstore.errors.SerializationError` for an unknown key, a key given both ways,
    a value of the wrong type (``tags`` must be a list of strings, ``author`` and ``type`` strings,
    ``attributes`` a dict of string names to values of the data model) or a string that is not valid
    Unicode (a lone surrogate).
    """
    merged = {key: value for key, value in keywords.items() if value is not None}
    if filters is not None:
        if not isinstance(filters, Mapping):
            raise SerializationError(f"filter: expected a mapping, got {_type_name(filters)}", "filter")
        for key, value in filters.items():
            if key not in FILTER_KEYS:
                raise SerializationError(
                    f"filter: unknown key {key!r} (the keys are {', '.join(FILTER_KEYS)}; "
                    "attributes go under 'attributes')",
                    "filter",
                )
            if value is None:
                continue
            if key in merged:
                raise SerializationError(f"filter: {key!r} given both in the mapping and as a keyword", key)
            merged[key] = value
    attributes = merged.get("attributes")
    if attributes is not None:
        if not isinstance(attributes, Mapping):
            raise SerializationError(f"attributes: expected a dict, got {_type_name(attributes)}", "attributes")
        for name, value in attributes.items():
            check_str(name, "attributes: a name")
            codec.encode_value(value, f"attributes[{name!r}]")
        attributes = dict(attributes)
    for name in ("author", "type"):
        if name in merged:
            check_str(merged[name], name)
    tags = merged.get("tags")
    if tags is not None:
        if isinstance(tags, str) or not isinstance(tags, list | tuple):
            raise SerializationError(f"tags: expected a list of strings, got {_type_name(tags)}", "tags")
        for index, tag in enumerate(tags):
            check_str(tag, f"tags[{index}]")
        tags = list(tags)
    return QueryFilter(attributes, merged.get("author"), tags, merged.get("type"))


#: A backend's own index (PostgreSQL's GIN): ``(reader, network id, filter)`` → ``(head, candidate group ids)``
#: read together, or ``None`` when it cannot answer; candidates are still checked on the head's groups.
GroupFinder = Callable[[Any, str, QueryFilter], "tuple[bytes | None, set[str]] | None"]
_finders: list[GroupFinder] = []


def install_group_finder(finder: GroupFinder) -> None:
    """Called by a layer above on import (:mod:`casstore.sqlview`): ``query_groups`` asks ``finder`` first."""
    if finder not in _finders:
        _finders.append(finder)


def _type_name(value: object) -> str:
    return type(value).__name__


def query_groups(
    reader: NetworkReader,
    network_id: str,
    filters: Mapping[str, Any] | None = None,
    *,
    attributes: dict[str, Any] | None = None,
    author: str | None = None,
    tags: list[str] | None = None,
    type: str | None = None,
) -> list[GroupState]:
    """Groups matching every given filter, in group-id order, found through the attribute index.

    ``filters`` is the mapping form (``{"author": "bob"}``), the keywords the same filters.
    """
    check_id(network_id, "network_id")
    checked = query_filter(filters, attributes=attributes, author=author, tags=tags, type=type)
    attributes, author, tags, type = checked.attributes, checked.author, checked.tags, checked.type
    for finder in _finders:
        answer = finder(reader, network_id, checked)
        if answer is not None:
            return _found_by_backend(reader, checked, *answer)
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
        reader.prefetch_groups(root, [gid for gid, _ in found])
    else:
        reader.prefetch_groups(root, candidates)
        got = groups.get_many(root["groups"], candidates)
        found = sorted(got.items())
    states = reader.group_states(root, found)
    return [state for state in states.values() if matches(state.group.attributes, attributes, author, tags, type)]


def _found_by_backend(
    reader: NetworkReader, checked: QueryFilter, head: bytes | None, candidates: set[str]
) -> list[GroupState]:
    """The groups of ``head`` among a backend's ``candidates`` that match ``checked`` exactly."""
    if head is None:
        return []
    root = reader.network_root(head)
    reader.prefetch_groups(root, candidates)
    got = reader.trees["groups"].get_many(root["groups"], candidates)
    states = reader.group_states(root, sorted(got.items()))
    a, author, tags, type = checked.attributes, checked.author, checked.tags, checked.type
    return [s for s in states.values() if matches(s.group.attributes, a, author, tags, type)]


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
