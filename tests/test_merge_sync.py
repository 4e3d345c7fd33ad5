"""Merges where users meet them (#17): fetch, pull --merge / sync(merge=True) and push after a merge,
three stores converging, merges across backends, and the CLI verbs."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

import casstore
from casstore import sync
from casstore.gc import collect_garbage
from casstore.model import Contact, Group, GroupState, NetworkState, NetworkStore
from casstore.model.refs import fetched_ref, head_ref, tracking_ref


def _start() -> NetworkState:
    contacts = {
        "shared": Contact("shared", "g", 0),
        "tags": Contact("tags", "g", {"_tag": "GrowSet", "values": []}, blend_mode="merge"),
    }
    return NetworkState({"g": GroupState(Group("g", "G", contact_ids=list(contacts)), contacts)}, "g", "g")


def _add_tag(store: NetworkStore, tag: str) -> None:
    old = store.load_contact_content("n", "g", "tags")
    store.save_contact_content("n", "g", "tags", {"_tag": "GrowSet", "values": sorted({*old["values"], tag})})


def test_pull_merge_then_push_ends_the_divergence_loop() -> None:
    a, b = casstore.open_store("memory://"), casstore.open_store("memory://")
    a.save_network_state("n", _start())
    sync.push(a, b, remote="b")
    a.save_contact_content("n", "g", "shared", 1)
    _add_tag(a, "a")
    b.save_contact_content("n", "g", "shared", 2)
    _add_tag(b, "b")
    assert sync.push(a, b, remote="b").networks == {"n": "diverged"}
    assert sync.pull(a, b, remote="b").networks == {"n": "diverged"}

    report = sync.pull(a, b, remote="b", merge=True)
    assert report.networks == {"n": "updated"} and not report.diverged
    result = report.merged["n"]
    assert result.outcome == "merged" and result.base_source == "agreed"
    assert [c.item for c in result.conflicts] == ["shared"]
    assert a.load_contact_content("n", "g", "tags")["values"] == ["a", "b"]
    # the merged head has the remote's head as a parent: push moves the remote without --force
    assert a.refs.get(tracking_ref("b", "n")) == b.refs.get(head_ref("n"))
    assert sync.push(a, b, remote="b").networks == {"n": "updated"}
    assert a.refs.get(head_ref("n")) == b.refs.get(head_ref("n"))
    assert sync.pull(a, b, remote="b").networks == {"n": "up-to-date"}
    assert b.conflicts("n") == a.conflicts("n") != []


def test_history_decides_what_the_agreed_head_cannot() -> None:
    """A store that merged a third store's head pushes to it without --force: sync follows merge parents."""
    a, b, c = (casstore.open_store("memory://") for _ in range(3))
    a.save_network_state("n", _start())
    sync.push(a, b, remote="b")
    sync.push(a, c, remote="c")
    b.save_contact_content("n", "g", "shared", 5)
    c.save_contact_content("n", "g", "shared", 6)
    c.sync(b, name="b", merge=True)  # c merges b's change and pushes the merge to b
    # a never exchanged with b since; b's head is a merge of heads a has never seen: a fast-forward
    assert sync.pull(a, b, remote="b").networks == {"n": "updated"}
    # c's later head descends from what b has: decided by the snapshot graph (b recorded no lease with c)
    c.save_contact_content("n", "g", "shared", 7)
    assert sync.pull(b, c, remote="c").networks == {"n": "updated"}


def test_fetch_records_remote_heads_without_moving_local_ones() -> None:
    a, b = casstore.open_store("memory://"), casstore.open_store("memory://")
    a.save_network_state("n", _start())
    sync.push(a, b, remote="b")
    b.save_contact_content("n", "g", "shared", 9)
    b.save_snapshot("n", "on b")
    before = a.refs.get(head_ref("n"))
    report = sync.fetch(a, b, name="b")
    assert report.networks == {"n": "created"} and report.snapshots_copied == 1
    assert a.refs.get(head_ref("n")) == before
    assert a.refs.get(fetched_ref("b", "n")) == b.refs.get(head_ref("n"))
    collect_garbage(a, grace_minutes=0)  # the fetched head is a root: gc keeps it
    assert not casstore.verify(a).missing
    assert sync.fetch(a, b, name="b").networks == {"n": "up-to-date"}


