"""``HttpStore``: the blob and ref protocols over a ``casstore serve`` server.

Objects travel in batches (``missing``, ``get``, and packs for writes);
ref moves are compare-and-swap requests (``If-Match``/``If-None-Match``).
Sync writes through :meth:`HttpStore.receive_pack`, which sends the pack as
it is (deltas included), and reads through :meth:`HttpStore.fetch_packs`,
one request for a whole closure.  The server re-hashes every object it is
sent; this side re-hashes every frame it reads (as every store does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from casstore.codec import format_id, parse_id, ref_conflict
from casstore.errors import InvalidId, InvalidPack, RefConflict, StorageError
from casstore.pack import MAGIC, PackBuilder, VerifiedPack
from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore, RefUpdate, validate_ref_name
from casstore.store.deltas import FRAME_DELTA, MAX_CHAIN, delta_frame, frame_chain, parse_delta_frame, rebuild_broken
from casstore.store.http.client import ConnectionFailed, Session, error_from_body
from casstore.store.http.watch import RefWatcher
from casstore.store.http.wire import (
    API,
    FetchFailed,
    decode_frames,
    decode_indexes,
    encode_receive,
    join_ids,
    read_fetch_parts,
    split_ids,
)
from casstore.store.wrappers.caching import FrameCache

__all__ = ["HttpBlobs", "HttpRefs", "HttpStore"]

#: Used until the server's capabilities say otherwise.
DEFAULT_MAX_IDS = 16384
DEFAULT_MAX_BODY = 32 << 20
#: Bytes of a fetch answer handed on as one pack (each is stored as it comes).
FETCH_PACK_BYTES = 8 << 20
#: Seconds after a lost compare-and-swap during which a ref's head is read afresh, not guessed (HttpRefs.recent).
CONTENDED_SECONDS = 2.0
#: The client's frame cache (URL option ``cache_mb``).
DEFAULT_CACHE_BYTES = 64 << 20


class HttpBlobs(BlobStore):
    """Objects on the server, with a local LRU of frames read from it or acknowledged written to it.

    Objects are immutable, so a cached frame is never stale: reads of cached
    objects (a write's tree path, the bases of its deltas) cost no round trip,
    and :meth:`missing` takes a cached object to be present without asking
    (as :class:`~casstore.store.wrappers.caching.CachingStore` does: gc deletes
    only objects no ref reaches, after its grace period).  Every read is still
    re-hashed by :meth:`~casstore.store.base.BlobStore.get_many`, cached or not.
    """

    #: The server rebuilds every delta it is sent (``POST /v1/receive``) and keeps one as a delta frame only
    #: for an object it lacked (``casstore.store.received``), so the client need not ask ``missing`` first
    #: to keep a delta frame handed to :meth:`put_frames` from closing a chain into a cycle there.
    keeps_delta_frames = False

    def __init__(self, store: HttpStore, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.store = store
        self.session = store.session
        self.cache = FrameCache(cache_bytes) if cache_bytes > 0 else None

    def remember(self, frames: Iterable[tuple[bytes, bytes]]) -> None:
        """Cache frames the server holds: answered by it, or sent to it (a delta frame as it was sent; see
        :meth:`get_whole_frames` for when the server kept another form)."""
        if self.cache is not None:
            self.cache.add(frames)

    def _chunks(self, digests: Sequence[bytes]) -> Iterator[Sequence[bytes]]:
        step = self.store.max_ids
        for start in range(0, len(digests), step):
            yield digests[start : start + step]

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        self.store.send_frames(items, ())

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        digests = list(digests)
        found: list[bytes | None] = self.cache.lookup(digests) if self.cache is not None else [None] * len(digests)
        wanted = list(dict.fromkeys(d for d, frame in zip(digests, found, strict=True) if frame is None))
        if not wanted:
            return found
        fetched = self._fetch(wanted)
        return [frame if frame is not None else fetched[d] for d, frame in zip(digests, found, strict=True)]

    def _fetch(self, wanted: Sequence[bytes]) -> dict[bytes, bytes | None]:
        """The server's frames of ``wanted`` (distinct ids), cached."""
        fetched: dict[bytes, bytes | None] = {}
        for chunk in self._chunks(wanted):
            body = self.session.request("POST", f"{API}/get", content=join_ids(chunk)).content
            fetched.update(zip(chunk, decode_frames(body, len(chunk)), strict=True))
        self.remember((d, f) for d, f in fetched.items() if f is not None)
        return fetched

    def get_whole_frames(
        self, digests: Sequence[bytes], used: set[bytes] | None = None, compress: bool = False
    ) -> list[bytes | None]:
        """:meth:`BlobStore.get_whole_frames`, read again from the server for a chain the cache broke.

        A delta frame cached as it was sent names a base the server need not keep: a server that already
        held the object keeps its own form, and gc judges chains by that form.  A chain that does not
        rebuild from cached frames is therefore read afresh, every level from the server.
        """
        frames = super().get_whole_frames(digests, used, compress)
        if self.cache is None:
            return frames
        return rebuild_broken(digests, frames, self._get_from_server, used, compress)

    def _get_from_server(self, digests: Sequence[bytes]) -> list[bytes | None]:
        """Frames as the server keeps them, replacing any cached copies."""
        if self.cache is not None:
            self.cache.discard(digests)
        fetched = self._fetch(list(dict.fromkeys(digests)))
        return [fetched[d] for d in digests]

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        asked = list(dict.fromkeys(digests))
        if self.cache is not None:
            held = self.cache.holds(asked)
            asked = [digest for digest in asked if digest not in held]
        absent: set[bytes] = set()
        for chunk in self._chunks(asked):
            body = self.session.request("POST", f"{API}/missing", content=join_ids(chunk)).content
            absent.update(chunk[index] for index in decode_indexes(body, len(chunk)))
        return absent

    def iter_hashes(self) -> Iterator[bytes]:
        return iter(split_ids(self.session.request("GET", f"{API}/objects").content))

    def delete_many(self, digests: Iterable[bytes]) -> int:
        removed = 0
        doomed = list(digests)
        if self.cache is not None:
            self.cache.discard(doomed)
        for chunk in self._chunks(doomed):
            answer = self.session.request("POST", f"{API}/delete", content=join_ids(chunk)).json()
            removed += int(answer["deleted"])
        return removed

    def written_since(self, timestamp: float) -> set[bytes]:
        body = self.session.request("GET", f"{API}/written-since", params={"t": repr(timestamp)}).content
        return set(split_ids(body))

    def stats(self) -> BlobStats:
        answer = self.session.request("GET", f"{API}/stats").json()
        return BlobStats(int(answer["objects"]), int(answer["stored_bytes"]), answer.get("extra"))


class HttpRefs(RefStore):
    """Refs on the server; :meth:`recent` answers from the value this client last saw or set."""

    #: Refs whose last seen value is kept at most (the oldest are forgotten beyond).
    SEEN_MAX = 4096

    def __init__(self, session: Session) -> None:
        self.session = session
        self._seen: dict[str, bytes] = {}
        self._conflicts: dict[str, float] = {}  # ref -> when a move of it last lost (time.monotonic)

    def contended(self, name: str) -> None:
        """Note that a move of ``name`` lost its compare-and-swap just now."""
        if len(self._conflicts) >= self.SEEN_MAX and name not in self._conflicts:
            self._conflicts.clear()
        self._conflicts[name] = time.monotonic()

    def saw(self, name: str, value: bytes | None) -> None:
        """Record what ``name`` was at (``None``: absent, or unknown: forget it)."""
        if value is None:
            self._seen.pop(name, None)
            return
        if len(self._seen) >= self.SEEN_MAX and name not in self._seen:
            self._seen.pop(next(iter(self._seen)), None)
        self._seen[name] = value

    def saw_conflict(self, exc: RefConflict) -> None:
        """Record the value a lost compare-and-swap found."""
        self.contended(exc.name)
        try:
            self.saw(exc.name, None if exc.actual is None else parse_id(exc.actual))
        except InvalidId:
            self.saw(exc.name, None)

    def recent(self, name: str) -> bytes | None:
        """The value this client last saw ``name`` at (a read, its own move, a lost compare-and-swap), else
        :meth:`get`: the head of a write costs no round trip when nobody else moved it meanwhile.  A ref
        that lost a compare-and-swap in the last :data:`CONTENDED_SECONDS` is read afresh: where writers
        contend, a guess would mostly lose (and a lost move costs the server a commit)."""
        name = validate_ref_name(name)
        seen = self._seen.get(name)
        if seen is None or time.monotonic() - self._conflicts.get(name, -CONTENDED_SECONDS) < CONTENDED_SECONDS:
            return self.get(name)
        return seen

    def _get(self, name: str) -> bytes | None:
        response = self.session.request("GET", f"{API}/ref", params={"name": name}, ok=(200, 404))
        if response.status_code == 404:
            self.saw(name, None)
            return None
        value = bytes.fromhex(response.text.strip())
        self.saw(name, value)
        return value

    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        condition = {"If-None-Match": "*"} if expected is None else {"If-Match": f'"{expected.hex()}"'}
        method = "DELETE" if new is None else "PUT"
        response = self.session.request(
            method,
            f"{API}/ref",
            params={"name": name},
            content=b"" if new is None else new.hex().encode(),
            headers=condition,
            ok=(200, 204, 412),
        )
        if response.status_code == 412:
            actual = response.json().get("actual")
            value = None if actual is None else bytes.fromhex(actual)
            self.saw(name, value)
            self.contended(name)
            raise ref_conflict(name, expected, value)
        self.saw(name, new)

    def _list(self, prefix: str) -> dict[str, bytes]:
        answer = self.session.request("GET", f"{API}/refs", params={"prefix": prefix}).json()
        return {str(name): bytes.fromhex(value) for name, value in answer.items()}


class HttpStore(ObjectStore):
    """A store served by ``casstore serve`` at ``base`` (see :mod:`casstore.store.http`)."""

    blobs: HttpBlobs
    refs: HttpRefs
    #: The server's own store is polled (or notifies) in the server; the client only waits on the stream.
    watch_interval: float | None = 0.25

    def __init__(self, session: Session, url: str, cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.session = session
        self.url = url
        self.capabilities = self._capabilities()
        self.max_ids = int(self.capabilities.get("max_ids", DEFAULT_MAX_IDS))
        self.max_body = int(self.capabilities.get("max_body_bytes", DEFAULT_MAX_BODY))
        self.atomic_commit = bool(self.capabilities.get("atomic_commit", False))
        self.append_only = bool(self.capabilities.get("append_only", False))
        self.blobs = HttpBlobs(self, cache_bytes)
        self.refs = HttpRefs(session)
        self._watchers: list[RefWatcher] = []

    def _capabilities(self) -> dict[str, Any]:
        answer = self.session.request("GET", f"{API}/capabilities").json()
        if not isinstance(answer, dict) or answer.get("protocol") != "casstore/1":
            raise StorageError(f"{self.session.shown} is not a casstore server (no casstore/1 capabilities)")
        return answer

    def send_frames(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        """Frames as packs within the body limit; ``updates`` ride on the last one.

        A delta frame at rest (:mod:`casstore.store.deltas`: against the object it replaced, which the
        server holds) travels as the pack's delta entry, so the server rebuilds and re-hashes it.
        Frames the server acknowledged (stored, even if a ref move then conflicted) are cached."""
        limit = max(1 << 20, self.max_body // 2)
        too_big = next(((d, f) for d, f in frames if len(f) + 256 > self.max_body), None)
        if too_big is not None:  # refused before anything is sent: no body can carry it
            raise StorageError(
                f"{self.session.shown}: object {format_id(too_big[0])} is {len(too_big[1]):,} bytes stored, "
                f"more than the {self.max_body:,}-byte request body this server accepts: nothing was sent"
            )
        builder, size, chunk = PackBuilder(), 0, 0
        for at, (digest, frame) in enumerate(frames):
            if size and size + len(frame) > limit:
                self._send(builder.finish(), (), frames[chunk:at])
                builder, size, chunk = PackBuilder(), 0, at
            if frame[0] == FRAME_DELTA:
                _, base, delta = parse_delta_frame(frame)
                builder.add_delta(digest, base, delta)
            else:
                builder.add_frame(digest, frame)
            size += len(frame) + 40
        if size or updates or not frames:
            self._send(builder.finish(), updates, frames[chunk:])

    def _send(self, pack: bytes, updates: Sequence[RefUpdate], frames: Sequence[tuple[bytes, bytes]]) -> int:
        """POST ``pack`` and ``updates``; the server now holds ``frames`` (even if a ref move then conflicted)."""
        body = encode_receive(bytes(pack), updates)
        size = sum(len(part) for part in body)
        if size > self.max_body:  # packs are split to fit: only an object bigger than the limit gets here
            raise StorageError(
                f"{self.session.shown}: a pack of {size:,} bytes (an object bigger than this server takes) is "
                f"more than the {self.max_body:,}-byte request body the server accepts: this pack was not sent"
            )
        try:
            response = self.session.request("POST", f"{API}/receive", content=body, ok=(200,))
        except RefConflict as exc:
            self.blobs.remember(frames)  # the objects are stored all the same
            for update in updates:
                self.refs.saw(update.name, None)  # on a store without atomic commits, some may have moved
            self.refs.saw_conflict(exc)
            raise
        except BaseException:
            for update in updates:
                self.refs.saw(update.name, None)  # whether they moved is unknown
            raise
        self.blobs.remember(frames)
        for update in updates:
            self.refs.saw(update.name, update.new if update.required else None)  # an optional move may not have
        return int(response.json()["stored"])

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        self.send_frames(frames, updates)

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        """Send the pack as it is (deltas included); the server rebuilds and re-hashes every entry.

        The entries of a :class:`~casstore.pack.VerifiedPack` (built in this process, a push's) are cached
        once the server has them, so a later write through this store need not read them back: whole
        frames as they are, and a delta entry as a delta frame on its base where the cache holds the base
        (so the chain's length is known; read, it is rebuilt from the cache, or from the server if the
        cached chain does not rebuild, see :meth:`HttpBlobs.get_whole_frames`)."""
        entries = pack.entries if isinstance(pack, VerifiedPack) else None
        if entries is None:
            return self._send(pack, updates, [])
        frames = [(e.digest, e.payload) for e in entries if e.base is None]
        deltas = [(e.digest, e.base, e.payload) for e in entries if e.base is not None]
        cache = self.blobs.cache
        if deltas and cache is not None:
            chains = {digest: 0 for digest, _ in frames}
            bases = list({base for _, base, _ in deltas if base not in chains})
            chains.update((b, frame_chain(f)) for b, f in zip(bases, cache.lookup(bases), strict=True) if f is not None)
            for digest, base, delta in deltas:
                chain = chains.get(base)
                if chain is not None and chain < MAX_CHAIN:
                    frames.append((digest, delta_frame(chain + 1, base, delta)))
        return self._send(pack, updates, frames)

    def fetch_packs(
        self,
        want: Sequence[tuple[bytes, str]],
        have: Sequence[tuple[bytes, str]],
        bases: Mapping[bytes, bytes] | None = None,
    ) -> Iterator[bytes] | None:
        """The server's one pack of the closure, streamed: packs of whole entries, children first, as they arrive.

        The request is sent (and its refusal raised) before this returns; the answer is then read as it is
        iterated, cut into packs of about :data:`FETCH_PACK_BYTES`.  An answer cut short, or one the server
        ended with an error, raises (the packs yielded before it are whole and children first).
        """
        request = {
            "want": [[digest.hex(), kind] for digest, kind in want],
            "have": [[digest.hex(), kind] for digest, kind in have],
            "bases": {new.hex(): old.hex() for new, old in (bases or {}).items()},
        }
        path = f"{API}/fetch"
        response = self.session.check(self.session.open("POST", path, json_body=request), "POST", path, (200,))
        return self._fetched(response)

    def _fetched(self, response: httpx.Response) -> Iterator[bytes]:
        shown = self.session.shown
        try:
            parts = read_fetch_parts(response.iter_bytes(), limit=self.max_body)
            first = next(parts, b"")
            if first != MAGIC:
                raise InvalidPack("a fetch answer does not start a casstore pack")
            pending: list[bytes] = []
            size = 0
            for part in parts:
                pending.append(part)
                size += len(part)
                if size >= FETCH_PACK_BYTES:
                    yield MAGIC + b"".join(pending)
                    pending, size = [], 0
            if pending:
                yield MAGIC + b"".join(pending)
        except FetchFailed as exc:
            raise error_from_body(500, exc.body, f"{shown} (POST /v1/fetch)") from None
        except InvalidPack as exc:
            raise ConnectionFailed(f"{shown}: the fetch answer is not whole: {exc}") from None
        except httpx.HTTPError as exc:
            raise ConnectionFailed(f"{shown}: the fetch answer failed: {type(exc).__name__}: {exc}") from None
        finally:
            response.close()

    def watch_refs(self, prefix: str, callback: Callable[[Mapping[str, bytes | None]], None]) -> Callable[[], None]:
        """Ref moves under ``prefix`` made through any client of the server, by server-sent events."""
        session = self.session
        watcher = RefWatcher(session.base, session.headers, session.verify, prefix, callback, session.given_transport)
        watcher.start()
        self._watchers.append(watcher)
        return watcher.stop

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, ConnectionFailed)

    def uncached_view(self) -> HttpStore:
        """This server's objects read past the frame cache, which holds frames as they were sent (the
        server may keep another form of an object it already held): what verify and gc judge delta
        chains by.  It shares this store's connection; closing it leaves this store open."""
        return _UncachedHttpView(self)

    def close(self) -> None:
        for watcher in self._watchers:
            watcher.stop()
        self._watchers.clear()
        self.session.close()


class _UncachedHttpView(HttpStore):
    """An :class:`HttpStore` on another's connection whose frames are always read from the server."""

    def __init__(self, of: HttpStore) -> None:  # shares ``of``'s session and capabilities: no request
        self.__dict__.update(of.__dict__)
        self.blobs = HttpBlobs(self, cache_bytes=0)
        self._watchers = []

    def close(self) -> None:
        """Nothing to close: the connection is the viewed store's."""
