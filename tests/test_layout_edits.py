"""The ``filesystem://`` store (#16): the tree kept in step, hand edits, status/commit, git, crash repair."""

from __future__ import annotations

import importlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casstore import open_store
from casstore.layout import InvalidLayout, UncommittedEdits, network_status, statpass
from casstore.layout.edits import commit, filesystem_store
from casstore.layout.render import contact_path
from casstore.layout.transfer import export_layout
from casstore.model import Contact, Group, GroupState, NetworkState, NetworkStore
from casstore.model.refs import head_ref

ROOT = Path(__file__).parent.parent


def small_state(groups: int = 3, contacts: int = 4) -> NetworkState:
    out = {}
    for g in range(groups):
        gid = f"g{g}"
        cs = {f"c{i}": Contact(f"c{i}", gid, {"v": i, "g": g}) for i in range(contacts)}
        out[gid] = GroupState(Group(gid, f"Group {g}", None, list(cs), attributes={"n": g}), cs)
    return NetworkState(out, "g0", "g0", metadata={"title": "t"})


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json")) if p.is_file()}


def assert_tree_is_head(store: NetworkStore, base: Path, network_id: str, scratch: Path) -> None:
    """The tree under ``base`` is exactly what exporting the head writes, and its bookkeeping is clean."""
    export_layout(store, network_id, scratch)
    assert files(base / "networks" / network_id) == files(scratch / "networks" / network_id)
    assert not network_status(filesystem_store(store), network_id, full=True)


@pytest.fixture
def fs_store(tmp_path: Path) -> NetworkStore:
    store = open_store(f"filesystem://{tmp_path / 'P'}")
    store.save_network_state("main", small_state())
    return store


