"""StorageConfig and SchedulerStorageConfig: config ↔ URL for every backend, files with mistakes,
``open_store(config)``, the cache as hybrid storage, and ``casstore --config`` / ``casstore prune``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import casstore
from casstore.cli import main
from casstore.errors import InvalidConfig
from casstore.store.config import (
    CacheConfig,
    PersistenceConfig,
    SchedulerStorageConfig,
    StorageConfig,
    StorageOptions,
    load_config,
)
from casstore.store.wrappers.base import find_layer
from casstore.store.wrappers.caching import CachingStore
from casstore.testing.network import sample_group

MIB = 1 << 20

#: One config per type (the cache on for some), and the URL each maps to.
CASES: list[tuple[StorageConfig, str]] = [
    (StorageConfig("memory"), "memory://"),
    (StorageConfig("lmdb", StorageOptions(base_path="/var/lib/casstore")), "lmdb:///var/lib/casstore"),
    (
        StorageConfig(
            "file", StorageOptions(base_path="/srv/objects", compression=True), CacheConfig(True, 2.5, 8 * MIB)
        ),
        "file:///srv/objects?frame_cache_mb=8&ref_ttl=2.5",
    ),
    (
        StorageConfig("s3", StorageOptions(connection_string="s3://bucket/prefix?region=eu-west-1")),
        "s3://bucket/prefix?region=eu-west-1",
    ),
    (
        StorageConfig("postgres", StorageOptions(connection_string="postgresql://bob@db:5432/casstore", pool_size=8)),
        "postgresql://bob@db:5432/casstore?pool_size=8",
    ),
    (
        StorageConfig("remote", StorageOptions(server_url="https://casstore.example:8443/api", auth_token="t0k")),
        "https://casstore.example:8443/api?auth_token=t0k",
    ),
]


@pytest.mark.parametrize(("config", "url"), CASES, ids=[config.type for config, _ in CASES])
def test_every_type_maps_to_one_url_and_back(config: StorageConfig, url: str) -> None:
    assert config.to_url() == url
    back = StorageConfig.from_url(url)
    if config.options.compression:  # not in the URL (frames are always compressed)
        back = StorageConfig(back.type, StorageOptions(base_path=back.options.base_path, compression=True), back.cache)
    assert back == config
    assert StorageConfig.from_mapping(config.to_mapping()) == config


def test_filesystem_names_the_seed_layout_store_and_opens_it(tmp_path: Path) -> None:
    config = StorageConfig("filesystem", StorageOptions(base_path=str(tmp_path / "networks")))
    assert config.to_url() == f"filesystem://{(tmp_path / 'networks').as_posix()}"
    assert StorageConfig.from_url(config.to_url()) == config
    with casstore.open_store(config) as store:
        store.save_group_state("net", "root", sample_group("root"))
        store.save_network_metadata("net", {"owner": "ops"})
    assert json.loads((tmp_path / "networks" / "networks" / "net" / "metadata.json").read_text())["metadata"] == {
        "owner": "ops"
    }


def test_a_file_with_mistakes_reports_every_one(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'type = "postgres"\nbogus = 1\n[options]\nbase_path = "/x"\npool_size = 0\n'
        '[cache]\nmax_size = -5\nttl = "soon"\n[persistence]\nsave_interval = 0\n'
    )
    with pytest.raises(InvalidConfig) as caught:
        load_config(bad)
    message = str(caught.value)
    for field in (
        "bogus",
        "options.base_path",
        "options.pool_size",
        "options.connection_string: required",
        "cache.max_size",
        "cache.ttl",
        "persistence.save_interval",
    ):
        assert field in message, field
    assert "7 problems" in message
    with pytest.raises(InvalidConfig, match="not valid JSON"):
        (tmp_path / "broken.json").write_text("{")
        load_config(tmp_path / "broken.json")
    with pytest.raises(InvalidConfig, match=r"persist_on.*batch_size"):
        SchedulerStorageConfig("sometimes", batch_size=0)  # type: ignore[arg-type]


def test_toml_and_json_files_open_the_store_with_the_cache_stacked(tmp_path: Path) -> None:
    toml = tmp_path / "store.toml"
    toml.write_text(
        f'type = "lmdb"\n[options]\nbase_path = "{tmp_path / "db"}"\n[cache]\nenabled = true\nmax_size = 268435456\n'
    )
    config = load_config(toml)
    assert config.cache == CacheConfig(True, None, 256 * MIB)
    (tmp_path / "store.json").write_text(json.dumps(config.to_mapping()))
    assert load_config(tmp_path / "store.json") == config
    with casstore.open_store(config) as store:
        cache = find_layer(store.objects, CachingStore)
        assert cache is not None and cache.frames is not None and cache.frames.max_bytes == 256 * MIB
        assert store.url.startswith("lmdb://")
        head = store.objects.refs.get("networks/none/head")
        assert head is None
        digest = store.blobs.put(b"hybrid")
        store.objects.blobs.get_many([digest])
        hits = cache.frames.hits
        assert store.objects.blobs.get_many([digest]) == [b"hybrid"] and cache.frames.hits == hits + 1


def test_persistence_means_a_scheduler_mode() -> None:
    assert SchedulerStorageConfig.from_persistence(PersistenceConfig(auto_save=False)).persist_on == "manual"
    timed = SchedulerStorageConfig.from_persistence(PersistenceConfig(save_interval=250, snapshot_interval=60_000))
    assert (timed.persist_on, timed.interval_ms, timed.snapshot_interval) == ("interval", 250, 60_000)
    assert SchedulerStorageConfig.from_persistence(StorageConfig("memory")).persist_on == "immediate"


def test_cli_config_and_prune(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"type": "lmdb", "options": {"base_path": str(tmp_path / "st")}}))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["--config", str(config), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    run("init")
    sample = Path(__file__).parent.parent / "docs" / "examples" / "sample-network.json"
    run("import", "thermostat", str(sample))
    ids = [run("snapshot", "thermostat").strip() for _ in range(4)]
    labelled = run("snapshot", "thermostat", "-m", "release").strip()
    dry = json.loads(run("--json", "prune", "thermostat", "--keep", "1", "--dry-run"))
    assert [s["id"] for s in dry["deleted"]] == ids[:3][::-1] and dry["remaining"] == 5
    done = json.loads(run("--json", "prune", "thermostat", "--keep", "1"))
    assert done["remaining"] == 2 and not done["dry_run"]
    left = json.loads(run("--json", "log", "thermostat"))["snapshots"]
    assert {s["id"] for s in left} == {ids[-1], labelled}
    assert json.loads(run("--json", "prune", "thermostat", "--keep-within", "7d"))["deleted"] == []
    assert "--keep-within" in run("prune", "thermostat", code=2)
    assert "whole number" in run("prune", "thermostat", "--keep-within", "3x", code=2)
    both = runner.invoke(main, ["--config", str(config), "--store", "x", "networks"])
    assert both.exit_code == 2 and "not both" in both.output
