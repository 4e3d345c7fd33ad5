"""Persistence for running networks (layer 6): a live in-memory image of a network, persisted by a mode.

* :mod:`.image` — :class:`NetworkImage`: reads and writes at memory speed, the dirty map, flushes,
  transactions, concurrent writers;
* :mod:`.modes` — ``immediate``, ``batch``, ``interval``, ``manual``, ``transactional``, each with
  its loss bound;
* :mod:`.flush` — one flush as one head compare-and-swap (on the model's transactions), and
  reading another writer's changes;
* :mod:`.journal` — flushes as journal entries (durable at once), folded into the head afterwards;
* :mod:`.flusher` — the background thread (interval flushes, journal folds, the snapshot timer);
* :mod:`.worker` — the flush process of interval flushes and folds (commits off the runtime's GIL);
  a flush runs with the cyclic collector paused (:mod:`casstore.collector`);
* :mod:`.retention` — automatic snapshots and pruning;
* :mod:`.undo`, :mod:`.status` — transactions' rollback, and ``status()``.

``docs/runtime.md`` states each mode's guarantee as the tests check it.
"""

from casstore.runtime.flush import Rejected
from casstore.runtime.image import NetworkImage
from casstore.runtime.journal import recover_journal
from casstore.runtime.retention import parse_duration, prune_snapshots, snapshots_to_prune
from casstore.runtime.status import ImageStatus
from casstore.store.config import SchedulerStorageConfig

__all__ = [
    "ImageStatus",
    "NetworkImage",
    "Rejected",
    "SchedulerStorageConfig",
    "parse_duration",
    "prune_snapshots",
    "recover_journal",
    "snapshots_to_prune",
]
