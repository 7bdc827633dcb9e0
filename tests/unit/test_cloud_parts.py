"""The cloud package's parts on their own: state.json, known_hosts, the sandbox backend, the local API, inventory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import compute_v1
from pydantic import SecretStr

from runbook import inventory
from runbook.cloud import context, hostkeys, state
from runbook.config import Config, Secrets, Settings, parse_settings
from runbook.errors import ConfigError
from testbed import local_api
from testbed.sandbox_backend import SandboxBackend

KEY = ("ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIMiaQvp2pHxvQFzYYkv4+MIsP2Kh47gL00IZD/tLOMqy")


def test_state_records_replaces_and_forgets(tmp_path):
    assert state.instances(tmp_path) == []
    state.record(tmp_path, "vm", "asia-northeast3-a", "203.0.113.10")
    state.record(tmp_path, "other", "us-central1-a", "203.0.113.11")
    state.record(tmp_path, "vm", "asia-northeast3-b", "203.0.113.12")
    data = json.loads((tmp_path / ".l4-runbook/state.json").read_text())
    assert data == {"instances": [{"name": "other", "zone": "us-central1-a", "address": "203.0.113.11"},
                                  {"name": "vm", "zone": "asia-northeast3-b", "address": "203.0.113.12"}]}
    assert state.forget(tmp_path, "vm")["address"] == "203.0.113.12"
    assert state.forget(tmp_path, "vm") is None
    assert [i["name"] for i in state.instances(tmp_path)] == ["other"]
    state.path(tmp_path).write_text("{not json")
    assert state.instances(tmp_path) == []


def test_known_hosts_pin_replace_unpin(tmp_path):
    known = tmp_path / "kh" / "known_hosts"
    known.parent.mkdir()
    known.write_text("198.51.100.1 ssh-ed25519 AAAAother\n")
    hostkeys.pin(known, "203.0.113.10", [("ssh-rsa", "AAAAold")])
    hostkeys.pin(known, "203.0.113.10", [KEY])
    assert hostkeys.pinned(known, "203.0.113.10") == [KEY]
    assert hostkeys.pinned(known, "198.51.100.1") == [("ssh-ed25519", "AAAAother")]
    assert hostkeys.unpin(known, "203.0.113.10") and not hostkeys.unpin(known, "203.0.113.10")
    assert known.read_text() == "198.51.100.1 ssh-ed25519 AAAAother\n"


class _Instances:
    def __init__(self, answer):
        self.answer = answer

    def get_guest_attributes(self, request):
        assert request["query_path"] == "hostkeys/"
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@dataclass
class _Api:
    instances: _Instances


def test_guest_attribute_host_keys_are_read_like_gcloud_does():
    entries = [compute_v1.GuestAttributesEntry(namespace="hostkeys", key=KEY[0], value=KEY[1] + "\n"),
               compute_v1.GuestAttributesEntry(namespace="hostkeys", key="ssh-dss", value="AAAAweak"),
               compute_v1.GuestAttributesEntry(namespace="other", key="ssh-rsa", value="AAAAx")]
    answer = compute_v1.GuestAttributes(query_value=compute_v1.GuestAttributesValue(items=entries))
    assert hostkeys.from_guest_attributes(_Api(_Instances(answer)), "p", "z", "vm") == [KEY]
    not_yet = gexc.NotFound("The resource 'hostkeys/' of type 'Guest Attribute' was not found.")
    assert hostkeys.from_guest_attributes(_Api(_Instances(not_yet)), "p", "z", "vm") == []
    unsupported = gexc.NotFound("The requested URL /compute/v1/... was not found")
    assert hostkeys.from_guest_attributes(_Api(_Instances(unsupported)), "p", "z", "vm") is None


# -- the sandbox backend ------------------------------------------------------------------------


@dataclass
class _Host:
    name: str
    address: str
    state: str = "running"


class FakeSandbox:
    """testbed.sandbox's create/boot/poweroff/remove/status, in memory."""

    def __init__(self):
        self.hosts: dict[str, _Host] = {}
        self.calls: list[tuple[str, str]] = []

    def create(self, name=None):
        if name is None:
            index = next(i for i in range(1, 50) if f"l4rb-{i}" not in self.hosts)
            name = f"l4rb-{index}"
        self.calls.append(("create", name))
        host = self.hosts.setdefault(name, _Host(name, f"10.231.{name.split('-')[1]}.2"))
        host.state = "running"
        return host

    def boot(self, name):
        self.calls.append(("boot", name))
        self.hosts[name].state = "running"
        return self.hosts[name]

    def poweroff(self, name):
        self.calls.append(("poweroff", name))
        self.hosts[name].state = "stopped"

    def remove(self, name):
        self.calls.append(("remove", name))
        del self.hosts[name]

    def status(self):
        return list(self.hosts.values())


def _instance(name="ai-server-l4", zone="asia-northeast3-a") -> dict:
    return {"name": name, "zone": f"https://www.googleapis.com/compute/v1/projects/p/zones/{zone}",
            "selfLink": f"https://www.googleapis.com/compute/v1/projects/p/zones/{zone}/instances/{name}"}


