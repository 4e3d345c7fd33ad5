"""Push, pull and sync: which heads may move, and moving them only after every object they name has landed.

For each network, :func:`decide` says whether the target's head may move (a
lease, like git's ``--force-with-lease``), from the head both sides agreed on
at the last exchange, which is kept in the *local* store under
:func:`~casstore.model.refs.tracking_ref`.  The objects then go over with
:func:`~casstore.sync.engine.transfer`, the ref moves in its last write.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from casstore.errors import NetworkNotFound, RefConflict
from casstore.model.network import NetworkStore
from casstore.model.refs import (
    NETWORKS_PREFIX,
    head_ref,
    network_heads,
    snapshots_prefix,
    tip_ref,
    tracking_prefix,
    tracking_ref,
)
from casstore.model.walk import Kind
from casstore.pack import EMPTY_PACK
from casstore.store.base import ObjectStore, RefUpdate
from casstore.sync.engine import _Trips, transfer
from casstore.sync.remotes import remote_name
from casstore.sync.report import Outcome, Progress, SyncReport

__all__ = ["decide", "pull", "push", "sync"]


def decide(source: bytes, target: bytes | None, base: bytes | None, force: bool) -> Outcome:
    """Whether the target head may move to ``source``, given the head both sides last agreed on (``base``).

    * equal heads: ``up-to-date``; no target network: ``created``;
    * the target still at ``base`` (only the source changed): ``updated``;
    * the source still at ``base`` (only the target changed): ``up-to-date`` — nothing to send;
    * both changed: ``diverged`` (neither moves), or ``updated`` with ``force``.
    """
    if target == source:
        return "up-to-date"
    if target is None:
        return "created"
    if force or target == base:
        return "updated"
    if source == base:
        return "up-to-date"
    return "diverged"


def _under(names: list[str], prefix: str) -> Iterator[str]:
    """The names in sorted ``names`` that start with ``prefix``."""
    at = bisect_left(names, prefix)
    while at < len(names) and names[at].startswith(prefix):
        yield names[at]
        at += 1


def _replicate(
    src: ObjectStore,
    dst: ObjectStore,
    *,
    local: ObjectStore,
    remote: ObjectStore,
    name: str | None,
    networks: Iterable[str] | None,
    force: bool,
    progress: Progress | None,
) -> SyncReport:
    report = SyncReport()
    trips = _Trips(remote, report)
    name = name or remote_name(remote)
    trips(src)
    src_refs = src.refs.list(NETWORKS_PREFIX)
    trips(dst)
    dst_refs = dst.refs.list(NETWORKS_PREFIX)
    src_heads = network_heads(src_refs)
    dst_heads = network_heads(dst_refs)
    wanted = sorted(src_heads) if networks is None else list(dict.fromkeys(networks))
    for network_id in wanted:
        if network_id not in src_heads:
            raise NetworkNotFound(f"network {network_id!r} not found in {src.url}")

    src_names = sorted(src_refs)
    roots: list[tuple[bytes, Kind]] = []
    delta_bases: dict[bytes, bytes] = {}  # new head -> the head it replaces, which the destination holds
    updates: list[RefUpdate] = []
    agreed: dict[str, tuple[bytes | None, bytes]] = {}  # network -> (old base, new base) to record locally
    trips(local)
    bases = local.refs.list(tracking_prefix(name))
    for network_id in wanted:
        source, target = src_heads[network_id], dst_heads.get(network_id)
        base = bases.get(tracking_ref(name, network_id))
        outcome = decide(source, target, base, force)
        report.networks[network_id] = outcome
        for ref in _under(src_names, snapshots_prefix(network_id)):
            if ref not in dst_refs:
                roots.append((src_refs[ref], "snap"))
                updates.append(RefUpdate(ref, None, src_refs[ref], required=False))
                report.snapshots_copied += 1
        if outcome in ("created", "updated"):
            roots.append((source, "net"))
            if target is not None:
                delta_bases[source] = target
            updates.append(RefUpdate(head_ref(network_id), target, source))
            tip = src_refs.get(tip_ref(network_id))
            if tip is not None and dst_refs.get(tip_ref(network_id)) != tip:
                updates.append(RefUpdate(tip_ref(network_id), dst_refs.get(tip_ref(network_id)), tip, required=False))
        if outcome != "diverged" and base != source:
            agreed[network_id] = (base, source)

    local_in_commit = local is dst
    if local_in_commit:  # a pull: the agreed heads move with the heads, in the same commit
        updates += [RefUpdate(tracking_ref(name, n), old, new, required=False) for n, (old, new) in agreed.items()]
    try:
        transfer(
            src, dst, roots, remote=remote, bases=delta_bases, progress=progress, final_updates=updates, stats=report
        )
    except RefConflict:
        # a target head moved after we listed it (every object has landed): apply the moves one by one
        # and report the networks whose head moved under us as diverged
        lost: set[str] = set()
        for update in updates:
            owner = _network_of(update.name, name, wanted)
            if owner in lost:
                continue
            try:
                trips(dst)
                dst.receive_pack(EMPTY_PACK, [update])
            except RefConflict:
                if dst.refs.get(update.name) == update.new:  # applied before the conflict
                    continue
                if owner is not None:
                    lost.add(owner)
                    report.networks[owner] = "diverged"
                    agreed.pop(owner, None)
    if isinstance(dst, NetworkStore):  # the destination's subscribers hear of the heads that moved
        for network_id, outcome in report.networks.items():
            if outcome in ("created", "updated"):
                dst.head_moved(network_id, dst_heads.get(network_id), src_heads[network_id])
    if agreed and not local_in_commit:
        trips(local)
        moves = [RefUpdate(tracking_ref(name, n), old, new, required=False) for n, (old, new) in agreed.items()]
        local.receive_pack(EMPTY_PACK, moves)
    return report


def _network_of(ref: str, name: str, networks: list[str]) -> str | None:
    """The network whose head (or agreed head) ``ref`` is."""
    for network_id in networks:
        if ref in (head_ref(network_id), tracking_ref(name, network_id)):
            return network_id
    return None


def push(
    src: ObjectStore,
    dst: ObjectStore,
    networks: Iterable[str] | None = None,
    force: bool = False,
    *,
    remote: str | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Send ``networks`` (default: all of ``src``'s) and all their snapshots from ``src`` to ``dst``.

    ``dst``'s head of a network moves only if ``dst`` has no such network or its
    head is still what ``src`` last agreed with it (or with ``force``); see
    :func:`decide`.  The agreed heads are recorded in ``src`` under the remote
    name ``remote`` (default: derived from ``dst``'s URL).  ``round_trips``
    counts batched calls to ``dst``.
    """
    return _replicate(src, dst, local=src, remote=dst, name=remote, networks=networks, force=force, progress=progress)


