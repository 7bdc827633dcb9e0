"""Every request that reaches a local Compute server during a test is checked against compute.v1.json.

An autouse fixture hooks the server's dispatcher (testbed.compute_server.server.OBSERVERS), records
each request, and fails the test that sent one Google's own description does not allow. Tests that
send broken requests on purpose (to see the server refuse them) say so with
`@pytest.mark.sends_invalid_requests`; their requests are still recorded, not held against them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.compute_server import contract, server


def violations(requests: list[tuple[str, str, dict, object]]) -> list[str]:
    out = []
    for method, path, query, body in requests:
        out.extend(f"{method} {path}: {p}" for p in contract.check(method, path, query, body))
    return out


def read_recording(path: Path) -> list[tuple[str, str, dict, object]]:
    """Requests a server in another process wrote (L4RB_COMPUTE_RECORD)."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [(r["method"], r["path"], r["query"], r["body"]) for r in rows]


@pytest.fixture(autouse=True)
def compute_requests(request):
    """The requests this test sent to in-process Compute servers; checked against the description after it."""
    seen: list[tuple[str, str, dict, object]] = []

    def observe(method, path, query, body):
        seen.append((method, path, query, body))

    server.OBSERVERS.append(observe)
    try:
        yield seen
    finally:
        server.OBSERVERS.remove(observe)
    if request.node.get_closest_marker("sends_invalid_requests"):
        return
    bad = violations(seen)
    if bad:
        pytest.fail("requests that Google's compute.v1.json does not allow:\n" + "\n".join(bad[:20]), pytrace=False)
