"""Several replicas and Google's load balancer, against the local Compute server through the real client.

The server's data plane really probes: each replica here is a small HTTP server on a loopback address of
its own (the backend hands those out as the VMs' external IPs), and the forwarding rule's address is a
loopback address the data plane relays from. Every request is checked against compute.v1.json by the
autouse contract fixture (tests/compute_contract.py).
"""

from __future__ import annotations

import functools
import io
import json
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import invoke
import pytest
from google.api_core import exceptions as gexc
from google.cloud import compute_v1
from rich.console import Console

from runbook import cli, cloud, inventory, tasks_monitoring
from runbook.cloud import context, lb, lb_verify, state
from runbook.cloud.context import open_context
from runbook.cloud.instances import spread_zones, zone_of
from runbook.config import Config, Secrets, Settings
from runbook.engine.output import Output
from runbook.engine.results import CHANGED, FAILED, OK
from runbook.errors import ConfigError
from runbook.tasks_cloud import run_cleanup
from testbed.compute_server import ComputeServer, DocumentationBackend

from compute_api import FAST, POLICY

PROJECT = "fleet-project"
ADDRESSES = [f"127.0.0.{n}" for n in range(11, 20)]
LB_ADDRESS = "127.0.0.50"
# Room for three L4 VMs (the simulated project starts with one GPU and 250 GB of SSD).
ROOM = {"quota_limits": {"NVIDIA_L4_GPUS": 8, "SSD_TOTAL_GB": 4096}, "project_quota_limits": {"GPUS_ALL_REGIONS": 8}}


class LoopbackBackend(DocumentationBackend):
    """VMs whose external IPs are loopback addresses of this machine; forwarding rules too."""

    def __init__(self):
        super().__init__()
        self._left = list(ADDRESSES)

    def create(self, instance: dict) -> str:
        return self._left.pop(0)

    def start(self, instance: dict) -> str:
        return self._left.pop(0)

    def lb_addresses(self, scheme: str):
        return iter([LB_ADDRESS])


