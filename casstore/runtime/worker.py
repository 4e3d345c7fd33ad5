"""A flush process: the interval flusher's commits, and the journal's folds, run in a process of their own,
off the runtime's GIL.

A fold is sent as the refs of the entries it folds (the child reads them from
the store), so the runtime pickles nothing per change for it.

The background flusher of ``interval`` mode is a thread of the runtime's own
interpreter, and a flush is Python work (encoding, tree updates, deltas)
costing far more per change than the runtime's ``set``: run as a thread, a
flusher that keeps up with a busy runtime holds the GIL about half the time,
and the runtime runs at about half speed.  :class:`FlushProcess` moves that
work to a child interpreter (:func:`serve`, started with ``python -c``) that opens
the same store by its URL: the flusher thread only pickles the dirty map it
took, writes it to the child's stdin, and waits (without the GIL) for the
:class:`~casstore.runtime.flush.CommitResult`.  The child runs the same
:func:`~casstore.runtime.flush.commit_changes`, so a flush commits exactly as
in-process (one head compare-and-swap, bad values rejected and reported).

Only for stores a second process opens to the same data with nothing but the
URL: ``lmdb://`` and ``file://``, not wrapped (:func:`separate_process_url`).  The child
dies with its parent (``PR_SET_PDEATHSIG`` on Linux; everywhere, it exits at
the end of its stdin), so a SIGKILLed runtime leaves at most the commit in
flight, which lands whole or not at all as any commit does.  A child that
dies, or that cannot be started, fails that flush (a ``StorageError``: the
image keeps the changes dirty and retries); the next flush starts a new child.
A dirty map that cannot be pickled is flushed in-process instead (where its
bad values are rejected one by one).

The frames on both pipes are an 8-byte big-endian length and a pickle.  Pickles
are only exchanged with the child this process started, through its own pipes.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from casstore import errors
from casstore.errors import SerializationError, StorageError
from casstore.model import NetworkStore
from casstore.runtime.flush import CommitResult
from casstore.runtime.journal import JournalEntry
from casstore.store.base import ObjectStore
from casstore.store.file import FileStore
from casstore.store.lmdb import LmdbStore

__all__ = ["FlushProcess", "Unpicklable", "flush_process_for", "separate_process_url"]

_LENGTH = struct.Struct(">Q")
_CHILD = "import sys; from casstore.runtime.worker import serve; serve(sys.argv[1])"
#: The backends a second process opens, by their URL alone, to the same data (not wrapped: a wrapper —
#: read-only, metrics, injected failures — would be bypassed by a process that opened the bare URL).
SEPARATE_BACKENDS = (LmdbStore, FileStore)


class Unpicklable(Exception):
    """The dirty map holds a value that cannot be sent to the flush process (flush it in-process)."""


def separate_process_url(objects: ObjectStore) -> str | None:
    """The URL a flush process opens the same store by, or ``None`` if it cannot (see :data:`SEPARATE_BACKENDS`)."""
    return objects.url if type(objects) in SEPARATE_BACKENDS else None


def flush_process_for(store: NetworkStore, background_flush: bool, wanted: bool | None) -> FlushProcess | None:
    """The flush process of an image's background flushes (``wanted`` ``None``: wherever one can run)."""
    if wanted is not None and type(wanted) is not bool:
        raise SerializationError(f"flush_process must be True, False or None, not {wanted!r}")
    url = separate_process_url(store.objects)
    if wanted and url is None:  # refused whatever the mode, as documented
        raise StorageError(
            f"flush_process: a flush process cannot open {store.url} (only a bare lmdb:// or file:// store)"
        )
    if wanted is None:
        wanted = url is not None
    if not wanted or not background_flush or url is None:
        return None
    return FlushProcess(url)


