"""The store wrappers: each passes the conformance suites over memory and LMDB, and does its one job."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from backends import FULL_STACK

import casstore
from casstore import codec
from casstore.errors import (
    CorruptObject,
    InvalidStoreURL,
    ObjectNotFound,
    RefConflict,
    StorageConnectionError,
    StoreReadOnly,
)
from casstore.model import NetworkStore
from casstore.pack import PackBuilder
from casstore.store import open_object_store, wrap_store
from casstore.store.base import BlobStats, BlobStore, ObjectStore, RefStore, RefUpdate
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryBlobs, MemoryRefs, MemoryStore
from casstore.store.wrappers import (
    CachingStore,
    MetricsStore,
    ReadOnlyStore,
    RetriesExhausted,
    RetryingStore,
    WrappedStore,
    find_layer,
    innermost,
)
from casstore.testing.network import rich_state
from casstore.verify import verify

T = TypeVar("T")
SMALL_MAP = 1 << 20


def retrying(store: ObjectStore) -> ObjectStore:
    return RetryingStore(store, attempts=3, base_delay=0)


def caching(store: ObjectStore) -> ObjectStore:
    # a long ref TTL: a ref read the wrapper failed to invalidate after its own write would show
    return CachingStore(store, frame_bytes=1 << 20, ref_ttl=30)


def metered(store: ObjectStore) -> ObjectStore:
    return MetricsStore(store)


WRAPPERS: dict[str, Callable[[ObjectStore], ObjectStore]] = {
    "retrying": retrying,
    "metrics": metered,
    "caching": caching,
}


# The conformance suites run through each wrapper stack over memory and LMDB as cases of tests/backends.py
# (STACKS); this file tests what each wrapper does on top of passing them.


# ---------------------------------------------------------------- forwarding: no call or capability dropped


class Recorder(ObjectStore):
    """A memory store that records every call that reaches it, with capabilities a wrapper must pass on."""

    atomic_commit = True
    passive_remote = True

    def __init__(self) -> None:
        self.url = "recorder://here"
        self.calls: list[str] = []
        calls = self.calls

        class Blobs(MemoryBlobs):
            def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
                calls.append("put_frames")
                super().put_frames(items)

            def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
                calls.append("get_frames")
                return super().get_frames(digests)

            def missing(self, digests: Iterable[bytes]) -> set[bytes]:
                calls.append("missing")
                return super().missing(digests)

            def iter_hashes(self) -> Iterator[bytes]:
                calls.append("iter_hashes")
                return super().iter_hashes()

            def delete_many(self, digests: Iterable[bytes]) -> int:
                calls.append("delete_many")
                return super().delete_many(digests)

            def written_since(self, timestamp: float) -> set[bytes]:
                calls.append("written_since")
                return super().written_since(timestamp)

            def stats(self) -> BlobStats:
                calls.append("stats")
                return super().stats()

        class Refs(MemoryRefs):
            def _get(self, name: str) -> bytes | None:
                calls.append("refs.get")
                return super()._get(name)

            def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
                calls.append("refs.cas" if new is not None else "refs.delete")
                super()._cas(name, expected, new)

            def _list(self, prefix: str) -> dict[str, bytes]:
                calls.append("refs.list")
                return super()._list(prefix)

        self.blobs = Blobs()
        self.refs = Refs()

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        self.calls.append("commit")
        super().commit(frames, updates)

    def receive_pack(self, pack: bytes, updates: Sequence[RefUpdate] = ()) -> int:
        self.calls.append("receive_pack")
        return super().receive_pack(pack, updates)

    def is_transient(self, exc: BaseException) -> bool:
        self.calls.append("is_transient")
        return False

    def close(self) -> None:
        self.calls.append("close")


EVERY_CALL = [
    "put_frames",
    "get_frames",
    "missing",
    "iter_hashes",
    "written_since",
    "stats",
    "delete_many",
    "refs.cas",
    "refs.get",
    "refs.list",
    "refs.delete",
    "commit",
    "receive_pack",
    "is_transient",
    "close",
]


def exercise(store: ObjectStore) -> None:
    """Make every call of the protocols once, through ``store``."""
    frames = codec.frame_many([codec.encode_value("one"), codec.encode_value("two")])
    (one, _), (two, _) = frames
    store.blobs.put_frames(frames[:1])
    assert [f is not None for f in store.blobs.get_frames([two, one])] == [False, True]
    assert store.blobs.missing([one, two]) == {two}
    assert list(store.blobs.iter_hashes()) == [one]
    assert store.blobs.written_since(0) == {one}
    assert store.blobs.stats().objects == 1
    assert store.blobs.delete_many([one]) == 1
    store.refs.compare_and_swap("a/b", None, one)
    assert store.refs.get("a/b") == one
    assert store.refs.list("a/") == {"a/b": one}
    store.refs.delete("a/b", one)
    store.commit(frames[:1], [RefUpdate("a/c", None, one)])
    builder = PackBuilder()
    builder.add_frame(*frames[1])
    assert store.receive_pack(builder.finish(), [RefUpdate("a/d", None, two)]) == 1
    assert store.is_transient(OSError("x")) is False
    store.close()


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_every_call_and_capability_reaches_the_backend(wrapper: str) -> None:
    backend = Recorder()
    store = WRAPPERS[wrapper](backend)
    assert (store.atomic_commit, store.passive_remote, store.url) == (True, True, "recorder://here")
    exercise(store)
    assert sorted(set(backend.calls)) == sorted(EVERY_CALL)
    assert isinstance(store, WrappedStore) and store.unwrap() is backend and innermost(store) is backend


def test_the_stack_hashes_each_object_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_object_store(f"lmdb://{tmp_path / 'h'}?{FULL_STACK}")
    datas = [codec.encode_value(f"hashed {i}") for i in range(10)]
    framed, unframed = [], []
    real_frame_many, real_unframe = codec.frame_many, codec.unframe  # what casstore.store.base calls

    def frame_many(items: Iterable[bytes]) -> list[tuple[bytes, bytes]]:
        out = real_frame_many(items)
        framed.extend(out)
        return out

    def unframe(stored: bytes, digest: bytes) -> bytes:
        unframed.append(digest)
        return real_unframe(stored, digest)

    monkeypatch.setattr("casstore.store.base.frame_many", frame_many)
    monkeypatch.setattr("casstore.store.base.unframe", unframe)
    ids = store.blobs.put_many(datas)
    assert store.blobs.get_many(ids) == datas
    assert len(framed) == 10 and unframed == ids  # once at the top, whatever the depth below
    store.close()


def test_capabilities_and_commit_are_forwarded_by_open_object_store(tmp_path: Path) -> None:
    store = open_object_store(tmp_path / "lmdb", metrics=True)
    assert isinstance(store, MetricsStore) and store.atomic_commit is True and store.passive_remote is False
    full = open_object_store(f"lmdb://{tmp_path / 'full'}?{FULL_STACK}&read_only=off")
    assert full.atomic_commit is True
    assert open_object_store("memory://", metrics=True).atomic_commit is False
    # the commit that runs is LMDB's: a required conflict stores no object and moves no ref
    frames = codec.frame_many([codec.encode_value("x")])
    (digest, _) = frames[0]
    with pytest.raises(RefConflict):
        full.commit(frames, [RefUpdate("first", None, digest), RefUpdate("held", digest, digest)])
    assert full.refs.list() == {} and digest not in full.blobs
    store.close()
    full.close()


def test_no_option_wraps_nothing(tmp_path: Path) -> None:
    with open_object_store(tmp_path / "plain") as store:
        assert type(store) is LmdbStore
    with casstore.open_store("memory://") as network:
        assert type(network.objects) is MemoryStore


def test_the_stack_has_one_fixed_order(tmp_path: Path) -> None:
    store = open_object_store(
        tmp_path / "s", read_only=True, frame_cache_mb=1, metrics="on", retries=1, ref_ttl=0.5, retry_delay=0
    )
    layers = []
    layer: ObjectStore = store
    while isinstance(layer, WrappedStore):
        layers.append(type(layer))
        layer = layer.unwrap()
    assert layers == [ReadOnlyStore, CachingStore, MetricsStore, RetryingStore]
    assert type(layer) is LmdbStore and innermost(store) is layer
    assert find_layer(store, MetricsStore) is store.unwrap().unwrap()  # type: ignore[attr-defined]
    assert find_layer(layer, MetricsStore) is None
    store.close()


@pytest.mark.parametrize(
    "options",
    [{"retries": -1}, {"retries": "many"}, {"metrics": "maybe"}, {"frame_cache_mb": "1.5"}, {"ref_ttl": "nan"}],
)
def test_bad_wrapper_options_are_refused_before_anything_is_created(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidStoreURL) as info:
        open_object_store(tmp_path / "never", **options)
    assert next(iter(options)) in str(info.value)
    assert not (tmp_path / "never").exists()


def test_wrap_store_refuses_unknown_options() -> None:
    with pytest.raises(InvalidStoreURL, match="retrys"):
        wrap_store(MemoryStore(), {"retrys": 3})
    assert isinstance(wrap_store(MemoryStore(), {"metrics": True}), MetricsStore)


def test_wrapper_options_stay_out_of_the_backend_url() -> None:
    one, two = open_object_store("memory://?metrics=on"), open_object_store("memory://?metrics=on")
    assert one.url != two.url and "metrics" not in one.url  # each memory store stays its own store
    named = open_object_store("memory://scratch?retries=1&metrics=on")
    assert named.url == "memory://scratch"


def test_open_store_takes_wrapper_options(tmp_path: Path) -> None:
    with casstore.open_store(f"lmdb://{tmp_path / 'n'}?metrics=on") as network:
        assert network.objects.atomic_commit is True
        network.save_network_state("net", rich_state())
        metrics = find_layer(network.objects, MetricsStore)
        assert metrics is not None and metrics.calls("commit") >= 1


# ---------------------------------------------------------------- MetricsStore


def test_metrics_count_calls_objects_and_bytes() -> None:
    store = MetricsStore(MemoryStore())
    datas = [codec.encode_value(f"object {i}") for i in range(10)]
    ids = store.blobs.put_many(datas)
    assert store.blobs.get_many(ids[:4]) == datas[:4]
    with pytest.raises(ObjectNotFound):
        store.blobs.get(codec.hash_bytes(b"absent"))
    assert store.blobs.missing(iter(ids)) == set()  # an iterator is counted without being used up
    assert sum(1 for _ in store.blobs.iter_hashes()) == 10
    store.refs.compare_and_swap("r", None, ids[0])
    with pytest.raises(RefConflict):
        store.refs.compare_and_swap("r", None, ids[1])
    snap = store.snapshot()
    frames_bytes = sum(len(frame) for _, frame in codec.frame_many(datas))
    assert snap["blobs.put_frames"].calls == 1 and snap["blobs.put_frames"].objects == 10
    assert snap["blobs.put_frames"].bytes == frames_bytes
    assert (snap["blobs.get_frames"].calls, snap["blobs.get_frames"].objects) == (2, 4)  # the absent one is not moved
    assert snap["blobs.missing"].objects == 10
    assert snap["blobs.iter_hashes"].objects == 10
    assert (snap["refs.compare_and_swap"].calls, snap["refs.compare_and_swap"].errors) == (2, 1)
    assert all(stats.seconds >= 0 for stats in snap.values())
    store.reset()
    assert store.snapshot() == {} and store.calls("blobs.put_frames") == 0


def test_metrics_count_commit_and_receive_pack() -> None:
    store = MetricsStore(MemoryStore())
    frames = codec.frame_many([codec.encode_value("a"), codec.encode_value("b")])
    store.commit(frames[:1], [RefUpdate("x", None, frames[0][0])])
    builder = PackBuilder()
    builder.add_frame(*frames[1])
    pack = builder.finish()
    assert store.receive_pack(pack) == 1
    snap = store.snapshot()
    assert (snap["commit"].calls, snap["commit"].objects, snap["commit"].bytes) == (1, 1, len(frames[0][1]))
    assert (snap["receive_pack"].objects, snap["receive_pack"].bytes) == (1, len(pack))
    assert "blobs.put_frames" not in snap  # the commit below is one call, not its parts


# ---------------------------------------------------------------- RetryingStore over a flaky backend


class Transient(Exception):
    """What the flaky backend calls transient (a dropped connection, say)."""


class Permanent(Exception):
    """What it calls permanent."""


class FlakyStore(MemoryStore):
    """A memory store whose calls fail by a script: ``script[call]`` lists, call by call, what to do.

    ``"fail"`` raises :class:`Transient` before the call, ``"lose"`` makes the
    call and then raises it (the answer was lost), ``"break"`` raises
    :class:`Permanent`, ``"ok"`` (or an exhausted list) makes the call.
    """

    def __init__(self, url: str = "flaky://ada:hunter2@example.org/x") -> None:
        super().__init__(url)
        self.script: dict[str, list[str]] = {}
        self.made: list[str] = []
        store = self

        class Blobs(MemoryBlobs):
            def get_frames(self, digests: Sequence[bytes]) -> list[bytes | None]:
                return store.run("get_frames", lambda: super(Blobs, self).get_frames(digests))

            def put_frames(self, items: Sequence[tuple[bytes, bytes]]) -> None:
                store.run("put_frames", lambda: super(Blobs, self).put_frames(items))

            def missing(self, digests: Iterable[bytes]) -> set[bytes]:
                return store.run("missing", lambda: super(Blobs, self).missing(digests))

            def iter_hashes(self) -> Iterator[bytes]:
                store.run("iter_hashes", lambda: None)
                for i, digest in enumerate(super().iter_hashes()):
                    if i == 2:
                        store.run("iter_hashes.third", lambda: None)
                    yield digest

        class Refs(MemoryRefs):
            def _get(self, name: str) -> bytes | None:
                return store.run("get", lambda: super(Refs, self)._get(name))

            def _cas(self, name: str, expected: bytes | None, new: bytes | None) -> None:
                store.run("cas", lambda: super(Refs, self)._cas(name, expected, new))

        self.blobs = Blobs()
        self.refs = Refs()

    def run(self, call: str, fn: Callable[[], T]) -> T:
        steps = self.script.get(call, [])
        step = steps.pop(0) if steps else "ok"
        self.made.append(call)
        if step == "fail":
            raise Transient(f"{call}: connection reset talking to {self.url}")
        if step == "break":
            raise Permanent(f"{call}: no such thing")
        result = fn()
        if step == "lose":
            raise Transient(f"{call}: answer lost")
        return result

    def commit(self, frames: Sequence[tuple[bytes, bytes]], updates: Sequence[RefUpdate]) -> None:
        self.run("commit", lambda: super(FlakyStore, self).commit(frames, updates))

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, Transient)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def flaky_stack(attempts: int = 4) -> tuple[FlakyStore, RetryingStore, Sleeps]:
    backend, sleeps = FlakyStore(), Sleeps()
    return backend, RetryingStore(backend, attempts=attempts, base_delay=0.1, sleep=sleeps, jitter=lambda: 0.0), sleeps


def test_transient_failures_are_retried_with_growing_backoff() -> None:
    backend, store, sleeps = flaky_stack()
    digest = store.blobs.put(codec.encode_value("v"))
    backend.script["get_frames"] = ["fail", "fail"]
    assert store.blobs.get(digest) == codec.encode_value("v")
    assert backend.made.count("get_frames") == 3
    assert store.attempts_made == 1 + 3 and store.policy.retries_made == 2
    assert sleeps == pytest.approx([0.05, 0.1])  # base, doubled; jitter 0 halves each


def test_permanent_failures_are_raised_at_once() -> None:
    backend, store, sleeps = flaky_stack()
    backend.script["put_frames"] = ["break", "ok"]
    with pytest.raises(Permanent):
        store.blobs.put(codec.encode_value("v"))
    assert backend.made == ["put_frames"] and store.attempts_made == 1 and sleeps == []
    with pytest.raises(ObjectNotFound):  # a casstore error that is not transient: not retried either
        store.blobs.get(codec.hash_bytes(b"absent"))
    assert backend.made.count("get_frames") == 1


def test_exhausted_retries_raise_a_storage_connection_error(caplog: pytest.LogCaptureFixture) -> None:
    backend, store, sleeps = flaky_stack(attempts=3)
    backend.script["missing"] = ["fail"] * 5
    with caplog.at_level(logging.DEBUG), pytest.raises(StorageConnectionError) as info:
        store.blobs.missing([codec.hash_bytes(b"x")])
    assert isinstance(info.value, RetriesExhausted) and info.value.attempts == 3
    assert info.value.code == "STORAGE_CONNECTION_ERROR"
    assert isinstance(info.value.__cause__, Transient) and "hunter2" not in str(info.value.__cause__)
    assert "blobs.missing" in str(info.value) and "3 attempts" in str(info.value)
    assert backend.made.count("missing") == 3 and len(sleeps) == 2
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 2
    for text in (str(info.value), caplog.text):
        assert "hunter2" not in text and "flaky://ada:***@example.org/x" in text


def test_a_retry_reads_its_input_again() -> None:
    backend, store, _ = flaky_stack()
    present = store.blobs.put(codec.encode_value("here"))
    absent = codec.hash_bytes(b"absent")
    backend.script["missing"] = ["fail"]
    assert store.blobs.missing(d for d in [present, absent]) == {absent}  # a generator, read once, asked twice


def test_a_lost_compare_and_swap_answer_is_recognised() -> None:
    backend, store, _ = flaky_stack()
    a, b = store.blobs.put_many([codec.encode_value("a"), codec.encode_value("b")])
    backend.script["cas"] = ["lose"]
    store.refs.compare_and_swap("head", None, a)  # landed, answer lost, retried: the retry's conflict is our own
    assert store.refs.get("head") == a
    backend.script["cas"] = ["lose"]
    store.refs.delete("head", a)
    assert store.refs.get("head") is None
    # a real conflict after a transient failure is still a conflict
    store.refs.compare_and_swap("head", None, a)
    backend.script["cas"] = ["fail"]
    with pytest.raises(RefConflict):
        store.refs.compare_and_swap("head", b, b)
    # and a conflict on the first attempt is raised without a retry or a re-read
    made = len(backend.made)
    with pytest.raises(RefConflict):
        store.refs.compare_and_swap("head", None, b)
    assert backend.made[made:] == ["cas"]


def test_a_lost_commit_answer_is_recognised() -> None:
    backend, store, _ = flaky_stack()
    frames = codec.frame_many([codec.encode_value("c")])
    digest = frames[0][0]
    backend.script["commit"] = ["lose"]
    store.commit(frames, [RefUpdate("one", None, digest)])
    assert store.refs.get("one") == digest and store.blobs.get(digest) == codec.encode_value("c")
    backend.script["commit"] = ["fail"]
    with pytest.raises(RefConflict):  # "one" is not at ``None`` and never was made ``None`` by us
        store.commit([], [RefUpdate("one", None, None)])


def test_iter_hashes_is_retried_until_its_first_digest() -> None:
    backend, store, _ = flaky_stack()
    ids = store.blobs.put_many([codec.encode_value(i) for i in range(5)])
    backend.script["iter_hashes"] = ["fail"]
    assert sorted(store.blobs.iter_hashes()) == sorted(ids)
    backend.script["iter_hashes.third"] = ["fail"]
    with pytest.raises(StorageConnectionError, match="iter_hashes"):
        list(store.blobs.iter_hashes())


def test_retrying_store_passes_on_the_backends_classification() -> None:
    backend, store, _ = flaky_stack()
    assert store.is_transient(Transient()) and not store.is_transient(Permanent())
    stacked = MetricsStore(store)
    assert stacked.is_transient(Transient()) and innermost(stacked) is backend


# ---------------------------------------------------------------- ReadOnlyStore


def test_read_only_refuses_every_write_and_changes_nothing(tmp_path: Path) -> None:
    with casstore.open_store(tmp_path / "ro") as network:
        network.save_network_state("net", rich_state())
        network.save_snapshot("net")
    store = open_object_store(tmp_path / "ro", read_only=True, create=False)
    assert isinstance(store, ReadOnlyStore)
    refs, stats = store.refs.list(), store.blobs.stats()
    some = next(iter(store.blobs.iter_hashes()))
    frames = codec.frame_many([codec.encode_value("new")])
    builder = PackBuilder()
    builder.add_frame(*frames[0])
    head = refs["networks/net/head"]
    writes: list[Callable[[], object]] = [
        lambda: store.blobs.put(codec.encode_value("new")),
        lambda: store.blobs.put_frames(frames),
        lambda: store.blobs.delete_many([some]),
        lambda: store.refs.compare_and_swap("networks/net/head", head, frames[0][0]),
        lambda: store.refs.compare_and_swap("brand/new", None, frames[0][0]),
        lambda: store.refs.delete("networks/net/head", head),
        lambda: store.commit(frames, [RefUpdate("x", None, frames[0][0])]),
        lambda: store.receive_pack(builder.finish(), [RefUpdate("x", None, frames[0][0])]),
    ]
    for write in writes:
        with pytest.raises(StoreReadOnly) as info:
            write()
        assert info.value.code == "READ_ONLY" and store.url in str(info.value)
    assert store.refs.list() == refs and store.blobs.stats() == stats
    # reads pass: the network loads and verifies
    network = NetworkStore(store)
    assert network.load_network_state("net") == rich_state()
    assert verify(network).ok
    with pytest.raises(StoreReadOnly):
        network.save_contact_content("net", "root", "root-c0", 1)
    assert store.refs.list() == refs
    store.close()


# ---------------------------------------------------------------- CachingStore


def cached_over_metrics(tmp_path: Path, **options: Any) -> tuple[ObjectStore, MetricsStore, ObjectStore]:
    store = open_object_store(tmp_path / "c", metrics=True, frame_cache_mb=1, **options)
    metrics = find_layer(store, MetricsStore)
    assert isinstance(store, CachingStore) and metrics is not None
    return store, metrics, innermost(store)


def test_a_second_read_does_not_reach_the_backend(tmp_path: Path) -> None:
    store, metrics, backend = cached_over_metrics(tmp_path)
    datas = [codec.encode_value(f"cached {i}") for i in range(20)]
    ids = backend.blobs.put_many(datas)  # written below the cache
    assert store.blobs.get_many(ids) == datas
    assert metrics.snapshot()["blobs.get_frames"].objects == 20
    assert store.blobs.get_many(ids[::-1]) == datas[::-1]
    assert store.blobs.missing(ids) == set()
    snap = metrics.snapshot()
    assert snap["blobs.get_frames"].calls == 1 and "blobs.missing" not in snap
    extra = backend.blobs.put(codec.encode_value("only below"))
    assert store.blobs.missing([*ids, extra]) == set()
    assert metrics.snapshot()["blobs.missing"].objects == 1  # only the uncached digest is asked about
    store.close()


def test_every_read_through_the_cache_is_rehashed() -> None:
    backend = MemoryStore()
    metrics = MetricsStore(backend)
    store = CachingStore(metrics, frame_bytes=1 << 20)
    good = codec.encode_value("good")
    digest = codec.hash_bytes(good)
    backend.blobs.put_frames([(digest, b"\x00" + codec.encode_value("evil"))])  # damaged below the cache
    for _ in range(2):  # the first read catches it, and so does the cached second
        with pytest.raises(CorruptObject):
            store.blobs.get(digest)
    assert metrics.snapshot()["blobs.get_frames"].calls == 1
    store.blobs.put_frames([(digest, b"\x00" + good)])  # a repair through the cache replaces the cached copy
    assert store.blobs.get(digest) == good


def test_frame_cache_stays_within_its_bound_and_forgets_deleted_objects() -> None:
    backend = MemoryStore()
    store = CachingStore(backend, frame_bytes=20_000)
    assert store.frames is not None
    datas = [codec.encode_value(random.Random(i).randbytes(1000)) for i in range(100)]  # incompressible
    ids = backend.blobs.put_many(datas)
    assert store.blobs.get_many(ids) == datas
    assert store.frames.nbytes <= 20_000 and 0 < len(store.frames) < 100
    kept = ids[-1]
    assert store.frames.holds([kept]) == {kept}
    assert store.blobs.delete_many([kept]) == 1
    assert store.frames.holds([kept]) == set() and store.blobs.missing([kept]) == {kept}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ref_reads_are_reused_for_the_ttl_and_forgotten_on_own_writes() -> None:
    backend, clock = MemoryStore(), Clock()
    store = CachingStore(backend, frame_bytes=0, ref_ttl=2.0, clock=clock)
    a, b, c = backend.blobs.put_many([codec.encode_value(x) for x in "abc"])
    backend.refs.compare_and_swap("r", None, a)
    assert store.refs.get("r") == a and store.refs.list() == {"r": a}
    backend.refs.compare_and_swap("r", a, b)  # another writer
    assert store.refs.get("r") == a and store.refs.list() == {"r": a}  # within the TTL
    clock.now += 2.5
    assert store.refs.get("r") == b and store.refs.list() == {"r": b}
    store.refs.compare_and_swap("r", b, c)  # our own write is seen at once
    assert store.refs.get("r") == c
    backend.refs.compare_and_swap("r", c, a)
    with pytest.raises(RefConflict):  # a conflict shows the ref moved: forget it
        store.refs.compare_and_swap("r", c, b)
    assert store.refs.get("r") == a
    store.commit([], [RefUpdate("r", a, b)])
    assert store.refs.get("r") == b and store.refs.list() == {"r": b}


def test_frames_written_through_the_cache_are_served_from_it() -> None:
    metrics = MetricsStore(MemoryStore())
    store = CachingStore(metrics, frame_bytes=1 << 20)
    ids = store.blobs.put_many([codec.encode_value(i) for i in range(10)])
    frames = codec.frame_many([codec.encode_value("committed")])
    store.commit(frames, [])
    assert store.blobs.get_many([*ids, frames[0][0]])[-1] == codec.encode_value("committed")
    assert "blobs.get_frames" not in metrics.snapshot()


def test_caching_store_without_caches_is_a_plain_pass_through() -> None:
    store = CachingStore(MemoryStore(), frame_bytes=0, ref_ttl=0)
    assert store.frames is None and store.ref_cache is None
    assert isinstance(store.blobs, BlobStore) and isinstance(store.refs, RefStore)
    with pytest.raises(ValueError):
        CachingStore(MemoryStore(), frame_bytes=-1)
