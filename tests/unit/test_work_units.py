"""The parallel test run's work units (tests/conftest.py) name modules that exist, each in one unit."""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
INTEGRATION = TESTS / "integration"


@pytest.fixture
def conftest(pytestconfig):
    """tests/conftest.py as pytest loaded it (other conftest modules share its name)."""
    (module,) = [p for p in pytestconfig.pluginmanager.get_plugins()
                 if getattr(p, "__file__", None) and Path(p.__file__) == TESTS / "conftest.py"]
    return module


def test_every_grouped_or_ordered_module_exists(conftest):
    modules = {p.name for p in INTEGRATION.glob("test_*.py")}
    grouped = [m for group in conftest.SHARED_HOSTS.values() for m in group]
    assert len(grouped) == len(set(grouped)), "a module is in two groups"
    assert set(grouped) <= modules, sorted(set(grouped) - modules)
    for unit in conftest.SLOW_FIRST:
        assert unit in conftest.SHARED_HOSTS or unit in modules, unit
    assert len(conftest.SLOW_FIRST) == len(set(conftest.SLOW_FIRST))


def test_a_group_is_one_work_unit_and_a_module_is_its_own(conftest):
    assert conftest.work_unit("tests/integration/test_verify.py::test_x") == "stack-1"
    assert conftest.work_unit("tests/integration/test_restart_recheck.py::test_y[a]") == "stack-3"
    assert conftest.work_unit("tests/unit/test_facts.py::test_z") == "test_facts.py"
