"""`inv vm` on the sandbox: the local Compute API boots a real sandbox host as the VM, and the
host tasks reach it over SSH with its pinned key. Then `inv cleanup --delete --yes` removes it."""

from __future__ import annotations

from pathlib import Path

import invoke
import pytest
from pydantic import SecretStr

from runbook import inventory, tasks_cloud
from runbook.cloud import state
from runbook.cloud.context import load_settings
from runbook.config import Config, Secrets
from runbook.engine.results import CHANGED, OK
from testbed import local_api, sandbox

HOSTS_TOML = """
[gcp]
project_id = "sandbox-project"
instance_name = "ai-server-l4"

[inventory]
target = "sandbox"
"""


@pytest.fixture
def project(sandbox_state_dir: Path, tmp_path: Path):
    (tmp_path / "hosts.toml").write_text(HOSTS_TOML)
    yield tmp_path
    local_api.stop(forget=True)


def _config(root: Path) -> Config:
    settings, _ = load_settings(root / "hosts.toml")
    return Config(settings=settings, root=root,
                  secrets=Secrets(vllm_api_key=SecretStr("key-12345"), ocr_api=SecretStr("ocr-12345")))


def test_vm_through_the_local_api_is_a_sandbox_host(project: Path):
    config = str(project / "hosts.toml")
    c = invoke.Context()
    before = {h.name for h in sandbox.status()}

    first = tasks_cloud.firewall(c, config=config) + tasks_cloud.vm(c, config=config)
    assert [r.status for r in first] == [CHANGED, CHANGED]
    assert local_api.running()

    (vm,) = state.instances(project)
    assert vm["name"] == "ai-server-l4" and vm["address"].startswith("10.231.")
    (host,) = [h for h in sandbox.status() if h.name not in before]
    assert (host.address, host.state) == (vm["address"], "running")

    (target,) = inventory.targets(_config(project))
    assert (target.name, target.address, target.trust_on_first_use) == ("ai-server-l4", vm["address"], False)
    transport = inventory.connect(_config(project), target)
    try:
        result = transport.run("nvidia-smi --query-gpu=name --format=csv,noheader; id -un")
    finally:
        transport.close()
    assert result.ok and result.stdout.split() == ["NVIDIA", "L4", "root"]

    again = tasks_cloud.vm(c, config=config)
    assert again[0].status == OK and again[0].count(CHANGED) == 0

    gone = tasks_cloud.cleanup(c, config=config, delete=True, yes=True)
    assert gone[0].count(CHANGED) == 1
    assert host.name not in {h.name for h in sandbox.status()} and state.instances(project) == []
    assert tasks_cloud.cleanup(c, config=config, delete=True, yes=True)[0].count(CHANGED) == 0
