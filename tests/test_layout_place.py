"""The layout's file placing: whole files swapped in, old inodes recycled only when nobody else can see them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from casstore.layout import place
from casstore.layout.place import Placer


def update(tree: Path, spares: Path, files: dict[str, bytes], remove: tuple[str, ...] = ()) -> None:
    placer = Placer(str(spares))
    for name in remove:
        placer.remove(str(tree / name))
    for name, data in files.items():
        st = placer.put(str(tree / name), data)
        assert (st.st_size, st.st_mtime_ns) == (len(data), os.stat(tree / name).st_mtime_ns)
    placer.finish()


def inodes(tree: Path, names: list[str]) -> set[int]:
    return {os.stat(tree / name).st_ino for name in names}


def test_replaced_files_are_recycled_by_later_updates_and_held_or_linked_ones_never(tmp_path: Path) -> None:
    tree, spares = tmp_path / "tree", tmp_path / "spares"
    tree.mkdir()
    names = [f"f{i}.json" for i in range(6)]
    update(tree, spares, {name: b"one " + name.encode() for name in names})
    first = inodes(tree, names)
    assert list(spares.iterdir()) == []  # new files: renamed in, nothing swapped out
    os.link(tree / "f1.json", tmp_path / "elsewhere")  # someone links the old f1 elsewhere
    with open(tree / "f0.json", "rb") as held:  # and a reader keeps the old f0 open
        update(tree, spares, {name: b"two " + name.encode() * 3 for name in names})
        assert inodes(tree, names).isdisjoint(first)  # swapped in whole: new inodes at every path
        assert {os.stat(p).st_ino for p in spares.iterdir()} == first  # the old files, whole, are the spares
        update(tree, spares, {name: b"3" for name in names})
        for name in names:
            assert (tree / name).read_bytes() == b"3"
        recycled = inodes(tree, names) & first
        assert recycled == first - {os.fstat(held.fileno()).st_ino, os.stat(tmp_path / "elsewhere").st_ino}
        assert held.read() == b"one f0.json"  # never overwritten: its spare was dropped instead
        assert os.fstat(held.fileno()).st_nlink == 0
        assert (tmp_path / "elsewhere").read_bytes() == b"one f1.json"


def test_remove_moves_the_file_to_the_spares_and_the_spares_are_capped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree, spares = tmp_path / "tree", tmp_path / "spares"
    tree.mkdir()
    update(tree, spares, {f"f{i}": b"x" for i in range(5)})
    monkeypatch.setattr(place, "KEPT", 3)
    update(tree, spares, {}, remove=("f0", "f1", "f2", "f3"))
    assert sorted(p.name for p in tree.iterdir()) == ["f4"]
    assert len(list(spares.iterdir())) == 3
    place.trim_spares(str(spares), keep=1)
    assert len(list(spares.iterdir())) == 1


def test_without_rename_exchange_files_are_renamed_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(place, "_renameat2", lambda: None)
    tree, spares = tmp_path / "tree", tmp_path / "spares"
    tree.mkdir()
    update(tree, spares, {"a": b"1", "b": b"2"})
    update(tree, spares, {"a": b"11", "b": b"22"})
    assert (tree / "a").read_bytes() == b"11" and (tree / "b").read_bytes() == b"22"
    assert list(spares.iterdir()) == []  # nothing swapped out: the old files were freed by the rename


def test_a_directory_at_a_files_path_is_never_swapped_out(tmp_path: Path) -> None:
    tree, spares = tmp_path / "tree", tmp_path / "spares"
    (tree / "f.json").mkdir(parents=True)
    (tree / "f.json" / "mine.txt").write_text("kept")
    placer = Placer(str(spares))
    with pytest.raises(IsADirectoryError):
        placer.put(str(tree / "f.json"), b"{}")
    placer.finish()
    assert (tree / "f.json" / "mine.txt").read_text() == "kept" and list(spares.iterdir()) == []