@pytest.fixture(params=["in process", "with the helper"])
def scanning(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hand edits found by the stat pass alone, and with the helper interpreter taking a share."""
    if request.param == "with the helper":
        monkeypatch.setattr(statpass, "HELPER_MIN_FILES", 0)
        monkeypatch.setattr(statpass, "_cores", lambda: 2)


def edit(path: Path, **fields: object) -> None:
    doc = json.loads(path.read_text())
    doc.update(fields)
    path.write_text(json.dumps(doc))


def test_every_write_keeps_the_tree_in_step(tmp_path: Path, fs_store: NetworkStore) -> None:
    base = tmp_path / "P"
    fs_store.save_contact_content("main", "g1", "c2", "changed")
    fs_store.save_contact_content("main", "g1", "new", [1, 2])
    fs_store.save_group_state("main", "g9", small_state(10).groups["g9"])
    fs_store.delete_group("main", "g2")
    fs_store.save_network_metadata("main", {"title": "renamed"})
    with fs_store.batch("main") as batch:
        batch.delete_contact("main", "g0", "c0")
        batch.save_contact_content("main", "g0", "c1", None)
    fs_store.save_snapshot("main", "after edits")
    assert not (base / "networks/main/groups/g2").exists()
    assert json.loads((base / "networks/main/metadata.json").read_text())["metadata"] == {"title": "renamed"}
    assert_tree_is_head(fs_store, base, "main", tmp_path / "x1")
    fs_store.delete_network("main")
    assert not (base / "networks" / "main").exists()
    fs_store.close()


def test_hand_edits_are_listed_refused_and_committed(tmp_path: Path, fs_store: NetworkStore, scanning: None) -> None:
    base = tmp_path / "P"
    net = base / "networks" / "main"
    fs = filesystem_store(fs_store)
    assert not network_status(fs, "main")
    edit(net / "groups/g0/contacts/c1.json", content="by hand")  # a changed value
    (net / "groups/g1/contacts/fresh.json").write_text('{"content": {"new": true}, "blendMode": "merge"}\n')
    (net / "groups/g2/contacts/c3.json").unlink()  # a deleted file
    os.utime(net / "groups/g2/contacts/c0.json")  # touched, not changed: not an edit
    (net / "groups/g2/notes.txt").write_text("not a layout file")
    status = network_status(fs, "main")
    assert (status.modified, status.added, status.removed) == (
        ["groups/g0/contacts/c1.json"],
        ["groups/g1/contacts/fresh.json"],
        ["groups/g2/contacts/c3.json"],
    )
    head = fs_store.refs.get(head_ref("main"))
    with pytest.raises(UncommittedEdits, match="uncommitted hand edits") as refused:  # as git checkout refuses
        fs_store.save_contact_content("main", "g0", "c2", 1)
    assert refused.value.code == "UNCOMMITTED_EDITS" and len(refused.value.paths) == 3
    assert fs_store.refs.get(head_ref("main")) == head
    report = commit(fs_store, "main", "by hand")
    assert report.snapshot is not None and len(report.paths) == 3
    state = fs_store.load_network_state("main")
    assert state is not None
    assert state.groups["g0"].contacts["c1"].content == "by hand"
    assert state.groups["g1"].contacts["fresh"] == Contact("fresh", "g1", {"new": True}, "merge")
    assert state.groups["g1"].group.contact_ids[-1] == "fresh"
    assert "c3" not in state.groups["g2"].contacts and "c3" not in state.groups["g2"].group.contact_ids
    assert json.loads((net / "groups/g1/structure.json").read_text())["contactIds"][-1] == "fresh"
    assert (net / "groups/g1/contacts/fresh.json").read_text().startswith('{\n  "blendMode": "merge"')  # canonical
    assert_tree_is_head(fs_store, base, "main", tmp_path / "x")
    fs_store.save_contact_content("main", "g0", "c2", 1)  # clean again: writes go through


def test_group_and_metadata_edits_and_a_forced_write(tmp_path: Path, fs_store: NetworkStore, scanning: None) -> None:
    base = tmp_path / "P"
    net = base / "networks" / "main"
    (net / "groups/g1/attributes.json").write_text('{"bassline.type": "user-profile"}')
    edit(net / "groups/g0/structure.json", name="Renamed")
    edit(net / "metadata.json", metadata={"title": "edited"})
    commit(fs_store, "main")
    assert fs_store.query_groups("main", type="user-profile")[0].group.id == "g1"
    state = fs_store.load_network_state("main")
    assert state is not None and state.groups["g0"].group.name == "Renamed" and state.metadata == {"title": "edited"}
    edit(net / "metadata.json", currentGroupId="g1")  # a network field: the directory is read whole
    assert commit(fs_store, "main").whole
    state = fs_store.load_network_state("main")
    assert state is not None and state.current_group_id == "g1"
    (net / "groups/g2/structure.json").unlink()  # the group is deleted
    commit(fs_store, "main")
    assert fs_store.load_group_state("main", "g2") is None and not (net / "groups/g2").exists()
    edit(net / "groups/g0/contacts/c0.json", content="lost")
    with filesystem_store(fs_store).forcing():  # force: the write goes ahead, the edit is overwritten
        fs_store.save_contact_content("main", "g0", "c0", "kept")
    assert json.loads((net / "groups/g0/contacts/c0.json").read_text())["content"] == "kept"
    assert_tree_is_head(fs_store, base, "main", tmp_path / "x")
    fs_store.close()
    with open_store(f"filesystem://{base}?force=on") as forced:
        edit(net / "groups/g0/contacts/c1.json", content="lost too")
        forced.save_contact_content("main", "g0", "c1", "kept too")
        assert not network_status(filesystem_store(forced), "main")


@pytest.mark.parametrize(
    ("path", "text", "where"),
    [
        ("groups/g0/contacts/c1.json", '{\n  "content": 1,\n  oops\n}', "c1.json:3: malformed JSON"),
        ("groups/g0/contacts/c1.json", '{\n  "content": 1,\n  "blendMode": 7\n}', "c1.json:3: 'blendMode'"),
        ("groups/g0/contacts/c1.json", '{"id": "other", "content": 1}', "c1.json:1: 'id': 'other' does not match"),
        ("groups/g0/contacts/c1.json", "[1, 2]", "c1.json:1: expected a JSON object"),
        ("groups/g1/structure.json", '{\n"id": "g1",\n"name": 5}', "structure.json:3: 'name'"),
        ("metadata.json", '{"id": "main", "createdAt": "noon"}', "metadata.json:1: 'createdAt'"),
    ],
)
def test_a_malformed_file_is_one_error_naming_file_and_line_and_nothing_is_applied(
    tmp_path: Path, fs_store: NetworkStore, path: str, text: str, where: str
) -> None:
    net = tmp_path / "P" / "networks" / "main"
    edit(net / "groups/g2/contacts/c0.json", content="a good edit beside the bad one")
    (net / path).write_text(text)
    head = fs_store.refs.get(head_ref("main"))
    with pytest.raises(InvalidLayout) as error:
        commit(fs_store, "main")
    assert where in str(error.value) and "\n" not in str(error.value) and error.value.code == "INVALID_LAYOUT"
    assert fs_store.refs.get(head_ref("main")) == head
    assert len(network_status(filesystem_store(fs_store), "main").paths) == 2  # both edits still pending


def test_an_edit_racing_a_write_from_another_process_is_refused(tmp_path: Path, fs_store: NetworkStore) -> None:
    base = tmp_path / "P"
    fs_store.close()
    child = subprocess.Popen(
        [sys.executable, "-c", RACER, str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    edit(base / "networks/main/groups/g0/contacts/c3.json", content="racing edit")
    out, err = child.communicate(timeout=120)
    assert "refused UNCOMMITTED_EDITS" in out, out + err
    with open_store(f"filesystem://{base}") as store:
        assert store.load_contact_content("main", "g0", "c3") == {"v": 3, "g": 0}  # not overwritten
        assert network_status(filesystem_store(store), "main").modified == ["groups/g0/contacts/c3.json"]


RACER = """
import sys, time
from casstore import open_store
from casstore.layout import UncommittedEdits
store = open_store("filesystem://" + sys.argv[1])
print("writing", flush=True)
deadline = time.monotonic() + 60
try:
    while time.monotonic() < deadline:
        store.save_contact_content("main", "g1", "c0", time.monotonic())
except UncommittedEdits as exc:
    print("refused", exc.code, flush=True)
"""


def test_after_git_clone_commit_rebuilds_the_store_from_the_files_alone(tmp_path: Path) -> None:
    base = tmp_path / "P"
    with open_store(f"filesystem://{base}") as store:
        store.save_network_state("main", small_state())
        store.save_network_state("users/@alice", small_state(1, 2))
        heads = {net: store.refs.get(head_ref(net)) for net in store.list_networks()}
    git(base, "init", "-q")
    (base / ".gitignore").write_text(".casstore/\n")
    git(base, "add", "-A")
    git(base, "commit", "-qm", "networks")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(base), str(clone)], check=True)
    assert not (clone / ".casstore").exists()
    from click.testing import CliRunner

    from casstore.cli import main

    result = CliRunner().invoke(main, ["--json", "--store", f"filesystem://{clone}", "commit"])
    assert result.exit_code == 0, result.output
    assert {c["network"] for c in json.loads(result.stdout)["commits"]} == {"main", "users/@alice"}
    with open_store(f"filesystem://{clone}") as rebuilt:
        assert {net: rebuilt.refs.get(head_ref(net)) for net in rebuilt.list_networks()} == heads  # the same roots
        assert not network_status(filesystem_store(rebuilt), "main")
    assert git(clone, "status", "--porcelain") == ""  # nothing changed in the files


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


#: The workload's size: 20,000 contacts by default (a minute at 100,000 on 2 cores); the issue's
#: 100,000 with CASSTORE_LAYOUT_STEP_CONTACTS=100000.
STEP_CONTACTS = int(os.environ.get("CASSTORE_LAYOUT_STEP_CONTACTS", "20000"))


@pytest.mark.slow
def test_a_one_percent_step_rewrites_exactly_the_changed_files(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    bench = importlib.import_module("bench_network")
    make_state, small_value = bench.make_state, bench.small_value

    base = tmp_path / "P"
    state = make_state(STEP_CONTACTS)
    rnd = random.Random(3)
    with open_store(f"filesystem://{base}") as store:
        store.save_network_state("main", state)
        git(base, "init", "-q")
        (base / ".gitignore").write_text(".casstore/\n")
        git(base, "add", "-A")
        git(base, "commit", "-qm", "before")
        root = base / "networks" / "main"
        before = {p: (s.st_ino, s.st_mtime_ns) for p in root.rglob("*.json") if (s := p.stat())}
        assert len(before) == STEP_CONTACTS + 2 * len(state.groups) + 1  # contacts, structure/attributes, metadata
        changed = rnd.sample([(g, c) for g, gs in state.groups.items() for c in gs.contacts], STEP_CONTACTS // 100)
        with store.batch("main") as batch:
            for gid, cid in changed:
                batch.save_contact_content("main", gid, cid, small_value(rnd))
        after = {p: (s.st_ino, s.st_mtime_ns) for p in root.rglob("*.json") if (s := p.stat())}
        rewritten = {str(p.relative_to(root)) for p in after if after[p] != before.get(p)}
        expected = {contact_path(gid, cid) for gid, cid in changed} | {"metadata.json"}
        assert rewritten == expected and after.keys() == before.keys()
        listed = {line[3:] for line in git(base, "status", "--porcelain").splitlines()}
        assert listed == {f"networks/main/{path}" for path in expected}


def test_a_kill_between_head_move_and_tree_update_is_repaired_on_open(tmp_path: Path) -> None:
    """SIGKILL a writer at random points (20 trials; CASSTORE_LAYOUT_KILLS for more), while it changes files,
    removes groups and creates new groups' files: no file is ever half-written, and the next open repairs."""
    trials = int(os.environ.get("CASSTORE_LAYOUT_KILLS", "20"))
    rnd = random.Random(int.from_bytes(os.urandom(4), "big"))
    template = tmp_path / "template"
    groups = {}
    for g in range(8):
        cs = {f"c{i}": Contact(f"c{i}", f"g{g}", i) for i in range(20)}
        groups[f"g{g}"] = GroupState(Group(f"g{g}", "G", None, list(cs)), cs)
    with open_store(f"filesystem://{template}") as store:
        store.save_network_state("main", NetworkState(groups, "g0", "g0"))
    for trial in range(trials):
        base = tmp_path / f"t{trial}"
        shutil.copytree(template, base)
        ready, signal_ready = os.pipe()
        pid = os.fork()
        if pid == 0:  # the writer, killed somewhere in its loop
            try:
                os.close(ready)
                write_until_killed(base, trial, signal_ready)
            finally:
                os._exit(1)
        os.close(signal_ready)
        assert os.read(ready, 1) == b"r"
        os.close(ready)
        time.sleep(rnd.uniform(0, 0.1))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for path in (base / "networks").rglob("*.json"):  # new files too: never seen half-written
            json.loads(path.read_bytes())
        with open_store(f"filesystem://{base}") as store:
            assert_tree_is_head(store, base, "main", tmp_path / f"check-{trial}")
            assert list((base / "networks").rglob("*.tmp")) == []
            assert list((base / ".casstore" / "staging").iterdir()) == []


def write_until_killed(base: Path, seed: int, ready: int) -> None:
    """Batches of content changes, group deletions and creations, and snapshots, until killed."""
    store = open_store(f"filesystem://{base}")
    rnd = random.Random(seed)
    live = {f"g{g}" for g in range(8)}
    os.write(ready, b"r")
    step = 0
    while True:
        step += 1
        with store.batch("main") as batch:
            if step % 3 == 0 and len(live) > 3:
                victim = rnd.choice(sorted(live))
                batch.delete_group("main", victim)
                live.discard(victim)
            if step % 5 == 0:
                cs = {f"c{i}": Contact(f"c{i}", f"n{step}", -i) for i in range(15)}
                batch.save_group_state("main", f"n{step}", GroupState(Group(f"n{step}", "N", None, list(cs)), cs))
                live.add(f"n{step}")
            for _ in range(20):
                batch.save_contact_content("main", rnd.choice(sorted(live)), f"c{rnd.randrange(25)}", step)
        if step % 4 == 0:
            store.save_snapshot("main", f"step {step}")


def test_the_cli_exports_imports_and_reports_status(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sample = ROOT / "docs" / "examples" / "sample-network.json"
    cli("init")
    cli("import", "thermostat", str(sample))
    done = json.loads(cli("--json", "export", "thermostat", "--layout", "seed", "out").stdout)
    assert done["networks"]["thermostat"] == len(list((tmp_path / "out/networks/thermostat").rglob("*.json")))
    cli("import", "thermostat", "out", "--as", "copy")
    assert json.loads(cli("export", "copy").stdout) == json.loads(cli("export", "thermostat").stdout)
    assert json.loads(cli("--json", "import", "out").stdout) == {"networks": ["thermostat"]}
    url = f"filesystem://{tmp_path / 'P'}"
    cli("--store", url, "init")
    cli("--store", url, "import", "thermostat", "out", "--as", "main")
    target = next((tmp_path / "P/networks/main/groups").iterdir()) / "structure.json"
    edit(target, name="by hand")
    report = json.loads(cli("--json", "--store", url, "status").stdout)
    assert report == {
        "networks": {
            "main": {
                "modified": [f"groups/{target.parent.name}/structure.json"],
                "added": [],
                "removed": [],
                "unrestored_snapshots": {},
            }
        }
    }
    cli("--store", url, "set", "main", "x", "y", "1", code=1)  # refused: the edit is not committed
    assert "committed 1 files" in cli("--store", url, "commit", "main").stdout
    assert "nothing to commit" in cli("--store", url, "status").stdout
