"""A retry explains itself: which call, on which resource, what the API answered, which retry, how long.

The faults are real HTTP answers of the local Compute server (its fail_next rules), read by the
real google-cloud-compute client.
"""

from __future__ import annotations

import io
import logging
import re

from rich.console import Console

from runbook import cloud, gcp
from runbook.cloud.context import open_context
from runbook.config import Settings
from runbook.engine.output import Output
from runbook.engine.results import CHANGED

from compute_api import POLICY

PROJECT, ZONE = "demo-project", "asia-northeast3-a"
STEADY = gcp.RetryPolicy(initial=0.1, maximum=1.0, jitter=0.0, deadline=20, timeout=10)  # waits 0.1, 0.2, 0.4 s
FAMILY = "projects/ubuntu-os-accelerator-images/global/images/family/ubuntu-accelerator-2204-amd64-with-nvidia-580"


def test_a_rate_limited_insert_says_call_resource_status_retry_and_wait(server):
    messages: list[str] = []
    api = gcp.clients(server.url, gcp.bearer(server.token), policy=STEADY, notify=messages.append)
    server.sim.set_faults(fail_next=[{"method": "POST", "path": r"/zones/[^/]+/instances$", "status": 429,
                                      "count": 2}])
    api.wait(api.instances.insert(project=PROJECT, zone=ZONE, instance_resource={
        "name": "ai-server-l4", "machine_type": f"zones/{ZONE}/machineTypes/g2-standard-4",
        "guest_accelerators": [{"accelerator_type": f"zones/{ZONE}/acceleratorTypes/nvidia-l4",
                                "accelerator_count": 1}],
        "disks": [{"boot": True, "auto_delete": True, "initialize_params": {
            "disk_size_gb": 200, "disk_type": f"zones/{ZONE}/diskTypes/pd-ssd", "source_image": FAMILY}}],
        "scheduling": {"on_host_maintenance": "TERMINATE", "automatic_restart": True},
        "network_interfaces": [{"access_configs": [{"name": "External NAT", "type_": "ONE_TO_ONE_NAT"}]}]}))
    assert messages == [
        "compute instances.insert ai-server-l4 (asia-northeast3-a): 429 rate limit, retry 1/5 in 0.1 s",
        "compute instances.insert ai-server-l4 (asia-northeast3-a): 429 rate limit, retry 2/5 in 0.2 s",
    ]


def test_other_calls_name_their_resource_and_status(server):
    messages: list[str] = []
    api = gcp.clients(server.url, gcp.bearer(server.token), policy=STEADY, notify=messages.append)
    server.sim.set_faults(fail_next=[{"path": "/regions/", "status": 503},
                                     {"path": "/global/firewalls$", "status": 429},
                                     {"path": "/aggregated/acceleratorTypes", "status": 502}])
    api.regions.get(project=PROJECT, region="asia-northeast3")
    api.wait(api.firewalls.insert(project=PROJECT, firewall_resource={
        "name": "allow-ai-server-ports", "allowed": [{"I_p_protocol": "tcp", "ports": ["8000"]}]}))
    api.accelerator_types.aggregated_list(project=PROJECT)
    assert messages == [
        "compute regions.get asia-northeast3: 503 service unavailable, retry 1/5 in 0.1 s",
        "compute firewalls.insert allow-ai-server-ports: 429 rate limit, retry 1/5 in 0.1 s",
        "compute acceleratorTypes.aggregatedList: 502 bad gateway, retry 1/5 in 0.1 s",
    ]


def test_without_a_listener_the_message_goes_to_the_log(server, caplog):
    caplog.set_level(logging.WARNING, logger="runbook.gcp")
    api = gcp.clients(server.url, gcp.bearer(server.token), policy=STEADY)
    server.sim.set_faults(fail_next=[{"path": "/zones/[^/]+/disks$", "status": 429}])
    api.disks.list(project=PROJECT, zone=ZONE)
    assert [r.getMessage() for r in caplog.records] == [
        "compute disks.list (asia-northeast3-a): 429 rate limit, retry 1/5 in 0.1 s"]


def test_a_deploy_under_injected_429s_prints_each_retry_once_in_its_log(server, tmp_path):
    console = Console(file=io.StringIO(), width=100, color_system=None)
    token_file = tmp_path / "compute-api.token"
    token_file.write_text(server.token + "\n")
    token_file.chmod(0o600)
    settings = Settings.model_validate({
        "gcp": {"project_id": PROJECT, "api_endpoint": server.url, "api_token_file": str(token_file)},
        "inventory": {"target": "gcp"}, "monitoring": {"promtail": {"loki_url": "http://loki.example.com:3100"}}})
    server.sim.set_faults(fail_next=[{"method": "POST", "path": r"/zones/[^/]+/instances$", "status": 429,
                                      "count": 3}])
    results = cloud.run(open_context(settings, tmp_path, Output(console=console), policy=POLICY), ["firewall", "vm"])
    assert [r.status for r in results] == [CHANGED, CHANGED]
    text = console.file.getvalue()
    retries = re.findall(r"^warning: compute instances\.insert ai-server-l4 \(asia-northeast3-a\): "
                         r"429 rate limit, retry (\d)/5 in \d+\.\d s$", text, re.M)
    assert retries == ["1", "2", "3"], text
