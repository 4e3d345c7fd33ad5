"""Every verb run as a user runs it (``python -m casstore`` in a subprocess), with and without ``--json``.

The JSON documents are checked against the Python API's answer for the same store.  Verbs are
grouped several to a test: each subprocess costs an interpreter start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import casstore
from casstore import codec

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sample-network.json"


def run(cwd: Path, *args: str, code: int = 0, input: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "COLUMNS": "200"}
    env.pop("CASSTORE_URL", None)
    proc = subprocess.run(
        [sys.executable, "-m", "casstore", *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def doc(cwd: Path, *args: str, code: int = 0, input: str | None = None) -> Any:
    """Run with ``--json`` (after the verb, or before it when the args start with a global option)."""
    proc = run(cwd, *args, "--json", code=code, input=input)
    return json.loads(proc.stdout)


def test_network_verbs_json_matches_python(tmp_path: Path) -> None:
    assert doc(tmp_path, "init") == {"store": f"lmdb://{tmp_path / '.casstore'}", "created": True}
    assert doc(tmp_path, "import", "t", str(SAMPLE)) == {"network": "t", "groups": 4, "contacts": 9}
    first = doc(tmp_path, "snapshot", "t", "-m", "imported")
    assert first["network"] == "t" and first["label"] == "imported"
    plain_snapshot = run(tmp_path, "snapshot", "t").stdout.strip()
    assert doc(tmp_path, "set", "t", "sensors", "temperature", '{"celsius": 30}')["content"] == {"celsius": 30}
    assert "set t/sensors/note" in run(tmp_path, "set", "t", "sensors", "note", "--string", "hi").stdout

    with casstore.open_store(tmp_path / ".casstore", create=False) as store:
        state = store.load_network_state("t")
        snapshots = store.list_snapshots("t")
        changes = store.diff("t", first["id"], None)
        sensor_banks = store.query_groups("t", type="sensor-bank")
        head = store.refs.get("networks/t/head")
        size = store.network_root(head)["size"] if head else 0
    assert state is not None

    assert doc(tmp_path, "networks") == {
        "networks": [{"id": "t", "head": codec.format_id(head) if head else None, "size": size, "snapshots": 2}]
    }
    assert "t" in run(tmp_path, "networks").stdout

    shown = doc(tmp_path, "show", "t")
    assert shown["current_group_id"] == state.current_group_id
    assert {g["id"]: g["contacts"] for g in shown["groups"]} == {g: len(s.contacts) for g, s in state.groups.items()}
    group = doc(tmp_path, "show", "t", "--group", "sensors")
    assert group["group"] == json.loads(json.dumps(dataclasses.asdict(state.groups["sensors"].group)))
    assert set(group["contacts"]) == set(state.groups["sensors"].contacts)
    assert group["wires"]["w-temp"]["from_id"] == state.groups["sensors"].wires["w-temp"].from_id

    got = doc(tmp_path, "get", "t", "sensors", "temperature")
    assert got == {"network": "t", "group_id": "sensors", "id": "temperature", "content": {"celsius": 30}}
    assert json.loads(run(tmp_path, "get", "t", "sensors", "temperature").stdout) == {"celsius": 30}
    full = doc(tmp_path, "get", "t", "sensors", "readings", "--full")
    expected = dataclasses.asdict(state.groups["sensors"].contacts["readings"])
    assert full == {"network": "t", **expected}
    assert json.loads(run(tmp_path, "get", "t", "sensors", "readings", "--full").stdout) == expected

    queried = doc(tmp_path, "query", "t", "--type", "sensor-bank")
    assert [g["id"] for g in queried["groups"]] == [g.group.id for g in sensor_banks] == ["sensors"]
    assert "sensors" in run(tmp_path, "query", "t", "--type", "sensor-bank").stdout
    assert doc(tmp_path, "query", "t", "--tag", "hardware", "--author", "nobody")["groups"] == []

    logged = doc(tmp_path, "log", "t")
    assert [s["id"] for s in logged["snapshots"]] == [s.id for s in snapshots]
    assert logged["snapshots"][-1]["created_at"] == snapshots[-1].created_at.isoformat()
    assert plain_snapshot in run(tmp_path, "log", "t").stdout

    diffed = doc(tmp_path, "diff", "t", first["id"])
    assert diffed["from"] == first["id"] and diffed["to"] is None and diffed["total"] == len(changes)
    assert [(c["kind"], c["group_id"], c["item_id"]) for c in diffed["changes"]] == [
        (c.kind, c.group_id, c.item_id) for c in changes
    ]
    stat = doc(tmp_path, "diff", "t", first["id"][:12], "--stat")
    assert stat["groups"] == {"sensors": {"contact-added": 1, "contact-updated": 1}} and stat["total"] == 2
    assert "2 change(s) in 1 group(s)" in run(tmp_path, "diff", "t", first["id"], "--stat").stdout


def test_object_verbs_json(tmp_path: Path) -> None:
    run(tmp_path, "init")
    put = doc(tmp_path, "put", "-", input='{"a": [1, 2]}')
    assert put == {"id": codec.format_id(codec.hash_bytes(codec.encode_value({"a": [1, 2]})))}
    assert run(tmp_path, "put", "-", input='{"a": [1, 2]}').stdout.strip() == put["id"]
    assert doc(tmp_path, "cat", put["id"][:12]) == {"id": put["id"], "value": {"a": [1, 2]}}
    with casstore.open_store(tmp_path / ".casstore", create=False) as store:
        objects = store.blobs.stats().objects
        refs = len(store.refs.list())
    stats = doc(tmp_path, "stats")
    assert stats["objects"] == objects and stats["refs"] == refs and stats["store"].startswith("lmdb://")
    assert "objects" in run(tmp_path, "stats").stdout
    verified = doc(tmp_path, "verify")
    assert verified["ok"] is True and verified["objects"] == objects and verified["corrupt"] == []
    assert "ok:" in run(tmp_path, "verify").stdout
    assert run(tmp_path, "--quiet", "verify").stdout == ""
    dry = doc(tmp_path, "gc", "--dry-run", "--grace", "0")
    assert dry["dry_run"] is True and dry["unreachable"] == 1 and dry["swept"] == 1
    assert "swept 1 objects" in run(tmp_path, "gc", "--grace", "0").stdout


def test_replication_image_and_delete_verbs_json(tmp_path: Path) -> None:
    run(tmp_path, "--store", "a", "init")
    run(tmp_path, "--store", "a", "import", "t", str(SAMPLE))
    run(tmp_path, "--store", "b", "init")
    added = doc(tmp_path, "--store", "a", "remote", "add", "origin", "b")
    assert added == {"name": "origin", "url": f"lmdb://{tmp_path / 'b'}"}
    assert doc(tmp_path, "--store", "a", "remote", "list") == {"remotes": {"origin": added["url"]}}
    assert "origin\t" in run(tmp_path, "--store", "a", "remote", "list").stdout
    pushed = doc(tmp_path, "--store", "a", "push")
    assert pushed["verb"] == "push" and pushed["remote"] == "origin" and pushed["networks"] == {"t": "created"}
    assert pushed["objects_sent"] > 0
    assert "up-to-date" in run(tmp_path, "--store", "a", "push", "origin", "t").stdout
    assert doc(tmp_path, "--store", "a", "pull")["networks"] == {"t": "up-to-date"}
    assert "up-to-date" in run(tmp_path, "--store", "a", "pull").stdout
    cloned = doc(tmp_path, "clone", "a", "c")
    assert cloned["networks"] == {"t": "created"} and cloned["url"] == f"lmdb://{tmp_path / 'a'}"
    assert "cloned" in run(tmp_path, "clone", "a", "d").stdout

    image = doc(tmp_path, "--store", "a", "archive", "t", "t.car.zst")
    with casstore.open_store(tmp_path / "a", create=False) as store:
        assert store.list_snapshots("t") == []  # the image's snapshot exists only in the image (#11 case 3)
    assert image["objects"] > 0 and image["target"] == "t.car.zst"
    assert "archived snapshot" in run(tmp_path, "--store", "a", "archive", "t", "t2.car").stdout
    restored = doc(tmp_path, "--store", "b", "restore", "t.car.zst", "--as", "t2")
    assert restored["network"] == "t2" and restored["snapshot_id"] == image["snapshot_id"]
    assert "restored t3" in run(tmp_path, "--store", "b", "restore", "t2.car", "--as", "t3").stdout

    snap = run(tmp_path, "--store", "b", "snapshot", "t").stdout.strip()
    deleted = doc(tmp_path, "--store", "b", "delete", "snapshot", "t", snap[:12], "--yes")
    assert deleted == {"deleted": {"kind": "snapshot", "network": "t", "id": snap}}
    gone = doc(tmp_path, "--store", "b", "delete", "contact", "t", "sensors", "humidity", "--yes")
    assert gone["deleted"] == {
        "kind": "contact",
        "network": "t",
        "group_id": "sensors",
        "id": "humidity",
        "wires_deleted": [],
    }
    said = run(tmp_path, "--store", "b", "delete", "group", "t", "controller", "--yes").stdout
    assert "deleted group t/controller (3 contacts, 1 wires)" in said
    assert doc(tmp_path, "--store", "b", "delete", "network", "t2", "--yes")["deleted"]["kind"] == "network"
    assert (
        "deleted network t3 and 1 snapshot(s)" in run(tmp_path, "--store", "b", "delete", "network", "t3", "-y").stdout
    )
    with casstore.open_store(tmp_path / "b", create=False) as store:
        assert store.list_networks() == ["t"]
        assert snap not in [s.id for s in store.list_snapshots("t")]
        sensors = store.load_group_state("t", "sensors")
        assert sensors is not None and "humidity" not in sensors.contacts
        assert "humidity" not in sensors.group.contact_ids
        assert store.load_group_state("t", "controller") is None
    removed = doc(tmp_path, "--store", "a", "remote", "remove", "origin")
    assert removed == {"removed": "origin"}


def test_json_errors_keep_exit_codes(tmp_path: Path) -> None:
    run(tmp_path, "init")
    run(tmp_path, "import", "t", str(SAMPLE))
    for args, code, error in [
        (("show", "nope"), 1, "NETWORK_NOT_FOUND"),
        (("get", "t", "sensors", "nope"), 1, "CONTACT_NOT_FOUND"),
        (("get", "t", "nope", "x"), 1, "GROUP_NOT_FOUND"),
        (("set", "t", "sensors", "x", "Now in NYC"), 1, "INVALID_JSON"),
        (("delete", "snapshot", "t", "bafyr4izzzzzzzzz", "--yes"), 1, "SNAPSHOT_NOT_FOUND"),
        (("--store", "s3:/bkt", "stats"), 1, "INVALID_STORE_URL"),
        (("networks", "--nope"), 2, "USAGE_ERROR"),
    ]:
        proc = run(tmp_path, "--json", *args, code=code)
        assert proc.stdout == ""
        assert json.loads(proc.stderr)["error"]["code"] == error, proc.stderr
        assert set(json.loads(proc.stderr)["error"]) == {"code", "message"}
    plain = run(tmp_path, "get", "t", "sensors", "nope", code=1)
    assert plain.stderr.startswith("error: contact 'nope' not found")


def test_history_stats_and_one_contact_verbs_json(tmp_path: Path) -> None:
    run(tmp_path, "init")
    run(tmp_path, "import", "t", str(SAMPLE))
    first = run(tmp_path, "snapshot", "t", "-m", "imported").stdout.strip()
    run(tmp_path, "set", "t", "sensors", "temperature", '{"celsius": 30}')
    run(tmp_path, "snapshot", "t", "-m", "warmer")
    run(tmp_path, "snapshot", "t")  # unchanged: collapses into "warmer"
    run(tmp_path, "set", "t", "sensors", "temperature", "null")
    with casstore.open_store(tmp_path / ".casstore", create=False) as store:
        history = store.contact_history("t", "sensors", "temperature")
        figures = store.network_stats("t")
        temperature = store.load_contact("t", "sensors", "temperature")
    assert temperature is not None and temperature.content is None

    got = doc(tmp_path, "history", "t", "sensors", "temperature")
    assert got["network"] == "t" and got["group_id"] == "sensors" and got["id"] == "temperature"
    assert [(e["snapshot_id"], e["label"], e["content"], e["exists"]) for e in got["history"]] == [
        (e.snapshot_id, e.label, e.content, e.exists) for e in history
    ]
    assert [e["content"] for e in got["history"]] == [None, {"celsius": 30}, {"celsius": 21.5}]
    assert got["history"][-1]["snapshot_id"] == first
    assert got["history"][1]["created_at"] == history[1].created_at.isoformat()  # type: ignore[union-attr]
    assert got["history"][0]["contact"] == json.loads(json.dumps(dataclasses.asdict(temperature)))
    assert doc(tmp_path, "history", "t", "sensors", "temperature", "-n", "1")["history"] == got["history"][:1]
    table = run(tmp_path, "history", "t", "sensors", "temperature").stdout
    assert "(current state)" in table and first in table and "warmer" in table and '{"celsius":30}' in table
    error = run(tmp_path, "--json", "history", "t", "sensors", "nope", code=1)
    assert json.loads(error.stderr)["error"]["code"] == "CONTACT_NOT_FOUND"
    assert json.loads(run(tmp_path, "--json", "history", "t", "sensors", "x", "-n", "0", code=2).stderr)["error"]

    stats = doc(tmp_path, "stats", "t")
    assert stats == {
        "network": "t",
        "head": figures.head,
        "groups": figures.groups,
        "contacts": figures.contacts,
        "wires": figures.wires,
        "logical_bytes": figures.logical_bytes,
        "snapshots": 3,
        "current_group_id": figures.current_group_id,
        "root_group_id": figures.root_group_id,
        "last_snapshot_at": figures.last_snapshot_at.isoformat(),  # type: ignore[union-attr]
        "changed_since_snapshot": True,
        "last_change_at": None,
    }
    assert (stats["groups"], stats["contacts"], stats["wires"]) == (4, 9, 2)
    shown = run(tmp_path, "stats", "t").stdout
    assert "contacts" in shown and "after the last snapshot" in shown and figures.head in shown
    assert "objects" in doc(tmp_path, "stats"), "without NET, stats stays the store's"
    error = run(tmp_path, "--json", "stats", "nope", code=1)
    assert json.loads(error.stderr)["error"]["code"] == "NETWORK_NOT_FOUND"

    # get tells a null content from a missing contact
    assert doc(tmp_path, "get", "t", "sensors", "temperature")["content"] is None
    assert run(tmp_path, "get", "t", "sensors", "temperature").stdout.strip() == "null"

    # delete contact: the model's delete_contact, the group's wires naming it go too
    gone = doc(tmp_path, "delete", "contact", "t", "sensors", "temperature", "--yes")
    assert gone["deleted"]["wires_deleted"] == ["w-temp"]
    with casstore.open_store(tmp_path / ".casstore", create=False) as store:
        sensors = store.load_group_state("t", "sensors")
        assert sensors is not None and "temperature" not in sensors.contacts and "w-temp" not in sensors.wires
        assert "temperature" not in sensors.group.contact_ids and "w-temp" not in sensors.group.wire_ids
        assert [e.exists for e in store.contact_history("t", "sensors", "temperature")] == [False, True, True]
    said = run(tmp_path, "delete", "contact", "t", "sensors", "humidity", "--yes").stdout
    assert said.strip() == "deleted contact t/sensors/humidity"

    # an ambiguous snapshot prefix is the model's InvalidId, naming the candidates
    ids = {first}
    while len({i[:8] for i in ids}) == len(ids):
        ids.add(run(tmp_path, "snapshot", "t").stdout.strip())
    prefix = next(p for p in {i[:8] for i in ids} if sum(i.startswith(p) for i in ids) > 1)
    error = run(tmp_path, "--json", "diff", "t", prefix, code=1)
    message = json.loads(error.stderr)["error"]
    assert message["code"] == "INVALID_ID" and all(i in message["message"] for i in ids if i.startswith(prefix))
