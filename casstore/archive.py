"""Network images: everything reachable from one snapshot, as a single CAR v1 file.

Format: CAR v1 (https://ipld.io/specs/transport/car/carv1/): a varint-prefixed
DAG-CBOR header ``{"roots": [<snapshot CID>], "version": 1}``, then one section
per object, ``varint(len(cid) + len(data)) | binary CID | canonical bytes``.  The
whole file is zstd-compressed when its name ends in ``.zst``.  Blocks are
written children-first, each object once.

Targets and sources are local paths or ``s3://bucket/key?endpoint_url=…&region=…``
(written by a streamed multipart upload, read by a streamed GET).  Memory stays
bounded: blocks are streamed, and what is held per object is its digest and links
(about 100 bytes), not its bytes.

Restore is staged: the image is read into a scratch LMDB store, every block
re-hashed; then the objects the target lacks are copied into it
(:func:`casstore.sync.transfer`: it walks down from the snapshot, skipping
what the target already holds, and writes children-first through the
target's ``receive_pack``), the target's refs moving with the last batch.  The
walk finishes before anything is written, so a damaged or incomplete image
raises :class:`~casstore.errors.InvalidArchive` before the target changes at
all.  Before that transfer, the whole DAG of the image is walked in the stage
and every object held to the schema of the kind it is reached by
(:class:`casstore.model.schema.StructureCheck`), so a hash-correct image whose
network root, tree nodes or records are malformed is refused too.  Reading is
bounded: a block may not claim more than :data:`MAX_BLOCK_BYTES`, a ``.zst``
image may not decompress to more than :data:`DECOMPRESSED_FLOOR` plus
:data:`MAX_RATIO` times its compressed size (a zstd bomb is refused early), and
its zstd window is capped at :data:`MAX_WINDOW_BYTES`.

Archiving is a transfer too, into a write-only sink whose ``receive_pack``
appends each pack's objects to the image.  Archiving the current state writes
nothing to the source: the snapshot commit naming it is built in memory and
exists only in the image.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast
from urllib.parse import parse_qs, urlsplit

import zstandard

from casstore import codec
from casstore.errors import (
    InvalidArchive,
    InvalidPack,
    InvalidStoreURL,
    NetworkExists,
    NetworkNotFound,
    ObjectNotFound,
    StorageConnectionError,
    StorageError,
)
from casstore.model import records
from casstore.model.network import NetworkStore
from casstore.model.refs import head_ref, snapshot_ref, tip_ref
from casstore.model.schema import StructureCheck
from casstore.model.walk import Kind, Reached, walk
from casstore.pack import PackBuilder, read_pack
from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefUpdate, os_error
from casstore.store.lmdb import LmdbStore
from casstore.sync import Progress, TransferStats, transfer

__all__ = [
    "DECOMPRESSED_FLOOR",
    "MAX_BLOCK_BYTES",
    "MAX_RATIO",
    "MAX_WINDOW_BYTES",
    "ArchiveReport",
    "archive",
    "check_image",
    "open_source",
    "open_target",
    "read_header",
    "read_sections",
    "restore",
]

#: Bytes per multipart upload part (S3's minimum is 5 MiB).
PART_BYTES = 8 << 20
#: Frames held between the walk and the write while archiving; beyond this they are read again.
ARCHIVE_HOLD_BYTES = 32 << 20
_STAGE_BATCH = 4096
#: The longest block an image may hold: a CID and the largest object casstore reads back.
MAX_BLOCK_BYTES = codec.CID_SIZE + codec.MAX_OBJECT_BYTES
#: A ``.zst`` image may decompress to this much plus MAX_RATIO times its compressed bytes read so far.
DECOMPRESSED_FLOOR = 16 << 20
MAX_RATIO = 512
#: The largest zstd window a ``.zst`` image may use (casstore writes level 9: 8 MiB at most).
MAX_WINDOW_BYTES = 32 << 20
#: Bytes asked of the stream per read, so memory follows what a block really holds, not what it claims.
_READ_BYTES = 1 << 20


@dataclass
class ArchiveReport:
    """What an archive or restore moved: the image's snapshot, its object count and canonical bytes."""

    network_id: str
    snapshot_id: str
    objects: int
    bytes: int
    written: TransferStats | None = None


