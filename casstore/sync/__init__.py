"""Replication between any two stores: push, pull and sync by exchanging only missing hashes.

* :mod:`casstore.sync.engine`: :func:`transfer` copies everything reachable
  from some roots that the destination lacks, one DAG level at a time, and
  writes it children-first through the destination's ``receive_pack`` (the
  pack seam), with updated objects as deltas.  Its batch sizes
  (``FETCH_BATCH``, ``WRITE_BYTES``, ``WRITE_OBJECTS``, ``HOLD_BYTES``) are read
  there: patch them on that module.
* :mod:`casstore.sync.replicate`: :func:`push` / :func:`pull` / :func:`sync` / :func:`clone`
  decide, network by network, whether the target's head may move
  (:func:`decide`, a lease like git's ``--force-with-lease``) and move refs
  only after every object they name has landed; each side may be a store or a URL.
* :mod:`casstore.sync.fetch`: :func:`fetch` copies a remote's heads into remote-tracking refs.
* :mod:`casstore.sync.remotes`: remotes kept in the store itself.
* :mod:`casstore.sync.report`: :class:`TransferStats`, :class:`SyncReport`, :data:`Progress`.

See docs/sync.md for the protocol and its guarantees.
"""

from __future__ import annotations

from casstore.model.network import install_replication
from casstore.model.refs import tracking_ref
from casstore.sync.engine import FETCH_BATCH, HOLD_BYTES, WRITE_BYTES, WRITE_OBJECTS, transfer
from casstore.sync.fetch import fetch
from casstore.sync.remotes import add_remote, remote_name, remotes, remove_remote
from casstore.sync.replicate import StoreOrURL, clone, decide, pull, push, refs_undone_on_failure, sync
from casstore.sync.report import Divergence, Outcome, Progress, SyncReport, TransferStats

__all__ = [
    "FETCH_BATCH",
    "HOLD_BYTES",
    "WRITE_BYTES",
    "WRITE_OBJECTS",
    "Divergence",
    "Outcome",
    "Progress",
    "StoreOrURL",
    "SyncReport",
    "TransferStats",
    "add_remote",
    "clone",
    "decide",
    "fetch",
    "pull",
    "push",
    "refs_undone_on_failure",
    "remote_name",
    "remotes",
    "remove_remote",
    "sync",
    "tracking_ref",
    "transfer",
]

install_replication(sync)
