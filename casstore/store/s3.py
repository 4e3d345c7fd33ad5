"""``s3://bucket/prefix`` — objects packed into S3 objects, refs moved by S3 conditional writes.

Layout under the prefix (see docs/backends.md):

* ``packs/<blake3 of the pack>.pack`` — frames back to back, at most ~8 MB per pack.
* ``index/<time ns>-<hash>.idx`` — one per write: the packs it wrote and, for each
  object, ``(digest, pack, offset, length)``.  It is written after all of its
  packs, so a write's objects appear together (children never before parents),
  and a write of many objects costs O(packs) requests, not O(objects).
* ``refs/<name>`` — a printable id; moved by compare-and-swap with ``IfNoneMatch="*"``
  (create) and ``IfMatch=<ETag>`` (replace, delete).
* ``casstore-format`` — marks the store.

The index is held in memory (``missing()`` costs no request); reads are ranged
GETs, coalesced per pack and run in parallel.  Index files and fetched objects
are cached in a local directory (bounded in size).  Throttling and 5xx answers
are retried by botocore's "standard" retry mode; a precondition failure is
permanent and becomes :class:`~casstore.errors.RefConflict`.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from casstore.codec import format_id, parse_id
from casstore.errors import (
    CorruptObject,
    InvalidStoreURL,
    RefConflict,
    StorageConnectionError,
    StoragePermissionError,
    StoreNotFound,
)
from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore
from casstore.store.file import FileBlobs
from casstore.store.registry import Backend, StoreLocation, register

PACK_BYTES = 8 << 20
INDEX_MAGIC = b"CASIDX2\n"
#: Suffix of an index file that merges (covers) earlier ones.
MERGED_SUFFIX = ".m.idx"
_ENTRY = struct.Struct(">32sIQI")  # digest, pack number, offset, length
_COALESCE_GAP = 256 << 10  # ranges in one pack closer than this are fetched by one GET
DEFAULT_CACHE_BYTES = 512 << 20
#: A pack at most this big is fetched whole the first time any of its objects is read; its other
#: objects then come from memory (a network's nodes of one write share a pack, and are read together).
WHOLE_PACK_BYTES = 16 << 20
MEMORY_CACHE_BYTES = 256 << 20
#: Once there are this many live index files, a write's index file also takes in (covers) all of them,
#: so a cold open reads few files.  Covered files are deleted by gc, so a write costs no extra request.
CONSOLIDATE_AT = 16
#: gc deletes packs that no index names only once they are this old (a writer uploads packs before its index).
ORPHAN_PACK_AGE_S = 3600.0
_PERMISSION_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


class S3Client:
    """A boto3 client for one bucket: errors translated, requests counted by operation."""

    def __init__(self, bucket: str, endpoint_url: str | None, region: str | None) -> None:
        self.bucket = bucket
        config = Config(
            retries={"mode": "standard", "max_attempts": 8},
            max_pool_connections=32,
            connect_timeout=5,
            read_timeout=60,
        )
        try:
            self.s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=config)
        except BotoCoreError as exc:
            raise StorageConnectionError(f"cannot set up S3 access to {bucket!r}: {exc}") from None
        self.endpoint = self.s3.meta.endpoint_url
        self.requests: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self.s3.meta.events.register("before-call.s3", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        with self._count_lock:
            self.requests[model.name] += 1

    def call(self, operation: str, **kwargs: Any) -> Any:
        """Run one S3 operation on the bucket; connection and permission failures become StorageErrors."""
        try:
            return getattr(self.s3, operation)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            where = f"S3 bucket {self.bucket!r} at {self.endpoint}"
            if code == "NoSuchBucket" or (operation == "head_bucket" and status == 404):
                raise StorageConnectionError(f"{where}: the bucket does not exist") from None
            if code in _PERMISSION_CODES or status == 403:
                raise StoragePermissionError(f"{where}: permission denied ({code or status})") from None
            raise
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise StoragePermissionError(f"S3 bucket {self.bucket!r} at {self.endpoint}: {exc}") from None
        except (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError) as exc:
            raise StorageConnectionError(f"S3 bucket {self.bucket!r} at {self.endpoint} unreachable: {exc}") from None

    def list_keys(self, prefix: str) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self.call("list_objects_v2", **kwargs)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_missing(exc: ClientError) -> bool:
    return _error_code(exc) in ("NoSuchKey", "404", "NotFound")


@dataclass
class _IndexFile:
    key: str
    packs: list[str]
    entries: list[tuple[bytes, int, int, int]]  # digest, pack number, offset, length
    written: float
    covers: list[str]  # keys (under the prefix) of the index files this one merges


def encode_index(
    packs: Sequence[str], entries: Sequence[tuple[bytes, int, int, int]], covers: Sequence[str] = ()
) -> bytes:
    names, covered = "\n".join(packs).encode(), "\n".join(covers).encode()
    head = INDEX_MAGIC + struct.pack(">III", len(names), len(covered), len(entries)) + names + covered
    return head + b"".join(_ENTRY.pack(*entry) for entry in entries)


def decode_index(key: str, data: bytes, written: float) -> _IndexFile:
    if not data.startswith(INDEX_MAGIC):
        raise CorruptObject(key, "not a casstore pack index")
    names_len, covers_len, count = struct.unpack_from(">III", data, len(INDEX_MAGIC))
    start = len(INDEX_MAGIC) + 12
    packs = data[start : start + names_len].decode().split("\n") if names_len else []
    start += names_len
    covers = data[start : start + covers_len].decode().split("\n") if covers_len else []
    body = data[start + covers_len :]
    if len(body) != count * _ENTRY.size:
        raise CorruptObject(key, "truncated pack index")
    return _IndexFile(key, packs, list(_ENTRY.iter_unpack(body)), written, covers)


def _merge(files: Sequence[_IndexFile]) -> tuple[list[str], list[tuple[bytes, int, int, int]]]:
    """One index of several files' entries (later files win, as they do in memory)."""
    packs: dict[str, int] = {}
    entries: dict[bytes, tuple[bytes, int, int, int]] = {}
    for f in files:
        for digest, pack, offset, length in f.entries:
            number = packs.setdefault(f.packs[pack], len(packs))
            entries[digest] = (digest, number, offset, length)
    return list(packs), list(entries.values())


