"""The CAR v1 byte format of images: the header, one section per object, and bounded reading of both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from casstore import codec
from casstore.errors import (
    InvalidArchive,
    StorageError,
)

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
