"""The network conformance suite against every backend case in ``tests/backends.py``: one class each."""

from __future__ import annotations

from backends import CASES, network_suite

for _case in CASES:
    _suite = network_suite(_case)
    globals()[_suite.__name__] = _suite
del _case, _suite
