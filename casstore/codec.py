"""The object format: canonical encoding, object ids and stored frames.

This is the bottom layer; it knows nothing of stores. See ``docs/format.md``.

* **Encoding** is DAG-CBOR through ``libipld`` (sorted map keys, 64-bit
  floats, shortest integers): the same logical value always gives the same
  bytes.  :func:`encode` is for casstore's own objects, whose links are CID
  bytes (:func:`link`) that ``libipld`` writes as tag 42.  :func:`encode_value`
  is for user data, which must never produce a tag 42: a value holding bytes
  that would be read as a CID is written in an escaped form (below).
* **Ids** are BLAKE3-256 digests of the canonical bytes: raw 32 bytes inside
  stores, printable as CIDv1 (dag-cbor, blake3 multihash, base32).
* **Frames** are what stores keep: one header byte (raw or zstd) then the body.
  Identity never depends on compression.
"""

from __future__ import annotations

import base64
import math
import re
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from operator import itemgetter
from typing import Any

import blake3
import libipld
import zstandard

from casstore.errors import CorruptObject, InvalidId, RefConflict, SerializationError

__all__ = [
    "CID_PREFIX",
    "CID_SIZE",
    "COMPRESS_MIN",
    "DIGEST_SIZE",
    "FRAME_RAW",
    "FRAME_ZSTD",
    "MAX_DEPTH",
    "MAX_OBJECT_BYTES",
    "PARALLEL_FRAME_BYTES",
    "ZSTD_LEVEL",
    "background",
    "decode",
    "decode_value",
    "decompress_bounded",
    "encode",
    "encode_value",
    "format_id",
    "frame_hashed",
    "frame_many",
    "frame_many_hashed",
    "hash_bytes",
    "id_prefix_range",
    "link",
    "link_digest",
    "link_digests",
    "parse_id",
    "read_varint",
    "ref_conflict",
    "unframe",
    "varint",
]


DIGEST_SIZE = 32
#: CIDv1 header: version 1, codec dag-cbor (0x71), multihash blake3 (0x1e), length 32.
CID_PREFIX = bytes([0x01, 0x71, 0x1E, 0x20])
CID_SIZE = len(CID_PREFIX) + DIGEST_SIZE
_PRINTABLE_PREFIX = "bafyr4i"  # what every printable id starts with
_PRINTABLE_LEN = 59

FRAME_RAW = 0x00
FRAME_ZSTD = 0x01
#: Bodies shorter than this are stored raw: below it zstd's frame header and
#: ~1-4 µs per call cost more than the bytes saved (measurements in docs/format.md).
COMPRESS_MIN = 256
ZSTD_LEVEL = 3

_ESCAPE_MARK = "\x00casstore:escaped"
_ESCAPE_PREFIX = b"\x82" + libipld.encode_dag_cbor(_ESCAPE_MARK)
_TAG_42 = b"\xd8\x2a"
#: A tag-42 link as libipld writes it: the tag, then a byte-string header (major type 2, lengths up to 2^64).
_LINK_PATTERN = re.compile(rb"\xd8\x2a[\x40-\x5b]")
_INT_MIN = -(2**64)
_INT_MAX = 2**64 - 1

Value = Any  # None | bool | int | float | str | bytes | list[Value] | dict[str, Value]


# ---------------------------------------------------------------- ids


def hash_bytes(data: bytes) -> bytes:
    """The raw 32-byte id of canonical bytes ``data``."""
    return blake3.blake3(data).digest()


def format_id(digest: bytes) -> str:
    """Printable form of a raw digest: ``bafyr4i…`` (CIDv1, base32)."""
    return "b" + base64.b32encode(CID_PREFIX + digest).decode("ascii").lower().rstrip("=")


def ref_conflict(name: str, expected: bytes | None, actual: bytes | None) -> RefConflict:
    """The :class:`~casstore.errors.RefConflict` of ref ``name``, from raw digests (printed as ids)."""
    return RefConflict(
        name,
        None if expected is None else format_id(expected),
        None if actual is None else format_id(actual),
    )


