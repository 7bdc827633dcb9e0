"""A guest that powers itself off shows as a stopped VM in the local Compute server, as on Compute Engine.

The sandbox backend notices a host that stopped without an API call (its systemd-nspawn exited) and the
server turns the instance TERMINATED, disk kept, address released; an API stop is not reported twice, and
`instances.start` brings the VM back. Driven through the real google-cloud-compute client.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from test_compute_server import PROJECT, ZONE, create_vm, nat_ip

from testbed.compute_server import ComputeServer
from testbed.sandbox_backend import SandboxBackend

from compute_api import FAST


@dataclass
class _Host:
    name: str
    address: str
    state: str = "running"
    root: None = None


class Hosts:
    """testbed.sandbox's create/boot/poweroff/remove/status, in memory; `guest_poweroff` is the guest's own."""

    def __init__(self):
        self.hosts: dict[str, _Host] = {}

    def create(self, name=None):
        name = name or f"l4rb-{len(self.hosts) + 1}"
        host = self.hosts.setdefault(name, _Host(name, f"10.231.{name.split('-')[1]}.2"))
        host.state = "running"
        return host

    def boot(self, name):
        self.hosts[name].state = "running"
        return self.hosts[name]

    def poweroff(self, name):
        self.hosts[name].state = "stopped"

    def guest_poweroff(self, name):
        self.hosts[name].state = "stopped"  # what `systemctl poweroff` inside does: nspawn exits

    def remove(self, name):
        del self.hosts[name]

    def status(self):
        return list(self.hosts.values())


def wait_status(api, want: str, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        inst = api.instances.get(project=PROJECT, zone=ZONE, instance="vm1")
        if inst.status == want or time.monotonic() > deadline:
            return inst
        time.sleep(0.05)


def test_guest_poweroff_is_a_stopped_vm_and_start_brings_it_back(tmp_path, monkeypatch):
    from runbook import gcp

    from compute_api import POLICY

    monkeypatch.setattr(SandboxBackend, "WATCH_EVERY_S", 0.05)
    hosts = Hosts()
    with ComputeServer(faults=FAST, backend=SandboxBackend(hosts, tmp_path)) as server:
        api = gcp.clients(server.url, gcp.bearer(server.token), policy=POLICY)
        create_vm(api)
        time.sleep(0.2)  # the watcher has seen the host running
        assert wait_status(api, "RUNNING").status == "RUNNING"

        hosts.guest_poweroff("l4rb-1")
        stopped = wait_status(api, "TERMINATED")
        assert stopped.status == "TERMINATED" and not nat_ip(stopped) and stopped.last_stop_timestamp
        assert len(stopped.disks) == 1  # the disk stays with the stopped VM

        api.wait(api.instances.start(project=PROJECT, zone=ZONE, instance="vm1"))
        started = wait_status(api, "RUNNING")
        assert started.status == "RUNNING" and nat_ip(started) == "10.231.1.2"
        assert hosts.hosts["l4rb-1"].state == "running"

        # A stop through the API is the API's: the watcher's report of the stopped host changes nothing.
        api.wait(api.instances.stop(project=PROJECT, zone=ZONE, instance="vm1"))
        time.sleep(0.3)
        assert server.sim.guest_stopped(PROJECT, ZONE, "vm1") is False
        assert api.instances.get(project=PROJECT, zone=ZONE, instance="vm1").status == "TERMINATED"
