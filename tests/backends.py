"""The one list of backend cases the test suites run against.

Each :class:`BackendCase` says how to make its ``ObjectStore`` under a tmp path,
the URL another process opens it by, its flags, how to damage one object on
disk, and the pytest fixtures it needs.  From :data:`CASES` come the store
suite classes (``tests/test_store_backends.py``), the network suite classes
(``tests/test_network_backends.py``) and the backend kinds sync pairs up
(``tests/test_sync.py``: every ``sync_pairs`` case with every other, plus each
case with its ``sync_partners``, both ways).  A case stacked under wrappers is one more line of
:data:`STACKS`: the same options build the stack in-process and in the URL
another process opens, so the stack is tested as ``open_object_store`` builds it.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from conftest import BUCKET

from casstore.model import NetworkStore
from casstore.store import open_object_store, wrap_store
from casstore.store.base import ObjectStore
from casstore.store.file import FileStore
from casstore.store.lmdb import LmdbStore
from casstore.store.memory import MemoryStore
from casstore.store.s3 import S3Store
from casstore.testing import StoreTests
from casstore.testing.network import NetworkTests

__all__ = ["CASES", "FULL_STACK", "STACKS", "BackendCase", "case_named", "network_suite", "store_suite"]

#: The values of a case's fixtures, by fixture name.
Fixtures = Mapping[str, Any]


@dataclass(frozen=True)
class BackendCase:
    """One backend configuration the suites run against."""

    #: Short id, as sync tests name kinds: ``"lmdb"``, ``"s3"``.
    name: str
    #: CamelCase part of the generated class names: ``Test{title}Store``, ``Test{title}Networks``.
    title: str
    #: A fresh (or, for the same path, reopened) store under the path.
    make: Callable[[Path, Fixtures], ObjectStore]
    #: The URL another process opens the store at that path by (persistent and shared cases).
    url: Callable[[Path, Fixtures], str] | None = None
    #: Flip a byte of one stored object, the store being closed (persistent cases).
    corrupt: Callable[[Path, bytes, Fixtures], None] | None = None
    persistent: bool = False
    shared: bool = True
    threads: bool = True
    #: pytest fixtures the case needs; their values reach ``make``, ``url`` and ``corrupt``.
    fixtures: tuple[str, ...] = ()
    #: Stacked over the made store (never under ``corrupt``, which reaches the backend itself).
    wrap: Callable[[ObjectStore], ObjectStore] | None = None
    #: Whether the sync tests pair this case with every other one.
    sync_pairs: bool = True
    #: Cases the sync tests pair this one with, both ways, when it is not paired with every case.
    sync_partners: tuple[str, ...] = ()
    #: Whether the store refuses a frame that does not hash (a remote server re-hashes every upload).
    verifies_writes: bool = False

    def open(self, path: Path, fixtures: Fixtures) -> ObjectStore:
        store = self.make(path, fixtures)
        return store if self.wrap is None else self.wrap(store)

    def fixture_values(self, request: pytest.FixtureRequest) -> dict[str, Any]:
        return {name: request.getfixturevalue(name) for name in self.fixtures}

    def stacked(self, name: str, title: str, options: str, sync_pairs: bool = False) -> BackendCase:
        """This backend under the wrappers the URL options ``options`` ask for (``wrap_store``)."""
        parsed = dict(parse_qsl(options))
        url = self.url

        def stacked_url(path: Path, fixtures: Fixtures) -> str:
            assert url is not None
            base = url(path, fixtures)
            return f"{base}{'&' if '?' in base else '?'}{options}"

        return dataclasses.replace(
            self,
            name=name,
            title=title,
            wrap=lambda store: wrap_store(store, parsed),
            url=None if url is None else stacked_url,
            sync_pairs=sync_pairs,
        )


# ---------------------------------------------------------------- damaging one object


def flip_byte_in(path: Path, needle: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at >= 0, f"object bytes not found in {path}"
    data[at + len(needle) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def corrupt_lmdb(path: Path, digest: bytes, _: Fixtures) -> None:
    with LmdbStore(path / "lmdb") as store:
        (frame,) = store.blobs.get_frames([digest])
    assert frame is not None, "the object to damage is not stored"
    flip_byte_in(path / "lmdb" / "data.mdb", frame)


def corrupt_file(path: Path, digest: bytes, _: Fixtures) -> None:
    hexid = digest.hex()
    target = path / "files" / "objects" / hexid[:2] / hexid[2:]
    flip_byte_in(target, target.read_bytes()[1:])


def flip_byte_in_s3(store: S3Store, digest: bytes) -> None:
    """Damage one object inside its pack, in S3 itself."""
    pack, offset, length = store.blobs._where[digest]
    body = bytearray(store.client.call("get_object", Key=pack)["Body"].read())
    body[offset + length // 2] ^= 0x01
    store.client.call("put_object", Key=pack, Body=bytes(body))


def corrupt_postgres(path: Path, digest: bytes, fixtures: Fixtures) -> None:
    """Flip one bit in the middle of the stored frame, in the table itself."""
    import psycopg

    server = fixtures["postgres_server"]
    with psycopg.connect(server.url, autocommit=True) as conn:
        changed = conn.execute(
            f'UPDATE "{server.schema_for(path)}".objects'
            " SET frame = set_byte(frame, length(frame) / 2, get_byte(frame, length(frame) / 2) # 1) WHERE id = %s",
            (digest,),
        ).rowcount
    assert changed == 1, "the object to damage is not stored"


def corrupt_served(path: Path, digest: bytes, fixtures: Fixtures) -> None:
    """Flip one byte in the middle of the frame, in the memory store behind the server."""
    served = fixtures.get("served_stores") or fixtures.get("asgi_stores") or fixtures["served_stores_tls"]
    frames = served.backing(path).blobs._frames
    frame = bytearray(frames[digest])
    frame[len(frame) // 2] ^= 0x01
    frames[digest] = bytes(frame)


# ---------------------------------------------------------------- the cases

LMDB_MAP_SIZE = 1 << 20  # deliberately small: the suites also exercise automatic growth


def _s3_in_process(path: Path, _: Fixtures) -> ObjectStore:
    return S3Store(BUCKET, f"t/{path.name}", cache_dir=path / "s3-cache", workers=1)


def _corrupt_s3_in_process(path: Path, digest: bytes, fixtures: Fixtures) -> None:
    with S3Store(BUCKET, f"t/{path.name}", cache=False, workers=1) as store:
        flip_byte_in_s3(store, digest)
    shutil.rmtree(path / "s3-cache", ignore_errors=True)  # a cached good copy would (rightly) hide the damage


def _s3_over_http(path: Path, fixtures: Fixtures) -> ObjectStore:
    return S3Store(BUCKET, f"h/{path.name}", endpoint_url=fixtures["moto_server"], cache=False)


def _corrupt_s3_over_http(path: Path, digest: bytes, fixtures: Fixtures) -> None:
    with S3Store(BUCKET, f"h/{path.name}", endpoint_url=fixtures["moto_server"], cache=False) as store:
        flip_byte_in_s3(store, digest)


MEMORY = BackendCase("memory", "Memory", lambda path, _: MemoryStore())
LMDB = BackendCase(
    "lmdb",
    "Lmdb",
    lambda path, _: LmdbStore(path / "lmdb", map_size=LMDB_MAP_SIZE),
    url=lambda path, _: f"lmdb://{path / 'lmdb'}?map_size={LMDB_MAP_SIZE}",
    corrupt=corrupt_lmdb,
    persistent=True,
)
FILE = BackendCase(
    "file",
    "File",
    lambda path, _: FileStore(path / "files"),
    url=lambda path, _: f"file://{path / 'files'}",
    corrupt=corrupt_file,
    persistent=True,
)
S3_IN_PROCESS = BackendCase(
    "s3",
    "S3",
    _s3_in_process,
    corrupt=_corrupt_s3_in_process,
    persistent=True,
    shared=False,  # moto in-process lives in this process only
    threads=False,  # moto in-process: concurrent requests from threads can fail inside moto
    fixtures=("mock_s3",),
)
S3_OVER_HTTP = BackendCase(
    "s3-http",
    "S3OverHTTP",
    _s3_over_http,
    url=lambda path, fx: f"s3://{BUCKET}/h/{path.name}?endpoint_url={fx['moto_server']}&cache=off",
    corrupt=_corrupt_s3_over_http,
    persistent=True,
    fixtures=("moto_server",),
    sync_pairs=False,  # the same backend as "s3": the pairs run on the in-process double, which is faster
)

POSTGRES = BackendCase(
    "postgres",
    "Postgres",
    lambda path, fx: open_object_store(fx["postgres_server"].store_url(path)),
    url=lambda path, fx: fx["postgres_server"].store_url(path),
    corrupt=corrupt_postgres,
    persistent=True,
    fixtures=("postgres_server",),
    sync_pairs=False,  # paired with LMDB and S3 only (both ways), not with every case
    sync_partners=("lmdb", "s3"),
)

HTTP = BackendCase(
    "http",
    "Http",
    lambda path, fx: open_object_store(fx["served_stores"].url_for(path)),
    url=lambda path, fx: fx["served_stores"].url_for(path),
    corrupt=corrupt_served,
    persistent=True,
    fixtures=("served_stores",),
    sync_pairs=False,  # paired with LMDB, memory and S3 (both ways), not with every case
    sync_partners=("lmdb", "memory", "s3"),
    verifies_writes=True,
)
#: The same server and client in one process, through an ASGI transport (no socket): the suites without uvicorn.
HTTP_ASGI = BackendCase(
    "http-asgi",
    "HttpAsgi",
    lambda path, fx: open_object_store(fx["asgi_stores"].url_for(path), transport=fx["asgi_stores"].transport),
    corrupt=corrupt_served,
    persistent=True,
    shared=False,  # no URL another process could open
    fixtures=("asgi_stores",),
    sync_pairs=False,
    sync_partners=("lmdb",),
    verifies_writes=True,
)
#: Not in CASES (the suites over TLS would double the http case's time): tests/test_remote_tls.py uses it.
HTTPS = BackendCase(
    "https",
    "Https",
    lambda path, fx: open_object_store(fx["served_stores_tls"].url_for(path, ca_file=str(fx["tls_files"].cert))),
    url=lambda path, fx: fx["served_stores_tls"].url_for(path, ca_file=str(fx["tls_files"].cert)),
    corrupt=corrupt_served,
    persistent=True,
    fixtures=("served_stores_tls", "tls_files"),
    sync_pairs=False,
    sync_partners=("lmdb",),
    verifies_writes=True,
)

#: Every wrapper the stack can add (read-only aside, which the suites' writes cannot pass), as URL options.
FULL_STACK = "retries=2&retry_delay=0&metrics=on&frame_cache_mb=4&ref_ttl=30"
#: The wrapper stacks the suites run through, each over memory and LMDB: title -> URL options.
STACKS = {
    "Retrying": "retries=2&retry_delay=0",
    "Metrics": "metrics=on",
    # a long ref TTL: a ref read the cache failed to invalidate after its own write would show
    "Caching": "frame_cache_mb=1&ref_ttl=30",
    "FullStack": FULL_STACK,
}

CASES: list[BackendCase] = [MEMORY, LMDB, FILE, S3_IN_PROCESS, S3_OVER_HTTP, POSTGRES, HTTP, HTTP_ASGI] + [
    base.stacked(
        f"{base.name}-{title.lower()}",
        f"{title}On{base.title}",
        options,
        sync_pairs=base is LMDB and title == "FullStack",
    )
    for base in (MEMORY, LMDB)
    for title, options in STACKS.items()
]


def case_named(name: str) -> BackendCase:
    for case in CASES:
        if case.name == name:
            return case
    raise KeyError(f"no backend case {name!r}; known: {[c.name for c in CASES]}")


# ---------------------------------------------------------------- suite classes derived from a case


def _suite_namespace(case: BackendCase, make_store: Callable[[Any, Path], Any]) -> dict[str, Any]:
    @pytest.fixture(autouse=True)
    def _case_fixtures(self: Any, request: pytest.FixtureRequest) -> None:
        self.fixtures = case.fixture_values(request)

    namespace: dict[str, Any] = {
        "__doc__": f"The suite against the {case.name!r} backend case (tests/backends.py).",
        "case": case,
        "persistent": case.persistent,
        "shared": case.shared,
        "threads": case.threads,
        "verifies_writes": case.verifies_writes,
        "_case_fixtures": _case_fixtures,
        "make_store": make_store,
    }
    url, corrupt = case.url, case.corrupt
    if url is not None:

        def url_hook(self: Any, path: Path) -> str:
            return url(path, self.fixtures)

        namespace["url"] = url_hook
    if corrupt is not None:

        def corrupt_hook(self: Any, path: Path, digest: bytes) -> None:
            corrupt(path, digest, self.fixtures)

        namespace["corrupt_object"] = corrupt_hook
    return namespace


def store_suite(case: BackendCase) -> type[StoreTests]:
    """``Test{title}Store``: :class:`~casstore.testing.StoreTests` on the case's store."""

    def make_store(self: Any, path: Path) -> ObjectStore:
        return case.open(path, self.fixtures)

    namespace = _suite_namespace(case, make_store)
    return type(f"Test{case.title}Store", (StoreTests,), namespace)


def network_suite(case: BackendCase) -> type[NetworkTests]:
    """``Test{title}Networks``: :class:`~casstore.testing.network.NetworkTests` on the case's store."""

    def make_store(self: Any, path: Path) -> NetworkStore:
        return NetworkStore(case.open(path, self.fixtures))

    namespace = _suite_namespace(case, make_store)
    return type(f"Test{case.title}Networks", (NetworkTests,), namespace)
