"""The stat pass of ``status``: which files of a set of directories moved since their bookkeeping, on two cores.

Finding hand edits soundly means one ``lstat`` per file (an edit in place
changes neither the directory nor the inode), and on a tree of 100,000 files
those system calls are the whole cost of ``status`` and ``commit``.  Python
threads do not run them in parallel here (measured *slower* than one
thread: the GIL is handed over around every call), so :func:`stat_dirs` gives
part of the directories to a helper interpreter: this file run as a script,
with ``-I -S`` (no site, no casstore import, about 15 ms to start), that reads
its share (each directory with its recorded names, mtimes and sizes: a joined
string and two arrays, cheap to send) as :mod:`marshal` data on stdin and
writes its findings the same way.  Both sides run
:func:`stat_directory`, so they cannot judge a file differently.  The helper
is started fresh (never forked from the caller, which may hold threads, LMDB
environments or a server); if it cannot start, fails or answers nonsense, the
caller stats its share itself — slower, never wrong.

Only the standard library is imported here: the helper runs this file alone.
"""

from __future__ import annotations

import marshal
import operator
import os
import sys
import threading
from array import array
from collections.abc import Iterable, Mapping, Sequence
from stat import S_ISREG
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

__all__ = ["HELPER_MIN_FILES", "DirFindings", "stat_directory", "stat_dirs"]

#: A scan gives the helper a share only when it covers at least this many recorded files (below, the
#: helper's start costs more than it saves); ``None`` never uses the helper.
HELPER_MIN_FILES: int | None = 20_000

#: The helper's answer is awaited this long (seconds) before its share is statted in process instead.
HELPER_TIMEOUT = 120.0

#: The share of the files the caller stats itself (the helper's start, about 15-30 ms, is spent on the rest).
_CALLER_SHARE = 0.55

#: A file's record: a tuple ending with its mtime (ns) and size (the bookkeeping's ``Entry`` as it is).
Record = tuple[Any, ...]

#: One directory's findings: (recorded files whose mtime or size moved, as (name, size now); names present
#: but not recorded; recorded names that are no longer regular files there).  ``None``: the directory is
#: gone (or not a directory).
DirFindings = tuple[list[tuple[str, int]], list[str], list[str]] | None


def stat_directory(directory: str, names: Sequence[str], mtimes: Iterable[int], sizes: Iterable[int]) -> DirFindings:
    """One directory against its recorded files (``names`` with their mtimes in ns and sizes, in step).

    One ``lstat`` per recorded name (relative to the directory's descriptor) and one listing, whose names
    are compared with the recorded ones only when the counts say some differ.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    moved: list[tuple[str, int]] = []
    missing: list[str] = []
    try:
        listed = os.listdir(fd)
        stat = os.stat
        for name, mtime, size in zip(names, mtimes, sizes, strict=True):
            try:
                st = stat(name, dir_fd=fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                missing.append(name)
                continue
            if not S_ISREG(st.st_mode):
                missing.append(name)
            elif st.st_mtime_ns != mtime or st.st_size != size:
                moved.append((name, st.st_size))
    finally:
        os.close(fd)
    unknown: list[str] = []
    if missing or len(listed) != len(names):
        unknown = sorted(set(listed).difference(names))
    return moved, unknown, missing


def stat_dirs(dirs: Sequence[tuple[str, Mapping[str, Record]]]) -> list[DirFindings]:
    """:func:`stat_directory` of every ``(directory, known)``, in order; part of them by the helper when it pays."""
    total = sum(len(known) for _, known in dirs)
    cut = len(dirs)
    if HELPER_MIN_FILES is not None and total >= HELPER_MIN_FILES and len(dirs) > 1 and _cores() > 1:
        counted = 0
        for at, (_, known) in enumerate(dirs):  # the caller takes the first part (by files), the helper the rest
            counted += len(known)
            if counted >= total * _CALLER_SHARE:
                cut = min(at + 1, len(dirs) - 1)  # the helper has at least one directory
                break
    helper = _start_helper(dirs[cut:]) if cut < len(dirs) else None
    mine = [_in_process(directory, known) for directory, known in dirs[:cut]]
    theirs = _answer(helper, len(dirs) - cut)
    if theirs is None:
        theirs = [_in_process(directory, known) for directory, known in dirs[cut:]]
    return mine + theirs


def _in_process(directory: str, known: Mapping[str, Record]) -> DirFindings:
    records = known.values()
    return stat_directory(directory, list(known), [r[-2] for r in records], [r[-1] for r in records])


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _start_helper(share: Sequence[tuple[str, Mapping[str, Record]]]) -> subprocess.Popen[bytes] | None:
    """The helper started on ``share``; the request is built while the interpreter starts, then piped in."""
    import subprocess  # here, not at the top: the helper itself never needs it

    try:
        helper = subprocess.Popen(
            [sys.executable, "-I", "-S", __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
    except (OSError, ValueError, TypeError, subprocess.SubprocessError):  # TypeError: no sys.executable
        return None
    request = _request(share)
    feed, helper.stdin = helper.stdin, None  # closed here: communicate() must not touch it again
    assert feed is not None
    try:
        with feed:  # the helper reads all of it before it writes anything: no deadlock on the pipes
            feed.write(request)
    except OSError:  # it died before reading (BrokenPipeError)
        helper.kill()
        helper.communicate()
        return None
    return helper


#: The last request encoded, with the mappings it was encoded from (held, and compared by identity).
_last_request: tuple[list[str], list[Mapping[str, Record]], bytes] | None = None
_request_lock = threading.Lock()


def _request(share: Sequence[tuple[str, Mapping[str, Record]]]) -> bytes:
    """The helper's input for ``share``, reused when the same directories come with the very same mappings.

    The bookkeeping never changes a directory's mapping in place (a save replaces it), so the same
    objects mean the same records: a process that scans again (the check before each write, a
    ``commit`` after a ``status``) does not encode them again.
    """
    global _last_request
    directories, mappings = [d for d, _ in share], [known for _, known in share]
    with _request_lock:
        last = _last_request
        if last is not None and last[0] == directories and all(map(operator.is_, last[1], mappings)):
            return last[2]
    request = []
    for directory, known in share:
        records = known.values()
        mtimes, sizes = array("q", [r[-2] for r in records]), array("q", [r[-1] for r in records])
        request.append((directory, "\0".join(known), mtimes.tobytes(), sizes.tobytes()))
    encoded = marshal.dumps(request)
    with _request_lock:
        _last_request = (directories, mappings, encoded)
    return encoded


def _answer(helper: subprocess.Popen[bytes] | None, count: int) -> list[DirFindings] | None:
    """The helper's findings, or ``None`` when it has none that can be trusted (the caller stats its share)."""
    if helper is None:
        return None
    import subprocess

    try:
        out, _ = helper.communicate(timeout=HELPER_TIMEOUT)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.communicate()
        return None
    if helper.returncode != 0:
        return None
    try:
        found = marshal.loads(out)
    except (EOFError, ValueError, TypeError):
        return None
    return found if isinstance(found, list) and len(found) == count and all(map(_well_formed, found)) else None


def _well_formed(found: object) -> bool:
    return found is None or (isinstance(found, tuple) and len(found) == 3 and all(isinstance(f, list) for f in found))


def _serve() -> None:
    answer = []
    for directory, joined, mtimes, sizes in marshal.loads(sys.stdin.buffer.read()):
        names = joined.split("\0") if joined else []
        answer.append(stat_directory(directory, names, array("q", mtimes), array("q", sizes)))
    marshal.dump(answer, sys.stdout.buffer)


if __name__ == "__main__":
    _serve()
