"""Shared fixtures: real sandbox hosts (testbed.sandbox) for integration tests.

Tests that use them are marked `integration` automatically and skipped where the machine cannot
run hosts (not root, systemd-nspawn/debootstrap/tinyproxy missing): the reason is in the summary
(`-ra`), with the command that makes them run. Where they must run (CI=true) that is a failure. The tests
get a state dir of their own under TEST_STATE_ROOT, so they never touch a sandbox someone runs by
hand; the image cache is shared, so only the first run ever builds the image.

Parallel runs (pytest-xdist, `make test` uses `-n 4`): every worker is a session of its own, so it
gets its own state dir, and testbed.sandbox hands out host slots (names, addresses, links)
machine-wide under a lock. A module's tests stay on one worker (its module-scoped host is made once),
and the modules that share one deployed host (SHARED_HOSTS) are kept together (WorkUnitScheduling).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from compute_contract import compute_requests  # noqa: F401 - autouse: every Compute request checked

TEST_STATE_ROOT = Path("/var/lib/l4-runbook/test-sandbox")
PRIVATE = "private"  # <run>/private/<module>: the state dirs of private_sandbox_dir
SANDBOX_FIXTURES = {"sandbox_state_dir", "sandbox_host", "sandbox_hosts"}

# Modules that use the deployed host of test_troubleshoot_stack.stack_for (one per worker): each group runs
# on one worker, so a run deploys that host once per group, not once per module. Three groups so that three
# workers share the work: the planting table is split over two of them (its two shares, the longest chain
# of one host otherwise), and the groups are balanced by their measured time (docs/performance.md).
SHARED_HOSTS = {
    "stack-1": ("test_plantings.py", "test_verify.py"),
    "stack-2": ("test_current_components_on_hosts.py", "test_troubleshoot_monitoring.py", "test_troubleshoot_host.py",
                "test_troubleshoot_stack.py", "test_prometheus.py"),
    "stack-3": ("test_plantings_second_share.py", "test_restart_recheck.py"),
}
_GROUP_OF = {module: group for group, modules in SHARED_HOSTS.items() for module in modules}
# Slow units first, longest first (their fixtures boot hosts and deploy), so no worker starts one of them last.
SLOW_FIRST = ("stack-2", "stack-3", "stack-1", "test_wheel.py", "test_drift.py", "test_deploy.py", "test_monitoring.py",
              "test_readme_commands.py", "test_fleet_sandbox.py", "test_autostop_on_hosts.py",
              "test_vllm.py", "test_ai_server.py", "test_cloud_sandbox.py")


def work_unit(nodeid: str) -> str:
    """What one worker runs whole: a module, or the group of modules sharing a deployed host."""
    module = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
    return _GROUP_OF.get(module, module)


def _slow_first(item: pytest.Item) -> int:
    unit = work_unit(item.nodeid)
    return SLOW_FIRST.index(unit) if unit in SLOW_FIRST else len(SLOW_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that boots hosts is an integration test, whether or not its author marked it. In a
    parallel run the slow work units come first: workers take units in collection order."""
    for item in items:
        if SANDBOX_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=_slow_first)  # stable: within a unit, file order is kept


if importlib.util.find_spec("xdist"):  # the hook exists only with pytest-xdist (the test extra has it)
    from xdist.scheduler import LoadScopeScheduling

    class WorkUnitScheduling(LoadScopeScheduling):
        """xdist's scope scheduling with work_unit() as the scope. (xdist's own --dist loadgroup marks a
        group by rewriting node ids, which pytest 9 no longer reads back, so it would split modules.)"""

        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    def pytest_xdist_make_scheduler(config: pytest.Config, log) -> LoadScopeScheduling:
        return WorkUnitScheduling(config, log)


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
            for state in (*run.glob(f"{PRIVATE}/*"), run):
                with _state_dir(state):
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
    with open(TEST_STATE_ROOT / "runs.lock", "w") as runs:
        # Held while cleaning and claiming: another worker must not take this run's fresh dir, not yet
        # locked by its owner, for the leftover of a killed run.
        fcntl.flock(runs, fcntl.LOCK_EX)
        _clean_stale_runs()
        path = Path(tempfile.mkdtemp(prefix="run-", dir=TEST_STATE_ROOT))
        owner = open(path / "owner.lock", "w")  # held for the whole session, closed below
        fcntl.flock(owner, fcntl.LOCK_EX)
    with owner, _state_dir(path):
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
    from testbed.sandbox import create, down

    made: list = []

    def make(count: int) -> list:
        hosts = [create() for _ in range(count)]
        made.extend(hosts)
        return hosts

    yield make
    if made:
        down([host.name for host in made])  # powered off together


@pytest.fixture(scope="module")
def private_sandbox_dir(sandbox_state_dir: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A state dir of the module's own, in force (L4RB_SANDBOX_DIR) while the module runs; its hosts are
    removed after it. For modules that run `sandbox.up`/`sandbox.down` or the local Compute API as a user
    does: those act on every host of a state dir, which must not be the hosts other modules of this
    worker keep (the deployed host of test_troubleshoot_stack lives for the whole session)."""
    from testbed.sandbox import down

    path = sandbox_state_dir / PRIVATE / request.module.__name__.rsplit(".", 1)[-1]
    path.mkdir(parents=True, mode=0o700)
    with _state_dir(path):
        try:
            yield path
        finally:
            from testbed import local_api

            local_api.stop(forget=True)
            down()
