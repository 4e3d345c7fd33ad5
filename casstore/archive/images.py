"""Archive and restore.

An image is written by a transfer into a write-only CAR sink; a restore is staged, checked, then transferred.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from casstore import codec
from casstore.archive.car import _STAGE_BATCH, ARCHIVE_HOLD_BYTES, header_bytes, read_header, read_sections, section
from casstore.archive.locations import open_source, open_target
from casstore.errors import (
    InvalidArchive,
    InvalidPack,
    NetworkExists,
    NetworkNotFound,
    ObjectNotFound,
    StorageError,
)
from casstore.model import records
from casstore.model.network import NetworkStore
from casstore.model.refs import head_ref, snapshot_ref, tip_ref
from casstore.model.schema import StructureCheck
from casstore.model.walk import Kind, Reached, walk
from casstore.pack import PackBuilder, read_pack
from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefUpdate, check_store_argument
from casstore.store.lmdb import LmdbStore
from casstore.sync import Progress, TransferStats, transfer


@dataclass
class ArchiveReport:
    """What an archive or restore moved: the image's snapshot, its object count and canonical bytes."""

    network_id: str
    snapshot_id: str
    objects: int
    bytes: int
    written: TransferStats | None = None


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
    check_store_argument(store)
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
    check_store_argument(store)
    if network_id is not None:
        head_ref(network_id)  # a bad id (an empty one too) is refused before the image is read
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
        network_id = snap["network"] if network_id is None else network_id
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

    walk(stage.blobs.get_whole_frames, [(snapshot, "snap")], visit=visit, on_missing=on_missing, on_corrupt=on_corrupt)
    for digest, problem in check.finish(stage.blobs.get_whole_frames).items():
        raise InvalidArchive(f"the image's object {codec.format_id(digest)}: {problem}")
