"""Objects of the S3 backend: frames written in packs, found through index files held in memory.

:class:`S3Blobs` uploads each write's frames as packs of at most
:data:`PACK_BYTES`, then one index file naming them (merging earlier index
files once there are :data:`CONSOLIDATE_AT`); reads are ranged GETs coalesced
per pack; gc rewrites index files, repacks sparse packs and deletes released ones.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import blake3
from botocore.exceptions import ClientError

from casstore.errors import CorruptObject, StorageConnectionError
from casstore.store.base import BlobStats, BlobStore
from casstore.store.s3.cache import FrameMemory, LocalCache
from casstore.store.s3.client import S3Client, is_missing
from casstore.store.s3.index import MERGED_SUFFIX, IndexFile, decode_index, encode_index, merge_index_files

__all__ = ["CONSOLIDATE_AT", "MEMORY_CACHE_BYTES", "ORPHAN_PACK_AGE_S", "PACK_BYTES", "WHOLE_PACK_BYTES", "S3Blobs"]

PACK_BYTES = 8 << 20
_COALESCE_GAP = 256 << 10  # ranges in one pack closer than this are fetched by one GET
#: A pack at most this big is fetched whole the first time any of its objects is read; its other
#: objects then come from memory (a network's nodes of one write share a pack, and are read together).
WHOLE_PACK_BYTES = 16 << 20
MEMORY_CACHE_BYTES = 256 << 20
#: Once there are this many live index files, a write's index file also takes in (covers) all of them,
#: so a cold open reads few files.  Covered files are deleted by gc, so a write costs no extra request.
CONSOLIDATE_AT = 16
#: gc deletes packs that no index names only once they are this old (a writer uploads packs before its index).
ORPHAN_PACK_AGE_S = 3600.0
#: Listings one refresh may take when listed index files vanish (merged by another writer) before they are read.
_RELISTS = 4


class S3Blobs(BlobStore):
    """Objects in packs; the index of every pack held in memory."""

    def __init__(
        self,
        client: S3Client,
        prefix: str,
        pool: ThreadPoolExecutor,
        cache: LocalCache | None,
        *,
        memory_bytes: int = MEMORY_CACHE_BYTES,
        damaged: dict[str, str] | None = None,
    ) -> None:
        """``damaged``: where to note index files that do not parse (key → problem) and go on without
        them (verify's view); by default such a file raises :class:`~casstore.errors.CorruptObject`."""
        self._client = client
        self._prefix = prefix
        self._pool = pool
        self._cache = cache
        self._damaged = damaged
        self._lock = threading.RLock()
        self._files: dict[str, IndexFile] = {}  # live index files (not covered by a merged one)
        self._covered: set[str] = set()  # keys of index files a live merged file covers
        self._where: dict[bytes, tuple[str, int, int]] = {}  # digest → (pack key, offset, length)
        self._pack_objects: dict[str, list[tuple[int, int, bytes]]] = {}  # pack key → (offset, length, digest)
        self._memory = FrameMemory(memory_bytes)
        self._index_read = False
        with contextlib.suppress(CorruptObject):  # raised again by the first read (verify reads past it)
            self.refresh()

    # ---- index

    def refresh(self) -> None:
        """Read index files written (or deleted) since the last look: one LIST, one GET per new file.

        A listed file that is gone when read was merged meanwhile by another writer, which wrote
        the merged file first: listing again finds it (at most a few times), so no object written
        before the call is missed."""
        for _ in range(_RELISTS):
            if not self._refresh_once():
                return

    def _refresh_once(self) -> bool:
        """One listing; whether a listed file vanished before it could be read."""
        vanished: list[str] = []
        listed = {
            item["Key"]: item["LastModified"].timestamp() for item in self._client.list_keys(self._prefix + "index/")
        }
        with self._lock:
            covered = set(self._covered)
            new = [key for key in listed if key not in self._files and key not in covered]
        loaded = []
        for key in sorted((k for k in new if k.endswith(MERGED_SUFFIX)), reverse=True):  # newest first
            if key not in covered:  # usually the newest merged file covers every other one
                index_file = self._load_index(key, listed[key], vanished)
                if index_file is not None:
                    loaded.append(index_file)
                    covered.update(self._prefix + name for name in index_file.covers)
        rest = [key for key in new if not key.endswith(MERGED_SUFFIX) and key not in covered]
        loaded += [
            f for f in self._pool.map(lambda key: self._load_index(key, listed[key], vanished), rest) if f is not None
        ]
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
            self._index_read = True
        return bool(vanished)

    def _add(self, index_file: IndexFile) -> None:
        packs = [self._prefix + "packs/" + name for name in index_file.packs]
        for digest, pack, offset, length in index_file.entries:
            self._where[digest] = (packs[pack], offset, length)
            self._pack_objects.setdefault(packs[pack], []).append((offset, length, digest))

    def _load_index(self, key: str, written: float, vanished: list[str]) -> IndexFile | None:
        """An index file; ``None`` if it was deleted since it was listed (merged by another writer,
        which wrote the merged file first, so nothing is lost; a miss later refreshes again)."""
        data = self._cache.get_file(key) if self._cache else None
        if data is None:
            try:
                data = self._client.read(key)
            except ClientError as exc:
                if is_missing(exc):
                    vanished.append(key)
                    return None
                raise StorageConnectionError(f"{self._client.bucket}: reading index file {key} failed: {exc}") from None
            if self._cache:
                self._cache.put_file(key, data)
        try:
            return decode_index(key, data, written)
        except CorruptObject as exc:
            if self._damaged is None:
                raise
            self._damaged[key] = str(exc)
            return None

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
            all_names, all_entries = merge_index_files([*merged, IndexFile("", names, entries, 0.0, [])])
            # what the merged files covered is covered too: a reader never needs to load those to know
            covers = [key[len(self._prefix) :] for key in [*covered, *(f.key for f in merged)]]
            data = encode_index(all_names, all_entries, covers)
            suffix = MERGED_SUFFIX
        else:
            data, suffix = encode_index(names, entries), ".idx"
        key = f"{self._prefix}index/{time.time_ns():020d}-{blake3.blake3(data).hexdigest(8)}{suffix}"
        self._client.call("put_object", Key=key, Body=data)  # after every pack it names
        own = IndexFile(key, names, entries, time.time(), [])
        with self._lock:
            if merged:
                self._files[key] = IndexFile(key, all_names, all_entries, own.written, covers)
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
            body = self._client.read(pack, Range=f"bytes={start}-{end - 1}")
        except ClientError as exc:
            if is_missing(exc):
                return {}  # the pack went away (gc); the caller refreshes the index
            # InvalidRange: the index names bytes past the pack's end
            raise CorruptObject(pack, f"the index names bytes {start}-{end - 1}, beyond the pack ({exc})") from None
        if whole:  # keep the pack's other objects at hand: they are usually read next
            self._memory.put_many((digest, body[offset : offset + length]) for offset, length, digest in everything)
        return {digest: body[offset - start : offset - start + length] for offset, length, digest in run}

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        if not self._index_read:
            self.refresh()
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
