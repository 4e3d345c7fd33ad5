"""Cross-process subscribe on PostgreSQL: LISTEN/NOTIFY reports another process's write within a second,
and a listener whose connection is killed (``pg_terminate_backend``) reconnects and reports the missed change."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from typing import Any

from conftest import PgTestServer

from casstore import open_store
from casstore.store.postgres.listen import LISTENER_NAME
from casstore.testing.network import sample_group

SUBSCRIBER = """
import json, sys, time, casstore
store = casstore.open_store(sys.argv[1], create=False)
def heard(state):
    print(json.dumps({"at": time.time(), "content": state.contacts["g-c0"].content}), flush=True)
store.subscribe("net/g", heard)
print("ready", flush=True)
sys.stdin.readline()
store.close()
"""


def _lines(process: subprocess.Popen[str]) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.strip())

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _listener_pids(base_url: str) -> list[int]:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (LISTENER_NAME,))
        return [int(r[0]) for r in rows.fetchall()]


def test_another_process_hears_a_write_within_a_second_and_after_its_connection_is_killed(
    postgres_server: PgTestServer,
) -> None:
    import psycopg

    url = postgres_server.fresh_url()
    with open_store(url) as writer:
        writer.save_group_state("net", "g", sample_group("g"))
        before = set(_listener_pids(postgres_server.url))
        process = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            lines = _lines(process)
            assert lines.get(timeout=60) == "ready"
            writer.save_contact_content("net", "g", "g-c0", "first")
            written = time.time()
            heard: dict[str, Any] = json.loads(lines.get(timeout=5))
            assert heard["content"] == "first"
            assert heard["at"] - written < 1.0, "reported within a second of the commit"

            listener = sorted(set(_listener_pids(postgres_server.url)) - before)
            assert len(listener) == 1, "B listens on one connection of its own, outside its pool"
            with psycopg.connect(postgres_server.url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (listener[0],))
                writer.save_contact_content("net", "g", "g-c0", "while B was away")
            heard = json.loads(lines.get(timeout=10))
            assert heard["content"] == "while B was away", "the missed change is reported after the reconnect"
            again = sorted(set(_listener_pids(postgres_server.url)) - before)
            assert len(again) == 1 and again != listener, "B reconnected on a new connection"
            writer.save_contact_content("net", "g", "g-c0", "after")
            assert json.loads(lines.get(timeout=5))["content"] == "after"
            time.sleep(0.5)
            assert lines.empty(), "each change reported once"
        finally:
            assert process.stdin is not None
            process.stdin.write("\n")
            process.stdin.flush()
            process.wait(timeout=30)


def test_watch_refs_reports_moves_and_deletes_and_stops(postgres_server: PgTestServer) -> None:
    url = postgres_server.fresh_url()
    with open_store(url) as a, open_store(url) as b:
        got: queue.Queue[dict[str, bytes | None]] = queue.Queue()
        stop = b.objects.watch_refs("networks/", lambda changes: got.put(dict(changes)))
        a.save_group_state("other", "g", sample_group("g"))
        head = a.refs.get("networks/other/head")
        assert head is not None
        assert got.get(timeout=5) == {"networks/other/head": head}
        a.delete_network("other")
        assert got.get(timeout=5) == {"networks/other/head": None}
        a.objects.refs.compare_and_swap("elsewhere/x", None, head)  # outside the prefix: not reported
        stop()
        stop()
        a.save_group_state("other", "g", sample_group("g"))
        time.sleep(0.5)
        assert got.empty()
