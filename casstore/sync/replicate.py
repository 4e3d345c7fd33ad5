"""Push, pull and sync: which heads may move, and moving them only after every object they name has landed.

For each network, :func:`decide` says whether the target's head may move (a
lease, like git's ``--force-with-lease``), from the head both sides agreed on
at the last exchange, which is kept in the *local* store under
:func:`~casstore.model.refs.tracking_ref`.  The objects then go over with
:func:`~casstore.sync.engine.transfer`, the ref moves in its last write.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress

from casstore import codec
from casstore.errors import InvalidStoreURL, NetworkExists, RefConflict, StorageError
from casstore.merge.commit import merge_network
from casstore.merge.history import SnapshotGraph
from casstore.model.network import NetworkStore
from casstore.model.refs import (
    NETWORKS_PREFIX,
    fetched_ref,
    head_ref,
    network_heads,
    snapshots_prefix,
    tip_ref,
    tracking_prefix,
    tracking_ref,
)
from casstore.model.walk import Kind
from casstore.pack import EMPTY_PACK
from casstore.store import open_object_store
from casstore.store.base import ObjectStore, RefUpdate
from casstore.sync.engine import _Trips, transfer, wanted_networks
from casstore.sync.fetch import fetch
from casstore.sync.remotes import add_remote, remote_name, remotes
from casstore.sync.report import Divergence, Outcome, Progress, SyncReport

__all__ = ["StoreOrURL", "clone", "decide", "fetch", "pull", "push", "sync"]


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
    wanted = wanted_networks(networks, src_heads, src.url)

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
        if outcome == "diverged":
            assert target is not None
            local_refs, other, other_refs = (dst_refs, src, src_refs) if local is dst else (src_refs, dst, dst_refs)
            outcome = _by_history(local, local_refs, other, other_refs, network_id, source, target)
        report.networks[network_id] = outcome
        if outcome == "diverged":
            report.diverged[network_id] = _divergence(network_id, src_refs, dst_refs, base, local_is_src=local is src)
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
                # the tip may name a snapshot whose own ref was deleted: it travels as a root of its own,
                # or the tip would name an object the destination lacks
                roots.append((tip, "snap"))
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
        # and report the networks whose head moved under us as diverged (their tip and agreed head stay)
        heads = {head_ref(network_id) for network_id in wanted}
        lost: set[str] = set()
        for update in sorted(updates, key=lambda u: u.name not in heads):  # heads first: a lost one's tip stays
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
                    trips(dst)
                    moved_to = dst.refs.get(head_ref(owner))  # the head that moved under us
                    now = {name: value for name, value in dst_refs.items() if name != head_ref(owner)}
                    if moved_to is not None:
                        now[head_ref(owner)] = moved_to
                    base = bases.get(tracking_ref(name, owner))
                    report.diverged[owner] = _divergence(owner, src_refs, now, base, local_is_src=local is src)
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


def _by_history(
    local: ObjectStore,
    local_refs: dict[str, bytes],
    other: ObjectStore,
    other_refs: dict[str, bytes],
    network_id: str,
    source: bytes,
    target: bytes,
) -> Outcome:
    """A divergence by the agreed head, decided again by the snapshot graph when a merge is in it:
    ``updated`` if ``target`` is in ``source``'s history and that history holds a merge,
    ``up-to-date`` if ``source`` is in ``target``'s likewise, else ``diverged``.  Without merges the
    lease rule alone decides, as before merges existed.  Reads the local snapshots and the other
    side's it lacks."""
    prefix = snapshots_prefix(network_id)
    held = {name[len(prefix) :] for name in local_refs if name.startswith(prefix)}
    theirs = {
        name[len(prefix) :]: digest
        for name, digest in other_refs.items()
        if name.startswith(prefix) and name[len(prefix) :] not in held
    }
    tips = {}
    for refs in (local_refs, other_refs):
        head, tip = refs.get(head_ref(network_id)), refs.get(tip_ref(network_id))
        if head is not None and tip is not None:
            tips[head] = tip
    graph = SnapshotGraph(local, network_id, other=(other, theirs) if theirs else None, tips=tips)
    if graph.descends(source, target, through_merge=True):
        return "updated"
    if graph.descends(target, source, through_merge=True):
        return "up-to-date"
    return "diverged"


