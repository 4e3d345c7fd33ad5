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

from casstore.archive.car import (
    DECOMPRESSED_FLOOR,
    MAX_BLOCK_BYTES,
    MAX_RATIO,
    MAX_WINDOW_BYTES,
    header_bytes,
    read_header,
    read_sections,
    section,
)
from casstore.archive.images import ArchiveReport, archive, check_image, restore
from casstore.archive.locations import open_source, open_target

__all__ = [
    "DECOMPRESSED_FLOOR",
    "MAX_BLOCK_BYTES",
    "MAX_RATIO",
    "MAX_WINDOW_BYTES",
    "ArchiveReport",
    "archive",
    "check_image",
    "header_bytes",
    "open_source",
    "open_target",
    "read_header",
    "read_sections",
    "restore",
    "section",
]