def parse_id(text: str | bytes) -> bytes:
    """Raw digest from any accepted form: printable CID, 64 hex digits, CID bytes or raw digest."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        if len(raw) == DIGEST_SIZE:
            return raw
        if len(raw) == CID_SIZE and raw.startswith(CID_PREFIX):
            return raw[len(CID_PREFIX) :]
        raise InvalidId(f"{len(raw)} bytes are not an object id (expected a 32-byte digest)")
    if not isinstance(text, str):
        raise InvalidId(f"object id must be str or bytes, not {type(text).__name__}")
    candidate = text.strip()
    if len(candidate) == 2 * DIGEST_SIZE and all(c in "0123456789abcdefABCDEF" for c in candidate):
        return bytes.fromhex(candidate)
    if candidate.startswith("b") and len(candidate) == _PRINTABLE_LEN:
        try:
            raw = base64.b32decode(candidate[1:].upper() + "=" * (-(len(candidate) - 1) % 8))
        except ValueError:
            raw = b""
        if len(raw) == CID_SIZE and raw.startswith(CID_PREFIX):
            return raw[len(CID_PREFIX) :]
    raise InvalidId(f"{text!r} is not an object id (expected bafyr4i… or 64 hex digits)")


def id_prefix_range(prefix: str) -> tuple[bytes, bytes]:
    """Inclusive range of raw digests whose printable (or hex) form starts with ``prefix``."""
    prefix = prefix.strip()
    if 0 < len(prefix) <= 64 and all(c in "0123456789abcdef" for c in prefix.lower()):  # printable ids contain "y"
        low = bytes.fromhex((prefix.lower() + "0" * 64)[:64])
        high = bytes.fromhex((prefix.lower() + "f" * 64)[:64])
        return low, high
    if not prefix.startswith("b") or any(c not in "abcdefghijklmnopqrstuvwxyz234567" for c in prefix[1:]):
        raise InvalidId(f"{prefix!r} is not a prefix of an object id")
    if len(prefix) > _PRINTABLE_LEN:
        raise InvalidId(f"{prefix!r} is longer than an object id ({_PRINTABLE_LEN} characters)")
    body = prefix[1:].upper()

    def decode(pad: str) -> bytes:
        text = (body + pad * _PRINTABLE_LEN)[: _PRINTABLE_LEN - 1]
        return base64.b32decode(text + "=" * (-len(text) % 8))[:CID_SIZE]

    low, high = decode("A"), decode("7")
    if low[: len(CID_PREFIX)] > CID_PREFIX or high[: len(CID_PREFIX)] < CID_PREFIX:
        raise InvalidId(f"{prefix!r} is not a prefix of an object id (they start with {_PRINTABLE_PREFIX})")
    lo = low[4:] if low.startswith(CID_PREFIX) else bytes(DIGEST_SIZE)
    hi = high[4:] if high.startswith(CID_PREFIX) else b"\xff" * DIGEST_SIZE
    return lo, hi


def link(digest: bytes) -> bytes:
    """The CID bytes that name ``digest`` inside casstore's own objects (encoded as tag 42)."""
    return CID_PREFIX + digest


def link_digest(cid: bytes) -> bytes:
    """Inverse of :func:`link`, for a field the schema says is a link."""
    if len(cid) != CID_SIZE or not cid.startswith(CID_PREFIX):
        raise SerializationError(f"not a casstore link: {cid[:8].hex()}…")
    return cid[len(CID_PREFIX) :]


_CID_HEAD = itemgetter(slice(0, len(CID_PREFIX)))
_CID_DIGEST = itemgetter(slice(len(CID_PREFIX), None))


def link_digests(cids: list[bytes]) -> list[bytes]:
    """:func:`link_digest` of each of ``cids`` (checked and sliced in C: a tree node holds hundreds)."""
    if cids and (set(map(len, cids)) != {CID_SIZE} or set(map(_CID_HEAD, cids)) != {CID_PREFIX}):
        for cid in cids:
            link_digest(cid)  # names the first bad one
    return list(map(_CID_DIGEST, cids))


# ---------------------------------------------------------------- encoding