class App(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = self.server.server_address[0].encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((ADDRESSES[0], 0))
        return s.getsockname()[1]


class Fleet:
    def __init__(self, server: ComputeServer, root: Path):
        self.server, self.root = server, root
        self.port = _free_port()
        self.apps: dict[str, ThreadingHTTPServer] = {}
        token = root / "token"
        token.write_text(server.token + "\n")
        token.chmod(0o600)
        self.console = Console(file=io.StringIO(), width=400, highlight=False)
        self.data = {
            "gcp": {"project_id": PROJECT, "api_endpoint": server.url, "api_token_file": str(token), "replicas": 3,
                    "lb": {"check_interval_sec": 1, "timeout_sec": 1, "healthy_threshold": 1,
                           "unhealthy_threshold": 2}},
            "ai_server": {"port": self.port}, "inventory": {"target": "gcp"},
            "monitoring": {"promtail": {"loki_url": "http://loki.example.com:3100"}},
        }

    @property
    def settings(self) -> Settings:
        return Settings.model_validate(self.data)

    def run(self, *names: str, dry_run: bool = False):
        ctx = open_context(self.settings, self.root, Output(console=self.console), dry_run, policy=POLICY)
        return cloud.run(ctx, list(names))

    @property
    def text(self) -> str:
        return self.console.file.getvalue()

    def serve(self, address: str) -> None:
        app = ThreadingHTTPServer((address, self.port), App)
        threading.Thread(target=app.serve_forever, daemon=True).start()
        self.apps[address] = app

    def halt(self, address: str) -> None:
        app = self.apps.pop(address)
        app.shutdown()
        app.server_close()

    def config(self) -> str:
        lines = []

        def table(name: str, values: dict) -> None:
            lines.append(f"[{name}]")
            for key, value in values.items():
                if not isinstance(value, dict):
                    lines.append(f"{key} = {json.dumps(value)}")
            for key, value in values.items():
                if isinstance(value, dict):
                    table(f"{name}.{key}", value)

        for name, values in self.data.items():
            table(name, values)
        path = self.root / "hosts.toml"
        path.write_text("\n".join(lines) + "\n")
        return str(path)

    def health(self) -> dict[str, str]:
        ctx = open_context(self.settings, self.root, Output(console=self.console), policy=POLICY)
        return lb_verify._health(ctx, {z: lb._link(ctx, "zones", z, "instanceGroups", lb.names(self.settings).group(z))
                                       for z in lb.replicas_in_region(ctx)})

    def wait_health(self, want: dict[str, str], seconds: float = 20) -> dict[str, str]:
        deadline = time.monotonic() + seconds
        while True:
            seen = self.health()
            if all(seen.get(k) == v for k, v in want.items()) or time.monotonic() > deadline:
                return seen
            time.sleep(0.3)


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    monkeypatch.setattr(context, "open_context", functools.partial(open_context, policy=POLICY))
    with ComputeServer(faults={**FAST, **ROOM}, backend=LoopbackBackend()) as server:
        f = Fleet(server, tmp_path)
        yield f
        for address in list(f.apps):
            f.halt(address)


def changed(results) -> int:
    return sum(r.count(CHANGED) for r in results)


def fetch(url: str) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as answer:
        return answer.status, answer.read().decode()


# -- settings ---------------------------------------------------------------------------------------------------


def test_replica_forms():
    assert Settings().gcp.replica_list() == [("ai-server-l4", "")] and not Settings().gcp.several
    counted = Settings.model_validate({"gcp": {"replicas": 3}}).gcp
    assert counted.replica_list() == [("ai-server-l4-1", ""), ("ai-server-l4-2", ""), ("ai-server-l4-3", "")]
    assert counted.several and counted.lb_wanted
    listed = Settings.model_validate({"gcp": {"instances": [{"name": "a"}, {"name": "b", "zone": "us-east4-c"}]}}).gcp
    assert listed.replica_list() == [("a", ""), ("b", "us-east4-c")]
    off = Settings.model_validate({"gcp": {"replicas": 2, "name_prefix": "gpu", "lb": {"enabled": False}}}).gcp
    assert [n for n, _ in off.replica_list()] == ["gpu-1", "gpu-2"] and not off.lb_wanted
    with pytest.raises(ConfigError, match="either replicas"):
        cli_parse({"gcp": {"replicas": 2, "instances": [{"name": "a"}]}})
    with pytest.raises(ConfigError, match="name_prefix"):
        cli_parse({"gcp": {"name_prefix": "gpu"}})
    with pytest.raises(ConfigError, match="timeout_sec"):
        cli_parse({"gcp": {"lb": {"check_interval_sec": 2, "timeout_sec": 5}}})


def cli_parse(data: dict):
    from runbook.config import parse_settings

    return parse_settings({**data, "inventory": {"target": "hosts", "hosts": [{"name": "h", "address": "h"}]},
                           "monitoring": {"promtail": {"loki_url": "http://loki:3100"}}})


def test_replicas_take_turns_over_the_regions_gpu_zones(tmp_path):
    settings = Settings.model_validate({"gcp": {"replicas": 3, "zone": "asia-northeast3-a",
                                                "fallback_zones": ["asia-northeast1-a"]}})
    ctx = context.CloudContext(settings, tmp_path, api=None, out=None)
    offering = ["asia-northeast1-a", "asia-northeast3-a", "asia-northeast3-b", "us-central1-a"]
    firsts = [spread_zones(_replica(ctx, n, i), offering) for i, n in enumerate(["x-1", "x-2", "x-3"])]
    assert firsts[0] == ["asia-northeast3-a", "asia-northeast3-b", "asia-northeast1-a"]
    assert firsts[1] == ["asia-northeast3-b", "asia-northeast3-a", "asia-northeast1-a"]
    assert firsts[2][0] == "asia-northeast3-a"
    pinned = context.CloudContext(settings, tmp_path, api=None, out=None, instance="p", pinned_zone="us-central1-a")
    assert spread_zones(pinned, offering) == ["us-central1-a", "asia-northeast1-a"]


def _replica(ctx, name: str, index: int):
    return context.CloudContext(ctx.settings, ctx.root, api=None, out=None, instance=name, index=index)


# -- replicas ---------------------------------------------------------------------------------------------------


def test_three_replicas_spread_rerun_add_and_remove(fleet):
    first = fleet.run("vm")
    assert [r.host for r in first] == ["ai-server-l4-1", "ai-server-l4-2", "ai-server-l4-3"]
    assert all(r.status == CHANGED for r in first), fleet.text
    records = {r["name"]: r for r in state.instances(fleet.root)}
    assert set(records) == {"ai-server-l4-1", "ai-server-l4-2", "ai-server-l4-3"}
    assert len({r["zone"] for r in records.values()}) >= 2  # one zone's stockout cannot take them all
    cfg = Config(settings=fleet.settings, root=fleet.root,
                 secrets=Secrets(vllm_api_key="key-12345", ocr_api="ocr-12345"))
    assert [t.name for t in inventory.targets(cfg)] == ["ai-server-l4-1", "ai-server-l4-2", "ai-server-l4-3"]

    assert changed(fleet.run("vm")) == 0

    fleet.data["gcp"]["replicas"] = 4  # only the new one changes
    grown = fleet.run("vm")
    assert [(r.host, r.status) for r in grown] == [("ai-server-l4-1", OK), ("ai-server-l4-2", OK),
                                                   ("ai-server-l4-3", OK), ("ai-server-l4-4", CHANGED)]

    fleet.data["gcp"]["replicas"] = 2  # dropped from the settings: reported, never deleted
    shrunk = fleet.run("vm")
    assert changed(shrunk) == 0 and [r.host for r in shrunk] == ["ai-server-l4-1", "ai-server-l4-2"]
    assert "ai-server-l4-3" in fleet.text and "inv cleanup --instance ai-server-l4-3" in fleet.text
    assert len(state.instances(fleet.root)) == 4
    cfg = Config(settings=fleet.settings, root=fleet.root,
                 secrets=Secrets(vllm_api_key="key-12345", ocr_api="ocr-12345"))
    assert [t.name for t in inventory.targets(cfg)] == ["ai-server-l4-1", "ai-server-l4-2"]

    # Prometheus' targets come from the same inventory: every replica the settings name, by name.
    tasks_monitoring.monitoring_config(invoke.Context(), config=fleet.config(), out=str(fleet.root / "prom"),
                                       check=False)
    node = json.loads((fleet.root / "prom" / "l4rb-node.json").read_text())
    records = {r["name"]: r["address"] for r in state.instances(fleet.root)}
    assert [(g["labels"]["host"], g["targets"]) for g in node] == [
        (name, [f"{records[name]}:9100"]) for name in ("ai-server-l4-1", "ai-server-l4-2")]

    one = run_cleanup(cli.Options(config=fleet.config()), delete=True, yes=True, instance="ai-server-l4-4",
                      out=Output(console=fleet.console))
    assert [(r.host, r.count(CHANGED)) for r in one] == [("ai-server-l4-4", 1)]
    assert {r["name"] for r in state.instances(fleet.root)} == {"ai-server-l4-1", "ai-server-l4-2", "ai-server-l4-3"}


def test_stockout_in_a_replicas_zone_fails_over_to_the_next(fleet):
    fleet.server.sim.set_faults(stockout_zones=["asia-northeast3-b"])
    results = fleet.run("vm")
    assert all(r.status == CHANGED for r in results), fleet.text
    zones = {r["zone"] for r in state.instances(fleet.root)}
    assert zones == {"asia-northeast3-a"}
    assert "asia-northeast3-b: no nvidia-l4 capacity" in fleet.text


# -- the load balancer ------------------------------------------------------------------------------------------


def test_lb_dry_run_changes_nothing_and_shows_the_plan(fleet, compute_requests):
    fleet.run("firewall", "vm")
    for address in ADDRESSES[:3]:
        fleet.serve(address)
    before = len(compute_requests)
    plan = fleet.run("lb", dry_run=True)
    sent = compute_requests[before:]
    assert not [m for m, path, *_ in sent if m != "GET" and not path.endswith("/listInstances")]
    assert changed(plan) == 5, fleet.text  # firewall rule, groups, health check, backend service, forwarding rule
    assert "+ load_balancing_scheme: EXTERNAL" in fleet.text and "+ request_path: /health" in fleet.text
    assert "35.191.0.0/16" in fleet.text and "209.85.152.0/22" in fleet.text


def test_lb_serves_through_healthy_replicas_and_reports_an_unhealthy_one(fleet):
    assert all(r.status != FAILED for r in fleet.run("firewall", "vm"))
    for address in ADDRESSES[:3]:
        fleet.serve(address)
    made = fleet.run("lb")
    assert [r.status for r in made] == [CHANGED], fleet.text
    n = lb.names(fleet.settings)
    region = lb.region(fleet.settings)
    api = open_context(fleet.settings, fleet.root, Output(console=fleet.console), policy=POLICY).api
    rule = api.forwarding_rules.get(project=PROJECT, region=region, forwarding_rule=n.forwarding_rule)
    assert (rule.I_p_address, list(rule.ports), rule.load_balancing_scheme) == (LB_ADDRESS, [str(fleet.port)],
                                                                                "EXTERNAL")
    service = api.region_backend_services.get(project=PROJECT, region=region, backend_service=n.backend_service)
    assert len(service.backends) >= 2 and {b.balancing_mode for b in service.backends} == {"CONNECTION"}
    hc_rule = api.firewalls.get(project=PROJECT, firewall=n.firewall)
    assert sorted(hc_rule.source_ranges) == ["209.85.152.0/22", "209.85.204.0/22", "35.191.0.0/16"]

    names = ["ai-server-l4-1", "ai-server-l4-2", "ai-server-l4-3"]
    assert fleet.wait_health(dict.fromkeys(names, "HEALTHY")) == dict.fromkeys(names, "HEALTHY")
    url = f"http://{LB_ADDRESS}:{fleet.port}/health"
    assert {fetch(url)[1] for _ in range(30)} <= set(ADDRESSES[:3])
    assert changed(fleet.run("lb")) == 0  # idempotent

    report = lb_verify.report(fleet.settings, fleet.root, Output(console=fleet.console))
    assert [(row.check, row.status) for row in report.rows] == [("lb-endpoint", OK)] + [("lb-backend", OK)] * 3

    # One replica's app stops: the health checks mark it, the address still answers through the others.
    record = state.find(fleet.root, "ai-server-l4-2")
    fleet.halt(record["address"])
    seen = fleet.wait_health({"ai-server-l4-2": "UNHEALTHY"})
    assert seen == {"ai-server-l4-1": "HEALTHY", "ai-server-l4-2": "UNHEALTHY", "ai-server-l4-3": "HEALTHY"}
    answers = {fetch(url)[1] for _ in range(30)}
    assert answers and record["address"] not in answers
    report = lb_verify.report(fleet.settings, fleet.root, Output(console=fleet.console))
    rows = {(row.title, row.status) for row in report.rows}
    assert ("load balancer answers /health", OK) in rows
    assert (f"ai-server-l4-2 healthy in {n.backend_service}", FAILED) in rows

    # Without a firewall rule for Google's probe ranges (the health-check rule, and the guide's world-open 1-1 rule
    # that covers them too) the probes are dropped: every backend turns unhealthy.
    for rule in (n.firewall, "allow-ai-server-ports"):
        api.firewalls.delete(project=PROJECT, firewall=rule)
    seen = fleet.wait_health(dict.fromkeys(names, "UNHEALTHY"))
    assert set(seen.values()) == {"UNHEALTHY"}


def test_cleanup_deletes_the_fleet_in_dependency_order(fleet, compute_requests):
    fleet.run("firewall", "vm", "lb")
    before = len(compute_requests)
    results = run_cleanup(cli.Options(config=fleet.config()), delete=True, yes=True, out=Output(console=fleet.console))
    assert all(r.status != FAILED for r in results), fleet.text
    deletes = [path.split("/")[-2] for m, path, *_ in compute_requests[before:] if m == "DELETE"]
    order = ["forwardingRules", "backendServices", "healthChecks", "instanceGroups", "instances", "firewalls"]
    assert [kind for kind in dict.fromkeys(deletes)] == order, deletes
    assert deletes.count("instances") == 3
    assert state.instances(fleet.root) == []
    again = run_cleanup(cli.Options(config=fleet.config()), delete=True, yes=True, out=Output(console=fleet.console))
    assert changed(again) == 0


# -- the server is as strict as Google --------------------------------------------------------------------------


@pytest.mark.sends_invalid_requests
def test_server_refuses_what_google_refuses(fleet):
    fleet.run("firewall", "vm", "lb")
    ctx = open_context(fleet.settings, fleet.root, Output(console=fleet.console), policy=POLICY)
    n, region = lb.names(fleet.settings), lb.region(fleet.settings)
    api = ctx.api
    with pytest.raises(gexc.BadRequest, match="already being used"):
        api.region_health_checks.delete(project=PROJECT, region=region, health_check=n.health_check)
    with pytest.raises(gexc.BadRequest, match="already being used"):
        api.region_backend_services.delete(project=PROJECT, region=region, backend_service=n.backend_service)
    group = next(iter(lb.replicas_in_region(ctx)))
    with pytest.raises(gexc.BadRequest, match="already being used"):
        api.instance_groups.delete(project=PROJECT, zone=group, instance_group=n.group(group))
    utilization = lb.desired_backend_service(ctx)
    utilization.name = "other-bs"
    utilization.backends[0].balancing_mode = "UTILIZATION"
    with pytest.raises(gexc.BadRequest, match="CONNECTION"):
        api.region_backend_services.insert(project=PROJECT, region=region, backend_service_resource=utilization)
    slow = lb.desired_health_check(ctx)
    slow.name, slow.timeout_sec, slow.check_interval_sec = "slow-hc", 10, 5
    with pytest.raises(gexc.BadRequest, match="timeoutSec"):
        api.region_health_checks.insert(project=PROJECT, region=region, health_check_resource=slow)
    internal = lb.desired_forwarding_rule(ctx)
    internal.name, internal.load_balancing_scheme = "other-fr", "INTERNAL"
    with pytest.raises(gexc.BadRequest, match="scheme"):
        api.forwarding_rules.insert(project=PROJECT, region=region, forwarding_rule_resource=internal)
    member = lb.replicas_in_region(ctx)[group][0]
    with pytest.raises(gexc.BadRequest, match="already a member"):
        api.instance_groups.add_instances(
            project=PROJECT, zone=group, instance_group=n.group(group),
            instance_groups_add_instances_request_resource=compute_v1.InstanceGroupsAddInstancesRequest(
                instances=[compute_v1.InstanceReference(instance=member.self_link)]))
    assert zone_of(member) == group


def test_lb_follows_the_fleet_by_patching(fleet, compute_requests):
    fleet.data["gcp"].update(replicas=1, lb={**fleet.data["gcp"]["lb"], "enabled": True})
    assert all(r.status != FAILED for r in fleet.run("firewall", "vm", "lb")), fleet.text
    fleet.data["gcp"]["replicas"] = 2  # the second replica is in the region's other zone
    fleet.run("vm")
    before = len(compute_requests)
    grown = fleet.run("lb")
    steps = {s.title.split(" ")[0] + " " + s.title.split(" ")[1]: s.status for s in grown[0].steps}
    assert steps["an unmanaged"] == CHANGED and steps["backend service"] == CHANGED, fleet.text
    assert steps["health check"] == OK and steps["forwarding rule"] == OK
    sent = [(m, path) for m, path, *_ in compute_requests[before:]]
    assert any(m == "PATCH" and "/backendServices/" in path for m, path in sent)
    assert any(m == "POST" and path.endswith("/zones/asia-northeast3-b/instanceGroups") for m, path in sent)
    assert changed(fleet.run("lb")) == 0

    fleet.data["gcp"]["lb"]["check_interval_sec"] = 3  # patched in place
    retimed = fleet.run("lb")
    assert changed(retimed) == 1
    api = open_context(fleet.settings, fleet.root, Output(console=fleet.console), policy=POLICY).api
    check = api.region_health_checks.get(project=PROJECT, region=lb.region(fleet.settings),
                                         health_check=lb.names(fleet.settings).health_check)
    assert (check.check_interval_sec, check.http_health_check.request_path) == (3, "/health")

    fleet.data["gcp"]["lb"]["scheme"] = "internal"  # cannot change in place: reported, nothing touched
    refused = fleet.run("lb")
    assert refused[0].status == FAILED and "cannot change in place" in fleet.text
    assert "inv cleanup --lb" in fleet.text


def test_internal_scheme_uses_the_internal_probe_ranges(fleet):
    fleet.data["gcp"]["lb"]["scheme"] = "internal"
    fleet.run("vm")
    assert all(r.status == CHANGED for r in fleet.run("lb")), fleet.text
    ctx = open_context(fleet.settings, fleet.root, Output(console=fleet.console), policy=POLICY)
    n, region = lb.names(fleet.settings), lb.region(fleet.settings)
    rule = ctx.api.forwarding_rules.get(project=PROJECT, region=region, forwarding_rule=n.forwarding_rule)
    assert rule.load_balancing_scheme == "INTERNAL" and rule.network.endswith("/global/networks/default")
    probes = ctx.api.firewalls.get(project=PROJECT, firewall=n.firewall)
    assert sorted(probes.source_ranges) == ["130.211.0.0/22", "35.191.0.0/16"]
    gone = run_cleanup(cli.Options(config=fleet.config()), lb=True, yes=True, out=Output(console=fleet.console))
    assert changed(gone) == 5  # forwarding rule, backend service, health check, groups, the probes' rule
    assert len(state.instances(fleet.root)) == 3  # --lb leaves the VMs


@pytest.mark.contract
def test_every_load_balancer_request_is_one_googles_description_allows(fleet, compute_requests):
    from compute_contract import violations

    from testbed.compute_server import contract

    fleet.data["gcp"].update(replicas=1, lb={**fleet.data["gcp"]["lb"], "enabled": True})
    fleet.run("firewall", "vm", "lb")
    fleet.data["gcp"]["replicas"] = 3
    fleet.run("vm", "lb")  # a new zone's group, a new member: addInstances, the backend service patched
    fleet.data["gcp"]["lb"]["check_interval_sec"] = 2
    fleet.run("lb")
    lb_verify.report(fleet.settings, fleet.root, Output(console=fleet.console))
    stored = fleet.server.sim.store.project(PROJECT)["instanceGroups"]
    group = next(g for zone in stored.values() for g in zone.values())
    group["namedPorts"] = [{"name": "http", "port": 1}]  # drift only the API's owner could make
    fleet.run("lb")  # setNamedPorts
    run_cleanup(cli.Options(config=fleet.config()), delete=True, yes=True, instance="ai-server-l4-3",
                out=Output(console=fleet.console))  # removeInstances, then the VM
    run_cleanup(cli.Options(config=fleet.config()), delete=True, firewall=True, yes=True,
                out=Output(console=fleet.console))
    sent = {contract.find_method(m, p)[0].id for m, p, _, _ in compute_requests}
    assert violations(compute_requests) == []
    assert {"compute.instanceGroups.insert", "compute.instanceGroups.get", "compute.instanceGroups.listInstances",
            "compute.instanceGroups.addInstances", "compute.instanceGroups.removeInstances",
            "compute.instanceGroups.setNamedPorts", "compute.instanceGroups.aggregatedList",
            "compute.instanceGroups.delete", "compute.regionHealthChecks.insert", "compute.regionHealthChecks.get",
            "compute.regionHealthChecks.patch", "compute.regionHealthChecks.delete",
            "compute.regionBackendServices.insert", "compute.regionBackendServices.get",
            "compute.regionBackendServices.patch", "compute.regionBackendServices.getHealth",
            "compute.regionBackendServices.delete", "compute.forwardingRules.insert", "compute.forwardingRules.get",
            "compute.forwardingRules.delete", "compute.regionOperations.wait"} <= sent, sorted(sent)
