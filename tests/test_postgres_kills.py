"""A writer process SIGKILLed in the middle of its commits, 20 times: after each kill the head is a committed
state (the last acknowledged write, or the one in flight, whole), the SQL view equals the head, and at the
end verify finds nothing wrong."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

from conftest import PgTestServer
from test_postgres_sqlview import _schema, assert_tables_match

from casstore import open_store
from casstore.model import NetworkStore
from casstore.testing.network import sample_group
from casstore.verify import verify

KILLS = int(os.environ.get("CASSTORE_PG_KILLS", "20"))


def apply(store: NetworkStore, step: int) -> None:
    """Write number ``step`` of the writer's deterministic sequence."""
    if step % 11 == 10:
        store.save_group_state("net", f"g{step}", sample_group(f"g{step}", 4, tag=step))
    elif step % 5 == 4:
        store.save_snapshot("net", f"s{step}")
    else:
        store.save_contact_content("net", "g", f"c{step % 7}", {"step": step, "pad": "x" * (step % 50)})


def writer(url: str, start: int, log: str) -> None:
    with open_store(url, create=False) as store, open(log, "a", buffering=1) as out:
        step = start
        while True:
            apply(store, step)
            out.write(f"{step}\n")
            out.flush()
            step += 1


WRITER = "casstore-killed-writer"


def _wait_for_backends_to_exit(base_url: str) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    with psycopg.connect(base_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (WRITER,))
            if row.fetchone() == (0,):
                return
            time.sleep(0.01)
    raise AssertionError("the killed writer's server processes did not exit")


def _without_snapshots(store: NetworkStore) -> object:
    return store.load_network_state("net")


def test_a_writer_killed_mid_commit_leaves_a_committed_state_and_tables_equal_to_it(
    postgres_server: PgTestServer, tmp_path: Path
) -> None:
    url = postgres_server.fresh_url(pool_size="1")
    mirror = open_store("memory://")
    fork = multiprocessing.get_context("fork")
    rng = random.Random(13)
    with open_store(url) as store:
        for target in (store, mirror):
            target.save_group_state("net", "g", sample_group("g"))
        done = 0  # the steps whose writes the store holds
        for kill in range(KILLS):
            log = tmp_path / f"log{kill}"
            log.touch()
            child = fork.Process(target=writer, args=(url + f"&application_name={WRITER}", done, str(log)), daemon=True)
            child.start()
            deadline = time.monotonic() + 30
            while not log.read_text() and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.15))
            assert child.pid is not None
            os.kill(child.pid, signal.SIGKILL)
            child.join(10)
            _wait_for_backends_to_exit(postgres_server.url)  # a COMMIT the server had received completes first
            acknowledged = [int(line) for line in log.read_text().split()]
            for step in acknowledged:
                apply(mirror, step)
            done = acknowledged[-1] + 1 if acknowledged else done
            if _without_snapshots(store) != _without_snapshots(mirror) or len(store.list_snapshots("net")) != len(
                mirror.list_snapshots("net")
            ):
                apply(mirror, done)  # the write in flight committed before its acknowledgement was logged
                done += 1
            assert store.load_network_state("net") == mirror.load_network_state("net")
            assert [s.label for s in store.list_snapshots("net")] == [s.label for s in mirror.list_snapshots("net")]
            assert_tables_match(store, postgres_server.url, _schema(url))
        assert done > KILLS, "the writer got work done between kills"
        report = verify(store)
        assert report.ok, report
