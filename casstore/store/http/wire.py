"""The byte formats of the casstore remote protocol, shared by the server and the ``http(s)://`` client.

Everything here is pure encoding; no I/O.  Ids travel as raw 32-byte digests
in binary bodies and as lowercase hex in JSON and headers.

* ``missing`` request: ids back to back (32 bytes each); response: the
  indexes of the absent ones, little-endian ``uint32`` each.
* ``get`` request: ids back to back; response: per id, a varint of the frame
  length plus one (``0``: absent) and the frame.
* ``receive`` request: a varint length, that many bytes of JSON
  ``{"updates": [{"name", "expected", "new", "required"}]}``, then a pack
  (:mod:`casstore.pack`).
* ``fetch`` response: one pack in parts, ``D`` + varint length + bytes each
  (the pack's magic first, then whole entries, cut at entry boundaries),
  then ``E`` (the end); or, where the server failed mid-walk, ``X`` + varint
  length + a JSON error ``{"code", "message", …}`` instead of ``E``.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from casstore import codec
from casstore.errors import InvalidPack, InvalidRefName, StorageError
from casstore.store.base import RefUpdate

__all__ = [
    "API",
    "DIGEST",
    "FetchFailed",
    "decode_frames",
    "decode_indexes",
    "decode_receive",
    "decode_updates",
    "encode_frames",
    "encode_indexes",
    "encode_receive",
    "encode_updates",
    "fetch_end",
    "fetch_error",
    "fetch_part",
    "hex_or_none",
    "join_ids",
    "read_fetch_parts",
    "split_ids",
]

#: The path prefix of every endpoint, below the server's base URL.
API = "/v1"
DIGEST = codec.DIGEST_SIZE


def join_ids(digests: Sequence[bytes]) -> bytes:
    return b"".join(digests)


def split_ids(body: bytes) -> list[bytes]:
    """The 32-byte ids of a body; :class:`InvalidPack` if its length is not a multiple of 32."""
    if len(body) % DIGEST:
        raise InvalidPack(f"an id list of {len(body)} bytes is not a whole number of {DIGEST}-byte ids")
    return [body[at : at + DIGEST] for at in range(0, len(body), DIGEST)]


def encode_indexes(indexes: Sequence[int]) -> bytes:
    out = array("I", indexes)
    if out.itemsize != 4:  # pragma: no cover - every supported platform has a 4-byte unsigned int
        raise RuntimeError("array('I') is not 32-bit here")
    return out.tobytes()


def decode_indexes(body: bytes, count: int) -> list[int]:
    if len(body) % 4:
        raise InvalidPack("a missing-index answer is not a whole number of 4-byte indexes")
    out = array("I")
    out.frombytes(body)
    indexes = out.tolist()
    if any(index >= count for index in indexes):
        raise InvalidPack("a missing-index answer names an id that was not asked about")
    return indexes


def encode_frames(frames: Sequence[bytes | None]) -> Iterator[bytes]:
    for frame in frames:
        if frame is None:
            yield b"\x00"
        else:
            yield codec.varint(len(frame) + 1)
            yield frame


def decode_frames(body: bytes, count: int) -> list[bytes | None]:
    out: list[bytes | None] = []
    at = 0
    try:
        for _ in range(count):
            length, at = codec.read_varint(body, at)
            if length == 0:
                out.append(None)
                continue
            end = at + length - 1
            if end > len(body):
                raise InvalidPack("a frame list is truncated")
            out.append(body[at:end])
            at = end
    except IndexError:
        raise InvalidPack("a frame list is truncated") from None
    if at != len(body):
        raise InvalidPack("a frame list has trailing bytes")
    return out


def hex_or_none(digest: bytes | None) -> str | None:
    return None if digest is None else digest.hex()


def _digest(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    try:
        digest = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        digest = b""
    if len(digest) != DIGEST:
        raise InvalidPack(f"{what} must be a {DIGEST * 2}-digit hex id or null, not {value!r}")
    return digest


def encode_updates(updates: Sequence[RefUpdate]) -> list[dict[str, Any]]:
    return [
        {"name": u.name, "expected": hex_or_none(u.expected), "new": hex_or_none(u.new), "required": u.required}
        for u in updates
    ]


def decode_updates(items: Any) -> list[RefUpdate]:
    if not isinstance(items, list):
        raise InvalidPack("updates must be a list")
    out = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidRefName(f"a ref update must be an object with a name, not {item!r}")
        required = item.get("required", True)
        if not isinstance(required, bool):
            raise InvalidPack("a ref update's required must be true or false")
        out.append(
            RefUpdate(
                item["name"], _digest(item.get("expected"), "expected"), _digest(item.get("new"), "new"), required
            )
        )
    return out


def encode_receive(pack: bytes, updates: Sequence[RefUpdate]) -> list[bytes]:
    header = json.dumps({"updates": encode_updates(updates)}, separators=(",", ":")).encode()
    return [codec.varint(len(header)), header, pack]


def decode_receive(body: bytes) -> tuple[list[RefUpdate], bytes]:
    try:
        length, at = codec.read_varint(body, 0)
        header = json.loads(body[at : at + length])
    except (IndexError, ValueError, UnicodeDecodeError, RecursionError):  # too deep: bad input, not a 500
        raise InvalidPack("a receive body must start with a varint-prefixed JSON header") from None
    if not isinstance(header, dict):
        raise InvalidPack("a receive header must be a JSON object")
    return decode_updates(header.get("updates", [])), body[at + length :]


FETCH_DATA, FETCH_END, FETCH_ERROR = b"D", b"E", b"X"


def fetch_part(data: bytes) -> bytes:
    return FETCH_DATA + codec.varint(len(data)) + data


def fetch_end() -> bytes:
    return FETCH_END


def fetch_error(exc: StorageError) -> bytes:
    detail: dict[str, Any] = {"code": exc.code, "message": str(exc)}
    object_id = getattr(exc, "object_id", None)
    if object_id is not None:
        detail["object_id"] = object_id
    body = json.dumps(detail).encode()
    return FETCH_ERROR + codec.varint(len(body)) + body


class FetchFailed(Exception):
    """The server ended a fetch answer with an error part: its JSON body."""

    def __init__(self, body: bytes) -> None:
        super().__init__("the server failed mid-answer")
        self.body = body


def read_fetch_parts(chunks: Iterable[bytes], limit: int = 1 << 30) -> Iterator[bytes]:
    """The data parts of a fetch answer read from ``chunks`` as they arrive.

    Raises :class:`FetchFailed` for an error part, and :class:`InvalidPack`
    for an answer that ends before its end marker, a part over ``limit``
    bytes or an unknown part tag.
    """
    buffer = bytearray()
    source = iter(chunks)

    def fill(need: int) -> bool:
        while len(buffer) < need:
            chunk = next(source, None)
            if chunk is None:
                return False
            buffer.extend(chunk)
        return True

    while True:
        if not fill(1):
            raise InvalidPack("the fetch answer ended before its end marker (cut short)")
        tag = bytes(buffer[:1])
        if tag == FETCH_END:
            if len(buffer) > 1 or any(source):
                raise InvalidPack("a fetch answer has bytes after its end marker")
            return
        if tag not in (FETCH_DATA, FETCH_ERROR):
            raise InvalidPack(f"unknown fetch part tag {tag!r}")
        while True:  # the varint: at most 10 bytes
            try:
                length, at = codec.read_varint(bytes(buffer[:11]), 1)
                break
            except IndexError:
                if len(buffer) > 11 or not fill(len(buffer) + 1):
                    raise InvalidPack("the fetch answer ended inside a part header") from None
        if length > limit:
            raise InvalidPack(f"a fetch part of {length} bytes is over the limit")
        if not fill(at + length):
            raise InvalidPack("the fetch answer ended inside a part (cut short)")
        part = bytes(buffer[at : at + length])
        del buffer[: at + length]
        if tag == FETCH_ERROR:
            raise FetchFailed(part)
        yield part