# ---------------------------------------------------------------- sections


def _read_exact(stream: IO[bytes], n: int, what: str) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(min(left, _READ_BYTES))
        if not chunk:
            raise InvalidArchive(f"the image is truncated inside {what}")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_varint(stream: IO[bytes], what: str) -> int | None:
    """The next varint, or ``None`` at a clean end of stream."""
    value, shift = 0, 0
    while True:
        byte = stream.read(1)
        if not byte:
            if shift:
                raise InvalidArchive(f"the image is truncated inside {what}'s length")
            return None
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
        if shift > 63:
            raise InvalidArchive(f"{what} has a malformed length")


def header_bytes(snapshot: bytes) -> bytes:
    header = codec.encode({"roots": [codec.link(snapshot)], "version": 1})
    return codec.varint(len(header)) + header


def section(digest: bytes, data: bytes) -> bytes:
    cid = codec.link(digest)
    return codec.varint(len(cid) + len(data)) + cid + data


def read_header(stream: IO[bytes]) -> bytes:
    """The snapshot digest an image's header names (its single root)."""
    length = _read_varint(stream, "the header")
    if length is None or length > 1 << 20:
        raise InvalidArchive("not a CAR image: no header")
    try:
        header = codec.decode(_read_exact(stream, length, "the header"))
        roots = header["roots"] if isinstance(header, dict) and header.get("version") == 1 else None
    except (ValueError, KeyError, TypeError, StorageError):
        raise InvalidArchive("not a CAR v1 image: the header does not decode") from None
    if not isinstance(roots, list) or len(roots) != 1 or not isinstance(roots[0], bytes):
        raise InvalidArchive("a casstore image has exactly one root, the snapshot")
    try:
        return codec.link_digest(roots[0])
    except StorageError:
        raise InvalidArchive("the image's root is not a casstore object id") from None


def read_sections(stream: IO[bytes]) -> Iterator[tuple[bytes, bytes]]:
    """``(digest, canonical bytes)`` of every block, each re-hashed against its CID."""
    number = 0
    while True:
        number += 1
        what = f"block {number}"
        length = _read_varint(stream, what)
        if length is None:
            return
        if length < codec.CID_SIZE:
            raise InvalidArchive(f"{what} is shorter than a CID")
        if length > MAX_BLOCK_BYTES:
            raise InvalidArchive(
                f"{what} claims {length:,} bytes, more than an object may have ({codec.MAX_OBJECT_BYTES:,})"
            )
        body = _read_exact(stream, length, what)
        if not body.startswith(codec.CID_PREFIX):
            raise InvalidArchive(f"{what} has a CID casstore does not write (not DAG-CBOR + BLAKE3)")
        digest, data = body[len(codec.CID_PREFIX) : codec.CID_SIZE], body[codec.CID_SIZE :]
        if codec.hash_bytes(data) != digest:
            raise InvalidArchive(f"{what} ({codec.format_id(digest)}) does not match its hash: the image is damaged")
        yield digest, data


# ---------------------------------------------------------------- where images live: files and S3


def _split_s3(url: str) -> tuple[str, str, dict[str, str]]:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    key = parts.path.lstrip("/")
    if not parts.netloc or not key:
        raise InvalidStoreURL(f"an S3 image URL names a bucket and a key: s3://bucket/path/image.car, not {url!r}")
    unknown = set(query) - {"endpoint_url", "region"}
    if unknown:
        raise InvalidStoreURL(f"unknown option(s) {sorted(unknown)} in {url!r} (takes endpoint_url, region)")
    return parts.netloc, key, query


def _s3_client(bucket: str, query: dict[str, str]) -> Any:
    from casstore.store.s3 import S3Client

    return S3Client(bucket, query.get("endpoint_url"), query.get("region"))