def _divergence(
    network_id: str, src_refs: dict[str, bytes], dst_refs: dict[str, bytes], base: bytes | None, *, local_is_src: bool
) -> Divergence:
    """What diverged in ``network_id``, from both sides' refs as listed before the exchange."""
    prefix = snapshots_prefix(network_id)

    def snapshot_ids(refs: dict[str, bytes], other: dict[str, bytes]) -> list[str]:
        return sorted(name[len(prefix) :] for name in refs if name.startswith(prefix) and name not in other)

    def head(refs: dict[str, bytes]) -> str | None:
        digest = refs.get(head_ref(network_id))
        return None if digest is None else codec.format_id(digest)

    local, remote = (src_refs, dst_refs) if local_is_src else (dst_refs, src_refs)
    return Divergence(
        network_id,
        local_head=head(local),
        remote_head=head(remote),
        agreed_head=None if base is None else codec.format_id(base),
        local_only_snapshots=snapshot_ids(local, remote),
        remote_only_snapshots=snapshot_ids(remote, local),
    )


def _network_of(ref: str, name: str, networks: list[str]) -> str | None:
    """The network whose head, snapshot tip or agreed head ``ref`` is."""
    for network_id in networks:
        if ref in (head_ref(network_id), tip_ref(network_id), tracking_ref(name, network_id)):
            return network_id
    return None


#: A store, or where one is: a URL or a path (opened with ``create=False``), or for the remote side of
#: :func:`push` / :func:`pull` the name of a remote the local store knows.
StoreOrURL = ObjectStore | str | os.PathLike[str]


def _opened(where: StoreOrURL, stack: ExitStack, create: bool = False) -> ObjectStore:
    """``where`` itself if it is a store, else the store its URL names (closed with ``stack``)."""
    if isinstance(where, ObjectStore):
        return where
    if isinstance(where, str | os.PathLike):
        return stack.enter_context(open_object_store(where, create=create))
    raise InvalidStoreURL(f"expected a store or a store URL, got {type(where).__name__}")


def _remote_side(
    local: ObjectStore, where: StoreOrURL, name: str | None, stack: ExitStack
) -> tuple[ObjectStore, str | None]:
    """The remote store and its tracking name: a known remote's name stands for its URL, and a URL
    some remote of ``local`` has is tracked under that remote's name (as at the CLI)."""
    if isinstance(where, ObjectStore):
        return where, name
    known = remotes(local)
    if isinstance(where, str) and where in known:
        return _opened(known[where], stack), name or where
    store = _opened(where, stack)
    if name is None:
        name = next((n for n, url in sorted(known.items()) if url in (store.url, os.fspath(where))), None)
    return store, name


def push(
    src: StoreOrURL,
    dst: StoreOrURL,
    networks: Iterable[str] | None = None,
    force: bool = False,
    *,
    remote: str | None = None,
    progress: Progress | None = None,
) -> SyncReport:
    """Send ``networks`` (default: all of ``src``'s) and all their snapshots from ``src`` to ``dst``.

    Either may be a store or a URL (``"file:///srv/casstore"``, a path, ``s3://…``), and ``dst``
    also the name of a remote ``src`` knows; a store opened here is closed before returning.
    ``dst``'s head of a network moves only if ``dst`` has no such network or its head is still what
    ``src`` last agreed with it (or with ``force``); see :func:`decide`.  The agreed heads are
    recorded in ``src`` under the remote name ``remote`` (default: the name of a remote with
    ``dst``'s URL, else one derived from it).  A diverged network is in ``report.diverged`` (both
    heads, the agreed one, the snapshots on each side).  ``round_trips`` counts batched calls to ``dst``.
    """
    with ExitStack() as stack:
        local = _opened(src, stack)
        other, name = _remote_side(local, dst, remote, stack)
        return _replicate(
            local, other, local=local, remote=other, name=name, networks=networks, force=force, progress=progress
        )


def pull(
    dst: StoreOrURL,
    src: StoreOrURL,
    networks: Iterable[str] | None = None,
    force: bool = False,
    *,
    remote: str | None = None,
    progress: Progress | None = None,
    merge: bool = False,
) -> SyncReport:
    """Fetch ``networks`` (default: all of ``src``'s) from ``src`` into ``dst``: a push the other way.

    Either may be a store or a URL, and ``src`` also the name of a remote ``dst`` knows.  The
    agreed heads are recorded in ``dst`` (the local store) under ``remote`` (default: the name of
    a remote with ``src``'s URL, else one derived from it).  ``round_trips`` counts batched calls to ``src``.

    With ``merge``, each network that diverged is fetched and merged by blend mode into the local
    head (docs/merge.md): its outcome is then ``updated`` and its
    :class:`~casstore.merge.MergeResult` is in ``report.merged``; the agreed head moves to the
    remote's, so a push afterwards moves the remote to the merged head.
    """
    with ExitStack() as stack:
        local = _opened(dst, stack)
        other, name = _remote_side(local, src, remote, stack)
        report = _replicate(
            other, local, local=local, remote=other, name=name, networks=networks, force=force, progress=progress
        )
        if merge and report.diverged:
            _merge_diverged(local, other, name or remote_name(other), report, progress)
        return report


