"""The first share of the planting table (plantings.py) on one converged sandbox host; the second share
runs on another host at the same time (test_plantings_second_share.py). How a case runs: planting_runner.py.
"""

from __future__ import annotations

import pytest
from planting_runner import converged, share_tests
from plantings import CASES, share
from test_troubleshoot_stack import Stack

pytestmark = pytest.mark.integration
stack, test_planting = share_tests(0)


def test_the_table_is_large_and_covers_every_family():
    assert len(CASES) >= 40
    assert sorted(c.id for c in share(0) + share(1)) == sorted(c.id for c in CASES)
    items = {i for c in CASES for i in c.found}
    assert {"B-3", "B-6", "B-7", "B-10", "B-14", "B-15", "B-19", "S-1", "S-2", "S-3", "C-2"} <= items
    assert sum(1 for c in CASES if not c.found) >= 5  # no false alarms on healthy variations


def test_converged_after_the_first_share(stack: Stack):
    converged(stack, "first")
