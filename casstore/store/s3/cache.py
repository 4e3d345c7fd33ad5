"""What the S3 backend keeps near the reader: frames in memory and a local directory of immutable files.

:class:`FrameMemory` holds frames of recently fetched packs (an LRU bounded in
bytes); :class:`LocalCache` keeps index files and object frames on local disk
across processes (bounded in size, oldest evicted first).  Neither makes a request.
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from casstore.store.file import FileBlobs

__all__ = ["DEFAULT_CACHE_BYTES", "FrameMemory", "LocalCache", "default_cache_dir"]

DEFAULT_CACHE_BYTES = 512 << 20


class FrameMemory:
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


class LocalCache:
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
    """Where a store's local cache lives unless told: under ``$XDG_CACHE_HOME`` (or ``~/.cache``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = hashlib.sha256(f"{endpoint}|{bucket}|{prefix}".encode()).hexdigest()[:16]
    return base / "casstore" / "s3" / f"{bucket}-{tag}"
