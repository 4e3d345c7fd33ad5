"""The backend registry: URL parsing, options, secrets kept out of print, and third-party backends by entry point."""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import casstore
from casstore import codec
from casstore.errors import InvalidStoreURL, StorageError, StoreNotFound
from casstore.store import open_object_store, registry
from casstore.store.base import BlobStats, ObjectStore
from casstore.store.memory import MemoryBlobs, MemoryStore
from casstore.store.registry import (
    Backend,
    StoreLocation,
    backend_for,
    known_schemes,
    open_location,
    parse_location,
    redact_url,
    register,
)
from casstore.store.wrappers import MetricsStore, RetriesExhausted, RetryingStore
from casstore.testing import StoreTests
from casstore.testing.network import rich_state

SECRET = "hunter2"


@pytest.fixture
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test stay in that test."""
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))


# ---------------------------------------------------------------- parsing and options


def test_parse_location(tmp_path: Path) -> None:
    bare = parse_location(str(tmp_path / "x"))
    assert (bare.scheme, bare.where, bare.options) == ("lmdb", str(tmp_path / "x"), {})
    assert parse_location(tmp_path / "p").where == str(tmp_path / "p")
    s3 = parse_location("S3://bucket/some/prefix?region=eu-west-1&cache=off", {"cache": True, "region": None})
    assert (s3.scheme, s3.netloc, s3.path) == ("s3", "bucket", "/some/prefix")
    assert s3.options == {"region": "eu-west-1", "cache": True}  # keywords win; a None keyword is not given
    assert s3.bool_option("cache", False) is True and s3.str_option("region") == "eu-west-1"
    assert s3.str_option("endpoint_url") is None
    assert parse_location("lmdb:///x?map_size=7").int_option("map_size", 0) == 7
    assert parse_location("x://h?ttl=0.5").float_option("ttl", 1.0) == 0.5


@pytest.mark.parametrize("url", ["", "  ", "memory://?novalue", 42])
def test_malformed_urls(url: Any) -> None:
    with pytest.raises(InvalidStoreURL):
        parse_location(url)


@pytest.mark.parametrize(
    ("value", "method", "words"),
    [
        ("big", "int_option", "whole number"),
        ("fast", "float_option", "a number"),
        ("perhaps", "bool_option", "on or off"),
    ],
)
def test_option_errors_name_the_option_without_the_secret(value: str, method: str, words: str) -> None:
    location = parse_location(f"foo://ada:{SECRET}@host/x?opt={value}")
    with pytest.raises(InvalidStoreURL) as info:
        getattr(location, method)("opt", 0)
    assert "opt" in str(info.value) and words in str(info.value) and SECRET not in str(info.value)


def test_unknown_scheme_and_option_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidStoreURL, match=r"unknown store scheme 'nope'.*lmdb.*memory"):
        open_object_store("nope://x")
    with pytest.raises(InvalidStoreURL, match=r"unknown option\(s\) \['colour'\].*lmdb takes map_size"):
        open_object_store(f"lmdb://{tmp_path}/x?colour=red")
    with pytest.raises(InvalidStoreURL, match="memory takes no options"):
        open_object_store("memory://", colour="red")
    with pytest.raises(InvalidStoreURL, match="names no location"):
        open_object_store("file://")
    with pytest.raises(InvalidStoreURL, match=r"names no location \(e\.g\. s3://my-bucket/casstore\)"):
        open_object_store("s3://")  # an example of its own scheme's shape, not a path


def test_a_backend_may_not_take_a_wrapper_option(isolated_registry: None) -> None:
    register(Backend(("greedy",), lambda loc, create: MemoryStore(), frozenset({"metrics"}), needs_location=False))
    with pytest.raises(InvalidStoreURL, match="reserved for wrappers"):
        open_object_store("greedy://")


# ---------------------------------------------------------------- secrets


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("foo://ada:hunter2@db.example/x", "foo://ada:***@db.example/x"),
        ("foo://:hunter2@db.example", "foo://:***@db.example"),
        ("foo://ada@db.example/x?mode=fast", "foo://ada@db.example/x?mode=fast"),
        ("s3://b/p?aws_secret_access_key=hunter2&region=x", "s3://b/p?aws_secret_access_key=***&region=x"),
        ("foo://h/x?password=hunter2#frag", "foo://h/x?password=***#frag"),
        ("foo://h/x?api_token=hunter2&SessionKey=hunter2", "foo://h/x?api_token=***&SessionKey=***"),
        ("no store at foo://a:hunter2@h/x (create one)", "no store at foo://a:***@h/x (create one)"),
        ("/plain/path", "/plain/path"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


class Keeper(MemoryStore):
    """A third-party-style store that keeps the URL it was opened with, password and all."""


def _open_keeper(location: StoreLocation, create: bool) -> ObjectStore:
    if not create:
        raise StoreNotFound(f"no casstore store at {location.url}")
    if location.options.get("mode") == "custom-str":
        raise _Opaque(location.url)
    return Keeper(location.url)


class _Opaque(Exception):
    """An error whose message is built from an attribute, out of reach of an args scrub."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.where = url

    def __str__(self) -> str:
        return f"connection refused by {self.where}"


