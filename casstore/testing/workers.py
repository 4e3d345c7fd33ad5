"""Top-level functions the conformance suite runs in threads and spawned processes."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

from casstore import codec
from casstore.errors import RefConflict
from casstore.store.base import ObjectStore

__all__ = ["bump_counter", "counter_value", "run_in_processes", "write_contacts", "write_objects"]


def run_in_processes(target: Callable[..., None], arg_lists: list[tuple[Any, ...]], timeout: float = 180) -> None:
    """Run ``target(*args)`` for each args in its own spawned process, at once; all must exit cleanly."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in arg_lists]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout)
    codes = [proc.exitcode for proc in procs]
    assert codes == [0] * len(procs), f"worker processes exited with {codes}"


def _open(target: ObjectStore | str) -> tuple[ObjectStore, bool]:
    if isinstance(target, str):
        from casstore.store import open_object_store

        return open_object_store(target, create=False), True
    return target, False


def counter_value(store: ObjectStore, ref: str) -> int:
    """The counter behind ``ref`` (0 when the ref is absent)."""
    digest = store.refs.get(ref)
    return 0 if digest is None else int(codec.decode_value(store.blobs.get(digest)))


def bump_counter(target: ObjectStore | str, ref: str, times: int) -> None:
    """Increment a counter object behind ``ref`` ``times`` times by read, CAS, retry."""
    store, owned = _open(target)
    try:
        for _ in range(times):
            while True:
                current = store.refs.get(ref)
                value = 0 if current is None else int(codec.decode_value(store.blobs.get(current)))
                new = store.blobs.put(codec.encode_value(value + 1))
                try:
                    store.refs.compare_and_swap(ref, current, new)
                    break
                except RefConflict:
                    continue
    finally:
        if owned:
            store.close()


def write_objects(url: str, worker: int, count: int) -> None:
    """Write ``count`` distinct objects in small batches (exercises concurrent growth)."""
    store, _ = _open(url)
    try:
        for start in range(0, count, 100):
            store.blobs.put_many(
                [codec.encode_value({"w": worker, "i": i, "pad": "p" * 300}) for i in range(start, start + 100)]
            )
    finally:
        store.close()


def write_contacts(url: str, worker: int, count: int) -> None:
    """Create ``count`` contacts in group ``g`` of network ``net``, one write each."""
    from casstore import open_store

    with open_store(url, create=False) as store:
        for i in range(count):
            store.save_contact_content("net", "g", f"p{worker}-{i}", {"worker": worker, "i": i})