def pull(
    dst: ObjectStore,
    src: ObjectStore,
    networks: Iterable[str] | None = None,
    force: bool = False,
    *,
    remote: str | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Fetch ``networks`` (default: all of ``src``'s) from ``src`` into ``dst``: a push the other way.

    The agreed heads are recorded in ``dst`` (the local store) under ``remote``
    (default: derived from ``src``'s URL).  ``round_trips`` counts batched calls to ``src``.
    """
    return _replicate(src, dst, local=dst, remote=src, name=remote, networks=networks, force=force, progress=progress)


def sync(local: ObjectStore, remote: ObjectStore, *, name: str | None = None, force: bool = False) -> SyncReport:
    """Bassline's ``sync(remote)``: pull every network of ``remote``, then push every network of ``local``.

    Each network's entry is the more telling of the two outcomes (diverged >
    created > updated > up-to-date).
    """
    pulled = pull(local, remote, force=force, remote=name)
    pushed = push(local, remote, force=force, remote=name)
    report = SyncReport(snapshots_copied=pulled.snapshots_copied + pushed.snapshots_copied)
    report.add(pulled)
    report.add(pushed)
    rank: dict[Outcome, int] = {"diverged": 3, "created": 2, "updated": 1, "up-to-date": 0}
    for network_id in sorted(set(pulled.networks) | set(pushed.networks)):
        outcomes = [r.networks[network_id] for r in (pulled, pushed) if network_id in r.networks]
        report.networks[network_id] = max(outcomes, key=rank.__getitem__)
    return report
