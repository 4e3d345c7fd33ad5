"""Conformance suites a backend reuses (needs pytest and hypothesis).

- :class:`StoreTests` (:mod:`casstore.testing.store`): the blob and ref protocols;
- :class:`~casstore.testing.network.NetworkTests`: the whole network interface;
- :class:`~casstore.testing.state_machine.NetworkStateMachine`: random histories
  of the network interface checked against a plain model (hypothesis);
- :mod:`casstore.testing.suite`: the backend flags and the check that a
  ``Test*`` subclass gives every hook its flags require;
- :mod:`casstore.testing.workers`: functions the suites run in threads and processes.

A backend's own tests subclass these and provide ``make_store`` (see each class).
"""

from __future__ import annotations

from casstore.testing.store import StoreTests
from casstore.testing.suite import ConformanceSuite, abstract_hook

__all__ = ["ConformanceSuite", "StoreTests", "abstract_hook"]