class S3Blobs(BlobStore):
    """Objects in packs; the index of every pack held in memory."""

    def __init__(self, client: S3Client, prefix: str, pool: ThreadPoolExecutor, cache: _LocalCache | None) -> None:
        self._client = client
        self._prefix = prefix
        self._pool = pool
        self._cache = cache
        self._lock = threading.RLock()
        self._files: dict[str, _IndexFile] = {}  # live index files (not covered by a merged one)
        self._covered: set[str] = set()  # keys of index files a live merged file covers
        self._where: dict[bytes, tuple[str, int, int]] = {}  # digest → (pack key, offset, length)
        self._pack_objects: dict[str, list[tuple[int, int, bytes]]] = {}  # pack key → (offset, length, digest)
        self._memory = _FrameMemory(MEMORY_CACHE_BYTES)
        self.refresh()

    # ---- index

    def refresh(self) -> None:
        """Read index files written (or deleted) since the last look: one LIST, one GET per new file."""
        listed = {
            item["Key"]: item["LastModified"].timestamp() for item in self._client.list_keys(self._prefix + "index/")
        }
        with self._lock:
            covered = set(self._covered)
            new = [key for key in listed if key not in self._files and key not in covered]
        loaded = []
        for key in sorted((k for k in new if k.endswith(MERGED_SUFFIX)), reverse=True):  # newest first
            if key not in covered:  # usually the newest merged file covers every other one
                index_file = self._load_index(key, listed[key])
                if index_file is not None:
                    loaded.append(index_file)
                    covered.update(self._prefix + name for name in index_file.covers)
        rest = [key for key in new if not key.endswith(MERGED_SUFFIX) and key not in covered]
        loaded += [f for f in self._pool.map(lambda key: self._load_index(key, listed[key]), rest) if f is not None]
        with self._lock:
            self._covered = (self._covered | covered) & set(listed)
            gone = [key for key in self._files if key not in listed or key in self._covered]
            for key in gone:
                del self._files[key]
            for index_file in loaded:
                if index_file.key not in self._covered:
                    self._files[index_file.key] = index_file
            if gone:
                self._where, self._pack_objects = {}, {}
                for index_file in sorted(self._files.values(), key=lambda f: f.written):
                    self._add(index_file)
            else:
                for index_file in loaded:
                    self._add(index_file)

    def _add(self, index_file: _IndexFile) -> None:
        packs = [self._prefix + "packs/" + name for name in index_file.packs]
        for digest, pack, offset, length in index_file.entries:
            self._where[digest] = (packs[pack], offset, length)
            self._pack_objects.setdefault(packs[pack], []).append((offset, length, digest))

    def _load_index(self, key: str, written: float) -> _IndexFile | None:
        """An index file; ``None`` if it was deleted since it was listed (merged by another writer,
        which wrote the merged file first, so nothing is lost; a miss later refreshes again)."""
        data = self._cache.get_file(key) if self._cache else None
        if data is None:
            try:
                data = self._client.call("get_object", Key=key)["Body"].read()
            except ClientError as exc:
                if _is_missing(exc):
                    return None
                raise
            if self._cache:
                self._cache.put_file(key, data)
        return decode_index(key, data, written)

    # ---- writes

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        if not items:
            return
        packs: list[list[tuple[bytes, bytes]]] = [[]]
        size = 0
        for item in items:
            if packs[-1] and size + len(item[1]) > PACK_BYTES:
                packs.append([])
                size = 0
            packs[-1].append(item)
            size += len(item[1])
        names = list(self._pool.map(self._upload_pack, packs))
        entries = []
        for number, pack in enumerate(packs):
            offset = 0
            for digest, stored in pack:
                entries.append((digest, number, offset, len(stored)))
                offset += len(stored)
        with self._lock:
            merged = sorted(self._files.values(), key=lambda f: f.written) if len(self._files) >= CONSOLIDATE_AT else []
            covered = sorted(self._covered)
        if merged:
            all_names, all_entries = _merge([*merged, _IndexFile("", names, entries, 0.0, [])])
            # what the merged files covered is covered too: a reader never needs to load those to know
            covers = [key[len(self._prefix) :] for key in [*covered, *(f.key for f in merged)]]
            data = encode_index(all_names, all_entries, covers)
            suffix = MERGED_SUFFIX
        else:
            data, suffix = encode_index(names, entries), ".idx"
        key = f"{self._prefix}index/{time.time_ns():020d}-{blake3.blake3(data).hexdigest(8)}{suffix}"
        self._client.call("put_object", Key=key, Body=data)  # after every pack it names
        own = _IndexFile(key, names, entries, time.time(), [])
        with self._lock:
            if merged:
                self._files[key] = _IndexFile(key, all_names, all_entries, own.written, covers)
                for f in merged:
                    self._files.pop(f.key, None)
                    self._covered.add(f.key)
            else:
                self._files[key] = own
            self._add(own)  # what the merged files held is in memory already
        if self._cache:
            self._cache.put_file(key, data)

    def _upload_pack(self, pack: list[tuple[bytes, bytes]]) -> str:
        body = b"".join(stored for _, stored in pack)
        name = blake3.blake3(body).hexdigest() + ".pack"
        self._client.call("put_object", Key=self._prefix + "packs/" + name, Body=body)
        return name

    # ---- reads

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        wanted = list(dict.fromkeys(digests))
        if self.missing(wanted):  # perhaps written by another process: look at the index again once
            self.refresh()
        with self._lock:
            indexed = [d for d in wanted if d in self._where]  # only what the store holds; never the cache alone
        found = self._memory.get_many(indexed)
        if self._cache:
            rest = [d for d in indexed if d not in found]
            for digest, stored in zip(rest, self._cache.blobs.get_frames(rest), strict=True):
                if stored is not None:
                    found[digest] = stored
        absent = [d for d in indexed if d not in found]
        if absent:
            fetched = self._fetch(absent)
            if len(fetched) < len(absent):  # a pack went away (gc repacked it): look again once
                self.refresh()
                fetched.update(self._fetch([d for d in absent if d not in fetched]))
            found.update(fetched)
            if self._cache and fetched:
                self._cache.store(list(fetched.items()))
        return [found.get(d) for d in digests]

    def _fetch(self, digests: Iterable[bytes]) -> dict[bytes, bytes]:
        by_pack: dict[str, list[tuple[int, int, bytes]]] = {}
        with self._lock:
            for digest in digests:
                where = self._where.get(digest)
                if where is not None:
                    by_pack.setdefault(where[0], []).append((where[1], where[2], digest))
        ranges = []
        for pack, wanted in by_pack.items():
            wanted.sort()
            run = [wanted[0]]
            for item in wanted[1:]:
                last = run[-1]
                if item[0] - (last[0] + last[1]) <= _COALESCE_GAP:
                    run.append(item)
                else:
                    ranges.append((pack, run))
                    run = [item]
            ranges.append((pack, run))
        out: dict[bytes, bytes] = {}
        for part in self._pool.map(self._fetch_range, ranges):
            out.update(part)
        return out

    def _fetch_range(self, job: tuple[str, list[tuple[int, int, bytes]]]) -> dict[bytes, bytes]:
        pack, run = job
        with self._lock:
            everything = list(self._pack_objects.get(pack, ()))
        pack_end = max((offset + length for offset, length, _ in everything), default=0)
        whole = 0 < pack_end <= WHOLE_PACK_BYTES
        start, end = (0, pack_end) if whole else (run[0][0], run[-1][0] + run[-1][1])
        try:
            body = self._client.call("get_object", Key=pack, Range=f"bytes={start}-{end - 1}")["Body"].read()
        except ClientError as exc:
            if _is_missing(exc):
                return {}  # the pack went away (gc); the caller refreshes the index
            raise
        if whole:  # keep the pack's other objects at hand: they are usually read next
            self._memory.put_many((digest, body[offset : offset + length]) for offset, length, digest in everything)
        return {digest: body[offset - start : offset - start + length] for offset, length, digest in run}

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        with self._lock:
            return {d for d in digests if d not in self._where}

    def iter_hashes(self) -> Iterator[bytes]:
        self.refresh()
        with self._lock:
            return iter(list(self._where))

    def written_since(self, timestamp: float) -> set[bytes]:
        self.refresh()
        with self._lock:
            return {entry[0] for f in self._files.values() if f.written >= timestamp for entry in f.entries}

    # ---- gc

    def delete_many(self, digests: Iterable[bytes]) -> int:
        """Forget objects: rewrite the index files that name them, then delete packs no index names.

        Live objects in packs that would be mostly garbage are first copied into a new
        pack (new pack and index before anything is deleted), so their old pack can go.
        """
        self.refresh()
        with self._lock:
            covered = list(self._covered)
        for key in covered:  # merged into a live file already: redundant
            self._client.call("delete_object", Key=key)
        doomed = set(digests)
        with self._lock:
            doomed &= set(self._where)
            files = list(self._files.values())
        if not doomed:
            return 0
        live_bytes: Counter[str] = Counter()
        pack_bytes: Counter[str] = Counter()
        for f in files:
            for digest, pack, _, length in f.entries:
                name = f.packs[pack]
                pack_bytes[name] += length
                if digest not in doomed:
                    live_bytes[name] += length
        sparse = {name for name in pack_bytes if 0 < live_bytes[name] < pack_bytes[name] / 2}
        moving = [
            digest
            for f in files
            for digest, pack, _, _ in f.entries
            if f.packs[pack] in sparse and digest not in doomed
        ]
        if moving:  # repack: the copies are written (and indexed) before the old pack is released
            frames = self.get_frames(moving)
            self.put_frames([(d, s) for d, s in zip(moving, frames, strict=True) if s is not None])
        drop = doomed | set(moving)
        named_before = {name for f in files for name in f.packs}
        for f in files:
            if not any(entry[0] in drop for entry in f.entries):
                continue
            keep = [entry for entry in f.entries if entry[0] not in drop]
            if keep:
                used = sorted({entry[1] for entry in keep})
                renumber = {old: new for new, old in enumerate(used)}
                data = encode_index([f.packs[n] for n in used], [(d, renumber[p], o, n) for d, p, o, n in keep])
                key = f"{self._prefix}index/{time.time_ns():020d}-{blake3.blake3(data).hexdigest(8)}.idx"
                self._client.call("put_object", Key=key, Body=data)
            self._client.call("delete_object", Key=f.key)
        self.refresh()
        with self._lock:
            named = {name for f in self._files.values() for name in f.packs}
        self._delete_unindexed_packs(released=named_before - named, named=named)
        return len(doomed)

    def _delete_unindexed_packs(self, released: set[str], named: set[str]) -> None:
        """Delete packs this gc released, and unindexed packs older than ORPHAN_PACK_AGE_S.

        An unindexed young pack may be a concurrent writer's, uploaded before its index: kept.
        """
        cutoff = time.time() - ORPHAN_PACK_AGE_S
        for item in self._client.list_keys(self._prefix + "packs/"):
            name = item["Key"][len(self._prefix) + len("packs/") :]
            if name in named:
                continue
            if name in released or item["LastModified"].timestamp() < cutoff:
                self._client.call("delete_object", Key=item["Key"])

    def stats(self) -> BlobStats:
        packs = list(self._client.list_keys(self._prefix + "packs/"))
        with self._lock:
            objects, files = len(self._where), len(self._files)
        return BlobStats(
            objects,
            sum(int(item["Size"]) for item in packs),
            {"packs": len(packs), "index_files": files, "requests": sum(self._client.requests.values())},
        )


