"""A small propagation loop persisted by a live image (casstore.runtime), in any mode.

Values flow along wires: each cycle a new reading enters ``sensor`` and spreads
until nothing changes.  A contact combines what arrives with what it holds by
its blend mode, the way Bassline's runtime does:

* ``accept-last``: the arriving value replaces the old one;
* ``merge``: the two are merged (Bassline's ``mergeContent``): ``None`` yields to the other
  value, equal values stay, a ``GrowSet`` takes the union, a ``ShrinkSet`` the intersection
  (an empty one is a contradiction), maps merge key by key, lists concatenate, and two
  different plain values are a contradiction.  A contradiction leaves the contact as it was.

The network (one group, ``thermostat``)::

    sensor (accept-last) ──▶ display (accept-last) ──▶ history (merge, GrowSet) ◀──▶ mirror (merge)
    allowed (merge, ShrinkSet of the readings still possible) ──▶ candidates (accept-last)

Run it::

    python docs/examples/propagation.py STORE_URL MODE CYCLES [KILL_AFTER]   # KILL_AFTER: SIGKILL itself
    python docs/examples/propagation.py STORE_URL --show                     # the state the store holds

``tests/test_runtime_example.py`` runs it in every mode, kills it, and checks what the store
restored against the same run replayed in memory.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import deque
from typing import Any

import casstore
from casstore import Contact, Group, GroupState, NetworkState, NetworkStore, Wire
from casstore.runtime import NetworkImage, SchedulerStorageConfig, recover_journal

NET, GROUP = "example", "thermostat"
BLEND = {
    "sensor": "accept-last",
    "display": "accept-last",
    "history": "merge",
    "mirror": "merge",
    "allowed": "merge",
    "candidates": "accept-last",
}
#: (from, to, type): a directed wire carries values one way, a bidirectional one both ways.
WIRES = [
    ("sensor", "display", "directed"),
    ("display", "history", "directed"),
    ("history", "mirror", "bidirectional"),
    ("allowed", "candidates", "directed"),
]


class Contradiction(Exception):
    """Two values that cannot be merged."""


def merge(old: Any, new: Any) -> Any:
    """Bassline's ``mergeContent`` over the data model (sets as ``{"_tag": …, "values": [sorted]}``)."""
    if old is None:
        return new
    if new is None or old == new:
        return old
    if isinstance(old, dict) and isinstance(new, dict) and "_tag" in old and "_tag" in new:
        if old["_tag"] != new["_tag"]:
            raise Contradiction(f"cannot merge a {old['_tag']} with a {new['_tag']}")
        if old["_tag"] == "GrowSet":
            return {"_tag": "GrowSet", "values": sorted(set(old["values"]) | set(new["values"]))}
        if old["_tag"] == "ShrinkSet":
            kept = sorted(set(old["values"]) & set(new["values"]))
            if not kept:
                raise Contradiction("empty set intersection")
            return {"_tag": "ShrinkSet", "values": kept}
        raise Contradiction(f"unknown collection type {old['_tag']}")
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{k: merge(old[k], v) if k in old else v for k, v in new.items()}}
    if isinstance(old, list) and isinstance(new, list):
        return old + new
    raise Contradiction(f"values {old!r} and {new!r} cannot be merged")


def blend(mode: str, old: Any, new: Any) -> Any:
    return new if mode == "accept-last" else merge(old, new)


def network() -> NetworkState:
    contacts = {cid: Contact(cid, GROUP, None, blend_mode=mode) for cid, mode in BLEND.items()}  # type: ignore[arg-type]
    contacts["allowed"].content = {"_tag": "ShrinkSet", "values": list(range(20))}
    wires = {f"w{i}": Wire(f"w{i}", GROUP, a, b, kind) for i, (a, b, kind) in enumerate(WIRES)}  # type: ignore[arg-type]
    group = Group(GROUP, "thermostat", contact_ids=list(BLEND), wire_ids=list(wires))
    return NetworkState({GROUP: GroupState(group, contacts, wires)}, GROUP, GROUP)


def neighbours(cid: str) -> list[str]:
    out = [b for a, b, _ in WIRES if a == cid]
    return out + [a for a, b, kind in WIRES if b == cid and kind == "bidirectional"]


def propagate(image: NetworkImage, source: str, value: Any, strict: bool = False) -> int:
    """Set ``source`` and spread the change along the wires; the number of contacts changed.

    A contradiction leaves its contact unchanged; with ``strict`` it is raised instead.
    """
    changed = 0
    queue = deque([(source, value)])
    while queue:
        cid, incoming = queue.popleft()
        old = image.get(GROUP, cid)
        try:
            new = blend(BLEND[cid], old, incoming)
        except Contradiction:
            if strict:
                raise
            continue
        if new == old:
            continue
        image.set(GROUP, cid, new)
        changed += 1
        queue.extend((target, new) for target in neighbours(cid))
    return changed


def reading(cycle: int) -> dict[str, Any]:
    """Cycle ``cycle``'s sensor value: a one-reading GrowSet, also a ShrinkSet of what is still possible."""
    return {"_tag": "GrowSet", "values": [cycle % 20]}


def constraint(cycle: int) -> dict[str, Any]:
    return {"_tag": "ShrinkSet", "values": [v for v in range(20) if v % (cycle % 3 + 2) != 0 or v == cycle % 20]}


def cycle(image: NetworkImage, number: int, strict: bool) -> None:
    propagate(image, "sensor", reading(number), strict)
    propagate(image, "allowed", constraint(number), strict)


def run(target: str | NetworkStore, mode: str, cycles: int, kill_after: int | None = None, kill: bool = True) -> None:
    """``cycles`` propagation cycles persisted in ``mode``; with ``kill_after``, SIGKILL itself after that cycle.

    With ``kill=False`` it stops there as the kill would (the image dropped, nothing more flushed):
    the replay the test compares a killed run with.
    """
    store = casstore.open_store(target) if isinstance(target, str) else target
    if not store.exists(NET):
        store.save_network_state(NET, network())
    config = SchedulerStorageConfig(mode, batch_size=10, interval_ms=20)  # type: ignore[arg-type]
    image = NetworkImage(store, NET, config)
    for number in range(cycles):
        if mode == "transactional":  # a cycle that meets a contradiction is rolled back whole
            try:
                with image.transaction():
                    cycle(image, number, strict=True)
            except Contradiction:
                pass
        else:
            cycle(image, number, strict=False)
            if mode == "immediate":
                image.cycle_done()
            elif mode == "batch" and number % 5 == 4:
                image.flush()  # the end of a batch of five cycles
            elif mode == "manual" and number % 7 == 6:
                image.save()
        if number == kill_after:
            if mode == "interval":  # wait for the flusher: the bound is one interval plus a flush
                while not image.durable():
                    time.sleep(0.005)
            if kill:
                os.kill(os.getpid(), signal.SIGKILL)
            image.close(flush=False)
            return
    image.close()


def show(url: str) -> dict[str, Any]:
    """Every contact's content as the store holds it, as the next run would restore it: the journal
    entries a killed run left are folded into the head first (as opening an image does)."""
    with casstore.open_store(url, create=False) as store:
        recover_journal(store, NET)
        state = store.load_network_state(NET)
        assert state is not None, "the example network is not in the store"
        return {cid: c.content for cid, c in sorted(state.groups[GROUP].contacts.items())}


if __name__ == "__main__":
    if sys.argv[2] == "--show":
        print(json.dumps(show(sys.argv[1]), indent=2, sort_keys=True))
    else:
        with casstore.open_store(sys.argv[1]) as opened:
            run(opened, sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else None)