def test_sandbox_backend_maps_each_instance_to_one_host(tmp_path):
    sandbox = FakeSandbox()
    backend = SandboxBackend(sandbox, tmp_path)
    vm, other = _instance(), _instance("other")
    assert backend.create(vm) == "10.231.1.2"
    assert backend.create(vm) == "10.231.1.2"  # a retried create reuses its host
    assert backend.create(other) == "10.231.2.2"
    assert json.loads((tmp_path / "compute-vms.json").read_text()) == {
        "p/asia-northeast3-a/ai-server-l4": "l4rb-1", "p/asia-northeast3-a/other": "l4rb-2"}
    backend.stop(vm)
    assert sandbox.hosts["l4rb-1"].state == "stopped"
    assert backend.start(vm) == "10.231.1.2" and ("boot", "l4rb-1") in sandbox.calls
    backend.delete(vm)
    backend.delete(vm)
    assert "l4rb-1" not in sandbox.hosts and sandbox.calls.count(("remove", "l4rb-1")) == 1
    sandbox.remove("l4rb-2")  # taken down behind the API's back (sandbox.down)
    assert backend.start(other) == "10.231.1.2"  # a fresh host stands in


def test_local_api_starts_once_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("L4RB_SANDBOX_DIR", str(tmp_path))
    monkeypatch.setattr(local_api, "PORT", 0)  # never collide with a sandbox API running here
    url = local_api.ensure_running()
    try:
        assert url.startswith("http://127.0.0.1:") and local_api.running() == url
        pid = json.loads(local_api.info_path().read_text())["pid"]
        assert local_api.ensure_running() == url
        assert json.loads(local_api.info_path().read_text())["pid"] == pid
    finally:
        assert local_api.stop(forget=True)
    assert local_api.running() is None and not local_api.info_path().exists()
    assert not Path(f"/proc/{pid}/cmdline").exists() or b"compute_server" not in Path(
        f"/proc/{pid}/cmdline").read_bytes()
    assert not local_api.stop()


def test_endpoint_choice(monkeypatch):
    monkeypatch.setattr(local_api, "ensure_running", lambda: "http://127.0.0.1:8780")
    sandbox = parse_settings({})
    assert context.endpoint(sandbox) == "http://127.0.0.1:8780"
    assert context.endpoint(parse_settings({"inventory": {"target": "gcp"}, "gcp": {"project_id": "demo-project"},
                                            "monitoring": {"promtail": {"loki_url": "http://loki:3100"}}})) is None
    explicit = parse_settings({"gcp": {"api_endpoint": "http://127.0.0.1:9999"}})
    assert context.endpoint(explicit) == "http://127.0.0.1:9999"


def test_load_settings_needs_no_secrets(tmp_path):
    (tmp_path / "hosts.toml").write_text('[gcp]\nproject_id = "demo-project"\n')
    settings, root = context.load_settings(tmp_path / "hosts.toml")
    assert settings.gcp.project_id == "demo-project" and root == tmp_path
    with pytest.raises(ConfigError, match="not found"):
        context.load_settings(tmp_path / "missing.toml")


def test_firewall_settings_are_validated():
    fw = Settings().firewall
    assert (fw.api.name, fw.api.target_tag, fw.api.source_ranges) == ("allow-ai-server-ports", "ai-server",
                                                                      ["0.0.0.0/0"])
    assert (fw.monitoring.ports, fw.monitoring.source_ranges) == ([9100, 9400], ["10.128.0.0/9"])
    assert not fw.allow_world_monitoring
    with pytest.raises(ConfigError, match="not a network in CIDR form"):
        parse_settings({"firewall": {"monitoring": {"source_ranges": ["10.0.0.1/8"]}}})
    with pytest.raises(ConfigError, match="at least one source range"):
        parse_settings({"firewall": {"api": {"source_ranges": []}}})


def test_repository_hosts_toml_is_valid():
    import tomllib

    settings = parse_settings(tomllib.loads((Path(__file__).resolve().parents[2] / "hosts.toml").read_text()))
    assert settings.inventory.target == "sandbox" and not settings.firewall.allow_world_monitoring


# -- inventory: the sandbox target prefers the VM booted through the local API --------------------


@dataclass
class _SandboxHost:
    name: str
    address: str
    state: str = "running"
    ssh_user: str = "ubuntu"
    ssh_key: Path = Path("/sandbox/id_ed25519")
    known_hosts: Path = Path("/sandbox/known_hosts")


def test_sandbox_inventory_prefers_recorded_vms(tmp_path, monkeypatch):
    import testbed.sandbox

    hosts = [_SandboxHost("l4rb-1", "10.231.1.2"), _SandboxHost("l4rb-2", "10.231.2.2")]
    monkeypatch.setattr(testbed.sandbox, "status", lambda: hosts)
    cfg = Config(settings=Settings(), root=tmp_path,
                 secrets=Secrets(vllm_api_key=SecretStr("key-12345"), ocr_api=SecretStr("ocr-12345")))
    assert [t.name for t in inventory.targets(cfg)] == ["l4rb-1", "l4rb-2"]
    state.record(tmp_path, "ai-server-l4", "asia-northeast3-a", "10.231.2.2")
    (target,) = inventory.targets(cfg)
    assert (target.name, target.address, target.user) == ("ai-server-l4", "10.231.2.2", "ubuntu")
    assert (target.key_file, target.known_hosts, target.trust_on_first_use) == (
        "/sandbox/id_ed25519", "/sandbox/known_hosts", False)
    state.record(tmp_path, "ai-server-l4", "asia-northeast3-a", "10.231.9.2")  # its host is gone
    assert [t.name for t in inventory.targets(cfg)] == ["l4rb-1", "l4rb-2"]