class S3Refs(RefStore):
    """Refs as small objects.  The ETag of each ref's last read or write is remembered, so a
    compare-and-swap whose expected value matches it is one conditional PUT (a stale ETag just
    fails the precondition and the ref is read again); creating a ref needs no read at all."""

    def __init__(self, client: S3Client, prefix: str, pool: ThreadPoolExecutor) -> None:
        self._client = client
        self._prefix = prefix + "refs/"
        self._pool = pool
        self._seen: dict[str, tuple[bytes, str]] = {}  # name → (id, ETag) as last read or written
        self._seen_lock = threading.Lock()

    def _remember(self, name: str, digest: bytes | None, etag: str | None) -> None:
        with self._seen_lock:
            if digest is None or etag is None:
                self._seen.pop(name, None)
            else:
                self._seen[name] = (digest, etag)

    def _read(self, name: str) -> tuple[bytes | None, str | None, str | None]:
        """``(id, ETag, write token)`` of a ref, or Nones when it does not exist."""
        try:
            answer = self._client.call("get_object", Key=self._prefix + name)
        except ClientError as exc:
            if _is_missing(exc):
                self._remember(name, None, None)
                return None, None, None
            raise
        lines = answer["Body"].read().decode("ascii", "replace").split()
        digest = parse_id(lines[0])
        self._remember(name, digest, answer["ETag"])
        return digest, answer["ETag"], lines[1] if len(lines) > 1 else None

    def _get(self, name: str) -> bytes | None:
        return self._read(name)[0]

    def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
        with self._seen_lock:
            seen = self._seen.get(name)
        if expected is None and new is not None:
            etag = None  # create: If-None-Match needs no read
        elif seen is not None and seen[0] == expected:
            etag = seen[1]
        else:
            actual, etag, _ = self._read(name)
            if actual != expected:
                raise RefConflict.of(name, expected, actual)
        key = self._prefix + name
        # The body carries a token unique to this write, so that a retried request can tell
        # its own earlier, answered-but-lost attempt from another writer's.
        token = uuid.uuid4().hex
        body = f"{format_id(new)}\n{token}\n".encode() if new is not None else b""
        try:
            if new is None:
                if etag is not None:
                    self._client.call("delete_object", Key=key, IfMatch=etag)
                self._remember(name, None, None)
            else:
                if etag is None:
                    answer = self._client.call("put_object", Key=key, Body=body, IfNoneMatch="*")
                else:
                    answer = self._client.call("put_object", Key=key, Body=body, IfMatch=etag)
                self._remember(name, new, answer.get("ETag"))
        except ClientError as exc:
            if _error_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict") or _is_missing(exc):
                now, _, now_token = self._read(name)
                if (new is None and now is None) or (new is not None and now_token == token):
                    # An earlier attempt of this request landed and its answer was lost (a 5xx, a
                    # dropped connection), so botocore retried it against our own write.  (A delete
                    # that finds the ref gone is done either way.)
                    return
                raise RefConflict.of(name, expected, now) from None
            raise

    def _list(self, prefix: str) -> dict[str, bytes]:
        """One LIST; a GET only for refs whose ETag differs from the one remembered (every write's body
        carries a unique token, so an unchanged ETag means an unchanged ref)."""
        out: dict[str, bytes] = {}
        stale = []
        with self._seen_lock:
            for item in self._client.list_keys(self._prefix + prefix):
                name = item["Key"][len(self._prefix) :]
                seen = self._seen.get(name)
                if seen is not None and seen[1] == item.get("ETag"):
                    out[name] = seen[0]
                else:
                    stale.append(name)
        for name, value in zip(stale, self._pool.map(self._get, stale), strict=True):
            if value is not None:
                out[name] = value
        return dict(sorted(out.items()))


