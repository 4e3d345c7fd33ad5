"""Fetch: copy a remote's heads and snapshots into this store without moving any local head (``git fetch``).

Each fetched head is recorded under :func:`~casstore.model.refs.fetched_ref`
(``remotes/<remote>/fetched/networks/<id>/head``), a remote-tracking head that
gc keeps (every ref is a root) and that ``casstore merge NET <remote>/NET``
names.  It is not the agreed head (the lease push and pull use): fetching
never makes a later push overwrite the remote.  The remote's snapshots are
copied as pull copies them.  Objects travel as in a pull, the new head as
deltas against the local head of the same network.
"""

from __future__ import annotations

from collections.abc import Iterable

from casstore.model.refs import (
    NETWORKS_PREFIX,
    fetched_prefix,
    fetched_ref,
    fetched_tip_ref,
    head_ref,
    network_heads,
    snapshots_prefix,
    tip_ref,
)
from casstore.model.walk import Kind
from casstore.store.base import ObjectStore, RefUpdate
from casstore.sync.engine import _Trips, transfer, wanted_networks
from casstore.sync.remotes import remote_name
from casstore.sync.report import Progress, SyncReport

__all__ = ["fetch"]


def fetch(
    local: ObjectStore,
    remote: ObjectStore,
    networks: Iterable[str] | None = None,
    *,
    name: str | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Copy ``networks`` (default: all of ``remote``'s) heads and snapshots into ``local``'s tracking refs.

    ``report.networks`` says, per network, ``"created"`` (first fetch), ``"updated"`` (the fetched head
    moved) or ``"up-to-date"``; local heads never move.  ``name`` is the remote's name here (default:
    derived from its URL, as for push and pull).
    """
    report = SyncReport()
    trips = _Trips(remote, report)
    name = name or remote_name(remote)
    trips(remote)
    remote_refs = remote.refs.list(NETWORKS_PREFIX)
    heads = network_heads(remote_refs)
    wanted = wanted_networks(networks, heads, remote.url)
    local_refs = local.refs.list(NETWORKS_PREFIX)
    fetched = local.refs.list(fetched_prefix(name))
    roots: list[tuple[bytes, Kind]] = []
    bases: dict[bytes, bytes] = {}
    updates: list[RefUpdate] = []
    for network_id in wanted:
        head, ref = heads[network_id], fetched_ref(name, network_id)
        before = fetched.get(ref)
        roots.append((head, "net"))
        local_head = local_refs.get(head_ref(network_id))
        if local_head is not None and local_head != head:
            bases[head] = local_head
        if before != head:
            updates.append(RefUpdate(ref, before, head, required=False))
        tip, tip_here = remote_refs.get(tip_ref(network_id)), fetched_tip_ref(name, network_id)
        if tip is not None and fetched.get(tip_here) != tip:
            roots.append((tip, "snap"))  # it may name a snapshot whose own ref is gone
            updates.append(RefUpdate(tip_here, fetched.get(tip_here), tip, required=False))
        report.networks[network_id] = "created" if before is None else "up-to-date" if before == head else "updated"
        prefix = snapshots_prefix(network_id)
        for snapshot_ref, digest in remote_refs.items():
            if snapshot_ref.startswith(prefix) and snapshot_ref not in local_refs:
                roots.append((digest, "snap"))
                updates.append(RefUpdate(snapshot_ref, None, digest, required=False))
                report.snapshots_copied += 1
    transfer(remote, local, roots, remote=remote, bases=bases, progress=progress, final_updates=updates, stats=report)
    return report
