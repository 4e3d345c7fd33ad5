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
* ``fetch`` response: a sequence of packs, each preceded by its varint length.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

from casstore import codec
from casstore.errors import InvalidPack, InvalidRefName
from casstore.store.base import RefUpdate

__all__ = [
    "API",
    "DIGEST",
    "decode_frames",
    "decode_indexes",
    "decode_receive",
    "decode_updates",
    "encode_frames",
    "encode_indexes",
    "encode_receive",
    "encode_updates",
    "hex_or_none",
    "join_ids",
    "split_ids",
    "split_packs",
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
    except (IndexError, ValueError, UnicodeDecodeError):
        raise InvalidPack("a receive body must start with a varint-prefixed JSON header") from None
    if not isinstance(header, dict):
        raise InvalidPack("a receive header must be a JSON object")
    return decode_updates(header.get("updates", [])), body[at + length :]


def split_packs(body: bytes) -> Iterator[bytes]:
    at = 0
    while at < len(body):
        try:
            length, at = codec.read_varint(body, at)
        except IndexError:
            raise InvalidPack("a fetch answer is truncated") from None
        if at + length > len(body):
            raise InvalidPack("a fetch answer is truncated inside a pack")
        yield body[at : at + length]
        at += length
