"""Index files of the S3 backend: the format of ``index/*.idx`` and merging several into one.

An index file names the packs of one write and, for each object, ``(digest,
pack number, offset, length)``; a *merged* file (suffix :data:`MERGED_SUFFIX`)
also lists the index files it covers.  Pure functions on bytes: no requests.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from casstore.errors import CorruptObject

__all__ = ["INDEX_MAGIC", "MERGED_SUFFIX", "IndexFile", "decode_index", "encode_index", "merge_index_files"]

INDEX_MAGIC = b"CASIDX2\n"
#: Suffix of an index file that merges (covers) earlier ones.
MERGED_SUFFIX = ".m.idx"
_ENTRY = struct.Struct(">32sIQI")  # digest, pack number, offset, length
_PACK_NAME = re.compile(r"[0-9a-f]{64}\.pack")
_INDEX_NAME = re.compile(r"index/[0-9]{20}-[0-9a-f]{16}(\.m)?\.idx")


@dataclass
class IndexFile:
    """One index file as read (or as just written): its packs, its entries, when, and what it covers."""

    key: str
    packs: list[str]
    entries: list[tuple[bytes, int, int, int]]  # digest, pack number, offset, length
    written: float
    covers: list[str]  # keys (under the prefix) of the index files this one merges


def encode_index(
    packs: Sequence[str], entries: Sequence[tuple[bytes, int, int, int]], covers: Sequence[str] = ()
) -> bytes:
    """The bytes of an index file naming ``packs``, with ``entries`` and the keys it ``covers``."""
    names, covered = "\n".join(packs).encode(), "\n".join(covers).encode()
    head = INDEX_MAGIC + struct.pack(">III", len(names), len(covered), len(entries)) + names + covered
    return head + b"".join(_ENTRY.pack(*entry) for entry in entries)


def decode_index(key: str, data: bytes, written: float) -> IndexFile:
    """Parse the index file stored at ``key``; :class:`~casstore.errors.CorruptObject` if malformed."""
    if not data.startswith(INDEX_MAGIC):
        raise CorruptObject(key, "not a casstore pack index")
    try:
        names_len, covers_len, count = struct.unpack_from(">III", data, len(INDEX_MAGIC))
        start = len(INDEX_MAGIC) + 12
        if start + names_len + covers_len > len(data):
            raise CorruptObject(key, "truncated pack index")
        packs = data[start : start + names_len].decode().split("\n") if names_len else []
        start += names_len
        covers = data[start : start + covers_len].decode().split("\n") if covers_len else []
    except (struct.error, UnicodeDecodeError):
        raise CorruptObject(key, "damaged pack index header") from None
    body = data[start + covers_len :]
    if len(body) != count * _ENTRY.size:
        raise CorruptObject(key, "truncated pack index")
    entries = list(_ENTRY.iter_unpack(body))
    if any(pack >= len(packs) for _, pack, _, _ in entries):
        raise CorruptObject(key, "pack index names a pack it does not list")
    if any(not _PACK_NAME.fullmatch(name) for name in packs) or any(not _INDEX_NAME.fullmatch(c) for c in covers):
        raise CorruptObject(key, "pack index lists a malformed pack or index name")
    return IndexFile(key, packs, entries, written, covers)


def merge_index_files(files: Sequence[IndexFile]) -> tuple[list[str], list[tuple[bytes, int, int, int]]]:
    """One index of several files' entries (later files win, as they do in memory)."""
    packs: dict[str, int] = {}
    entries: dict[bytes, tuple[bytes, int, int, int]] = {}
    for f in files:
        for digest, pack, offset, length in f.entries:
            number = packs.setdefault(f.packs[pack], len(packs))
            entries[digest] = (digest, number, offset, length)
    return list(packs), list(entries.values())