def test_three_stores_converge_in_random_orders() -> None:
    rnd = random.Random(17)
    stores = [casstore.open_store("memory://") for _ in range(3)]
    names = ["a", "b", "c"]
    stores[0].save_network_state("n", _start())
    for other in stores[1:]:
        sync.push(stores[0], other)
    for name, store in zip(names, stores, strict=True):
        store.save_contact_content("n", "g", "shared", name)  # accept-last: one wins, the others are recorded
        store.save_contact_content("n", "g", f"own-{name}", name)  # additions: all kept
        _add_tag(store, name)  # merge: the union
    for _ in range(30):
        i, j = rnd.sample(range(3), 2)
        stores[i].sync(stores[j], name=names[j], merge=True)
        heads = {store.refs.get(head_ref("n")) for store in stores}
        if len(heads) == 1:
            break
    assert len({store.refs.get(head_ref("n")) for store in stores}) == 1
    final = stores[0].load_network_state("n")
    assert final is not None
    group = final.groups["g"]
    assert {f"own-{n}" for n in names} <= set(group.contacts) and set(group.group.contact_ids) == set(group.contacts)
    assert group.contacts["tags"].content["values"] == names
    (shared,) = [c for c in stores[0].conflicts("n") if c.item == "shared"]
    seen = {shared.kept, shared.ours, shared.theirs, *shared.superseded}
    assert set(names) <= seen  # every value is kept or recorded
    assert group.contacts["shared"].content == shared.kept


@pytest.mark.parametrize(
    ("here", "there"), [("lmdb", "s3"), ("s3", "file"), ("file", "lmdb"), ("lmdb", "http"), ("http", "file")]
)
def test_merge_across_backends(make: Any, here: str, there: str) -> None:
    a, b = make(here), make(there)
    a.save_network_state("n", _start())
    sync.push(a, b, remote="b")
    _add_tag(a, "x")
    _add_tag(b, "y")
    b.save_contact_content("n", "g", "big", "z" * 5000)  # a large content travels and is merged in
    report = a.sync(b, name="b", merge=True)
    assert report.merged["n"].outcome == "merged" and not report.merged["n"].conflicts
    assert a.refs.get(head_ref("n")) == b.refs.get(head_ref("n"))
    for store in (a, b):
        assert store.load_contact_content("n", "g", "tags")["values"] == ["x", "y"]
        assert store.load_contact_content("n", "g", "big") == "z" * 5000
        assert not casstore.verify(store).invalid


def test_cli_fetch_merge_conflicts_resolve(cli: Any, tmp_path: Path) -> None:
    other_path = tmp_path / "other"
    with casstore.open_store(tmp_path / "here") as here:
        here.save_network_state("n", _start())
        sync.add_remote(here, "origin", str(other_path))
        with casstore.open_store(other_path) as other:
            sync.push(here, other, remote="origin")
            other.save_contact_content("n", "g", "shared", 2)
        here.save_contact_content("n", "g", "shared", 1)
    store = ["--store", str(tmp_path / "here")]
    fetched = cli(*store, "fetch", "--json")
    assert json.loads(fetched.output)["networks"]["n"]["outcome"] == "created"
    dry = cli(*store, "merge", "n", "origin/n", "--dry-run", "--json", code=1)  # it would record a conflict
    document = json.loads(dry.output)
    assert document["dry_run"] and document["outcome"] == "merged" and document["base_source"] == "agreed"
    assert [c["item"] for c in document["conflicts"]] == ["shared"]
    assert json.loads(cli(*store, "conflicts", "n", "--json").output)["conflicts"] == []  # nothing written
    merged = cli(*store, "merge", "n", "origin/n", code=1)
    assert "conflict" in merged.output
    listed = json.loads(cli(*store, "conflicts", "n", "--json").output)["conflicts"]
    assert [(c["kind"], c["reason"], c["ours"], c["theirs"]) for c in listed] == [("contact", "both-changed", 1, 2)]
    assert set(listed[0]) >= {"group", "item", "kind", "reason", "base", "ours", "theirs", "kept"}
    cli(*store, "resolve", "n", "g", "shared", code=2)  # exactly one choice
    resolved = cli(*store, "resolve", "n", "g", "shared", "--value", "42", "--json")
    assert json.loads(resolved.output)["remaining"] == 0
    up = cli(*store, "merge", "n", "origin/n", "--json")  # already merged: up to date
    assert json.loads(up.output)["outcome"] == "up-to-date"
    cli(*store, "push", "--json")  # no --force: the merge has the remote's head as a parent
    with casstore.open_store(other_path) as other:
        assert other.load_contact_content("n", "g", "shared") == 42


def test_cli_pull_merge(cli: Any, tmp_path: Path) -> None:
    other_path = tmp_path / "other"
    with casstore.open_store(tmp_path / "here") as here:
        here.save_network_state("n", _start())
        with casstore.open_store(other_path) as other:
            sync.push(here, other)
            _add_tag(other, "o")
        _add_tag(here, "h")
    store = ["--store", str(tmp_path / "here")]
    cli(*store, "remote", "add", "origin", str(other_path))
    cli(*store, "pull", code=1)  # diverged
    pulled = cli(*store, "pull", "--merge", "--json")
    document = json.loads(pulled.output)
    assert document["networks"] == {"n": "updated"} and document["merged"]["n"]["conflicts"] == []
    cli(*store, "push")
    with casstore.open_store(other_path) as other:
        assert other.load_contact_content("n", "g", "tags")["values"] == ["h", "o"]
