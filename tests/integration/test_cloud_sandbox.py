"""`inv vm` on the sandbox: the local Compute API boots a real sandbox host as the VM, and the
host tasks reach it over SSH with its pinned key. Then `inv cleanup --delete --yes` removes it.

The second test is host-key pinning end to end, as on Google Cloud: the VM's real SSH host key
is published through getGuestAttributes (hostkeys/), pinned before the first connection, and a
key that changes behind the API's back is refused by SSH."""

from __future__ import annotations

import io
from pathlib import Path

import invoke
import pytest
from compute_contract import read_recording, violations
from pydantic import SecretStr
from rich.console import Console

from runbook import cloud, gcp, inventory, tasks_cloud
from runbook.cloud import hostkeys, state
from runbook.cloud.context import load_settings, open_context
from runbook.config import Config, Secrets
from runbook.engine.output import Output
from runbook.engine.results import CHANGED, FAILED, OK
from runbook.errors import RunbookError
from testbed import local_api, sandbox
from testbed.compute_server import ComputeServer
from testbed.sandbox.naming import SSH_USER
from testbed.sandbox.paths import client_key
from testbed.sandbox_backend import SandboxBackend

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


def test_vm_through_the_local_api_is_a_sandbox_host(project: Path, monkeypatch):
    recording = project / "requests.jsonl"  # the server runs in its own process: it records to this file
    monkeypatch.setenv("L4RB_COMPUTE_RECORD", str(recording))
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

    sent = read_recording(recording)
    assert len(sent) > 20 and violations(sent) == []  # every request checked against compute.v1.json


def _gcp_toml(url: str, user: str, token_file: Path) -> str:
    """A real-cloud style project (target gcp): the key is pinned from guest attributes, never trusted blindly."""
    return "\n".join([
        "[gcp]", 'project_id = "pinning-project"', 'instance_name = "pinned-vm"', f'api_endpoint = "{url}"',
        f'api_token_file = "{token_file}"', "guest_attributes = true", "operation_timeout = 300",
        "[monitoring.promtail]", 'loki_url = "http://loki.example.com:3100"',  # required outside the sandbox
        "[inventory]", 'target = "gcp"',
        "[ssh]", f'user = "{user}"', f'key_file = "{client_key()}"', 'known_hosts = "known_hosts"',
        "trust_on_first_use = false",
    ]) + "\n"


def _run_vm(root: Path) -> tuple[list, str]:
    settings, _ = load_settings(root / "hosts.toml")
    console = Console(file=io.StringIO(), width=300)
    policy = gcp.RetryPolicy(initial=0.01, maximum=0.05, jitter=0.01, deadline=30, timeout=30)
    results = cloud.run(open_context(settings, root, Output(console=console), policy=policy), ["vm"])
    return results, console.file.getvalue()


def _connect(root: Path):
    cfg = _config(root)
    (target,) = inventory.targets(cfg)
    return inventory.connect(cfg, target, notify=lambda *_: None)


def test_host_key_published_by_the_vm_is_pinned_and_a_changed_key_is_refused(sandbox_state_dir: Path,
                                                                                tmp_path: Path):
    backend = SandboxBackend()
    before = {h.name for h in sandbox.status()}
    with ComputeServer(faults={"op_pending_s": 0.2, "op_running_s": 0.5}, backend=backend) as server:
        try:
            token_file = tmp_path / "compute-api.token"  # the local server answers only its token's holder
            token_file.write_text(server.token + "\n")
            token_file.chmod(0o600)
            (tmp_path / "hosts.toml").write_text(_gcp_toml(server.url, SSH_USER, token_file))
            results, text = _run_vm(tmp_path)
            assert results[0].status == CHANGED, text
            (host,) = [h for h in sandbox.status() if h.name not in before]
            real_key = (host.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]

            # Published by the VM, pinned before the first connection, and SSH checks against it.
            address = state.find(tmp_path, "pinned-vm")["address"]
            assert address == host.address
            assert tuple(real_key) in hostkeys.pinned(tmp_path / "known_hosts", address)
            transport = _connect(tmp_path)
            try:
                assert transport.run("hostname").ok
            finally:
                transport.close()

            # The host's key changes behind the API's back: SSH refuses the unpinned key.
            host.ssh("sudo sh -c 'rm -f /etc/ssh/ssh_host_*key* && ssh-keygen -A >/dev/null && systemctl restart ssh'",
                     timeout=60)
            with pytest.raises(RunbookError) as refused:
                transport = _connect(tmp_path)
                transport.run("hostname")
            assert "host key" in str(refused.value).lower()

            # The VM publishes its new key; the next run pins it from the API and SSH works again.
            results, text = _run_vm(tmp_path)
            assert results[0].status != FAILED, text
            new_key = (host.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2]
            assert new_key != real_key and tuple(new_key) in hostkeys.pinned(tmp_path / "known_hosts", address)
            transport = _connect(tmp_path)
            try:
                assert transport.run("hostname").ok
            finally:
                transport.close()
        finally:
            for name in {h.name for h in sandbox.status()} - before:
                sandbox.remove(name)
