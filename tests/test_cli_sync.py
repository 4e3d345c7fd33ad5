"""The replication verbs of the CLI: remote, push, pull, clone."""

from __future__ import annotations

import json
from pathlib import Path

import casstore

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sample-network.json"


def test_remote_push_pull_and_clone(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("--store", "here", "init")
    cli("--store", "here", "import", "thermostat", str(SAMPLE))
    cli("--store", "here", "snapshot", "thermostat", "-m", "imported")
    cli("--store", "there", "init")
    cli("--store", "here", "remote", "add", "origin", "there")
    assert f"lmdb://{tmp_path / 'there'}" in cli("--store", "here", "remote", "list").stdout

    pushed = cli("--store", "here", "push").stdout
    assert "thermostat" in pushed and "created" in pushed and "1 snapshots copied" in pushed
    assert "0 objects" in cli("--store", "here", "push", "origin", "thermostat").stdout

    cli("clone", "here", "copy")
    cli("--store", "copy", "set", "thermostat", "sensors", "temperature", "40")
    assert "updated" in cli("--store", "copy", "push").stdout  # origin of the clone is "here"
    assert "up-to-date" in cli("--store", "here", "pull", "there").stdout  # there = origin: only here moved
    # "there" never exchanged with "here" from its own side: no agreed head, so the lease refuses
    assert "diverged" in cli("--store", "there", "pull", "here", code=1).stdout
    assert "updated" in cli("--store", "there", "pull", "here", "--force").stdout
    with casstore.open_store(tmp_path / "here", create=False) as here:
        assert here.load_contact_content("thermostat", "sensors", "temperature") == 40
        assert here.list_snapshots("thermostat")[0].label == "imported"


def test_diverged_push_exits_non_zero_and_force_moves_it(cli) -> None:  # type: ignore[no-untyped-def]
    cli("--store", "a", "init")
    cli("--store", "a", "import", "net", str(SAMPLE))
    cli("clone", "a", "b")
    cli("--store", "a", "set", "net", "sensors", "temperature", "1")
    cli("--store", "b", "set", "net", "sensors", "temperature", "2")
    cli("--store", "b", "snapshot", "net", "-m", "b's")
    with casstore.open_store("b", create=False) as b:
        b_head, b_snapshot = b.network_stats("net").head, b.list_snapshots("net")[0].id
    with casstore.open_store("a", create=False) as a:
        a_head = a.network_stats("net").head
    result = cli("--store", "b", "push", code=1)
    # was: "pull first, or push --force" (and pull said "push first, or pull --force"): advice in circles
    assert "diverged" in result.stdout and "pull first" not in result.stderr
    assert f"here: {b_head[:16]}" in result.stderr and f"origin: {a_head[:16]}" in result.stderr
    assert "agreed: bafyr4i" in result.stderr and f"snapshots only here: 1 ({b_snapshot[:16]})" in result.stderr
    assert "`casstore pull origin net --force`: this store takes origin's state" in result.stderr
    assert "`casstore push origin net --force`: origin takes this store's state" in result.stderr
    as_json = cli("--store", "b", "--json", "push", code=1)
    diverged = json.loads(as_json.stdout)["diverged"]["net"]
    assert diverged["local_head"] == b_head and diverged["remote_head"] == a_head
    assert diverged["agreed_head"].startswith("bafyr4i") and diverged["remote_only_snapshots"] == []
    assert json.loads(as_json.stderr)["error"]["code"] == "DIVERGED"
    pulled = cli("--store", "b", "pull", code=1)
    assert "here: " + b_head[:16] in pulled.stderr and "before this pull" in pulled.stderr
    assert "updated" in cli("--store", "b", "push", "--force").stdout
    with casstore.open_store("a", create=False) as a:
        assert a.load_contact_content("net", "sensors", "temperature") == 2


def test_bad_remotes_are_one_line_errors(cli) -> None:  # type: ignore[no-untyped-def]
    cli("--store", "a", "init")
    assert "no remote named 'origin'" in cli("--store", "a", "push", code=1).stderr
    assert "STORE_NOT_FOUND" in cli("--store", "a", "remote", "add", "x", "nowhere", code=1).stderr
    cli("--store", "b", "init")
    cli("--store", "a", "remote", "add", "x", "b")
    cli("--store", "c", "init")
    assert "REMOTE_EXISTS" in cli("--store", "a", "remote", "add", "x", "c", code=1).stderr
    cli("--store", "a", "remote", "remove", "x")
    assert "REMOTE_NOT_FOUND" in cli("--store", "a", "remote", "remove", "x", code=1).stderr
    cli("--store", "a", "import", "net", str(SAMPLE))
    assert "clone into a new path" in cli("clone", "b", "a", code=2).output


def test_a_failed_clone_leaves_nothing_behind_and_can_be_retried(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from casstore import codec
    from casstore.model.refs import head_ref
    from casstore.store.lmdb import LmdbStore

    cli("--store", "here", "init")
    for network in ("a", "b"):
        cli("--store", "here", "import", network, str(SAMPLE))
    cli("--store", "here", "set", "b", "sensors", "temperature", '"only in b"')
    with LmdbStore(tmp_path / "here") as source:
        victim = source.refs.get(head_ref("b"))
        assert victim is not None
        frame = source.blobs.get_frames([victim])[0]
        assert frame is not None
        source.blobs.delete_many([victim])
        source.blobs.put_frames([(victim, b"\x00" + codec.encode_value("not b's root"))])

    message = cli("clone", "here", "new/copy", code=1).stderr
    assert "corrupt" in message and "Traceback" not in message
    assert not (tmp_path / "new").exists()  # the directories the clone made are gone
    cli("--store", "empty", "init")
    cli("clone", "here", "empty", code=1)
    with LmdbStore(tmp_path / "empty") as empty:
        assert empty.refs.list() == {}  # no network, no origin: as it was
    with LmdbStore(tmp_path / "here") as source:  # the source repaired, the same clone now works
        source.blobs.delete_many([victim])
        source.blobs.put_frames([(victim, frame)])
    cli("clone", "here", "empty")
    with casstore.open_store(tmp_path / "empty", create=False) as copy:
        assert sorted(copy.list_networks()) == ["a", "b"]
        assert copy.load_contact_content("b", "sensors", "temperature") == "only in b"
