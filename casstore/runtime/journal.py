"""A live image's journal: a flush made durable as one small object, folded into the head afterwards.

A flush that rewrites the head costs a tree update (tens of milliseconds for a
thousand changes spread over a large network); a journal entry costs one
object and one new ref in one commit (on LMDB about one synced commit, under a
millisecond).  ``immediate``, ``batch`` and ``transactional`` flushes
(:mod:`casstore.runtime.modes`) write an entry and are durable once it is
committed; the image's background thread then **folds** every entry written so
far into the head: one head compare-and-swap with all their changes
(coalesced: a contact changed in several entries is written once, with its
newest value) that deletes the folded entries' refs in the same commit.  As
SQLite's WAL and its checkpoints: what the journal holds is durable, what the
head holds is what every other reader sees.

Only on stores whose commit is one transaction (``atomic_commit``: LMDB,
PostgreSQL, the layout directory), where a fold moves the head and deletes its
entries together or not at all, so an entry is in the head exactly when its
ref is gone.  Elsewhere the image flushes to the head directly.

The layout (``docs/format.md``): an entry is the ref
``journal/<network>/<name>`` (names sort oldest first: nanosecond time,
process, counter) naming a DAG-CBOR map ``{"t": "journal", "v": 2, "net":
network id, "k": [group id, contact id, group id, contact id, …], "d": bytes}``,
``d`` the list of the contents in the order of ``k``'s pairs, encoded as user data is
(:func:`casstore.codec.encode_value`: canonical, never a link; one encoding
for the whole list, which costs a fraction of one per value).  Version 1 entries
(``"c": [[group id, contact id, content bytes], …]``, each content encoded
alone), as earlier builds wrote them, are still read.  Entries link to
nothing: gc keeps them as objects an opaque ref names, verify re-hashes them.

Recovery: entries left by a process that died before folding them are folded
by :func:`recover_journal`, which every :class:`~casstore.runtime.NetworkImage`
runs before it loads its network (and which a program reading the network
without an image may call).  Until then the head lacks them: a reader that
opens the store after a crash and before any image sees the head of the last
fold.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from casstore import codec
from casstore.collector import collector_paused
from casstore.errors import CorruptObject, SerializationError, StorageError
from casstore.model import NetworkStore
from casstore.model.records import content_bytes
from casstore.model.refs import journal_prefix
from casstore.model.types import check_id
from casstore.runtime.flush import CommitResult, Rejected, commit_changes
from casstore.store.base import RefUpdate

__all__ = [
    "Journal",
    "JournalEntry",
    "fold",
    "journal_supported",
    "pending_entries",
    "read_entries",
    "recover_journal",
]

ENTRY_TYPE = "journal"
ENTRY_VERSION = 2
#: The nesting limit of an entry's list of contents: one level above a content's, so each has its own.
_CONTENTS_DEPTH = codec.MAX_DEPTH + 1
_counter = itertools.count()
_counter_lock = threading.Lock()
_last_stamp = [0]  # the newest entry time this process named: names stay in order if the clock steps back

Contents = dict[tuple[str, str], Any]


@dataclass(frozen=True)
class JournalEntry:
    """One committed entry: its ref, its object, and (when this process wrote or read it) its changes."""

    name: str
    digest: bytes
    contents: Contents | None = None


def journal_supported(store: NetworkStore) -> bool:
    """Whether ``store`` commits objects and refs in one transaction (see the module docstring)."""
    return bool(getattr(store.objects, "atomic_commit", False))


class Journal:
    """The journal of one network in one store: :meth:`append` writes an entry."""

    def __init__(self, store: NetworkStore, network_id: str) -> None:
        self.store = store
        self.network_id = network_id
        self.prefix = journal_prefix(network_id)

    def append(self, contents: Contents) -> tuple[JournalEntry | None, list[Rejected]]:
        """Commit ``contents`` as one entry (``None`` if every value was rejected) and the values left
        out (outside the data model).  Raises what the backend raises; nothing is then written."""
        with collector_paused():  # as for every flush (casstore.collector): a whole network is in memory
            return self._append(contents)

    def _append(self, contents: Contents) -> tuple[JournalEntry | None, list[Rejected]]:
        rejected: list[Rejected] = []
        kept = contents
        try:  # every value at once: one encode (a list nests one level deeper than its items)
            data = codec.encode_value(list(contents.values()), max_depth=_CONTENTS_DEPTH)
        except SerializationError:  # one value or more refused: each alone, to name them
            kept = {}
            for (gid, cid), value in contents.items():
                try:
                    content_bytes(value)
                except SerializationError as exc:
                    rejected.append(Rejected(gid, cid, f"{type(exc).__name__}: {exc}"))
                    continue
                kept[gid, cid] = value
            data = codec.encode_value(list(kept.values()), max_depth=_CONTENTS_DEPTH)
        if not kept:
            return None, rejected
        keys = list(itertools.chain.from_iterable(kept))  # flat: group id, contact id, group id, …
        body = codec.encode({"t": ENTRY_TYPE, "v": ENTRY_VERSION, "net": self.network_id, "k": keys, "d": data})
        ((digest, frame),) = codec.frame_many([body])
        with _counter_lock:
            number = next(_counter)
            stamp = _last_stamp[0] = max(time.time_ns(), _last_stamp[0] + 1)
        name = f"{self.prefix}{stamp:020d}-{os.getpid():08x}-{number:010d}"
        self.store.objects.commit([(digest, frame)], [RefUpdate(name, None, digest)])
        return JournalEntry(name, digest, kept), rejected


def pending_entries(store: NetworkStore, network_id: str) -> list[JournalEntry]:
    """The network's entries in the store, oldest first, without their contents."""
    listed = store.objects.refs.list(journal_prefix(network_id))
    return [JournalEntry(name, digest) for name, digest in sorted(listed.items())]


