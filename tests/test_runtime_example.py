"""docs/examples/propagation.py in every persistence mode: run in a subprocess, SIGKILLed after a
cycle, restored from the store, and compared with the same run replayed in memory (what a mode
had flushed when the kill came is exactly what the store holds)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import casstore

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "propagation.py"
CYCLES, KILL_AFTER = 30, 23


def example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("propagation_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_blend_modes_follow_bassline() -> None:
    ex = example()

    def grow(*values: int) -> dict[str, object]:
        return {"_tag": "GrowSet", "values": list(values)}

    def shrink(*values: int) -> dict[str, object]:
        return {"_tag": "ShrinkSet", "values": list(values)}

    assert ex.blend("accept-last", 1, 2) == 2
    assert ex.blend("merge", None, 5) == 5 and ex.blend("merge", 5, 5) == 5
    assert ex.merge(grow(1, 2), grow(2, 3)) == grow(1, 2, 3)
    assert ex.merge(shrink(1, 2, 3), shrink(2, 3, 4)) == shrink(2, 3)
    assert ex.merge({"a": grow(1), "b": 1}, {"a": grow(2), "c": 2}) == {"a": grow(1, 2), "b": 1, "c": 2}
    assert ex.merge([1], [2]) == [1, 2]
    for old, new in ((1, 2), (shrink(1), shrink(2)), (grow(1), shrink(1))):
        with pytest.raises(ex.Contradiction):
            ex.merge(old, new)


MODES = ("immediate", "batch", "interval", "manual", "transactional")


def test_the_example_killed_in_each_mode_restores_what_it_had_persisted(tmp_path: Path) -> None:
    ex = example()
    source = str(Path(casstore.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    runs = {  # all modes at once: one interpreter start of wall time
        mode: subprocess.Popen(
            [sys.executable, str(EXAMPLE), str(tmp_path / mode), mode, str(CYCLES), str(KILL_AFTER)], env=env
        )
        for mode in MODES
    }
    restored = {}
    for mode, proc in runs.items():
        assert proc.wait(timeout=120) == -signal.SIGKILL, mode
        restored[mode] = ex.show(str(tmp_path / mode))
    for mode in MODES:
        with casstore.open_store("memory://") as replay:
            ex.run(replay, mode, CYCLES, KILL_AFTER, kill=False)
            state = replay.load_network_state(ex.NET)
            assert state is not None
            expected = {cid: c.content for cid, c in sorted(state.groups[ex.GROUP].contacts.items())}
        assert restored[mode] == expected, mode
        assert restored[mode]["history"]["_tag"] == "GrowSet"
        assert restored[mode]["mirror"] == restored[mode]["history"]  # the bidirectional wire carried it back
    # immediate and interval had everything through the kill; manual only its last save (after cycle 20)
    assert restored["immediate"]["display"] == restored["interval"]["display"] == ex.reading(KILL_AFTER)
    assert restored["manual"]["display"] == ex.reading(20)
    shown = subprocess.run(
        [sys.executable, str(EXAMPLE), str(tmp_path / "manual"), "--show"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(shown.stdout) == restored["manual"]
