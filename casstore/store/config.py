"""``StorageConfig`` and ``SchedulerStorageConfig``: the seed's configuration objects, and the one URL each names.

The seed configures storage with nested objects (``type``, ``options``,
``cache``, ``persistence``) and persistence timing at the scheduler
(``persistOn``, ``batchSize``, ``intervalMs``, ``snapshotInterval``,
``maxSnapshots``).  Here they are frozen dataclasses with the same nesting in
Python names, validated when built (one :class:`~casstore.errors.InvalidConfig`
listing every bad field), loadable from TOML or JSON with the same nesting, and
mapped to exactly one store URL (:meth:`StorageConfig.to_url`; the table is in
``docs/runtime.md``)::

    memory      memory://
    lmdb        lmdb:///<base_path>
    file        file:///<base_path>
    s3          <connection_string>                (an s3:// URL)
    postgres    <connection_string>[?pool_size=N]  (a postgresql:// URL)
    remote      <server_url>[?auth_token=…]        (an https:// or http:// URL)
    filesystem  filesystem:///<base_path>          (the seed's human-readable layout)

``cache.enabled`` adds the caching wrapper's options to the URL
(``frame_cache_mb`` from ``max_size`` bytes rounded up to MiB, ``ref_ttl``
from ``ttl`` seconds).  ``persistence`` is not part of the URL: it says how a
live image persists (:meth:`SchedulerStorageConfig.from_persistence`).
This module only builds and parses URLs; it opens nothing.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit

from casstore.errors import InvalidConfig

__all__ = [
    "PERSIST_MODES",
    "STORE_TYPES",
    "CacheConfig",
    "PersistMode",
    "PersistenceConfig",
    "SchedulerStorageConfig",
    "StorageConfig",
    "StorageOptions",
    "StoreType",
    "load_config",
]

StoreType = Literal["memory", "lmdb", "file", "filesystem", "s3", "postgres", "remote"]
PersistMode = Literal["immediate", "batch", "interval", "manual", "transactional"]
STORE_TYPES: tuple[str, ...] = get_args(StoreType)
PERSIST_MODES: tuple[str, ...] = get_args(PersistMode)
MIB = 1 << 20
#: ``cache.max_size`` when the cache is enabled without one (bytes).
DEFAULT_CACHE_BYTES = 64 * MIB


def _fail(problems: list[str], what: str) -> None:
    if problems:
        raise InvalidConfig(
            f"invalid {what} ({len(problems)} problem{'s' * (len(problems) > 1)}): " + "; ".join(problems)
        )


#: The longest period a setting in milliseconds may name (a year): past it a timer cannot wait.
MAX_PERIOD_MS = 365 * 24 * 3600 * 1000


def _whole(
    value: object, name: str, problems: list[str], minimum: int = 0, optional: bool = True, maximum: int | None = None
) -> None:
    if value is None and optional:
        return
    if type(value) is not int or value < minimum:
        problems.append(f"{name}: expected a whole number of at least {minimum}, got {value!r:.80}")
    elif maximum is not None and value > maximum:
        shown = str(value) if value < 10**30 else f"a number of {len(str(value))} digits"
        problems.append(f"{name}: expected at most {maximum:,} (a year, in ms), got {shown}")


def _period(value: object, name: str, problems: list[str], optional: bool = True) -> None:
    """A period in milliseconds: 1 ms to a year."""
    _whole(value, name, problems, minimum=1, optional=optional, maximum=MAX_PERIOD_MS)


def _number(value: object, name: str, problems: list[str]) -> None:
    if value is None:
        return
    if type(value) not in (int, float) or not 0 <= value < math.inf:  # type: ignore[operator]
        problems.append(f"{name}: expected a number of at least 0, got {value!r}")


def _text(value: object, name: str, problems: list[str]) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        problems.append(f"{name}: expected a non-empty string, got {value!r}")


def _flag(value: object, name: str, problems: list[str], optional: bool = True) -> None:
    if not (type(value) is bool or (value is None and optional)):
        problems.append(f"{name}: expected true or false, got {value!r}")


@dataclass(frozen=True)
class StorageOptions:
    """Backend options, the seed's ``options`` (each used by the types named; the rest must stay unset).

    Fields:
        connection_string: ``postgres``: a ``postgresql://`` URL; ``s3``: an ``s3://bucket/prefix`` URL.
        pool_size: ``postgres``: connections in the pool.
        base_path: ``lmdb`` / ``file`` (/ ``filesystem``): the store's directory.
        compression: ``lmdb`` / ``file``: ``True`` or unset (frames are always zstd-compressed;
            ``False`` is refused rather than ignored).
        server_url: ``remote``: the casstore server's ``https://`` (or ``http://``) URL.
        auth_token: ``remote``: the bearer token sent to the server.
    """

    connection_string: str | None = None
    pool_size: int | None = None
    base_path: str | None = None
    compression: bool | None = None
    server_url: str | None = None
    auth_token: str | None = None

    def problems(self, prefix: str = "options") -> list[str]:
        found: list[str] = []
        for name in ("connection_string", "base_path", "server_url", "auth_token"):
            _text(getattr(self, name), f"{prefix}.{name}", found)
        _whole(self.pool_size, f"{prefix}.pool_size", found, minimum=1)
        _flag(self.compression, f"{prefix}.compression", found)
        if self.compression is False:
            found.append(f"{prefix}.compression: casstore always compresses frames (zstd); false is not supported")
        return found

    def __post_init__(self) -> None:
        _fail(self.problems(), "storage options")


@dataclass(frozen=True)
class CacheConfig:
    """The seed's ``cache``: the caching wrapper over the backend (hybrid storage: memory over a store).

    Fields:
        enabled: stack the caching wrapper.
        ttl: seconds a ref read is reused (``ref_ttl``); unset: refs are read each time.
        max_size: bytes of frames kept in memory (``frame_cache_mb``, rounded up to whole MiB;
            default 64 MiB when enabled).
    """

    enabled: bool = False
    ttl: float | None = None
    max_size: int | None = None

    def problems(self, prefix: str = "cache") -> list[str]:
        found: list[str] = []
        _flag(self.enabled, f"{prefix}.enabled", found, optional=False)
        _number(self.ttl, f"{prefix}.ttl", found)
        _whole(self.max_size, f"{prefix}.max_size", found, minimum=1)
        return found

    def __post_init__(self) -> None:
        _fail(self.problems(), "cache config")


@dataclass(frozen=True)
class PersistenceConfig:
    """The seed's ``persistence``: whether and how often a live image saves (not part of the URL).

    Fields:
        auto_save: save without being asked (``False``: ``manual`` mode).
        save_interval: milliseconds between saves (``interval`` mode); unset: after each cycle (``immediate``).
        snapshot_interval: milliseconds between automatic snapshots; unset: none.
    """

    auto_save: bool = True
    save_interval: int | None = None
    snapshot_interval: int | None = None

    def problems(self, prefix: str = "persistence") -> list[str]:
        found: list[str] = []
        _flag(self.auto_save, f"{prefix}.auto_save", found, optional=False)
        _period(self.save_interval, f"{prefix}.save_interval", found)
        _period(self.snapshot_interval, f"{prefix}.snapshot_interval", found)
        return found

    def __post_init__(self) -> None:
        _fail(self.problems(), "persistence config")


@dataclass(frozen=True)
class StorageConfig:
    """Which store to open, as the seed's ``StorageConfig``; :meth:`to_url` is the one URL it names.

    ``casstore.open_store(config)`` opens it; :func:`load_config` reads one from TOML or JSON.
    """

    type: StoreType = "lmdb"
    options: StorageOptions = field(default_factory=StorageOptions)
    cache: CacheConfig = field(default_factory=CacheConfig)
    persistence: PersistenceConfig = field(default_factory=PersistenceConfig)

    def problems(self) -> list[str]:
        """Every bad field, by dotted name (``[]`` for a good config)."""
        found: list[str] = []
        for name, kind in (("options", StorageOptions), ("cache", CacheConfig), ("persistence", PersistenceConfig)):
            section = getattr(self, name)
            if not isinstance(section, kind):
                found.append(f"{name}: expected a {kind.__name__}, got {type(section).__name__}")
                return found
        if self.type not in STORE_TYPES:
            found.append(f"type: expected one of {', '.join(STORE_TYPES)}, got {self.type!r}")
            return found
        opts = self.options
        needs = {
            "memory": (),
            "lmdb": ("base_path",),
            "file": ("base_path",),
            "filesystem": ("base_path",),
            "s3": ("connection_string",),
            "postgres": ("connection_string",),
            "remote": ("server_url",),
        }[self.type]
        allowed = set(needs) | {
            "lmdb": {"compression"},
            "file": {"compression"},
            "filesystem": {"compression"},
            "postgres": {"pool_size"},
            "remote": {"auth_token"},
        }.get(self.type, set())
        for option in fields(StorageOptions):
            value = getattr(opts, option.name)
            if option.name in needs and value is None:
                found.append(f"options.{option.name}: required for type {self.type!r}")
            elif option.name not in allowed and value is not None:
                found.append(f"options.{option.name}: not used by type {self.type!r}")
        scheme_of = {"s3": ("s3",), "postgres": ("postgresql", "postgres"), "remote": ("https", "http")}
        url = opts.server_url if self.type == "remote" else opts.connection_string
        bad_scheme = isinstance(url, str) and url and urlsplit(url).scheme.lower() not in scheme_of.get(self.type, ())
        if self.type in scheme_of and bad_scheme:
            name = "server_url" if self.type == "remote" else "connection_string"
            wanted = " or ".join(f"{s}://" for s in scheme_of[self.type])
            found.append(f"options.{name}: a {self.type} store needs a {wanted} URL, got {url!r}")
        return found

    def __post_init__(self) -> None:
        _fail(self.problems(), "storage config")

    # ---------------------------------------------------------------- URLs

    def to_url(self) -> str:
        """The one store URL this config names (the module docstring's table)."""
        opts = self.options
        query: list[tuple[str, str]] = []
        if self.type == "memory":
            base = "memory://"
        elif self.type in ("lmdb", "file", "filesystem"):
            assert opts.base_path is not None
            base = f"{self.type}://{Path(opts.base_path).expanduser().absolute().as_posix()}"
        elif self.type == "remote":
            assert opts.server_url is not None
            base = opts.server_url
            if opts.auth_token is not None:
                query.append(("auth_token", opts.auth_token))
        else:  # s3, postgres
            assert opts.connection_string is not None
            base = opts.connection_string
            if opts.pool_size is not None:
                query.append(("pool_size", str(opts.pool_size)))
        if self.cache.enabled:
            query.append(("frame_cache_mb", str(-(-(self.cache.max_size or DEFAULT_CACHE_BYTES) // MIB))))
            if self.cache.ttl:
                query.append(("ref_ttl", repr(float(self.cache.ttl))))
        if not query:
            return base
        return base + ("&" if urlsplit(base).query else "?") + urlencode(query)

    @classmethod
    def from_url(cls, url: str | os.PathLike[str]) -> StorageConfig:
        """The config :meth:`to_url` maps to ``url`` (a bare path is LMDB).

        :class:`~casstore.errors.InvalidConfig` for a URL no config expresses.
        """
        text = os.fspath(url)
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if not scheme:
            return cls("lmdb", StorageOptions(base_path=text))
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        cache = CacheConfig()
        if "frame_cache_mb" in query or "ref_ttl" in query:
            try:
                size = int(query.pop("frame_cache_mb", "0")) * MIB or DEFAULT_CACHE_BYTES
                ttl = float(query.pop("ref_ttl", "0")) or None
            except ValueError:
                raise InvalidConfig(f"{text}: frame_cache_mb and ref_ttl must be numbers") from None
            cache = CacheConfig(True, ttl, size)
        rest = urlencode(list(query.items()))
        plain = parts._replace(query=rest).geturl()
        if scheme == "memory":
            options = StorageOptions()
            kind: str = "memory"
        elif scheme in ("lmdb", "file", "filesystem"):
            options, kind = StorageOptions(base_path=parts.netloc + parts.path), scheme
        elif scheme in ("https", "http"):
            token = query.pop("auth_token", None)
            plain = parts._replace(query=urlencode(list(query.items()))).geturl()
            options, kind = StorageOptions(server_url=plain, auth_token=token), "remote"
        elif scheme in ("postgresql", "postgres"):
            pool = query.pop("pool_size", None)
            plain = parts._replace(query=urlencode(list(query.items()))).geturl()
            options = StorageOptions(connection_string=plain, pool_size=None if pool is None else _int(pool, text))
            kind = "postgres"
        elif scheme == "s3":
            options, kind = StorageOptions(connection_string=plain), "s3"
        else:
            raise InvalidConfig(f"{text}: no StorageConfig type has the scheme {scheme!r}")
        if kind in ("memory", "lmdb", "file", "filesystem") and query:
            raise InvalidConfig(f"{text}: options {sorted(query)} have no StorageConfig field")
        return cls(kind, options, cache)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- files

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "config") -> StorageConfig:
        """A config from nested mappings (a parsed TOML or JSON document); one error lists every bad field."""
        problems: list[str] = []
        if not isinstance(data, Mapping):
            _fail([f"expected a table of settings, got {type(data).__name__}"], source)
        sections = {"options": StorageOptions, "cache": CacheConfig, "persistence": PersistenceConfig}
        known = {"type", *sections}
        problems += [f"{key}: unknown setting (known: {', '.join(sorted(known))})" for key in data if key not in known]
        built: dict[str, Any] = {}
        for name, kind in sections.items():
            raw = data.get(name, {})
            if not isinstance(raw, Mapping):
                problems.append(f"{name}: expected a table, got {type(raw).__name__}")
                continue
            names = {f.name for f in fields(kind)}
            problems += [
                f"{name}.{key}: unknown setting (known: {', '.join(sorted(names))})" for key in raw if key not in names
            ]
            values = {key: value for key, value in raw.items() if key in names}
            if name == "cache" and "enabled" not in values and values:
                values["enabled"] = True  # a [cache] table with settings and no 'enabled' means on
            section: Any = object.__new__(kind)  # checked below with every other section's problems
            for f in fields(kind):
                object.__setattr__(section, f.name, values.get(f.name, f.default))
            problems += section.problems(name)
            built[name] = section
        kind_name = data.get("type", "lmdb")
        if kind_name not in STORE_TYPES:
            problems.append(f"type: expected one of {', '.join(STORE_TYPES)}, got {kind_name!r}")
        if kind_name in STORE_TYPES and len(built) == len(sections):  # the fields' agreement with the type
            config = object.__new__(cls)
            object.__setattr__(config, "type", kind_name)
            for name, section in built.items():
                object.__setattr__(config, name, section)
            problems += config.problems()
        _fail(problems, source)
        return cls(kind_name, **built)

    def to_mapping(self) -> dict[str, Any]:
        """The nested mapping :meth:`from_mapping` reads (unset fields left out)."""
        document: dict[str, Any] = {"type": self.type}
        for name in ("options", "cache", "persistence"):
            values = {k: v for k, v in asdict(getattr(self, name)).items() if v is not None}
            if values:
                document[name] = values
        return document


def _int(text: str, url: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidConfig(f"{url}: pool_size must be a whole number, not {text!r}") from None


def load_config(path: str | os.PathLike[str]) -> StorageConfig:
    """A :class:`StorageConfig` from a TOML file (``.toml``) or a JSON file (anything else), same nesting.

    A file that cannot be read or parsed, or settings with mistakes, raise
    :class:`~casstore.errors.InvalidConfig` (the mistakes all listed in one message).
    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidConfig(f"cannot read config file {source}: {exc}") from None
    try:
        data = tomllib.loads(text) if source.endswith(".toml") else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidConfig(
            f"config file {source} is not valid {'TOML' if source.endswith('.toml') else 'JSON'}: {exc}"
        ) from None
    return StorageConfig.from_mapping(data, f"config file {source}")


@dataclass(frozen=True)
class SchedulerStorageConfig:
    """The seed's ``SchedulerStorageConfig``: when a live image persists (see :mod:`casstore.runtime`).

    Fields:
        persist_on: ``immediate`` (each ``cycle_done()``), ``batch`` (every ``batch_size`` changes and
            each ``flush()``), ``interval`` (a background flusher every ``interval_ms``), ``manual``
            (``save()`` only) or ``transactional`` (each ``with image.transaction():``).
        batch_size: changes per flush in ``batch`` mode.
        interval_ms: milliseconds between the background flusher's flushes in ``interval`` mode.
        snapshot_interval: milliseconds between automatic snapshots (taken only if something changed); unset: none.
        max_snapshots: automatic snapshots kept (the newest); unset: all kept.
    """

    persist_on: PersistMode = "immediate"
    batch_size: int = 1000
    interval_ms: int = 100
    snapshot_interval: int | None = None
    max_snapshots: int | None = None

    def problems(self) -> list[str]:
        found: list[str] = []
        if self.persist_on not in PERSIST_MODES:
            found.append(f"persist_on: expected one of {', '.join(PERSIST_MODES)}, got {self.persist_on!r}")
        _whole(self.batch_size, "batch_size", found, minimum=1, optional=False)
        _period(self.interval_ms, "interval_ms", found, optional=False)
        _period(self.snapshot_interval, "snapshot_interval", found)
        _whole(self.max_snapshots, "max_snapshots", found, minimum=1)
        return found

    def __post_init__(self) -> None:
        _fail(self.problems(), "scheduler storage config")

    @classmethod
    def from_persistence(cls, config: StorageConfig | PersistenceConfig) -> SchedulerStorageConfig:
        """The scheduler settings a ``persistence`` section means: ``auto_save=False`` → ``manual``;
        a ``save_interval`` → ``interval`` every that many ms; otherwise ``immediate``."""
        persistence = config.persistence if isinstance(config, StorageConfig) else config
        if not isinstance(persistence, PersistenceConfig):
            raise InvalidConfig(f"from_persistence: expected a StorageConfig or PersistenceConfig, not {config!r}")
        if not persistence.auto_save:
            mode: PersistMode = "manual"
        elif persistence.save_interval is not None:
            mode = "interval"
        else:
            mode = "immediate"
        interval = persistence.save_interval or cls.interval_ms
        return cls(mode, interval_ms=interval, snapshot_interval=persistence.snapshot_interval)