KEEPER = Backend(("keeper",), _open_keeper, frozenset({"mode", "token"}), needs_location=False)


def test_a_password_is_never_printed(isolated_registry: None, caplog: pytest.LogCaptureFixture) -> None:
    register(KEEPER)
    url = f"keeper://ada:{SECRET}@db.example/x?token={SECRET}"
    with caplog.at_level(logging.DEBUG):
        store = open_object_store(url)
        assert SECRET not in store.url and SECRET not in repr(store)
        assert store.url == "keeper://ada:***@db.example/x?token=***"
        stacked = open_object_store(url, retries=1, metrics=True)
        assert SECRET not in repr(stacked) and SECRET not in repr(casstore.NetworkStore(stacked))
        errors: list[BaseException] = []
        attempts: list[Callable[[], ObjectStore]] = [
            lambda: open_object_store(url, create=False),  # the backend's own message quotes the URL
            lambda: open_object_store(url, mode="custom-str"),  # a message the scrub cannot rewrite
            lambda: open_object_store(url + "&colour=red"),  # unknown option
            lambda: open_object_store(url, retries="x"),  # bad wrapper option
        ]
        for attempt in attempts:
            with pytest.raises(StorageError) as info:
                attempt()
            errors.append(info.value)
        assert isinstance(errors[0], StoreNotFound) and "ada:***@db.example" in str(errors[0])
        assert "connection refused by keeper://ada:***@" in str(errors[1])
        # a retry's log lines and its final error name the store without the password
        flaky = RetryingStore(_Failing(url), attempts=2, base_delay=0)
        with pytest.raises(RetriesExhausted) as exhausted:
            flaky.blobs.stats()
        errors.append(exhausted.value)
    for text in [*map(str, errors), caplog.text]:
        assert SECRET not in text
    assert "retrying" in caplog.text


class _Failing(MemoryStore):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        outer = self

        class Blobs(MemoryBlobs):
            def stats(self) -> BlobStats:
                raise ConnectionError(f"reset by {outer.url}")

        self.blobs = Blobs()

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, ConnectionError)


# ---------------------------------------------------------------- third-party backends by entry point


def point(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=registry.ENTRY_POINT_GROUP)


def test_entry_points_are_loaded_by_scheme_only_when_used(
    isolated_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "casstore_keeper_plugin", sys.modules[__name__])
    points = [point("keeper", "casstore_keeper_plugin:KEEPER"), point("broken", "casstore_no_such_module:BACKEND")]
    monkeypatch.setattr(registry, "entry_points", lambda group: [p for p in points if p.group == group])
    assert {"keeper", "broken", "lmdb", "memory"} <= set(known_schemes())
    with open_object_store("keeper://somewhere") as store:  # the broken plugin is never touched
        assert isinstance(store, Keeper)
    assert backend_for("KEEPER") is KEEPER
    with pytest.raises(InvalidStoreURL, match=r"casstore_no_such_module.*entry point 'broken'"):
        open_object_store("broken://x")
    with open_object_store("memory://") as memory:  # other schemes unaffected
        assert isinstance(memory, MemoryStore)


