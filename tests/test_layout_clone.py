"""The layout after ``git clone`` (#16): the store rebuilt from the files on open, snapshots restored or reported."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from click.testing import CliRunner
from test_layout_edits import git

from casstore import open_store
from casstore.cli import main
from casstore.layout import network_status
from casstore.layout.edits import commit, filesystem_store
from casstore.model import Contact, Group, GroupState, NetworkState
from casstore.model.refs import head_ref


def state(value: int) -> NetworkState:
    cs = {f"c{i}": Contact(f"c{i}", "g", {"v": value, "i": i}) for i in range(3)}
    return NetworkState({"g": GroupState(Group("g", "G", None, list(cs)), cs)}, "g", "g", metadata={"v": value})


def test_a_clone_opens_with_its_network_and_the_snapshots_its_history_holds(tmp_path: Path) -> None:
    base = tmp_path / "P"
    with open_store(f"filesystem://{base}") as store:
        store.save_network_state("main", state(1))
        first = store.save_snapshot("main", "first")  # its state is committed to git below
        git(base, "init", "-q")
        (base / ".gitignore").write_text(".casstore/\n")
        git(base, "add", "-A")
        git(base, "commit", "-qm", "one")
        store.save_contact_content("main", "g", "c0", "two")
        lost = store.save_snapshot("main", "never in git")  # its state never reaches git
        store.save_contact_content("main", "g", "c1", "three")
        last = store.save_snapshot("main")  # of the state committed below (unlabelled)
        git(base, "add", "-A")
        git(base, "commit", "-qm", "three")
        head = store.refs.get(head_ref("main"))
        expected = {sid: store.load_snapshot("main", sid) for sid in (first, lost, last)}
        current = store.load_network_state("main")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(base), str(clone)], check=True)
    assert not (clone / ".casstore").exists()

    with open_store(f"filesystem://{clone}") as cloned:  # opening rebuilds the store from the files
        assert cloned.list_networks() == ["main"] and cloned.refs.get(head_ref("main")) == head
        assert cloned.load_network_state("main") == current
        restored = {info.id for info in cloned.list_snapshots("main")}
        assert restored == {first, last}  # last: the current state; first: read from the git history
        assert all(cloned.load_snapshot("main", sid) == expected[sid] for sid in restored)
        status = network_status(filesystem_store(cloned), "main")
        assert not status and len(status.unrestored) == 1  # the lost one: reported, not an edit
        cloned.save_contact_content("main", "g", "c2", "a write goes on")
    assert git(clone, "status", "--porcelain").splitlines() == [
        " M networks/main/groups/g/contacts/c2.json",
        " M networks/main/metadata.json",
    ]

    result = CliRunner().invoke(main, ["--json", "--store", f"filesystem://{clone}", "status", "main"])
    assert result.exit_code == 0, result.output
    unrestored = json.loads(result.stdout)["networks"]["main"]["unrestored_snapshots"]
    assert list(unrestored) == status.unrestored
    assert "is not in this store" in next(iter(unrestored.values()))  # status does not search git: commit does
    with open_store(f"filesystem://{clone}") as reopened:
        report = commit(reopened, "main")
    assert "neither in this store nor in the git history" in report.unrestored[status.unrestored[0]]
    assert json.loads((clone / "networks/main" / status.unrestored[0]).read_text())["id"] == lost
    result = CliRunner().invoke(main, ["--store", f"filesystem://{clone}", "status", "main"])
    assert "snapshot not restored" in result.stdout and "nothing to commit" in result.stdout


def test_commit_restores_a_snapshot_whose_state_arrives_later(tmp_path: Path) -> None:
    """A snapshot file copied in whose root the store lacks is reported; once the state is saved, commit restores it."""
    source = tmp_path / "source"
    with open_store(f"filesystem://{source}") as store:
        store.save_network_state("main", state(1))
        snapshot = store.save_snapshot("main", "one")
        (name,) = [p.name for p in (source / "networks/main/snapshots").iterdir()]
    base = tmp_path / "P"
    with open_store(f"filesystem://{base}") as store:
        store.save_network_state("main", state(2))
        (base / "networks/main/snapshots").mkdir()
        (base / "networks/main/snapshots" / name).write_bytes((source / "networks/main/snapshots" / name).read_bytes())
        report = commit(store, "main")
        assert report.restored == [] and "neither in this store" in report.unrestored[f"snapshots/{name}"]
        store.save_network_state("main", state(1), keep_times=True)  # not the same times: a different root
        assert commit(store, "main").unrestored
        with open_store(f"filesystem://{source}") as old:
            store.save_network_state("main", old.load_network_state("main"), keep_times=True)  # type: ignore[arg-type]
        assert commit(store, "main").restored == [f"snapshots/{name}"]
        assert [info.id for info in store.list_snapshots("main")] == [snapshot]
        assert not network_status(filesystem_store(store), "main", full=True)
