"""``contact_history``: against a model (hypothesis), its entries' attribution, ``limit``, and its cost.

The model keeps, for every snapshot taken, the contact's value at that moment (or *absent*); the
history must be the sequence ``[current] + [value at each snapshot, newest first]`` with
consecutive equal values collapsed, each entry attributed to the oldest snapshot of its run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import casstore
from casstore.errors import SerializationError
from casstore.model import Group, GroupState, NetworkStore
from casstore.model.history import HistoryEntry
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.store.wrappers.metrics import MetricsStore

ABSENT = object()
CONTACTS = ["a", "b"]

values = st.one_of(st.none(), st.integers(0, 2), st.sampled_from(["x", "y"]), st.just({"k": [1, 2]}))
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(CONTACTS), values),
        st.tuples(st.just("delete"), st.sampled_from(CONTACTS), st.none()),
        st.tuples(st.just("snapshot"), st.none(), st.none()),
        st.tuples(st.just("forget"), st.integers(0, 50), st.none()),  # delete_snapshot of one taken
    ),
    max_size=40,
)


def expected_history(store: NetworkStore, current: Any, at_snapshot: dict[str, Any]) -> list[tuple[str | None, Any]]:
    """``(snapshot id, value)`` per run of the model's sequence (``ABSENT`` where the contact was not)."""
    sequence: list[tuple[str | None, Any]] = [(None, current)]
    sequence += [(info.id, at_snapshot[info.id]) for info in store.list_snapshots("n")]
    runs: list[tuple[str | None, Any]] = []
    for snapshot_id, value in sequence:
        if runs and _same(runs[-1][1], value):
            runs[-1] = (snapshot_id, value)  # the run reaches back to an older snapshot
        else:
            runs.append((snapshot_id, value))
    if runs and runs[-1][1] is ABSENT:
        runs.pop()  # before the contact first existed
    return runs


def _same(a: Any, b: Any) -> bool:
    return a is b or (a is not ABSENT and b is not ABSENT and type(a) is type(b) and a == b)


def observed(entries: list[HistoryEntry]) -> list[tuple[str | None, Any]]:
    return [(e.snapshot_id, e.content if e.exists else ABSENT) for e in entries]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_history_matches_the_model(ops: list[tuple[str, Any, Any]]) -> None:
    store = NetworkStore(MemoryStore())
    store.save_group_state("n", "g", GroupState(Group("g", "G")))
    current: dict[str, Any] = dict.fromkeys(CONTACTS, ABSENT)
    at_snapshot: dict[str, dict[str, Any]] = {cid: {} for cid in CONTACTS}
    taken: list[str] = []
    for op, arg, value in ops:
        if op == "set":
            store.save_contact_content("n", "g", arg, value)
            current[arg] = value
        elif op == "delete":
            store.delete_contact("n", "g", arg)
            current[arg] = ABSENT
        elif op == "snapshot":
            snapshot_id = store.save_snapshot("n")
            taken.append(snapshot_id)
            for cid in CONTACTS:
                at_snapshot[cid][snapshot_id] = current[cid]
        elif taken:
            store.delete_snapshot("n", taken[arg % len(taken)])
    for cid in CONTACTS:
        want = expected_history(store, current[cid], at_snapshot[cid])
        got = store.contact_history("n", "g", cid)
        assert observed(got) == want
        for limit in (1, 2, 5):
            assert observed(store.contact_history("n", "g", cid, limit=limit)) == want[:limit]
        infos = {info.id: info for info in store.list_snapshots("n")}
        for entry in got:
            if entry.snapshot_id is not None:
                assert entry.created_at == infos[entry.snapshot_id].created_at
                assert entry.label == infos[entry.snapshot_id].label


def test_entries_carry_snapshot_time_label_and_record() -> None:
    store = casstore.open_store("memory://")
    store.save_group_state("n", "g", GroupState(Group("g", "G")))
    store.save_contact_content("n", "g", "c", 1)
    first = store.save_snapshot("n", "one")
    second = store.save_snapshot("n", "still one")  # no change: collapses into ``first``
    store.save_contact_content("n", "g", "c", 2)
    third = store.save_snapshot("n", "two")
    history = store.contact_history("n", "g", "c")
    assert [(e.snapshot_id, e.label, e.content) for e in history] == [(third, "two", 2), (first, "one", 1)]
    assert second not in [e.snapshot_id for e in history]
    assert history[0].contact is not None and history[0].contact.id == "c" and history[0].contact.group_id == "g"
    assert history[1].created_at is not None and history[1].created_at.tzinfo is not None
    # the current state comes first only when it differs from the newest snapshot
    store.save_contact_content("n", "g", "c", None)
    now = store.contact_history("n", "g", "c", limit=1)[0]
    assert now.snapshot_id is None and now.created_at is None and now.exists and now.content is None
    assert store.contact_history("absent", "g", "c") == []
    assert store.contact_history("n", "g", "never") == []
    store.delete_contact("n", "g", "c")
    gone = store.contact_history("n", "g", "c", limit=2)
    assert gone[0] == HistoryEntry(None, None, None, None) and not gone[0].exists and gone[1].content == 2
    assert store.contact_history("n", "g", "c", limit=0) == []
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(SerializationError):
            store.contact_history("n", "g", "c", limit=bad)  # type: ignore[arg-type]
    with pytest.raises(SerializationError):
        store.contact_history("n", 1, "c")  # type: ignore[arg-type]


def _chain(store: NetworkStore, contacts: int, snapshots: int) -> None:
    """A network of ``contacts`` in groups of 100, then ``snapshots`` snapshots with one contact changed before each."""
    groups = {}
    for g in range(max(1, contacts // 100)):
        gid = f"g{g:04d}"
        cids = [f"c{i:03d}" for i in range(100)]
        group = Group(gid, gid, contact_ids=cids)
        groups[gid] = GroupState(group, {cid: casstore.Contact(cid, gid, {"v": i}) for i, cid in enumerate(cids)})
    store.save_network_state("n", casstore.NetworkState(groups, "g0000", "g0000"))
    for step in range(snapshots):
        if step % 5 == 0:
            store.save_contact_content("n", "g0000", "c050", {"v": -step})
        else:
            store.save_contact_content("n", f"g{(step * 7) % len(groups):04d}", f"c{step % 100:03d}", {"s": step})
        store.save_snapshot("n")


def _objects_read(metered: MetricsStore, limit: int | None = None) -> tuple[int, int]:
    metered.metrics.reset()
    fresh = NetworkStore(metered)  # cold caches
    entries = fresh.contact_history("n", "g0000", "c050", limit)
    return metered.metrics.snapshot()["blobs.get_frames"].objects, len(entries)


def test_cost_follows_snapshots_walked_not_network_size(tmp_path: Path) -> None:
    reads = {}
    for contacts in (2_000, 20_000):
        metered = MetricsStore(LmdbStore(tmp_path / str(contacts)))
        _chain(NetworkStore(metered), contacts, 60)
        reads[contacts], entries = _objects_read(metered)
        assert entries == 12  # one per change of c050 (every 5th step, from the first)
        limited, entries = _objects_read(metered, limit=2)
        # a limit stops the walk early (every snapshot record is still read once, to order them)
        assert entries == 2 and limited < reads[contacts] * 0.6
        metered.close()
    # each snapshot: its record and root, and at most one path of a few nodes (most of them shared)
    assert reads[20_000] <= 60 * 6
    assert reads[20_000] <= reads[2_000] * 1.5
