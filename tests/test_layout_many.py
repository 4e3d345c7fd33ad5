"""Verbs over several networks of a layout (``import DIR``, ``commit`` without NET): a malformed file in
any one of them applies nothing to any, and a named network that exists nowhere is an error."""

from __future__ import annotations

import json
from pathlib import Path

from test_layout_edits import edit, small_state

from casstore import open_store
from casstore.model.refs import head_ref


def _layout(tmp_path: Path) -> Path:
    """A filesystem:// store at ``tmp_path/P`` holding networks ``a`` and ``b``."""
    store = open_store(f"filesystem://{tmp_path / 'P'}")
    store.save_network_state("a", small_state())
    store.save_network_state("b", small_state())
    store.close()
    return tmp_path / "P"


def test_import_dir_with_one_malformed_network_imports_none(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = _layout(tmp_path)
    contact = base / "networks/b/groups/g1/contacts/c0.json"
    original = contact.read_bytes()
    contact.write_text("{not json")
    cli("init")
    message = cli("import", str(base), code=1).stderr
    assert "INVALID_LAYOUT" in message and "networks/b/groups/g1/contacts/c0.json" in message
    assert json.loads(cli("--json", "networks").stdout)["networks"] == []  # not even `a`
    contact.unlink()  # every file reads, but b's group lists a contact it no longer has: refused when encoded
    message = cli("import", str(base), code=1).stderr
    assert "'c0' is listed but the group has no such contact" in message
    assert json.loads(cli("--json", "networks").stdout)["networks"] == []
    contact.write_bytes(original)
    assert json.loads(cli("--json", "import", str(base)).stdout) == {"networks": ["a", "b"]}


def test_commit_of_every_network_applies_none_when_one_file_is_malformed(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = _layout(tmp_path)
    url = f"filesystem://{base}"
    edit(base / "networks/a/groups/g0/contacts/c1.json", content="a good edit")
    (base / "networks/b/groups/g2/contacts/c3.json").write_text('{"id": "c3", "content": 1, "blendMode": 7}')
    store = open_store(url)
    heads = {net: store.refs.get(head_ref(net)) for net in ("a", "b")}
    store.close()
    message = cli("--store", url, "commit", code=1).stderr
    assert "INVALID_LAYOUT" in message and "networks/b/groups/g2/contacts/c3.json" in message
    store = open_store(url)
    assert {net: store.refs.get(head_ref(net)) for net in ("a", "b")} == heads  # `a`'s good edit waits too
    store.close()
    pending = json.loads(cli("--json", "--store", url, "status").stdout)["networks"]
    assert pending["a"]["modified"] == ["groups/g0/contacts/c1.json"]


def test_status_and_commit_of_a_network_that_exists_nowhere_fail(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = f"filesystem://{_layout(tmp_path)}"
    for verb in ("status", "commit"):
        message = cli("--store", url, verb, "nosuch", code=1).stderr
        assert "network 'nosuch' not found" in message and "NETWORK_NOT_FOUND" in message, message
