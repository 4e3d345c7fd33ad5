"""Every public call of the network interface fuzzed with arbitrary Python values and ids.

Only :class:`~casstore.errors.StorageError` subclasses may escape, and a call
that raises leaves the store exactly as it was: the same refs, the same objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import casstore
from casstore import Contact, Group, GroupState, NetworkState, Wire
from casstore.errors import StorageError
from casstore.model import NetworkStore

#: Ids: ordinary, empty, huge, non-ASCII, lone surrogates, control characters, path-like.
TEXT = st.one_of(
    st.sampled_from(["root", "g", "c", "", ".", "..", "a/b", "%2E", "\x00", "\ud800", "é" * 600, "x" * 1100]),
    st.text(max_size=12),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8),
)
#: Anything at all where an id or a value is expected.
JUNK = st.one_of(
    TEXT,
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.binary(max_size=40),
    st.lists(st.integers(), max_size=3).map(tuple),
    st.frozensets(st.integers(), max_size=2),
    st.builds(object),
    st.dictionaries(st.integers(), st.integers(), max_size=2),
)
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), TEXT, st.binary(max_size=40)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.one_of(TEXT, st.integers()), inner, max_size=3)
    ),
    max_leaves=12,
)
ANY = st.one_of(JUNK, VALUES)
#: Map keys must hash: anything hashable, including what no id may be.
KEYS = st.one_of(TEXT, st.none(), st.integers(), st.floats(allow_nan=False), st.binary(max_size=8), st.builds(object))


def deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def contacts(draw: st.DrawFn) -> Any:
    return Contact(draw(ANY), draw(ANY), draw(st.one_of(VALUES, st.just(deep(300)), st.just(deep(2000)))))


@st.composite
def group_states(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(JUNK)
    group = Group(
        draw(ANY),
        draw(ANY),
        contact_ids=draw(st.one_of(st.lists(ANY, max_size=3), JUNK)),
        attributes=draw(st.one_of(st.dictionaries(KEYS, ANY, max_size=3), JUNK)),
    )
    contacts_map = draw(st.one_of(st.dictionaries(KEYS, st.one_of(contacts(), JUNK), max_size=3), JUNK))
    wires = draw(st.one_of(st.dictionaries(KEYS, st.builds(Wire, ANY, ANY, ANY), max_size=2), JUNK))
    try:
        return GroupState(group, contacts_map, wires)
    except StorageError:
        return draw(JUNK)


@st.composite
def network_states(draw: st.DrawFn) -> Any:
    try:
        return NetworkState(draw(st.one_of(st.dictionaries(KEYS, group_states(), max_size=3), JUNK)))
    except StorageError:
        return draw(JUNK)


def _calls(store: NetworkStore) -> dict[str, tuple[Callable[..., Any], list[st.SearchStrategy[Any]]]]:
    return {
        "save_contact_content": (store.save_contact_content, [ANY, ANY, ANY, ANY]),
        "save_group_state": (store.save_group_state, [ANY, ANY, group_states()]),
        "save_network_state": (store.save_network_state, [ANY, network_states()]),
        "delete_group": (store.delete_group, [ANY, ANY]),
        "delete_network": (store.delete_network, [ANY]),
        "exists": (store.exists, [ANY]),
        "load_contact_content": (store.load_contact_content, [ANY, ANY, ANY]),
        "load_group_state": (store.load_group_state, [ANY, ANY]),
        "load_network_state": (store.load_network_state, [ANY]),
        "query_groups": (
            lambda net, type_, tags, author: store.query_groups(net, type=type_, tags=tags, author=author),
            [ANY, ANY, st.one_of(st.lists(ANY, max_size=2), JUNK), ANY],
        ),
        "save_snapshot": (store.save_snapshot, [ANY, ANY]),
        "load_snapshot": (store.load_snapshot, [ANY, ANY]),
        "list_snapshots": (store.list_snapshots, [ANY]),
        "delete_snapshot": (store.delete_snapshot, [ANY, ANY]),
        "diff": (store.diff, [ANY, ANY, ANY]),
        "subscribe": (lambda path: store.subscribe(path, lambda _: None)(), [ANY]),
        "batch": (_batched(store), [ANY, ANY, ANY, ANY]),
        "batch_states": (_batched_states(store), [ANY, ANY, group_states(), network_states()]),
    }


def _batched(store: NetworkStore) -> Callable[..., None]:
    def run(net: Any, group: Any, contact: Any, content: Any) -> None:
        with store.batch(net) as batch:
            batch.save_contact_content(net, group, contact, content)

    return run


def _batched_states(store: NetworkStore) -> Callable[..., None]:
    def run(net: Any, group: Any, state: Any, network: Any) -> None:
        with store.batch(net) as batch:
            batch.save_group_state(net, group, state)
            batch.save_network_state(net, network)

    return run


@contextmanager
def seeded(url: str) -> Iterator[NetworkStore]:
    with casstore.open_store(url) as store:
        group = Group("root", "Root", contact_ids=["c"], attributes={"bassline.type": "app"})
        store.save_network_state("net", NetworkState({"root": GroupState(group, {"c": Contact("c", "root", 1)})}))
        store.save_snapshot("net", "first")
        yield store


def _footprint(store: NetworkStore) -> tuple[dict[str, bytes], Any]:
    return store.refs.list(), store.blobs.stats()


@pytest.mark.parametrize("call", sorted(_calls(NetworkStore(casstore.open_store("memory://").objects))))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_only_storage_errors_escape_and_a_failed_call_changes_nothing(call: str, data: st.DataObject) -> None:
    with seeded("memory://") as store:
        fn, strategies = _calls(store)[call]
        args = [data.draw(strategy) for strategy in strategies]
        before = _footprint(store)
        try:
            fn(*args)
        except StorageError:
            assert _footprint(store) == before, f"{call} raised but changed the store"
