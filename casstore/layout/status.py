"""Which files of a network's tree were changed, added or removed by hand since the tree was written.

A file counts as changed when its bytes hash differently from what the
bookkeeping recorded (:mod:`casstore.layout.manifest`).  As git does, a file
whose mtime and size are those recorded is trusted unchanged without reading
it; ``full=True`` reads and hashes every file.  Only the layout's own files
count (``metadata.json``, ``groups/*/structure.json``, ``groups/*/attributes.json``,
``groups/*/contacts/*.json``, ``snapshots/*.json``); anything else in the
directory (an editor's swap file, a ``.gitkeep``) is ignored.  A snapshot file
the bookkeeping does not know is no edit either: it names a snapshot the store
lacks (a clone's; see :mod:`casstore.layout.snapshots`) and is listed apart, as
``unrestored``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from types import MappingProxyType

import blake3

from casstore.layout.manifest import Entry
from casstore.layout.statpass import stat_dirs

__all__ = ["Status", "is_layout_path", "layout_files", "scan"]

_GROUP_FILES = ("structure.json", "attributes.json")


@dataclass
class Status:
    """Paths (relative to the network's directory) that differ from the tree as last written."""

    modified: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: snapshot files the bookkeeping does not know: the store lacks their snapshots (a clone); not edits
    unrestored: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.modified or self.added or self.removed)

    @property
    def paths(self) -> list[str]:
        return sorted([*self.modified, *self.added, *self.removed])


def is_layout_path(path: str) -> bool:
    parts = path.split("/")
    if parts == ["metadata.json"]:
        return True
    if len(parts) == 2 and parts[0] == "snapshots":
        return _json_name(parts[1])
    if len(parts) == 3 and parts[0] == "groups":
        return _plain(parts[1]) and parts[2] in _GROUP_FILES
    if len(parts) == 4 and parts[0] == "groups" and parts[2] == "contacts":
        return _plain(parts[1]) and _json_name(parts[3])
    return False


def _plain(name: str) -> bool:
    return bool(name) and not name.startswith(".")


def _json_name(name: str) -> bool:
    return _plain(name) and name.endswith(".json") and len(name) > 5


def _files(directory: str, rel: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if _json_name(entry.name) and entry.is_file(follow_symlinks=False):
                    yield rel + entry.name, entry
    except (FileNotFoundError, NotADirectoryError):
        return


def layout_files(root: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every layout file under a network's directory: (relative path, directory entry)."""
    base = str(root)
    for path, entry in _files(base, ""):
        if path == "metadata.json":
            yield path, entry
    yield from _files(os.path.join(base, "snapshots"), "snapshots/")
    try:
        with os.scandir(os.path.join(base, "groups")) as groups:
            group_names = [g.name for g in groups if _plain(g.name) and g.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in sorted(group_names):
        group_path = os.path.join(base, "groups", name)
        for path, entry in _files(group_path, f"groups/{name}/"):
            if path.rsplit("/", 1)[1] in _GROUP_FILES:
                yield path, entry
        yield from _files(os.path.join(group_path, "contacts"), f"groups/{name}/contacts/")


def _hash_file(path: str) -> str:
    with open(path, "rb") as handle:
        return blake3.blake3(handle.read()).hexdigest(16)


def _layout_dirs(base: str) -> Iterator[tuple[str, str, frozenset[str] | None]]:
    """The directories layout files live in: (path, relative prefix, names allowed there; ``None``: any ``*.json``)."""
    yield base, "", frozenset({"metadata.json"})
    yield os.path.join(base, "snapshots"), "snapshots/", None
    groups = os.path.join(base, "groups")
    try:
        with os.scandir(groups) as found:
            names = [g.name for g in found if _plain(g.name) and g.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        group_path = os.path.join(groups, name)
        yield group_path, f"groups/{name}/", _GROUP_NAMES
        yield os.path.join(group_path, "contacts"), f"groups/{name}/contacts/", None


_GROUP_NAMES = frozenset(_GROUP_FILES)


def scan(root: Path, by_directory: Mapping[str, Mapping[str, Entry]], full: bool = False) -> Status:
    """The hand edits under a network's directory ``root`` against its bookkeeping, grouped by directory.

    One listing per directory and one ``lstat`` per recorded file (:mod:`casstore.layout.statpass`, on two
    cores for a large tree); a file is read only when its mtime or size moved (or with ``full``).
    ``by_directory`` is :meth:`~casstore.layout.manifest.Manifest.by_directory`.
    """
    status = Status()
    dirs = list(_layout_dirs(str(root)))
    known = [by_directory.get(rel, _NONE) for _, rel, _ in dirs]
    asked = [{name: _UNSEEN for name in entries} for entries in known] if full else known
    findings = stat_dirs([(directory, entries) for (directory, _, _), entries in zip(dirs, asked, strict=True)])
    for (directory, rel, allowed), entries, found in zip(dirs, known, findings, strict=True):
        if found is None:  # the directory is gone (or no longer a directory)
            status.removed.extend(rel + name for name in entries)
            continue
        moved, unknown, missing = found
        for name, size in moved:
            if size != entries[name].size or _hash_file(os.path.join(directory, name)) != entries[name].hash:
                status.modified.append(rel + name)
        for name in unknown:
            if (name in allowed if allowed is not None else _json_name(name)) and _is_file(directory, name):
                (status.unrestored if rel == "snapshots/" else status.added).append(rel + name)
        status.removed.extend(rel + name for name in missing)
    visited = {rel for _, rel, _ in dirs}
    for rel, entries in by_directory.items():
        if rel not in visited and entries:  # a directory no longer a layout directory (its group's is gone)
            status.removed.extend(rel + name for name in entries)
    status.removed.sort()
    status.added.sort()
    status.modified.sort()
    status.unrestored.sort()
    return status


#: A directory the bookkeeping lists nothing in (one object: the stat pass reuses requests by identity).
_NONE: Mapping[str, Entry] = MappingProxyType({})

#: What ``full`` records for every file: no stat matches it, so every file is read and hashed.
_UNSEEN = (-1, -1)


def _is_file(directory: str, name: str) -> bool:
    try:
        return S_ISREG(os.lstat(os.path.join(directory, name)).st_mode)
    except OSError:
        return False