def encode(value: Value) -> bytes:
    """Canonical DAG-CBOR of one of casstore's own objects (links allowed)."""
    try:
        return libipld.encode_dag_cbor(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise _explain(value, "value", exc) from None


def decode(data: bytes) -> Value:
    """Inverse of :func:`encode`. Links come back as CID bytes."""
    try:
        return libipld.decode_dag_cbor(data)
    except (ValueError, TypeError) as exc:
        raise SerializationError(f"not canonical DAG-CBOR: {exc}") from None


def encode_value(value: Value, path: str = "value", max_depth: int | None = None) -> bytes:
    """Canonical bytes of user data; never contains a link (tag 42).

    ``value`` may nest lists and maps :data:`MAX_DEPTH` levels deep, or ``max_depth`` for a
    record that embeds user values a few levels down (a group body holds its attributes' values
    two levels down, and allows ``MAX_DEPTH + 2``).

    The fast path is one ``libipld`` call. Only when its output holds what a link
    looks like (tag 42 then a byte-string header), or already looks like an
    escaped value, is the value walked: if
    some bytes in it would be read as a CID, every bytes value is prefixed with
    ``0x00`` (which no CID starts with) and the result wrapped as
    ``["\\x00casstore:escaped", escaped]``.  :func:`decode_value` undoes it.
    """
    try:
        data = libipld.encode_dag_cbor(value)
    except RecursionError:
        raise _too_deep(path) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise _explain(value, path, exc) from None
    limit = MAX_DEPTH if max_depth is None else max_depth
    if len(data) > limit and _may_exceed(data, limit) and _depth_exceeds(value, limit):
        raise _too_deep(path)
    if data.startswith(_ESCAPE_PREFIX) or (_LINK_PATTERN.search(data) and _holds_cid_bytes(value)):
        data = libipld.encode_dag_cbor([_ESCAPE_MARK, _escape(value)])
    return data


#: The deepest nesting of lists and maps a value may have (every read path handles it: JSON, show, diff).
MAX_DEPTH = 256


def _too_deep(path: str) -> SerializationError:
    return SerializationError(f"{path}: nested more than {MAX_DEPTH} levels deep (the limit)", path)


_CONTAINERS = (list, dict)
#: Every byte except the initial bytes of CBOR arrays and maps (major types 4 and 5: 0x80-0xbf).
_NOT_CONTAINER_HEADS = bytes(b for b in range(256) if not 0x80 <= b <= 0xBF)


def _may_exceed(data: bytes, limit: int) -> bool:
    """A sound filter for :func:`_depth_exceeds`: nesting ``limit`` levels needs at least ``limit``
    array or map heads, and a head byte is one of 0x80-0xbf (which other bytes may also be)."""
    return len(data) > limit and len(data.translate(None, _NOT_CONTAINER_HEADS)) > limit


def _depth_exceeds(value: Value, limit: int) -> bool:
    """Whether ``value`` nests lists/maps more than ``limit`` levels deep (iterative: no recursion).

    Level by level; a level's children are gathered and their types looked at in C, so a wide
    value (a series of a thousand small maps) costs a few passes, not a Python step per scalar.
    """
    level: list[Any] = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        kinds = set(map(type, level))
        if kinds == {dict}:  # a level of maps alone (or lists alone, below): gathered without a Python step each
            children = list(chain.from_iterable(map(dict.values, level)))
        elif kinds == {list}:
            children = list(chain.from_iterable(level))
        else:  # only lists and maps (or their subclasses) are queued
            maps = [item.values() for item in level if isinstance(item, dict)]
            children = list(chain.from_iterable(chain([item for item in level if not isinstance(item, dict)], maps)))
        kinds = set(map(type, children))
        if not any(issubclass(kind, _CONTAINERS) for kind in kinds):
            return False
        if not all(issubclass(kind, _CONTAINERS) for kind in kinds):
            children = [child for child in children if isinstance(child, _CONTAINERS)]
        level = children
    return False


def decode_value(data: bytes) -> Value:
    """Inverse of :func:`encode_value`."""
    value = decode(data)
    if data.startswith(_ESCAPE_PREFIX):
        return _unescape(value[1])
    return value


def _holds_cid_bytes(value: Value) -> bool:
    if isinstance(value, bytes):
        return libipld.encode_dag_cbor(value).startswith(_TAG_42)
    if isinstance(value, list):
        return any(_holds_cid_bytes(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_cid_bytes(v) for v in value.values())
    return False


def _escape(value: Value) -> Value:
    if isinstance(value, bytes):
        return b"\x00" + value
    if isinstance(value, list):
        return [_escape(v) for v in value]
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    return value


def _unescape(value: Value) -> Value:
    if isinstance(value, bytes):
        return value[1:]
    if isinstance(value, list):
        return [_unescape(v) for v in value]
    if isinstance(value, dict):
        return {k: _unescape(v) for k, v in value.items()}
    return value


def _explain(value: Value, path: str, exc: BaseException) -> SerializationError:
    """Find the first part of ``value`` outside the data model and name its path."""
    found = _find_bad(value, path)
    if found is None:  # the encoder refused something our walk accepts
        return SerializationError(f"{path} cannot be encoded: {exc}", path)
    bad_path, reason = found
    return SerializationError(f"{bad_path}: {reason}", bad_path)


def _find_bad(value: Value, path: str) -> tuple[str, str] | None:
    if value is None or isinstance(value, (bool, str, bytes)):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return path, "string is not valid Unicode (lone surrogate)"
        return None
    if isinstance(value, int):
        if not _INT_MIN <= value <= _INT_MAX:
            return path, f"integer {value} is outside the 64-bit range"
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return path, f"{value} is not a finite float (NaN and Infinity are not allowed)"
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_bad(item, f"{path}[{index}]")
            if found:
                return found
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}[{key!r}]", f"map key {key!r} is a {type(key).__name__}, only str keys are allowed"
            found = _find_bad(item, f"{path}[{key!r}]".replace("'", '"'))
            if found:
                return found
        return None
    hint = " (use a list)" if isinstance(value, tuple) else ""
    return path, f"{type(value).__name__} is not in the data model{hint}"


# ---------------------------------------------------------------- varints (unsigned LEB128, as in CAR and packs)


def varint(number: int) -> bytes:
    """``number`` (>= 0) as an unsigned LEB128 varint."""
    out = bytearray()
    while True:
        low = number & 0x7F
        number >>= 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def read_varint(data: bytes, at: int) -> tuple[int, int]:
    """The varint at ``data[at]`` and the offset after it; ``IndexError`` if it runs off the end."""
    number = shift = 0
    while True:
        byte = data[at]
        at += 1
        number |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return number, at


# ---------------------------------------------------------------- frames

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    # zstandard objects are not safe to share between threads.
    c: zstandard.ZstdCompressor | None = getattr(_local, "c", None)
    if c is None:
        c = _local.c = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


#: The largest object casstore reads back (a frame declaring more is corrupt).
MAX_OBJECT_BYTES = 1 << 30
#: Frames declaring more than this are decompressed in steps, so memory follows the bytes actually
#: produced, not what a damaged header claims.
_ONE_SHOT_BYTES = 64 << 20


def decompress_bounded(packed: bytes, digest: bytes) -> bytes:
    """The content of a zstd frame, never allocating more than its real size (or MAX_OBJECT_BYTES)."""
    try:
        declared = zstandard.get_frame_parameters(packed).content_size
        if declared < 0 or declared > MAX_OBJECT_BYTES:  # unknown (-1) never occurs in frames we write
            raise CorruptObject(format_id(digest), f"zstd frame declares an impossible size ({declared})")
        if declared <= _ONE_SHOT_BYTES:
            data: bytes = _decompressor().decompress(packed)
        else:
            data = _decompress_in_steps(packed, declared, digest)
    except zstandard.ZstdError as exc:
        raise CorruptObject(format_id(digest), f"zstd frame unreadable ({exc})") from None
    if len(data) != declared:
        raise CorruptObject(format_id(digest), "zstd frame size does not match its header")
    return data


def _decompress_in_steps(packed: bytes, declared: int, digest: bytes) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(packed, read_across_frames=False)
    parts: list[bytes] = []
    total = 0
    while chunk := reader.read(1 << 20):
        total += len(chunk)
        if total > declared:
            raise CorruptObject(format_id(digest), "zstd frame holds more than its header declares")
        parts.append(chunk)
    return b"".join(parts)


def unframe(stored: bytes, digest: bytes) -> bytes:
    """Canonical bytes of a stored frame, re-hashed against ``digest``.

    Raises :class:`CorruptObject` naming the id if anything is off: wrong data
    is never returned.
    """
    kind = stored[:1]
    if kind == b"\x00":
        data = stored[1:]
    elif kind == b"\x01":
        data = decompress_bounded(stored[1:], digest)
    elif kind == b"\x02":  # a delta frame (casstore.store.deltas): BlobStore.get_many rebuilds it first
        raise CorruptObject(format_id(digest), "a delta whose base is missing or corrupt")
    else:
        raise CorruptObject(format_id(digest), f"unknown frame header {stored[:1].hex() or 'empty'}")
    if blake3.blake3(data).digest() != digest:
        raise CorruptObject(format_id(digest))
    return data


#: Batches with more body bytes than this are framed on two threads (zstd releases the GIL).
PARALLEL_FRAME_BYTES = 1 << 19
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def background() -> ThreadPoolExecutor:
    """The one extra thread that frames half of a large batch."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="casstore-frame")
    return _pool


def frame_hashed(items: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``(digest, frame)`` for ``(digest, canonical bytes)`` pairs already hashed by the caller."""
    compress = _compressor().compress
    out = []
    for digest, data in items:
        if len(data) >= COMPRESS_MIN:
            packed = compress(data)
            stored = b"\x01" + packed if len(packed) < len(data) else b"\x00" + data
        else:
            stored = b"\x00" + data
        out.append((digest, stored))
    return out


def frame_many_hashed(items: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """:func:`frame_hashed`, on two threads for large batches (zstd releases the GIL)."""
    if len(items) < 64 or sum(len(data) for _, data in items) < PARALLEL_FRAME_BYTES:
        return frame_hashed(items)
    half = len(items) // 2
    second = background().submit(frame_hashed, items[half:])
    return frame_hashed(items[:half]) + second.result()


def frame_many(datas: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
    """``(digest, frame)`` for each canonical byte string, in order."""
    hasher = blake3.blake3
    return frame_many_hashed([(hasher(data).digest(), data) for data in datas])