def test_a_bad_entry_point_is_a_clear_error(isolated_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "casstore_keeper_plugin", sys.modules[__name__])
    points = [point("other", "casstore_keeper_plugin:KEEPER"), point("thing", "casstore_keeper_plugin:SECRET")]
    monkeypatch.setattr(registry, "entry_points", lambda group: points)
    with pytest.raises(InvalidStoreURL, match="opens keeper, not other"):
        open_object_store("other://x")
    with pytest.raises(InvalidStoreURL, match=r"is not a casstore\.store\.registry\.Backend"):
        open_object_store("thing://x")


def test_a_built_in_scheme_is_not_taken_over_by_an_entry_point(
    isolated_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "entry_points", lambda group: [point("memory", "casstore_no_such_module:BACKEND")])
    monkeypatch.delitem(registry._registered, "memory")
    with open_object_store("memory://") as store:
        assert type(store) is MemoryStore


PLUGIN_SOURCE = '''
"""casstore-foo: a third-party backend for ``foo://`` (a test double over MemoryStore)."""

from casstore.store.memory import MemoryBlobs, MemoryStore
from casstore.store.registry import Backend, StoreLocation


class FooStore(MemoryStore):
    def __init__(self, url: str, flavour: str) -> None:
        super().__init__(url)
        self.flavour = flavour


def _open(location: StoreLocation, create: bool) -> FooStore:
    return FooStore(location.url, location.str_option("flavour") or "plain")


BACKEND = Backend(("foo",), _open, frozenset({"flavour"}), needs_location=False, summary="test double")
'''


@pytest.fixture(scope="session")
def foo_distribution(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny installed distribution declaring ``foo`` in the ``casstore.backends`` entry-point group."""
    root = tmp_path_factory.mktemp("site")
    (root / "casstore_foo_example.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    info = root / "casstore_foo_example-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: casstore-foo-example\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[casstore.backends]\nfoo = casstore_foo_example:BACKEND\n")
    return root


@pytest.fixture
def foo_installed(foo_distribution: Path, monkeypatch: pytest.MonkeyPatch, isolated_registry: None) -> Iterator[None]:
    monkeypatch.syspath_prepend(str(foo_distribution))
    yield


def test_a_distribution_adds_a_scheme(foo_installed: None) -> None:
    assert "foo" in known_schemes()
    with open_object_store("foo://here?flavour=mint&metrics=on") as store:
        assert isinstance(store, MetricsStore)
        backend = store.unwrap()
        assert type(backend).__name__ == "FooStore" and backend.flavour == "mint"  # type: ignore[attr-defined]
        assert store.url == "foo://here?flavour=mint"  # the wrapper option is not the backend's
        digest = store.blobs.put(codec.encode_value("hello"))
        assert store.blobs.get(digest) == codec.encode_value("hello")
    with pytest.raises(InvalidStoreURL, match="foo takes flavour"):
        open_object_store("foo://here?colour=red")
    with casstore.open_store("foo://net") as network:
        network.save_network_state("n", rich_state())
        assert network.list_networks() == ["n"]


class TestEntryPointBackend(StoreTests):
    """The conformance suite against the backend the distribution installs, opened by its URL."""

    @pytest.fixture(autouse=True)
    def _installed(self, foo_installed: None) -> None:
        pass

    def make_store(self, path: Path) -> ObjectStore:
        store = open_location(parse_location("foo://suite?flavour=suite"), create=True)
        assert type(store).__name__ == "FooStore"
        return store

    def url(self, path: Path) -> str:
        raise NotImplementedError("an in-memory store cannot be opened from another process")

    def corrupt_object(self, path: Path, digest: bytes) -> None:
        raise NotImplementedError("an in-memory store has no disk to damage")