def _merge_diverged(
    local: ObjectStore, other: ObjectStore, name: str, report: SyncReport, progress: Progress | None
) -> None:
    """Fetch and merge every network ``report`` found diverged (each merge one local write)."""
    store = local if isinstance(local, NetworkStore) else NetworkStore(local)
    networks = sorted(report.diverged)
    fetched = fetch(local, other, networks, name=name, progress=progress)
    report.add(fetched)
    for network_id in networks:
        theirs = local.refs.get(fetched_ref(name, network_id))
        assert theirs is not None  # fetch moved it, or raised
        result = merge_network(store, network_id, theirs, remote=name)
        report.merged[network_id] = result
        report.networks[network_id] = "up-to-date" if result.outcome == "up-to-date" else "updated"
        del report.diverged[network_id]


def clone(source: StoreOrURL, destination: StoreOrURL, *, progress: Progress | None = None) -> SyncReport:
    """Copy every network and snapshot of ``source`` into ``destination``, a new or empty store.

    ``destination`` as a URL or path is created if absent.  ``source`` is recorded in it as the
    remote ``origin`` (unless it is an in-memory store, which no other process can open), so a
    later ``pull(destination, "origin")`` continues from here.  Raises
    :class:`~casstore.errors.NetworkExists` if ``destination`` already holds a network (pull instead).
    """
    with ExitStack() as stack:
        origin = _opened(source, stack)
        store = _opened(destination, stack, create=True)
        held = sorted(network_heads(store.refs.list(NETWORKS_PREFIX)))
        if held:
            raise NetworkExists(f"{store.url} already holds networks ({', '.join(held[:5])}): clone into a new store")
        with refs_undone_on_failure(store):
            if not origin.url.startswith("memory:"):
                add_remote(store, "origin", origin.url)
            return _replicate(
                origin, store, local=store, remote=origin, name="origin", networks=None, force=False, progress=progress
            )


@contextmanager
def refs_undone_on_failure(store: ObjectStore) -> Iterator[None]:
    """Put back every ref the block moved if it raises (Ctrl-C included), so a failed clone leaves
    the destination as it found it and a retry starts over; the objects it wrote stay for gc.
    A ref moved meanwhile by someone else is left as they put it."""
    before = store.refs.list()
    try:
        yield
    except BaseException:
        with suppress(StorageError):  # the destination itself may be what failed: undo what can be
            for name, value in store.refs.list().items():
                if before.get(name) == value:
                    continue
                with suppress(RefConflict):
                    if name in before:
                        store.refs.compare_and_swap(name, value, before[name])
                    else:
                        store.refs.delete(name, value)
        raise


def sync(
    local: ObjectStore, remote: ObjectStore, *, name: str | None = None, force: bool = False, merge: bool = False
) -> SyncReport:
    """Bassline's ``sync(remote)``: pull every network of ``remote``, then push every network of ``local``.

    Each network's entry is the more telling of the two outcomes (diverged >
    created > updated > up-to-date).  With ``merge``, the pull merges diverged networks
    (:func:`pull`), so the push then sends the merged heads.
    """
    pulled = pull(local, remote, force=force, remote=name, merge=merge)
    pushed = push(local, remote, force=force, remote=name)
    report = SyncReport(snapshots_copied=pulled.snapshots_copied + pushed.snapshots_copied)
    report.add(pulled)
    report.add(pushed)
    rank: dict[Outcome, int] = {"diverged": 3, "created": 2, "updated": 1, "up-to-date": 0}
    for network_id in sorted(set(pulled.networks) | set(pushed.networks)):
        outcomes = [r.networks[network_id] for r in (pulled, pushed) if network_id in r.networks]
        report.networks[network_id] = max(outcomes, key=rank.__getitem__)
    report.diverged = {**pushed.diverged, **pulled.diverged}
    report.merged = pulled.merged
    return report
