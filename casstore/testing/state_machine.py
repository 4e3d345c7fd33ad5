"""A hypothesis state machine of the network interface, for any backend (needs pytest and hypothesis).

:class:`NetworkStateMachine` applies random sequences of writes, batches, deletes,
snapshots and diffs to a :class:`~casstore.model.NetworkStore` and to a plain-dict
model of what they mean, and checks after every step that the store answers as
the model does (states, snapshot lists, diffs, type queries).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from casstore.errors import GroupNotFound, NetworkNotFound
from casstore.model import Contact, Group, GroupState, NetworkState, NetworkStore, Wire
from casstore.testing.suite import abstract_hook, missing_hooks

__all__ = ["NetworkStateMachine", "contents", "group_states", "model_diff", "set_model_content"]

NETS = st.sampled_from(["n1", "n2"])
GIDS = st.sampled_from(["root", "g1", "g2", "g/3"])
CIDS = st.sampled_from([f"c{i}" for i in range(8)])
contents = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=5) | st.binary(max_size=4) | st.just("L" * 1500),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@st.composite
def group_states(draw: st.DrawFn, gid: str) -> GroupState:
    """A random state of group ``gid``: contacts, wires, attributes the queries look at."""
    cids = draw(st.lists(CIDS, unique=True, max_size=6))
    contacts = {c: Contact(c, gid, draw(contents), draw(st.sampled_from(["accept-last", "merge"]))) for c in cids}
    wires = {}
    for i in range(draw(st.integers(0, 3))):
        if len(cids) >= 2:
            wires[f"w{i}"] = Wire(f"w{i}", gid, cids[0], cids[1], draw(st.sampled_from(["bidirectional", "directed"])))
    attrs: dict[str, Any] = {}
    if draw(st.booleans()):
        attrs["bassline.type"] = draw(st.sampled_from(["a", "b"]))
    if draw(st.booleans()):
        attrs["bassline.tags"] = draw(st.lists(st.sampled_from(["x", "y", "z"]), unique=True, max_size=2))
    group = Group(gid, draw(st.sampled_from(["one", "two"])), None, list(reversed(cids)), list(wires), [], [], attrs)
    return GroupState(group, contacts, wires)


def _own_fields(group: Group) -> tuple[Any, ...]:
    """What makes a ``group-updated`` change: the group's own fields, not its membership lists."""
    return (group.name, group.parent_id, group.subgroup_ids, group.boundary_contact_ids, group.attributes)


def model_diff(old: NetworkState | None, new: NetworkState | None) -> set[tuple[str, str, str]]:
    """The changes ``NetworkStore.diff`` must report between two states, computed on the plain model."""
    out: set[tuple[str, str, str]] = set()
    a = old.groups if old else {}
    b = new.groups if new else {}
    for gid in set(a) | set(b):
        ga, gb = a.get(gid), b.get(gid)
        if ga is None:
            out.add(("group-added", gid, gid))
        elif gb is None:
            out.add(("group-removed", gid, gid))
        else:
            if _own_fields(ga.group) != _own_fields(gb.group):
                out.add(("group-updated", gid, gid))
        for kind, ma, mb in (
            ("contact", ga and ga.contacts, gb and gb.contacts),
            ("wire", ga and ga.wires, gb and gb.wires),
        ):
            ma, mb = ma or {}, mb or {}
            for key in set(ma) | set(mb):
                if key not in ma:
                    out.add((f"{kind}-added", gid, key))
                elif key not in mb:
                    out.add((f"{kind}-removed", gid, key))
                elif ma[key] != mb[key]:
                    out.add((f"{kind}-updated", gid, key))
    return out


def set_model_content(group: GroupState, cid: str, content: Any) -> None:
    """What save_contact_content does, on the plain model."""
    if cid in group.contacts:
        group.contacts[cid].content = copy.deepcopy(content)
    else:
        group.contacts[cid] = Contact(cid, group.group.id, copy.deepcopy(content))
        group.group.contact_ids.append(cid)


