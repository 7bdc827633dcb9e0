"""The second share of the planting table, on its own converged sandbox host (see test_plantings.py)."""

from __future__ import annotations

import pytest
from planting_runner import converged, planting_stack, run_case
from plantings import Planting, share
from test_troubleshoot_stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(sandbox_state_dir) -> Stack:
    return planting_stack(sandbox_state_dir)


@pytest.mark.parametrize("case", share(1), ids=lambda c: c.id)
def test_planting(stack: Stack, case: Planting):
    run_case(stack, case)


def test_converged_after_the_second_share(stack: Stack):
    converged(stack, "second")
