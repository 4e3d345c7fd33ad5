"""``status``'s stat pass (#16): the helper interpreter and the in-process pass judge every file alike."""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from casstore.layout import statpass

Known = dict[str, tuple[str, int, int]]


def recorded(directory: Path) -> Known:
    """Every file's record as the bookkeeping keeps it: (hash, mtime ns, size)."""
    out = {}
    for path in directory.iterdir():
        info = path.lstat()
        out[path.name] = ("-", info.st_mtime_ns, info.st_size)
    return out


def make_tree(root: Path, dirs: int, files: int) -> list[tuple[str, Known]]:
    tree = []
    for d in range(dirs):
        directory = root / f"d{d}"
        directory.mkdir(parents=True)
        for f in range(files):
            (directory / f"f{f}.json").write_text(f'{{"v": {f}}}\n')
        tree.append((str(directory), recorded(directory)))
    return tree


def both(tree: list[tuple[str, Known]], monkeypatch: pytest.MonkeyPatch) -> list[statpass.DirFindings]:
    """The findings in process and through the helper; they must be equal."""
    monkeypatch.setattr(statpass, "HELPER_MIN_FILES", None)
    alone = statpass.stat_dirs(tree)
    monkeypatch.setattr(statpass, "HELPER_MIN_FILES", 0)
    monkeypatch.setattr(statpass, "_cores", lambda: 2)
    used: list[bool] = []
    answer = statpass._answer

    def counted(helper: object, count: int) -> list[statpass.DirFindings] | None:
        found = answer(helper, count)  # type: ignore[arg-type]
        used.append(found is not None)
        return found

    monkeypatch.setattr(statpass, "_answer", counted)
    shared = statpass.stat_dirs(tree)
    assert used == [True], "the helper answered"
    assert [_sorted(f) for f in shared] == [_sorted(f) for f in alone]
    return alone


def _sorted(found: statpass.DirFindings) -> object:
    return None if found is None else tuple(sorted(part) for part in found)


def test_every_kind_of_change_is_found_alike_in_process_and_by_the_helper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path, 6, 5)
    d = [Path(directory) for directory, _ in tree]
    (d[0] / "f1.json").write_text('{"v": 9}\n')  # same size, new mtime
    os.utime(d[0] / "f1.json", ns=(1, 1))
    (d[1] / "f2.json").write_text('{"v": "longer"}\n')  # new size
    (d[2] / "f3.json").unlink()  # removed
    (d[2] / "new.json").write_text("{}\n")  # added
    (d[3] / "f0.json").unlink()
    (d[3] / "f0.json").mkdir()  # no longer a regular file
    (d[3] / "f4.json").unlink()
    (d[3] / "f4.json").symlink_to(d[3] / "f1.json")  # nor a symlink
    for path in d[5].iterdir():
        path.unlink()
    d[5].rmdir()  # the whole directory gone
    found = both(tree, monkeypatch)
    assert found[0] == ([("f1.json", 9)], [], [])
    assert found[1] == ([("f2.json", 16)], [], [])
    assert found[2] == ([], ["new.json"], ["f3.json"])
    assert found[3] is not None and sorted(found[3][2]) == ["f0.json", "f4.json"] and found[3][:2] == ([], [])
    assert found[4] == ([], [], [])
    assert found[5] is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), dirs=st.integers(2, 6), files=st.integers(0, 12))
def test_random_edits_are_judged_alike(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch, seed: int, dirs: int, files: int
) -> None:
    rnd = random.Random(seed)
    tree = make_tree(tmp_path_factory.mktemp("t"), dirs, files)
    expected_moved: set[tuple[int, str]] = set()
    for at, (directory, known) in enumerate(tree):
        for name in list(known):
            kind = rnd.choice(["keep", "keep", "grow", "remove", "touch"])
            path = Path(directory) / name
            if kind == "grow":
                path.write_text(path.read_text() + " ")
                expected_moved.add((at, name))
            elif kind == "remove":
                path.unlink()
            elif kind == "touch":
                os.utime(path, ns=(7, 7))
                expected_moved.add((at, name))
        if rnd.random() < 0.3:
            (Path(directory) / f"added{at}.json").write_text("{}")
    found = both(tree, monkeypatch)
    moved = {(at, name) for at, f in enumerate(found) if f for name, _ in f[0]}
    assert moved == expected_moved


def test_a_helper_that_cannot_start_or_answers_nonsense_leaves_the_caller_to_stat_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_tree(tmp_path, 4, 3)
    (Path(tree[3][0]) / "f0.json").write_text("changed, longer\n")
    monkeypatch.setattr(statpass, "HELPER_MIN_FILES", None)
    expected = statpass.stat_dirs(tree)
    assert expected[3] == ([("f0.json", 16)], [], [])
    monkeypatch.setattr(statpass, "HELPER_MIN_FILES", 0)
    monkeypatch.setattr(statpass, "_cores", lambda: 2)
    for executable in (str(tmp_path / "no such python"), "/bin/echo", "/bin/false", "", None):
        monkeypatch.setattr(sys, "executable", executable)
        assert statpass.stat_dirs(tree) == expected