class NetworkStateMachine(RuleBasedStateMachine):
    """Random writes, deletes, snapshots and diffs on a network store, checked against a plain-dict model.

    Subclass it with a :meth:`make_store` hook and run its ``TestCase``::

        class MyNetworkModel(NetworkStateMachine):
            def make_store(self) -> NetworkStore:
                return NetworkStore(MyStore(self.scratch_path()))

        TestMyNetworkModel = MyNetworkModel.TestCase
        TestMyNetworkModel.settings = settings(max_examples=20, stateful_step_count=25, deadline=None)

    A subclass without ``make_store`` fails when it is created, unless it declares
    itself a partial base: ``class Base(NetworkStateMachine, abstract=True)``.
    """

    def __init_subclass__(cls, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not abstract and missing_hooks(cls, ["make_store"]):
            raise TypeError(
                f"{cls.__module__}.{cls.__qualname__} must define make_store() "
                "(or be declared a partial base with abstract=True)"
            )

    def __init__(self) -> None:
        super().__init__()
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        self.store = self.make_store()
        self.model: dict[str, NetworkState] = {}
        self.snapshots: dict[str, tuple[str, NetworkState]] = {}

    @abstract_hook
    def make_store(self) -> NetworkStore:
        """A fresh, empty network store for one run of the machine (closed at teardown)."""
        raise NotImplementedError

    def scratch_path(self) -> Path:
        """A temporary directory for this run's store; removed at teardown, after the store is closed."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="casstore-machine-")
        return Path(self._scratch.name)

    def teardown(self) -> None:
        try:
            self.store.close()
        finally:
            if self._scratch is not None:
                self._scratch.cleanup()

    @rule(net=NETS, gid=GIDS, data=st.data())
    def save_group_state(self, net: str, gid: str, data: st.DataObject) -> None:
        state = data.draw(group_states(gid))
        self.store.save_group_state(net, gid, state)
        self.model.setdefault(net, NetworkState()).groups[gid] = copy.deepcopy(state)

    @rule(net=NETS, gid=GIDS, cid=CIDS, content=contents)
    def save_contact_content(self, net: str, gid: str, cid: str, content: Any) -> None:
        state = self.model.get(net)
        if state is None:
            with pytest.raises(NetworkNotFound):
                self.store.save_contact_content(net, gid, cid, content)
            return
        if gid not in state.groups:
            with pytest.raises(GroupNotFound):
                self.store.save_contact_content(net, gid, cid, content)
            return
        self.store.save_contact_content(net, gid, cid, content)
        set_model_content(state.groups[gid], cid, content)

    @rule(net=NETS, gid=GIDS, data=st.data())
    def batch_of_contents(self, net: str, gid: str, data: st.DataObject) -> None:
        state = self.model.get(net)
        if state is None or gid not in state.groups:
            return
        writes = data.draw(st.lists(st.tuples(CIDS, contents), max_size=5))
        with self.store.batch(net) as batch:
            for cid, content in writes:
                batch.save_contact_content(net, gid, cid, content)
        for cid, content in writes:
            set_model_content(state.groups[gid], cid, content)

    @rule(net=NETS, gid=GIDS)
    def delete_group(self, net: str, gid: str) -> None:
        self.store.delete_group(net, gid)
        if net in self.model:
            self.model[net].groups.pop(gid, None)

    @rule(net=NETS, data=st.data())
    def save_network_state(self, net: str, data: st.DataObject) -> None:
        gids = data.draw(st.lists(GIDS, unique=True, max_size=3))
        state = NetworkState({gid: data.draw(group_states(gid)) for gid in gids}, "root", "root")
        self.store.save_network_state(net, state)
        self.model[net] = copy.deepcopy(state)

    @rule(net=NETS)
    def delete_network(self, net: str) -> None:
        self.store.delete_network(net)
        self.model.pop(net, None)
        self.snapshots = {k: v for k, v in self.snapshots.items() if v[0] != net}

    @precondition(lambda self: self.model)
    @rule(data=st.data(), label=st.none() | st.text(max_size=4))
    def save_snapshot(self, data: st.DataObject, label: str | None) -> None:
        net = data.draw(st.sampled_from(sorted(self.model)))
        sid = self.store.save_snapshot(net, label)
        self.snapshots[sid] = (net, copy.deepcopy(self.model[net]))

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def load_old_snapshot(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(sorted(self.snapshots)))
        net, state = self.snapshots[sid]
        assert self.store.load_snapshot(net, sid) == state

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def diff_snapshot_against_current(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(sorted(self.snapshots)))
        net, old = self.snapshots[sid]
        got = {(c.kind, c.group_id, c.item_id) for c in self.store.diff(net, sid, None)}
        assert got == model_diff(old, self.model.get(net))

    @precondition(lambda self: self.snapshots)
    @rule(data=st.data())
    def delete_snapshot(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(sorted(self.snapshots)))
        net, _ = self.snapshots.pop(sid)
        self.store.delete_snapshot(net, sid)

    @invariant()
    def state_matches_model(self) -> None:
        assert self.store.list_networks() == sorted(self.model)
        for net, state in self.model.items():
            assert self.store.load_network_state(net) == state
        for net in ("n1", "n2"):
            assert {i.id for i in self.store.list_snapshots(net)} == {
                sid for sid, (n, _) in self.snapshots.items() if n == net
            }

    @invariant()
    def type_queries_match_model(self) -> None:
        for net, state in self.model.items():
            expected = sorted(g for g, s in state.groups.items() if s.group.attributes.get("bassline.type") == "a")
            assert sorted(s.group.id for s in self.store.query_groups(net, type="a")) == expected
