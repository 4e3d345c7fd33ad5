"""The network verbs of the CLI: import, set, snapshot, log, diff, show, export, gc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "sample-network.json"


@pytest.fixture
def cli(cli):  # type: ignore[no-untyped-def]
    """The shared CLI runner (conftest), in a directory with a fresh store."""
    cli("init")
    return cli


def test_main_job(cli) -> None:  # type: ignore[no-untyped-def]
    assert "4 groups, 9 contacts" in cli("import", "thermostat", str(SAMPLE)).stdout
    first = cli("snapshot", "thermostat", "-m", "imported").stdout.strip()
    cli("set", "thermostat", "sensors", "temperature", '{"celsius": 23.5}')
    cli("set", "thermostat", "controller", "new-contact", "[1, 2]")
    second = cli("snapshot", "thermostat", "-m", "adjusted").stdout.strip()
    log = cli("log", "thermostat").stdout
    assert log.index(second) < log.index(first) and "adjusted" in log and "imported" in log
    diff = cli("diff", "thermostat", first, second).stdout
    assert "contact-updated" in diff and "temperature" in diff and "contact-added" in diff
    assert "2 change(s)" in diff
    assert "0 change(s)" in cli("diff", "thermostat", second[:12]).stdout
    assert "thermostat" in cli("networks").stdout
    assert "sensor-bank" in cli("show", "thermostat").stdout
    shown = cli("show", "thermostat", "--group", "sensors").stdout
    assert "23.5" in shown and "w-temp" in shown
    exported = json.loads(cli("export", "thermostat", "--snapshot", first).stdout)
    exported_times = exported.pop("network")
    assert set(exported_times) == {"createdAt", "updatedAt"}  # the times the store keeps (#16)
    assert exported == json.loads(SAMPLE.read_text())
    current = json.loads(cli("export", "thermostat").stdout)
    assert current["groups"]["sensors"]["contacts"]["temperature"]["content"] == {"celsius": 23.5}
    assert current["groups"]["controller"]["group"]["contactIds"][-1] == "new-contact"
    assert "ok:" in cli("verify").stdout
    dry = cli("gc", "--grace", "0", "--dry-run").stdout
    assert "would sweep" in dry
    assert "swept" in cli("gc", "--grace", "0").stdout
    assert "ok:" in cli("verify").stdout
    kept = json.loads(cli("export", "thermostat", "--snapshot", first).stdout)
    assert kept.pop("network") == {"createdAt": exported_times["createdAt"], "updatedAt": exported_times["updatedAt"]}
    assert kept == json.loads(SAMPLE.read_text())


def test_import_round_trips_through_export(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cli("import", "net", str(SAMPLE))
    exported = cli("export", "net").stdout
    (tmp_path / "again.json").write_text(exported)
    cli("import", "copy", str(tmp_path / "again.json"))
    assert json.loads(cli("export", "copy").stdout) == json.loads(exported)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "expected an object"),
        ('{"groups": {"g": {"group": {"id": "g"}}}}', "missing 'name'"),
        ('{"groups": {"g": {"group": {"name": "G", "contactIds": [1]}}}}', "contactIds[0]"),
        (
            '{"groups": {"g": {"group": {"name": "G"}, "contacts": {"c": {"content": 1, "blendMode": "maybe"}}}}}',
            "blend_mode",
        ),
        ('{"groups": {"g": {"group": {"name": "G"}, "wires": {"w": {"fromId": "a"}}}}}', "missing 'toId'"),
    ],
)
def test_malformed_import_is_one_line_and_writes_nothing(cli, tmp_path: Path, document: str, words: str) -> None:  # type: ignore[no-untyped-def]
    cli("import", "net", str(SAMPLE))
    before = cli("export", "net").stdout
    (tmp_path / "bad.json").write_text(document)
    result = cli("import", "net", str(tmp_path / "bad.json"), code=1)
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli("export", "net").stdout == before


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("show", "nope"), "network 'nope' not found"),
        (("log", "nope"), "not found"),
        (("snapshot", "nope"), "NETWORK_NOT_FOUND"),
        (("set", "nope", "g", "c", "1"), "NETWORK_NOT_FOUND"),
        (("set", "net", "nope", "c", "1"), "GROUP_NOT_FOUND"),
        (("set", "net", "sensors", "c", "{bad"), "not valid JSON"),
        (("diff", "net", "bafyr4"), "8 or more"),
        (("diff", "net", "bafyr4izzzzzzz"), "matches no snapshot"),
        (("export", "net", "--snapshot", "bafyr4izzzzzzz"), "matches no snapshot"),
        (("show", "net", "--group", "nope"), "group 'nope' not found"),
        (("gc", "--grace", "-1"), "grace period"),
    ],
)
def test_network_verb_errors(cli, args, words) -> None:  # type: ignore[no-untyped-def]
    cli("import", "net", str(SAMPLE))
    result = cli(*args, code=1)
    assert words in result.stderr and "Traceback" not in result.stderr
