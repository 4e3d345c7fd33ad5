"""The ref layout: every ref name casstore uses is built and parsed here, and nowhere else.

``networks/<id>/head``                 a network's current state (a network root)
``networks/<id>/snapshot-tip``         its newest snapshot (a hint: optional in commits)
``networks/<id>/snapshots/<snap id>``  one snapshot (a snapshot commit)
``remotes/<remote>/networks/<id>/head`` the head last agreed with a remote (sync)
``remotes/<remote>/fetched/networks/<id>/head`` the remote's head as ``fetch`` last saw it
``remotes/<remote>/fetched/networks/<id>/snapshot-tip`` and its snapshot tip then
``config/remotes/<name>``              a remote's URL (an opaque object)
``journal/<id>/<entry>``               a live image's journalled changes not yet in the head
                                       (:mod:`casstore.runtime.journal`; an opaque object)

``<id>`` is the network id ``%``-escaped into one path component (never starting
with a dot), so any id round-trips through :func:`network_of_head`.
"""

from __future__ import annotations

from urllib.parse import quote, unquote

from casstore.model.types import check_id

__all__ = [
    "REMOTES_PREFIX",
    "fetched_heads",
    "fetched_prefix",
    "fetched_ref",
    "fetched_tip_ref",
    "head_ref",
    "journal_prefix",
    "network_heads",
    "quote_network_id",
    "ref_kind",
    "remote_config_ref",
    "remote_of_config_ref",
    "snapshot_ref",
    "snapshots_prefix",
    "tip_ref",
    "tracking_prefix",
    "tracking_ref",
]

NETWORKS_PREFIX = "networks/"
JOURNAL_PREFIX = "journal/"
REMOTES_PREFIX = "config/remotes/"


def quote_network_id(network_id: str) -> str:
    """A network id as one safe ref-name component (``%``-escaped; never starts with a dot)."""
    check_id(network_id, "network_id")
    text = quote(network_id, safe="")
    return "%2E" + text[1:] if text.startswith(".") else text


def network_prefix(network_id: str) -> str:
    """The prefix of every ref of one network (its head, tip and snapshots)."""
    return f"{NETWORKS_PREFIX}{quote_network_id(network_id)}/"


def head_ref(network_id: str) -> str:
    return network_prefix(network_id) + "head"


def tip_ref(network_id: str) -> str:
    return network_prefix(network_id) + "snapshot-tip"


def snapshots_prefix(network_id: str) -> str:
    return network_prefix(network_id) + "snapshots/"


def snapshot_ref(network_id: str, snapshot_id: str) -> str:
    """The ref of one snapshot; ``snapshot_id`` is its printable id."""
    return snapshots_prefix(network_id) + snapshot_id


def journal_prefix(network_id: str) -> str:
    """The prefix of a network's journal entries (``journal/<id>/<entry>``, entries sorting oldest first)."""
    return f"{JOURNAL_PREFIX}{quote_network_id(network_id)}/"


def network_heads(refs: dict[str, bytes]) -> dict[str, bytes]:
    """network id -> head, from a listing of refs under ``networks/``."""
    return {
        unquote(name[len(NETWORKS_PREFIX) : -len("/head")]): digest
        for name, digest in refs.items()
        if name.startswith(NETWORKS_PREFIX) and name.endswith("/head") and name.count("/") == 2
    }


def tracking_prefix(remote: str) -> str:
    """The prefix of every :func:`tracking_ref` of ``remote``."""
    return f"remotes/{remote}/{NETWORKS_PREFIX}"


def tracking_ref(remote: str, network_id: str) -> str:
    """Where sync records the head last agreed with ``remote`` for ``network_id``."""
    return f"remotes/{remote}/{head_ref(network_id)}"


def fetched_prefix(remote: str) -> str:
    """The prefix of every :func:`fetched_ref` of ``remote``."""
    return f"remotes/{remote}/fetched/{NETWORKS_PREFIX}"


def fetched_ref(remote: str, network_id: str) -> str:
    """Where ``fetch`` records ``remote``'s head of ``network_id`` (a remote-tracking head; never a lease)."""
    return f"remotes/{remote}/fetched/{head_ref(network_id)}"


def fetched_tip_ref(remote: str, network_id: str) -> str:
    """Where ``fetch`` records ``remote``'s snapshot tip of ``network_id`` (where its head's history starts)."""
    return f"remotes/{remote}/fetched/{tip_ref(network_id)}"


def fetched_heads(refs: dict[str, bytes], remote: str) -> dict[str, bytes]:
    """network id -> fetched head, from a listing of refs under :func:`fetched_prefix`."""
    prefix = f"remotes/{remote}/fetched/"
    return network_heads({name[len(prefix) :]: digest for name, digest in refs.items() if name.startswith(prefix)})


def remote_of_config_ref(name: str) -> str:
    """The remote a ``config/remotes/<name>`` ref configures."""
    return name.removeprefix(REMOTES_PREFIX)


def remote_config_ref(name: str) -> str:
    return REMOTES_PREFIX + name


def ref_kind(name: str) -> str:
    """What a ref points at: ``"net"`` (a network root), ``"snap"`` (a snapshot commit) or ``"opaque"``.

    Tracking refs (``remotes/<r>/networks/<id>/head``) are heads too.
    """
    parts = name.split("/")
    if len(parts) >= 3 and parts[-3] == "networks" and parts[-1] == "head":
        return "net"
    if len(parts) >= 3 and parts[-3] == "networks" and parts[-1] == "snapshot-tip":
        return "snap"
    if len(parts) >= 4 and parts[-4] == "networks" and parts[-2] == "snapshots":
        return "snap"
    return "opaque"
