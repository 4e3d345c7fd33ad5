"""Contention (issue #11, case 1): 4 processes x 100 read-modify-write increments through ``transact``.

Every increment reads the counter and writes it back, plus a twin contact in the
same transaction; exactly 400 must land, on LMDB, ``file://`` and S3 over a moto
server (the full S3 race is ``slow``: each S3 commit is several requests; the
default run races 4 x 10 there).  The same loop through ``batch`` loses updates
(its writes are blind: ``tests/test_transactions.py`` shows one
deterministically), which is why ``transact`` exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from backends import FILE, LMDB, S3_OVER_HTTP, BackendCase
from txn_workers import NET, counter_pair, group_with, transact_increments

from casstore.model import NetworkStore
from casstore.testing.workers import run_in_processes
from casstore.verify import verify

PROCESSES = 4
INCREMENTS = 100


def race(case: BackendCase, tmp_path: Path, request: pytest.FixtureRequest, increments: int) -> None:
    fixtures: dict[str, Any] = case.fixture_values(request)
    assert case.url is not None
    with NetworkStore(case.open(tmp_path, fixtures)) as store:
        store.save_group_state(NET, "g", group_with("g", {"counter": 0, "twin": 0}))
    run_in_processes(transact_increments, [(case.url(tmp_path, fixtures), increments)] * PROCESSES, timeout=900)
    with NetworkStore(case.open(tmp_path, fixtures)) as store:
        assert counter_pair(store) == (PROCESSES * increments, PROCESSES * increments)
        assert verify(store.objects).ok


@pytest.mark.parametrize("case", [LMDB, FILE], ids=lambda case: case.name)
def test_case_1_four_processes_of_transact_increments_end_at_exactly_400(
    case: BackendCase, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    race(case, tmp_path, request, INCREMENTS)


@pytest.mark.slow
def test_case_1_four_processes_of_transact_increments_end_at_exactly_400_on_s3(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    race(S3_OVER_HTTP, tmp_path, request, INCREMENTS)


def test_case_1_four_processes_of_transact_increments_on_s3_lose_nothing(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The S3 race at a tenth of the size, for the default run."""
    race(S3_OVER_HTTP, tmp_path, request, INCREMENTS // 10)
