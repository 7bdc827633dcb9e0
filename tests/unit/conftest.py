"""Fixtures for the unit tests: a local Compute server in-process, and clients for it."""

import pytest

from runbook import gcp
from testbed.compute_server import ComputeServer

from compute_api import FAST, POLICY


@pytest.fixture
def server():
    with ComputeServer(faults=FAST) as srv:
        yield srv


@pytest.fixture
def api(server):
    return gcp.clients(server.url, gcp.bearer(server.token), policy=POLICY)