class _MultipartWriter(io.RawIOBase):
    """A write-only stream uploaded to S3 in parts as it fills; nothing is visible until :meth:`finish`."""

    def __init__(self, client: Any, key: str) -> None:
        self.client, self.key = client, key
        self.upload_id = client.call("create_multipart_upload", Key=key)["UploadId"]
        self.parts: list[dict[str, Any]] = []
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.buffer += data
        while len(self.buffer) >= PART_BYTES:
            self._upload(bytes(self.buffer[:PART_BYTES]))
            del self.buffer[:PART_BYTES]
        return len(data)

    def _upload(self, body: bytes) -> None:
        number = len(self.parts) + 1
        etag = self.client.call("upload_part", Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=body)
        self.parts.append({"ETag": etag["ETag"], "PartNumber": number})

    def finish(self) -> None:
        if self.buffer or not self.parts:
            self._upload(bytes(self.buffer))
            self.buffer.clear()
        self.client.call(
            "complete_multipart_upload", Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
        )

    def abort(self) -> None:
        self.client.call("abort_multipart_upload", Key=self.key, UploadId=self.upload_id)


@contextmanager
def open_target(target: str) -> Iterator[IO[bytes]]:
    """A stream that becomes ``target`` only if the block exits cleanly (temp file + rename, or multipart)."""
    compress = target.endswith(".zst")
    if target.startswith("s3://"):
        bucket, key, query = _split_s3(target)
        raw: Any = _MultipartWriter(_s3_client(bucket, query), key)
        try:
            yield from _compressed(raw, compress)
        except BaseException:
            raw.abort()
            raise
        raw.finish()
        return
    path = Path(target)
    try:
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    except OSError as exc:
        raise os_error(exc, f"cannot write an image at {target}") from None
    try:
        with os.fdopen(handle, "wb") as raw:
            yield from _compressed(raw, compress)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise os_error(exc, f"cannot write an image at {target}") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _compressed(raw: IO[bytes], compress: bool) -> Iterator[IO[bytes]]:
    if not compress:  # both targets buffer already (a file object; the multipart writer's parts)
        yield raw
        return
    with zstandard.ZstdCompressor(level=9, threads=-1).stream_writer(raw, closefd=False) as writer:
        yield writer


class _Counted(io.RawIOBase):
    """A raw stream that counts the bytes read from it (the compressed side of a ``.zst`` image)."""

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self.raw, self.count = raw, 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.raw.read(n)
        self.count += len(data)
        return data

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Reader:
    """``read(n)`` over any stream with ``read``, refilled in chunks of :data:`_READ_BYTES` (varints are read
    a byte at a time).  Over a decompressing stream, refuses to produce more than the ratio bound allows;
    any failure of the stream below becomes a StorageError naming ``source``."""

    def __init__(self, raw: Any, source: str, compressed: _Counted | None = None) -> None:
        self.raw, self.buffer, self.at = raw, b"", 0
        self.source, self.compressed, self.produced = source, compressed, 0

    def read(self, n: int) -> bytes:
        if self.at + n > len(self.buffer):
            self.buffer = self.buffer[self.at :] + self._refill(max(n, _READ_BYTES))
            self.at = 0
        out = self.buffer[self.at : self.at + n]
        self.at += len(out)
        return out

    def _refill(self, n: int) -> bytes:
        try:
            data: bytes = self.raw.read(n)
        except zstandard.ZstdError as exc:
            raise InvalidArchive(f"{self.source} is not a valid zstd stream: {exc}") from None
        except StorageError:
            raise
        except OSError as exc:
            raise os_error(exc, f"cannot read {self.source}") from None
        except Exception as exc:  # a dropped S3 stream (botocore, urllib3): the connection failed
            raise StorageConnectionError(f"reading {self.source} failed: {exc}") from None
        self.produced += len(data)
        if self.compressed is not None and self.produced > DECOMPRESSED_FLOOR + MAX_RATIO * self.compressed.count:
            raise InvalidArchive(
                f"{self.source} decompresses to more than {MAX_RATIO} times its size "
                f"({self.produced:,} bytes from {self.compressed.count:,}): refused as a zstd bomb"
            )
        return data


