"""The seed's directory layout (#16): paths and contents as drawn, ids as names, round trips, every backend."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import BUCKET
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casstore import open_store
from casstore.layout.names import MAX_NAME, decode_name, encode_name, is_hashed_name
from casstore.layout.render import canonical
from casstore.layout.transfer import export_layout, import_layout, layout_networks
from casstore.model import Contact, Group, GroupState, NetworkState, NetworkStore, Wire
from casstore.model.refs import head_ref
from casstore.store.memory import MemoryStore
from casstore.sync import push
from casstore.testing.state_machine import contents

MATH_TOOLKIT = {"name": "math-toolkit", "build": {"gadgets": ["add", "multiply"]}}
UI_COMPONENTS = {"name": "ui-components", "attributes": {"bassline.type": "library"}}


def seed_examples() -> NetworkState:
    """The seed's user-profile and registry examples (docs: storage-architecture.md, "Data Model Examples")."""
    alice = "users/@alice"
    profile = {
        cid: Contact(cid, alice, value)
        for cid, value in (("displayName", "Alice Smith"), ("bio", "Developer from SF"), ("avatar", "https://..."))
    }
    registry = {
        cid: Contact(cid, "registry", value)
        for cid, value in (("math-toolkit", MATH_TOOLKIT), ("ui-components", UI_COMPONENTS))
    }
    root = Group("root", "Root", subgroup_ids=[alice, "registry"])
    groups = {
        "root": GroupState(root),
        alice: GroupState(
            Group(alice, "@alice", "root", list(profile), attributes={"bassline.type": "user-profile"}), profile
        ),
        "registry": GroupState(Group("registry", "Registry", "root", list(registry)), registry),
    }
    return NetworkState(groups, metadata={"description": "the seed's examples"})


#: The seed's drawing, filled in for those examples (paths under storage/networks/main/).
EXPECTED_TREE = [
    "groups/registry/attributes.json",
    "groups/registry/contacts/math-toolkit.json",
    "groups/registry/contacts/ui-components.json",
    "groups/registry/structure.json",
    "groups/root/attributes.json",
    "groups/root/structure.json",
    "groups/users%2F@alice/attributes.json",
    "groups/users%2F@alice/contacts/avatar.json",
    "groups/users%2F@alice/contacts/bio.json",
    "groups/users%2F@alice/contacts/display!name.json",
    "groups/users%2F@alice/structure.json",
    "metadata.json",
    "snapshots/20260102T030405Z-first-profile.json",
]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def read(path: Path) -> Any:
    text = path.read_text()
    assert text.endswith("}\n") and text == canonical(json.loads(text)).decode()  # canonical: pretty, sorted, newline
    return json.loads(text)


def test_the_seed_examples_give_the_seed_drawing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = NetworkStore(MemoryStore())
    store.save_network_state("main", seed_examples())
    from casstore.model import rootrecords

    monkeypatch.setattr(rootrecords, "now_text", lambda: "2026-01-02T03:04:05.000006+00:00")  # one clock
    snapshot = store.save_snapshot("main", "First profile!")
    export_layout(store, "main", tmp_path / "storage")
    net = tmp_path / "storage" / "networks" / "main"
    assert tree(net) == EXPECTED_TREE
    head = store.refs.get(head_ref("main"))
    loaded = store.load_network_state("main")
    assert head is not None and loaded is not None and loaded.created_at is not None
    meta = read(net / "metadata.json")
    assert meta == {
        "id": "main",
        "metadata": {"description": "the seed's examples"},
        "createdAt": loaded.created_at.isoformat(),
        "updatedAt": loaded.created_at.isoformat(),
        "root": store.list_snapshots("main")[0].root,
        "currentGroupId": "root",
        "rootGroupId": "root",
    }
    alice = net / "groups" / "users%2F@alice"
    assert read(alice / "structure.json") == {
        "id": "users/@alice",
        "name": "@alice",
        "parentId": "root",
        "contactIds": ["displayName", "bio", "avatar"],
        "wireIds": [],
        "subgroupIds": [],
        "boundaryContactIds": [],
        "wires": {},
    }
    assert read(alice / "attributes.json") == {"bassline.type": "user-profile"}
    assert read(net / "groups" / "root" / "attributes.json") == {}
    assert read(alice / "contacts" / "display!name.json") == {
        "id": "displayName",
        "groupId": "users/@alice",
        "content": "Alice Smith",
        "blendMode": "accept-last",
    }
    assert read(net / "groups" / "registry" / "contacts" / "math-toolkit.json")["content"] == MATH_TOOLKIT
    assert read(net / "snapshots" / "20260102T030405Z-first-profile.json") == {
        "id": snapshot,
        "root": meta["root"],
        "parent": None,
        "label": "First profile!",
        "time": "2026-01-02T03:04:05.000006+00:00",
        "size": store.list_snapshots("main")[0].size,
    }
    # a one-value change is a one-line diff
    before = (alice / "contacts" / "bio.json").read_text().splitlines()
    store.save_contact_content("main", "users/@alice", "bio", "Developer from NYC")
    export_layout(store, "main", tmp_path / "storage")
    after = (alice / "contacts" / "bio.json").read_text().splitlines()
    assert [(a, b) for a, b in zip(before, after, strict=True) if a != b] == [
        ('  "content": "Developer from SF",', '  "content": "Developer from NYC",')
    ]