class FlushProcess:
    """A child interpreter committing flushes to the store at ``url``; started at the first :meth:`commit`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def commit(
        self,
        network_id: str,
        groups: dict[str, Any],
        contents: dict[tuple[str, str], Any],
        entries: Sequence[JournalEntry] = (),
    ) -> CommitResult:
        """:func:`~casstore.runtime.journal.fold` of ``entries`` (by ref: the child reads them), ``groups``
        and ``contents`` in the child (with no entries, :func:`~casstore.runtime.flush.commit_changes`):
        raises what it raised (as a ``StorageError``), :class:`Unpicklable` before sending anything
        (or when the child cannot rebuild a value: a class it cannot import), ``StorageError`` if the
        child died."""
        by_ref = [JournalEntry(entry.name, entry.digest) for entry in entries]
        try:
            payload = pickle.dumps((network_id, groups, contents, by_ref), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # pickle raises many types for a value it cannot take
            raise Unpicklable(str(exc)) from exc
        with self._lock:
            proc = self._running()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                _send(proc.stdin, payload)
                reply = _receive(proc.stdout)
            except (OSError, EOFError, ValueError) as exc:
                self._stop()
                raise StorageError(f"the flush process for {self.url} died: {exc}") from exc
        status, value = pickle.loads(reply)
        if status == "ok":
            assert isinstance(value, CommitResult)
            return value
        if status == "unpicklable":  # the child cannot rebuild a value: the caller commits in-process
            raise Unpicklable(f"the flush process cannot unpickle the flush: {value}")
        raise _as_error(*value)

    @property
    def pid(self) -> int | None:
        """The running child's process id (``None`` before the first flush or after it ended)."""
        proc = self._proc
        return None if proc is None or proc.poll() is not None else proc.pid

    def start(self) -> None:
        """Start the child now (so the first flush does not wait for it); a failure is left to :meth:`commit`."""
        with self._lock, contextlib.suppress(StorageError):
            self._running()

    def _running(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()
        source = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, self.url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": path},
            )
        except OSError as exc:
            raise StorageError(f"cannot start a flush process for {self.url}: {exc}") from exc
        return self._proc

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        """End the child (it finishes a commit in progress first); idempotent."""
        with self._lock:
            self._stop()


def _send(pipe: IO[bytes], payload: bytes) -> None:
    pipe.write(_LENGTH.pack(len(payload)))
    pipe.write(payload)
    pipe.flush()


def _receive(pipe: IO[bytes]) -> bytes:
    head = pipe.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the pipe closed")
    (size,) = _LENGTH.unpack(head)
    payload = pipe.read(size)
    if len(payload) < size:
        raise EOFError("the pipe closed mid-message")
    return payload


def _as_error(name: str, message: str) -> StorageError:
    """The child's exception as a ``StorageError`` of the same class where it has one (else the base)."""
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, StorageError):
        with contextlib.suppress(Exception):
            return cls(message)
        return StorageError(message)
    return StorageError(f"flush process: {name}: {message}")


def _die_with_parent() -> None:
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the parent died before the call
        os._exit(0)


def serve(url: str) -> None:
    """The child: commit each flush read from stdin, reply on stdout, until stdin ends."""
    _die_with_parent()
    from casstore.collector import collector_paused
    from casstore.runtime.journal import fold
    from casstore.store import open_object_store

    inp = sys.stdin.buffer
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    store = NetworkStore(open_object_store(url, create=False))
    try:
        while True:
            try:
                request = _receive(inp)
            except EOFError:
                return
            try:
                network_id, groups, contents, entries = pickle.loads(request)
            except Exception as exc:  # a class the child cannot import (one of the app's __main__, say)
                reply_to_parent = ("unpicklable", str(exc) or type(exc).__name__)
                try:
                    _send(out, pickle.dumps(reply_to_parent, pickle.HIGHEST_PROTOCOL))
                except OSError:
                    return
                continue
            try:
                with collector_paused():
                    reply: tuple[str, Any] = ("ok", fold(store, network_id, entries, groups, contents))
            except Exception as exc:
                reply = ("error", (type(exc).__name__, str(exc)))
            try:
                _send(out, pickle.dumps(reply, pickle.HIGHEST_PROTOCOL))
            except OSError:  # the parent is gone
                return
    finally:
        store.close()
