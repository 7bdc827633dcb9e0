"""The second share of the planting table, on its own converged sandbox host (see test_plantings.py)."""

from __future__ import annotations

import pytest
from planting_runner import converged, share_tests
from test_troubleshoot_stack import Stack

pytestmark = pytest.mark.integration
stack, test_planting = share_tests(1)


def test_converged_after_the_second_share(stack: Stack):
    converged(stack, "second")