def test_an_unlabelled_snapshot_is_named_by_its_short_id_and_names_never_clash(tmp_path: Path) -> None:
    store = NetworkStore(MemoryStore())
    store.save_network_state("main", seed_examples())
    first, second = store.save_snapshot("main"), store.save_snapshot("main", "same")
    third = store.save_snapshot("main", "same")
    export_layout(store, "main", tmp_path)
    names = sorted(p.name for p in (tmp_path / "networks" / "main" / "snapshots").iterdir())
    assert any(name.endswith(f"-{first[:16]}.json") for name in names)
    assert len(names) == 3 and len({read(tmp_path / "networks/main/snapshots" / n)["id"] for n in names}) == 3
    assert {second, third} <= {read(tmp_path / "networks/main/snapshots" / n)["id"] for n in names}


HOSTILE = [
    "users/@alice",
    "..",
    ".",
    ".git",
    "CON",
    "con",
    "nul.txt",
    "COM1",
    "Alice",
    "alice",
    "ALICE",
    "a/../../etc",
    "\\\\server\\share",
    "C:",
    "trailing.",
    "trailing ",
    "%2F",
    "!a",
    "~1",
    "ünï ✓",
    "e\u0301",
    "\u00e9",
    "tab\there",
    "x" * 1024,
    "é" * 512,
    "a" * 300 + "/" + "b",
]


@given(st.lists(st.text(min_size=1, max_size=300), max_size=8))
@settings(max_examples=150, deadline=None)
def test_every_id_maps_to_one_safe_name_and_back(ids: list[str]) -> None:
    for item in [*HOSTILE, *ids]:
        try:
            item.encode()
        except UnicodeEncodeError:
            continue
        name = encode_name(item)
        assert name and "/" not in name and "\\" not in name and ":" not in name and name not in (".", "..")
        assert not name.startswith(".") and not name.endswith((".", " ")) and len(name.encode()) <= MAX_NAME
        unescaped = re.sub(r"%[0-9A-F]{2}", "", name)
        assert name.isascii() and unescaped == unescaped.lower()  # case-insensitive filesystems keep it apart
        assert name.split(".")[0].lower() not in ("con", "prn", "aux", "nul", "com1", "lpt1")
        assert decode_name(name) == item or (is_hashed_name(name) and 3 * len(item.encode()) > MAX_NAME)
    folded = {encode_name(item).lower() for item in HOSTILE}
    assert len(folded) == len(HOSTILE)  # no two hostile ids share a name, case folded


def hostile_state() -> NetworkState:
    groups = {}
    for index, gid in enumerate(HOSTILE[:12]):
        contacts = {cid: Contact(cid, gid, [index, cid]) for cid in HOSTILE}
        groups[gid] = GroupState(Group(gid, f"g{index}", None, list(contacts)), contacts)
    return NetworkState(groups, current_group_id=HOSTILE[0], root_group_id=HOSTILE[0])


@pytest.mark.parametrize("network_id", ["..", "users/@alice", "N" * 600])
def test_hostile_ids_stay_inside_the_directory_and_round_trip(tmp_path: Path, network_id: str) -> None:
    store = NetworkStore(MemoryStore())
    state = hostile_state()
    store.save_network_state(network_id, state)
    out = tmp_path / "inside"
    export_layout(store, network_id, out)
    for path in tmp_path.rglob("*"):
        assert path.resolve().is_relative_to(out.resolve()), path
    assert sum(1 for p in out.rglob("*.json")) == 12 * (2 + len(HOSTILE)) + 1
    assert layout_networks(out) == [network_id]
    other = NetworkStore(MemoryStore())
    import_layout(other, out, network_id)
    assert other.load_network_state(network_id) == state
    assert other.refs.get(head_ref(network_id)) == store.refs.get(head_ref(network_id))