class _FrameMemory:
    """Frames by digest in memory, least recently used dropped first past a byte budget."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._frames: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_many(self, digests: Iterable[bytes]) -> dict[bytes, bytes]:
        out = {}
        with self._lock:
            for digest in digests:
                frame = self._frames.get(digest)
                if frame is not None:
                    self._frames.move_to_end(digest)
                    out[digest] = frame
        return out

    def put_many(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        with self._lock:
            for digest, frame in items:
                if digest not in self._frames:
                    self._frames[digest] = frame
                    self._bytes += len(frame)
            while self._bytes > self.max_bytes and self._frames:
                _, dropped = self._frames.popitem(last=False)
                self._bytes -= len(dropped)


class _LocalCache:
    """A size-bounded local directory of immutable things: index files and object frames."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        (root / "index").mkdir(parents=True, exist_ok=True)
        (root / "objects").mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(parents=True, exist_ok=True)
        self.blobs = FileBlobs(root)
        self._added = 0

    def _file(self, key: str) -> Path:
        return self.root / "index" / hashlib.sha256(key.encode()).hexdigest()

    def get_file(self, key: str) -> bytes | None:
        try:
            return self._file(key).read_bytes()
        except FileNotFoundError:
            return None

    def put_file(self, key: str, data: bytes) -> None:
        target = self._file(key)
        tmp = self.root / "tmp" / f"{uuid.uuid4().hex}.tmp"  # unique: threads may cache the same file at once
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def store(self, frames: list[tuple[bytes, bytes]]) -> None:
        self.blobs.put_frames(frames)
        self._added += sum(len(f) for _, f in frames)
        if self._added > self.max_bytes // 8:
            self._added = 0
            self._evict()

    def _evict(self) -> None:
        files = []
        for path in (self.root / "objects").glob("*/*"):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            files.append((st.st_mtime, st.st_size, path))
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes * 0.8:
                break
            path.unlink(missing_ok=True)
            total -= size


