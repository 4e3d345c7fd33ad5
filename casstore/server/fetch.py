"""The ``fetch`` answer: one pack of every object under ``want`` and not under ``have``, streamed as it is walked.

The walk is depth-first and writes each object after everything below it
(post-order), so the pack is children first and can be stored in any prefix
as it arrives; it holds only the path being walked (each level's children,
read in one batch), so memory is bounded by the tree's depth and fan-out,
not by the closure's size.  Below an object paired with the one it replaces
(``bases``: the new head with the client's old one, then child by child as
sync pairs them), a child equal to its pair is under ``have`` and skipped
with its subtree, and a rewritten one goes as a delta against its pair,
which the client holds.  Anything else under ``want`` is sent unless it is a
``have`` root or was sent already, so nothing the client lacks is ever left
out (a subtree that moved elsewhere is merely sent again).

On the wire (:mod:`casstore.store.http.wire`) the pack travels in parts cut
at entry boundaries, then an end marker; a failure mid-walk (an object the
server lacks or that does not hash) ends the answer with an error part
instead, so the client never takes a cut answer for a whole one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from casstore import codec
from casstore.errors import ObjectNotFound, StorageError
from casstore.model.walk import DECODE_ERRORS, Kind, Link, children, paired_children
from casstore.pack import MAGIC, PackBuilder
from casstore.store.base import ObjectStore
from casstore.store.http.wire import fetch_end, fetch_error, fetch_part

__all__ = ["PART_BYTES", "stream_fetch"]

#: Bytes of pack entries per part sent.
PART_BYTES = 256 << 10


@dataclass
class _Node:
    digest: bytes
    kind: Kind
    data: bytes
    frame: bytes
    base: bytes | None
    base_data: bytes | None
    #: the children still to send, read (None until the node is first expanded)
    below: list[_Node] | None = None
    next: int = 0
    links: list[Link] = field(default_factory=list)


class _Walk:
    def __init__(self, store: ObjectStore, done: set[bytes]) -> None:
        self.blobs = store.blobs
        self.done = done  # sent already, or a have root
        self.builder = PackBuilder()
        self.size = 0

    def read(self, items: Sequence[tuple[bytes, Kind, bytes | None]]) -> list[_Node]:
        """The objects ``(digest, kind, base)``, re-hashed, with their bases' bytes (one batch each)."""
        digests = [digest for digest, _, _ in items]
        frames = self.blobs.get_whole_frames(digests, compress=True)
        base_ids = list(dict.fromkeys(base for _, _, base in items if base is not None))
        base_frames = self.blobs.get_whole_frames(base_ids) if base_ids else []
        bases = {d: codec.unframe(f, d) for d, f in zip(base_ids, base_frames, strict=True) if f is not None}
        nodes = []
        for (digest, kind, base), frame in zip(items, frames, strict=True):
            if frame is None:
                name = codec.format_id(digest)
                raise ObjectNotFound(name, f"the server lacks object {name} (under what was asked for)")
            data = codec.unframe(frame, digest)
            nodes.append(_Node(digest, kind, data, frame, base, bases.get(base) if base is not None else None))
        return nodes

    def expand(self, node: _Node) -> None:
        if node.kind in ("data", "opaque"):
            links: list[Link] = []
        elif node.base_data is not None:
            links = list(paired_children(node.kind, node.data, node.base_data))
        else:
            links = [(child, kind, None) for child, kind in children(node.kind, node.data)]
        wanted: dict[bytes, tuple[bytes, Kind, bytes | None]] = {}
        for child, kind, paired in links:
            if child != paired and child not in self.done and child not in wanted:
                wanted[child] = (child, kind, paired if paired is not None else None)
        node.below = self.read(list(wanted.values())) if wanted else []

    def emit(self, node: _Node) -> bytes | None:
        """Add ``node`` to the pack; a part's worth of entries once there are enough."""
        self.done.add(node.digest)
        if node.base is not None and node.base_data is not None:
            self.builder.add(node.digest, node.frame, node.data, node.base, node.base_data)
        else:
            self.builder.add_frame(node.digest, node.frame)
        self.size += len(node.frame)
        node.data, node.frame, node.base_data = b"", b"", None  # sent: its parent keeps only the digest
        return self.flush() if self.size >= PART_BYTES else None

    def flush(self) -> bytes | None:
        if not self.builder.objects:
            return None
        entries = self.builder.finish()[len(MAGIC) :]
        self.builder, self.size = PackBuilder(), 0
        return fetch_part(entries)


def stream_fetch(
    store: ObjectStore,
    want: Sequence[tuple[bytes, Kind]],
    have: Sequence[tuple[bytes, Kind]],
    bases: Mapping[bytes, bytes],
) -> Iterator[bytes]:
    """The wire parts of the fetch answer (see the module docstring); reads ``store`` as it is consumed."""
    try:
        absent = store.blobs.missing([digest for digest, _ in have] + list(bases.values()))
        done = {digest for digest, _ in have if digest not in absent}
        pairs = {new: old for new, old in bases.items() if old not in absent}
        walk = _Walk(store, done)
        yield fetch_part(MAGIC)
        for digest, kind in want:
            if digest in walk.done:
                continue
            stack = walk.read([(digest, kind, pairs.get(digest))])
            while stack:
                node = stack[-1]
                if node.below is None:
                    walk.expand(node)
                assert node.below is not None
                while node.next < len(node.below) and node.below[node.next].digest in walk.done:
                    node.next += 1  # reached through a sibling meanwhile
                if node.next < len(node.below):
                    stack.append(node.below[node.next])
                    node.next += 1
                    continue
                stack.pop()
                node.below = None  # the children are sent: let them go
                part = walk.emit(node)
                if part is not None:
                    yield part
        part = walk.flush()
        if part is not None:
            yield part
    except StorageError as exc:
        yield fetch_error(exc)
        return
    except DECODE_ERRORS as exc:  # an object of the server's that does not decode by its schema
        yield fetch_error(StorageError(f"an object under what was asked for does not decode: {exc}"))
        return
    yield fetch_end()
