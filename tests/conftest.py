"""Shared fixtures: real sandbox hosts (testbed.sandbox) for integration tests.

Tests that use them are marked `integration` automatically and skipped where the machine cannot
run hosts (not root, systemd-nspawn/debootstrap/tinyproxy missing): the reason is in the summary
(`-ra`), with the command that makes them run. Where they must run (CI=true) that is a failure. The tests
get a state dir of their own under TEST_STATE_ROOT, so they never touch a sandbox someone runs by
hand; the image cache is shared, so only the first run ever builds the image.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from compute_contract import compute_requests  # noqa: F401 - autouse: every Compute request checked

TEST_STATE_ROOT = Path("/var/lib/l4-runbook/test-sandbox")
SANDBOX_FIXTURES = {"sandbox_state_dir", "sandbox_host", "sandbox_hosts"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that boots hosts is an integration test, whether or not its author marked it."""
    for item in items:
        if SANDBOX_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _unavailable() -> str | None:
    from testbed.sandbox import problems

    issues = problems()
    return "; ".join(issues) if issues else None


def _clean_stale_runs() -> None:
    """Take down hosts of earlier test runs that were killed before their teardown."""
    from testbed.sandbox import down

    for run in TEST_STATE_ROOT.glob("run-*"):
        with open(run / "owner.lock", "a") as owner:
            try:
                fcntl.flock(owner, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live test session owns it
            with _state_dir(run):
                down()
        shutil.rmtree(run, ignore_errors=True)


class _state_dir:
    """Point testbed.sandbox at a state dir for the duration of a with-block."""

    def __init__(self, path: Path) -> None:
        self.path, self.saved = path, os.environ.get("L4RB_SANDBOX_DIR")

    def __enter__(self) -> Path:
        os.environ["L4RB_SANDBOX_DIR"] = str(self.path)
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            os.environ.pop("L4RB_SANDBOX_DIR", None)
        else:
            os.environ["L4RB_SANDBOX_DIR"] = self.saved


@pytest.fixture(scope="session")
def sandbox_state_dir() -> Iterator[Path]:
    """A private sandbox state dir for this test session; every host in it is removed at the end."""
    reason = _unavailable()
    if reason:
        message = f"integration tests need sandbox hosts, which cannot run here: {reason} (see `make deps`)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run every test: {message}", pytrace=False)
        pytest.skip(message)
    from testbed.sandbox import down

    TEST_STATE_ROOT.mkdir(parents=True, exist_ok=True)
    _clean_stale_runs()
    path = Path(tempfile.mkdtemp(prefix="run-", dir=TEST_STATE_ROOT))
    with open(path / "owner.lock", "w") as owner, _state_dir(path):
        fcntl.flock(owner, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            down()
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def sandbox_host(sandbox_state_dir: Path):
    """One fresh, booted host for the test module, removed after it."""
    from testbed.sandbox import create, remove

    host = create()
    yield host
    remove(host.name)


@pytest.fixture(scope="module")
def sandbox_hosts(sandbox_state_dir: Path) -> Iterator[Callable[[int], list]]:
    """Factory: sandbox_hosts(n) gives n more fresh hosts; all are removed after the module."""
    from testbed.sandbox import create, remove

    made: list = []

    def make(count: int) -> list:
        hosts = [create() for _ in range(count)]
        made.extend(hosts)
        return hosts

    yield make
    for host in made:
        remove(host.name)