def default_cache_dir(endpoint: str, bucket: str, prefix: str) -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = hashlib.sha256(f"{endpoint}|{bucket}|{prefix}".encode()).hexdigest()[:16]
    return base / "casstore" / "s3" / f"{bucket}-{tag}"


class S3Store(ObjectStore):
    """A bucket and prefix holding both protocols."""

    blobs: S3Blobs
    refs: S3Refs
    passive_remote = True

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        create: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        cache: bool = True,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        workers: int = 16,
    ) -> None:
        prefix = prefix.strip("/")
        self.prefix = prefix + "/" if prefix else ""
        self.client = S3Client(bucket, endpoint_url, region)
        self.url = f"s3://{bucket}/{prefix}"
        self.client.call("head_bucket")
        marker = self.prefix + "casstore-format"
        try:
            self.client.call("head_object", Key=marker)
        except ClientError as exc:
            if _error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
                raise StorageConnectionError(f"{self.url}: {exc}") from None
            if not create:
                raise StoreNotFound(f"no casstore store at {self.url} (create one with `casstore init`)") from None
            self.client.call("put_object", Key=marker, Body=b"1\n")
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="casstore-s3")
        local = None
        if cache:
            root = Path(cache_dir) if cache_dir else default_cache_dir(self.client.endpoint, bucket, self.prefix)
            local = _LocalCache(root, cache_bytes)
        self.blobs = S3Blobs(self.client, self.prefix, self._pool, local)
        self.refs = S3Refs(self.client, self.prefix, self._pool)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _open(location: StoreLocation, create: bool) -> S3Store:
    if not location.netloc:
        raise InvalidStoreURL(f"store URL {location.url!r} names no bucket (e.g. s3://my-bucket/casstore)")
    mb = location.options.get("cache_mb")
    return S3Store(
        location.netloc,
        location.path,
        endpoint_url=location.str_option("endpoint_url"),
        region=location.str_option("region"),
        create=create,
        cache_dir=location.str_option("cache_dir"),
        cache=location.bool_option("cache", True),
        cache_bytes=DEFAULT_CACHE_BYTES if mb is None else location.int_option("cache_mb", 0) << 20,
    )


BACKEND = register(
    Backend(
        ("s3",),
        _open,
        frozenset({"endpoint_url", "region", "cache_dir", "cache", "cache_mb"}),
        summary="an S3 bucket and prefix (packed objects, refs by conditional writes)",
    )
)