def read_entries(store: NetworkStore, entries: Sequence[JournalEntry]) -> list[JournalEntry]:
    """``entries`` with their contents (read, re-hashed and decoded where they have none).

    :class:`~casstore.errors.CorruptObject` names an entry that is not a journal entry of its network.
    """
    unread = [entry for entry in entries if entry.contents is None]
    datas = dict(zip((e.digest for e in unread), store.objects.blobs.get_many([e.digest for e in unread]), strict=True))
    out = []
    for entry in entries:
        if entry.contents is not None:
            out.append(entry)
            continue
        try:
            body = codec.decode(datas[entry.digest])
            contents = _entry_contents(body)
            if not entry.name.startswith(journal_prefix(body["net"])):
                raise ValueError(f"it belongs to network {body['net']!r}")
        except (ValueError, TypeError, KeyError, StorageError) as exc:
            where = codec.format_id(entry.digest)
            raise CorruptObject(where, f"not a journal entry of its ref {entry.name}: {exc}") from None
        out.append(JournalEntry(entry.name, entry.digest, contents))
    return out


def _entry_contents(body: Any) -> Contents:
    """The changes an entry's decoded object holds (either version); raises ``ValueError`` (or
    ``TypeError``, ``KeyError``) for anything else."""
    if not (isinstance(body, dict) and body.get("t") == ENTRY_TYPE and body.get("v") in (1, ENTRY_VERSION)):
        raise ValueError("not a journal entry of a known version")
    if body["v"] == 1:  # each value encoded alone
        return {(gid, cid): codec.decode_value(data) for gid, cid, data in body["c"]}
    keys, values = body["k"], codec.decode_value(body["d"])
    if not (isinstance(keys, list) and isinstance(values, list) and len(keys) == 2 * len(values)):
        raise ValueError("its keys and values do not match")
    if not all(type(key) is str and key for key in keys):
        raise ValueError("a group or contact id in it is not a non-empty string")
    return dict(zip(zip(keys[::2], keys[1::2], strict=True), values, strict=True))


def fold(
    store: NetworkStore,
    network_id: str,
    entries: Sequence[JournalEntry],
    groups: dict[str, Any] | None = None,
    contents: Contents | None = None,
) -> CommitResult:
    """Commit ``entries`` (oldest first) with ``groups`` and ``contents`` (newer than every entry) as one
    new head, deleting the entries' refs in the same commit.  An entry's change to a contact of a
    group in ``groups`` is left out: the group as written whole (or its deletion) is newer.

    An entry whose ref is gone (another image recovered it) is left out: the commit that deleted its
    ref wrote its changes (on these stores that is one transaction), and writing them again would
    undo what was written since.  Which entries are there is read again at each attempt of the
    compare-and-swap, and each one taken in must still be there when it commits (its delete is
    required), so an entry recovered while this commit is built is never written twice.
    """
    prefix = journal_prefix(network_id)
    listed = [store.objects.refs.list(prefix) if entries else {}]  # the first attempt's listing
    # those already gone are not read (their objects may be collected by now)
    entries = [entry for entry in entries if listed[0].get(entry.name) == entry.digest]
    read = {entry.name: entry for entry in read_entries(store, entries)}

    def each_attempt() -> tuple[Contents, list[RefUpdate]]:
        present = listed.pop() if listed else store.objects.refs.list(prefix) if read else {}
        live = [entry for entry in read.values() if present.get(entry.name) == entry.digest]
        merged: Contents = {}
        for entry in live:
            assert entry.contents is not None
            merged.update(entry.contents)
        if groups:  # a group written whole is newer than every entry: their changes to it are superseded
            merged = {key: value for key, value in merged.items() if key[0] not in groups}
        merged.update(contents or {})
        return merged, [RefUpdate(entry.name, entry.digest, None) for entry in live]

    return commit_changes(store, network_id, groups or {}, {}, each_attempt=each_attempt)


def recover_journal(store: NetworkStore, network_id: str) -> CommitResult | None:
    """Fold the entries of ``network_id`` that the store holds (a crashed image's); ``None`` if there were none.

    Raises ``StorageError`` if the fold fails (the entries stay).
    """
    if not isinstance(store, NetworkStore):
        raise SerializationError(f"store: expected a NetworkStore (casstore.open_store(url)), not {store!r:.80}")
    check_id(network_id, "network_id")
    entries = pending_entries(store, network_id)
    if not entries:
        return None
    try:
        return fold(store, network_id, entries)
    except StorageError as exc:
        exc.add_note(f"recovering the journal of network {network_id!r} ({len(entries)} entries)")
        raise