ids = st.sampled_from(["root", "g", "G", "users/@bob", "..", "CON", "ü", "x" * 300]) | st.text(min_size=1, max_size=8)
extras = st.dictionaries(st.sampled_from(["ui", "v2", "extra", "id"]), contents, max_size=2)


@st.composite
def rich_groups(draw: st.DrawFn, gid: str) -> GroupState:
    """A group using every field a layout file carries."""
    cids = draw(st.lists(ids, unique=True, max_size=5))
    contacts = {
        cid: Contact(
            cid,
            gid,
            draw(contents),
            draw(st.sampled_from(["accept-last", "merge"])),
            draw(st.booleans()),
            draw(st.sampled_from([None, "input", "output"])),
            draw(st.none() | st.text(max_size=4)),
            draw(st.dictionaries(st.text(max_size=3), contents, max_size=2)),
            {k: v for k, v in draw(extras).items() if k not in ("id",)},
        )
        for cid in cids
    }
    wires = {}
    if len(cids) >= 2:
        for wid in draw(st.lists(ids, unique=True, max_size=2)):
            attrs = draw(st.dictionaries(st.text(max_size=3), contents, max_size=1))
            wires[wid] = Wire(wid, gid, cids[0], cids[1], draw(st.sampled_from(["bidirectional", "directed"])), attrs)
    group = Group(
        gid,
        draw(st.text(max_size=5)),
        draw(st.none() | ids),
        list(reversed(cids)),
        list(wires),
        draw(st.lists(ids, max_size=2)),
        cids[:1],
        draw(st.dictionaries(st.text(max_size=4), contents, max_size=2)),
        {k: v for k, v in draw(extras).items() if k != "id"},
    )
    return GroupState(group, contacts, wires, {k: v for k, v in draw(extras).items() if k not in ("id",)})


@given(st.lists(ids, min_size=1, max_size=3, unique=True).flatmap(lambda gids: st.tuples(*map(rich_groups, gids))))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_state_to_layout_to_store_gives_the_same_root(tmp_path: Path, groups: tuple[GroupState, ...]) -> None:
    state = NetworkState({g.group.id: g for g in groups}, metadata={"n": len(groups)}, extra={"bassline.v": 2})
    source = NetworkStore(MemoryStore())
    source.save_network_state("net", state)
    out = tmp_path / f"rt{os.urandom(4).hex()}"
    export_layout(source, "net", out)
    target = NetworkStore(MemoryStore())
    import_layout(target, out, "net", as_id="copy")
    assert target.load_network_state("copy") == source.load_network_state("net")
    assert target.refs.get(head_ref("copy")) == source.refs.get(head_ref("net"))


def backend_urls(tmp_path: Path) -> list[str]:
    return [f"lmdb://{tmp_path / 'lmdb'}", f"file://{tmp_path / 'file'}", f"filesystem://{tmp_path / 'fs'}"]


def test_the_layout_of_every_backend_equals_memorys(tmp_path: Path, postgres_server: Any, mock_s3: None) -> None:
    state = seed_examples()
    state.groups["registry"].contacts["big"] = Contact("big", "registry", {"blob": b"\x00" * 5000})
    memory = NetworkStore(MemoryStore())
    memory.save_network_state("main", state)
    memory.save_snapshot("main", "one")
    export_layout(memory, "main", tmp_path / "memory")
    expected = {
        p: (tmp_path / "memory/networks/main" / p).read_bytes() for p in tree(tmp_path / "memory/networks/main")
    }

    urls = [*backend_urls(tmp_path), postgres_server.store_url(tmp_path / "pg"), f"s3://{BUCKET}/layout"]
    for url in urls:
        with open_store(url) as store:
            push(memory, store)
            out = tmp_path / f"out-{url.split(':')[0]}"
            export_layout(store, "main", out)
            got = {p: (out / "networks/main" / p).read_bytes() for p in tree(out / "networks/main")}
            assert got == expected, url
            back = NetworkStore(MemoryStore())
            import_layout(back, out, "main")
            assert back.refs.get(head_ref("main")) == memory.refs.get(head_ref("main")), url
