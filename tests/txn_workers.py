"""Worker processes of the contention and crash tests (spawned, or run as a script to be SIGKILLed).

``python tests/txn_workers.py URL SCENARIO LOG`` runs one crash-test writer
until it is killed: it prints ``ready`` once the store is open and appends a
line to ``LOG`` (flushed and fsynced) before and after each commit, so the test
knows which states were committed and which one may have been in flight.
Scenario ``transactions`` increments a counter through ``transact`` (a snapshot
every fifth); ``deletes`` deletes every network of the store, one by one.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from casstore import Contact, Group, GroupState, open_store
from casstore.model.transactions import NetworkTransaction

__all__ = ["NET", "counter_pair", "group_with", "transact_increments"]

NET = "net"


def group_with(gid: str, contents: dict[str, Any]) -> GroupState:
    return GroupState(
        Group(gid, gid, contact_ids=list(contents)),
        {cid: Contact(cid, gid, content=value) for cid, value in contents.items()},
        {},
    )


def _increment(tx: NetworkTransaction) -> int:
    value = int(tx.load_contact_content(NET, "g", "counter") or 0) + 1
    tx.save_contact_content(NET, "g", "counter", value)
    tx.save_contact_content(NET, "g", "twin", value)  # a half-applied transaction would split the pair
    return value


def counter_pair(store: Any) -> tuple[int, int]:
    return tuple(int(store.load_contact_content(NET, "g", name) or 0) for name in ("counter", "twin"))  # type: ignore[return-value]


def transact_increments(url: str, times: int) -> None:
    """``times`` read-modify-write increments of the counter through ``transact``."""
    with open_store(url, create=False) as store:
        for _ in range(times):
            store.transact(NET, _increment)


def _log(handle: Any, line: str) -> None:
    handle.write(line + "\n")
    handle.flush()
    os.fsync(handle.fileno())


def _run_transactions(store: Any, log: Any) -> None:
    while True:
        value = counter_pair(store)[0] + 1
        _log(log, f"try {value}")
        assert store.transact(NET, _increment) == value
        _log(log, f"done {value}")
        if value % 5 == 0:  # a snapshot moves two refs: journalled on file://
            store.save_snapshot(NET, f"at {value}")


def _run_deletes(store: Any, log: Any) -> None:
    for network in store.list_networks():
        _log(log, f"deleting {network}")
        store.delete_network(network)
        _log(log, f"gone {network}")
    _log(log, f"finished {time.monotonic()}")
    while True:
        time.sleep(1)


def main(url: str, scenario: str, log_path: str) -> None:
    with open_store(url, create=False) as store, open(log_path, "a") as log:
        _log(log, f"ready {time.monotonic()}")
        print("ready", flush=True)
        {"transactions": _run_transactions, "deletes": _run_deletes}[scenario](store, log)


if __name__ == "__main__":
    main(*sys.argv[1:])
