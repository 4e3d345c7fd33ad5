"""How a network root and a snapshot are laid out (docs/format.md, "Networks"; re-exported by
:mod:`casstore.model.records`, whose docstring lists every record).

* **Network root** ``{"t": "net", "v": 1, "groups": link, "contacts": link, "wires": link,
  "index": link, "current": str, "rootGroup": str, "size": int}``, with the optional ``"x"``,
  ``"m"``, ``"ct"``/``"ut"`` and ``"k"`` (conflicts).
* **Snapshot** ``{"t": "snap", "network": str, "root": link, "parent": str | None, "label": str |
  None, "time": ISO-8601 UTC, "size": int}``, with the optional ``"parents"`` and ``"auto"``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from casstore import codec
from casstore.errors import SerializationError
from casstore.model.types import check_metadata, check_str

__all__ = [
    "CONFLICTS_FIELD",
    "CONFLICTS_TREE",
    "NETWORK_TREES",
    "NETWORK_VERSION",
    "decode_network_root",
    "decode_snapshot",
    "encode_network_extra",
    "encode_network_metadata",
    "encode_network_root",
    "encode_snapshot",
    "encode_time",
    "now_text",
    "root_metadata",
    "root_times",
    "snapshot_parents",
]

NETWORK_VERSION = 1
#: A metadata value sits one level down in the metadata map, and may nest :data:`codec.MAX_DEPTH` itself.
_METADATA_DEPTH = codec.MAX_DEPTH + 1

#: The trees of a network root, by field name (also their node kinds).
NETWORK_TREES = ("groups", "contacts", "wires", "index")
#: The root's optional link to its conflicts tree (kind ``conflicts``; see casstore.model.conflicts),
#: absent when there are no conflicts, so roots written before merges existed are unchanged.
CONFLICTS_FIELD = "k"
CONFLICTS_TREE = "conflicts"


def encode_network_extra(extra: dict[str, Any]) -> bytes | None:
    """A network's unmodelled top-level fields as the root's ``"x"`` (``None`` when there are none)."""
    return codec.encode_value(extra, "extra", _METADATA_DEPTH) if extra else None  # a dict of user values


def encode_network_metadata(metadata: dict[str, Any]) -> bytes | None:
    """A network's metadata as the root's ``"m"`` (``None`` when empty)."""
    check_metadata(metadata)
    return codec.encode_value(metadata, "metadata", _METADATA_DEPTH) if metadata else None


def encode_time(when: datetime) -> str:
    """A root's or snapshot's time: ISO-8601 in UTC, to the microsecond."""
    return when.astimezone(UTC).isoformat(timespec="microseconds")


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def encode_network_root(
    roots: dict[str, bytes],
    current: str,
    root_group: str,
    size: int,
    extra: bytes | None = None,
    metadata: bytes | None = None,
    created: str | None = None,
    updated: str | None = None,
    *,
    conflicts: bytes | None = None,
) -> bytes:
    """A network root; ``conflicts`` is the root of its conflicts tree (``"k"``, omitted when ``None``)."""
    check_str(current, "current_group_id")
    check_str(root_group, "root_group_id")
    obj: dict[str, Any] = {name: codec.link(roots[name]) for name in NETWORK_TREES}
    obj.update({"t": "net", "v": NETWORK_VERSION, "current": current, "rootGroup": root_group, "size": size})
    if extra is not None:
        obj["x"] = extra
    if conflicts is not None:
        obj[CONFLICTS_FIELD] = codec.link(conflicts)
    if metadata is not None:
        obj["m"] = metadata
    if created is not None:
        obj["ct"] = created
    if updated is not None:
        obj["ut"] = updated
    return codec.encode(obj)


def decode_network_root(data: bytes) -> dict[str, Any]:
    obj = codec.decode(data)
    if not isinstance(obj, dict) or obj.get("t") != "net":
        raise SerializationError("object is not a network root")
    for name in NETWORK_TREES:
        obj[name] = codec.link_digest(obj[name])
    if CONFLICTS_FIELD in obj:
        obj[CONFLICTS_FIELD] = codec.link_digest(obj[CONFLICTS_FIELD])
    return obj


def root_metadata(root: dict[str, Any]) -> dict[str, Any]:
    """A decoded network root's metadata (``{}`` when it has none)."""
    return codec.decode_value(root["m"]) if "m" in root else {}


def root_times(root: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """A decoded network root's created and updated times (``None`` where a root has none)."""
    created, updated = root.get("ct"), root.get("ut")
    return (
        None if created is None else datetime.fromisoformat(created),
        None if updated is None else datetime.fromisoformat(updated),
    )


def encode_snapshot(
    network_id: str,
    root: bytes,
    parent: str | None,
    label: str | None,
    size: int,
    automatic: bool = False,
    parents: list[str] | None = None,
) -> bytes:
    """A snapshot commit.  ``parents`` (a merge's, two or more) is written as ``"parents"``, its first
    also as ``"parent"`` so that readers of single-parent snapshots follow the first-parent chain."""
    check_str(label, "label", optional=True)
    obj: dict[str, Any] = {
        "t": "snap",
        "network": network_id,
        "root": codec.link(root),
        "parent": parent,
        "label": label,
        "time": now_text(),
        "size": size,
    }
    if parents:
        for number, item in enumerate(parents):
            check_str(item, f"parents[{number}]")
        obj["parent"] = parents[0]
        if len(parents) > 1:
            obj["parents"] = list(parents)
    if automatic:  # taken by a live image's snapshot timer (casstore.runtime); absent on every other snapshot
        obj["auto"] = True
    return codec.encode(obj)


def snapshot_parents(snapshot: dict[str, Any]) -> list[str]:
    """A decoded snapshot's parents: ``"parents"`` if present, else ``[parent]`` (``[]`` for none)."""
    parents = snapshot.get("parents")
    if isinstance(parents, list):
        return [p for p in parents if isinstance(p, str)]
    parent = snapshot.get("parent")
    return [parent] if isinstance(parent, str) else []


def decode_snapshot(data: bytes) -> dict[str, Any]:
    obj = codec.decode(data)
    if not isinstance(obj, dict) or obj.get("t") != "snap":
        raise SerializationError("object is not a snapshot")
    obj["root"] = codec.link_digest(obj["root"])
    obj["time"] = datetime.fromisoformat(obj["time"])
    obj["auto"] = obj.get("auto") is True
    return obj