@contextmanager
def open_source(source: str) -> Iterator[IO[bytes]]:
    """A stream of an image's bytes (decompressed if the name ends in ``.zst``, with the bounds above)."""
    if source.startswith("s3://"):
        from botocore.exceptions import ClientError

        bucket, key, query = _split_s3(source)
        try:
            raw: Any = _s3_client(bucket, query).call("get_object", Key=key)["Body"]
        except ClientError as exc:
            raise ObjectNotFound(str(source), f"no image at {source}: {exc}") from None
    else:
        if not Path(source).is_file():
            raise ObjectNotFound(str(source), f"no image at {source}")
        try:
            raw = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise os_error(exc, f"cannot read {source}") from None
    try:
        if source.endswith(".zst"):
            counted = _Counted(raw)
            decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_BYTES)
            raw = decompressor.stream_reader(cast(IO[bytes], counted), read_size=_READ_BYTES // 8, closefd=True)
            yield _Reader(raw, source, counted)  # type: ignore[misc]
        else:
            yield _Reader(raw, source)  # type: ignore[misc]
    except zstandard.ZstdError as exc:
        raise InvalidArchive(f"{source} is not a valid zstd stream: {exc}") from None
    finally:
        raw.close()


# ---------------------------------------------------------------- archive


class _CarBlocks(BlobStore):
    """A write-only blob store that appends every object it is given to a CAR stream."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.objects = 0
        self.bytes = 0

    def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        for digest, frame in items:
            data = codec.unframe(frame, digest)
            self.out.write(section(digest, data))
            self.objects += 1
            self.bytes += len(data)

    def missing(self, digests: Iterable[bytes]) -> set[bytes]:
        return set(digests)  # an image holds everything reachable

    def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
        raise NotImplementedError("an image being written cannot be read")

    def iter_hashes(self) -> Iterator[bytes]:
        raise NotImplementedError("an image being written cannot be listed")

    def delete_many(self, digests: Iterable[bytes]) -> int:
        raise NotImplementedError("an image is append-only")

    def written_since(self, timestamp: float) -> set[bytes]:
        raise NotImplementedError("an image has no write times")

    def stats(self) -> BlobStats:
        return BlobStats(self.objects, self.bytes)


class _CarSink(ObjectStore):
    """The destination of an archive's transfer: every pack it receives is appended to the image, in order."""

    blobs: _CarBlocks

    def __init__(self, out: IO[bytes], name: str) -> None:
        self.blobs = _CarBlocks(out)
        self.url = name

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        self.blobs.put_frames(frames)

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        """Append the pack's objects (whole frames: nothing is held to delta against); an image has no refs."""
        frames = []
        for entry in read_pack(pack):
            if entry.base is not None:
                raise InvalidPack(f"an image takes whole objects, not a delta ({codec.format_id(entry.digest)})")
            frames.append((entry.digest, entry.payload))
        self.blobs.put_frames(frames)  # re-hashes each frame as it writes its block
        return len(frames)


def archive(
    store: NetworkStore,
    network_id: str,
    target: str,
    snapshot_id: str | None = None,
    progress: Progress | None = None,
) -> ArchiveReport:
    """Write everything reachable from one snapshot of ``network_id`` to ``target`` as a CAR v1 image.

    ``snapshot_id`` defaults to the current state: a snapshot commit of the head
    (labelled ``"archive"``) is built in memory and written only to the image, so
    the source is never written to.  The image appears at ``target`` only once complete.
    """
    if snapshot_id is None:
        head = store.refs.get(head_ref(network_id))
        if head is None:
            raise NetworkNotFound(f"network {network_id!r} not found")
        tip = store.refs.get(tip_ref(network_id))
        size = store.network_root(head)["size"]
        parent = None if tip is None else codec.format_id(tip)
        commit: bytes | None = records.encode_snapshot(network_id, head, parent, "archive", size)
        assert commit is not None
        digest, roots = codec.hash_bytes(commit), [(head, "net")]
    else:
        commit = None
        digest, _ = store.find_snapshot(network_id, snapshot_id)
        roots = [(digest, "snap")]
    with open_target(target) as out:
        out.write(header_bytes(digest))
        sink = _CarSink(out, target)
        transfer(store, sink, roots, remote=sink, progress=progress, hold_bytes=ARCHIVE_HOLD_BYTES)
        if commit is not None:  # after the root it names (blocks are children-first), through the same seam
            builder = PackBuilder()
            builder.add_frames(codec.frame_many([commit]))
            sink.receive_pack(builder.finish())
    return ArchiveReport(network_id, codec.format_id(digest), sink.blobs.objects, sink.blobs.bytes)


# ---------------------------------------------------------------- restore


def restore(
    store: NetworkStore,
    source: str,
    network_id: str | None = None,
    *,
    force: bool = False,
    progress: Progress | None = None,
    scratch: str | os.PathLike[str] | None = None,
) -> ArchiveReport:
    """Load the image at ``source`` into ``store``; set the network's head and snapshot to it.

    The network is the one recorded in the image's snapshot unless ``network_id``
    is given.  If it already exists with another head, :class:`NetworkExists` is
    raised unless ``force``.  ``scratch`` is the directory for the staging store
    (default: the system's temporary directory).
    """
    with tempfile.TemporaryDirectory(prefix="casstore-restore-", dir=scratch) as tmp, LmdbStore(Path(tmp)) as stage:
        with open_source(source) as stream:
            snapshot = read_header(stream)
            objects = nbytes = 0
            batch: list[tuple[bytes, bytes]] = []
            for digest, data in read_sections(stream):
                batch.append((digest, data))
                objects, nbytes = objects + 1, nbytes + len(data)
                if len(batch) >= _STAGE_BATCH:
                    stage.blobs.put_frames(codec.frame_many_hashed(batch))
                    batch = []
            stage.blobs.put_frames(codec.frame_many_hashed(batch))
        if stage.blobs.missing([snapshot]):
            raise InvalidArchive(f"the image lacks its root, snapshot {codec.format_id(snapshot)}")
        check_image(stage, snapshot)
        snap = records.decode_snapshot(stage.blobs.get(snapshot))
        network_id = network_id or snap["network"]
        root = snap["root"]
        try:
            head_name = head_ref(network_id)
        except StorageError as exc:
            raise InvalidArchive(f"the image's network id is not usable: {exc}") from None

        head = store.refs.get(head_name)
        if head is not None and head != root and not force:
            raise NetworkExists(
                f"network {network_id!r} exists with another state; restore it under another name or force"
            )
        tip = store.refs.get(tip_ref(network_id))
        updates = [
            RefUpdate(snapshot_ref(network_id, codec.format_id(snapshot)), None, snapshot, required=False),
            RefUpdate(head_name, head, root),
            RefUpdate(tip_ref(network_id), tip, snapshot, required=False),
        ]
        try:
            written = transfer(stage, store, [(snapshot, "snap")], progress=progress, final_updates=updates)
        except ObjectNotFound as exc:
            raise InvalidArchive(f"the image is incomplete: {exc}") from None
    return ArchiveReport(network_id, codec.format_id(snapshot), objects, nbytes, written)


def check_image(stage: ObjectStore, snapshot: bytes) -> None:
    """Walk the whole DAG of a staged image, every object held to its schema; :class:`InvalidArchive` at
    the first object that is absent, does not re-hash, or breaks the schema of the kind it is reached by."""
    check = StructureCheck()

    def on_missing(digest: bytes, kind: Kind) -> None:
        raise InvalidArchive(f"the image is incomplete: it lacks {kind} object {codec.format_id(digest)}")

    def on_corrupt(digest: bytes, kind: Kind, exc: Exception) -> None:
        raise InvalidArchive(f"the image's {kind} object {codec.format_id(digest)} is malformed: {exc}")

    def visit(level: list[Reached]) -> None:
        for item in level:
            problem = check.check(item)
            if problem is not None:
                raise InvalidArchive(f"the image's {item.kind} object {codec.format_id(item.digest)}: {problem}")

    walk(stage.blobs.get_frames, [(snapshot, "snap")], visit=visit, on_missing=on_missing, on_corrupt=on_corrupt)
    for digest, problem in check.finish(stage.blobs.get_frames).items():
        raise InvalidArchive(f"the image's object {codec.format_id(digest)}: {problem}")
