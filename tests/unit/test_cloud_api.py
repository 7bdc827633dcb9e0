"""Guide sections 1, 2, 5-1 and 8 against the local Compute server, through the real google-cloud-compute client."""

from __future__ import annotations

import functools
import io
import json
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import compute_v1
from invoke.exceptions import Exit
from rich.console import Console

from runbook import cli, cloud, gcp, tasks_cloud
from runbook.cloud import context, hostkeys, state
from runbook.cloud.context import open_context
from runbook.config import Settings
from runbook.engine.output import Output
from runbook.engine.results import CHANGED, FAILED, OK, SKIPPED
from runbook.tasks_cloud import run_cleanup
from testbed.compute_server import ComputeServer

PROJECT = "demo-project"
ZONE, ZONE_B = "asia-northeast3-a", "asia-northeast3-b"
NAME = "ai-server-l4"
FAST = {"op_pending_s": 0.02, "op_running_s": 0.06}
POLICY = gcp.RetryPolicy(initial=0.01, maximum=0.05, jitter=0.01, deadline=30, timeout=10)
FAMILY = "projects/ubuntu-os-accelerator-images/global/images/family/ubuntu-accelerator-2204-amd64-with-nvidia-580"


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


class Cloud:
    """One test's project: the server, a settings root with hosts.toml, and runs of the sections."""

    def __init__(self, server: ComputeServer, root):
        self.server, self.root = server, root
        self.api = gcp.clients(server.url, gcp.bearer(server.token), policy=POLICY)
        token_file = root / "compute-api.token"
        token_file.write_text(server.token + "\n")
        token_file.chmod(0o600)
        self.console = Console(file=io.StringIO(), width=400, highlight=False)
        self.data = {"gcp": {"project_id": PROJECT, "api_endpoint": server.url, "api_token_file": str(token_file)},
                     "inventory": {"target": "gcp"},
                     "monitoring": {"promtail": {"loki_url": "http://loki.example.com:3100"}}}

    def configure(self, **tables: dict) -> Cloud:
        self.data = _merge(self.data, tables)
        return self

    @property
    def settings(self) -> Settings:
        return Settings.model_validate(self.data)

    @property
    def text(self) -> str:
        return self.console.file.getvalue()

    def run(self, *names: str, dry_run: bool = False):
        ctx = open_context(self.settings, self.root, Output(console=self.console), dry_run, policy=POLICY)
        return cloud.run(ctx, list(names))

    def config(self) -> str:
        """The settings as a hosts.toml, for the tasks' own entry points."""
        path = self.root / "hosts.toml"
        path.write_text(_toml(self.data))
        return str(path)

    def cleanup(self, stdin=None, **flags):
        return run_cleanup(cli.Options(config=self.config()), stdin=stdin, out=Output(console=self.console), **flags)

    def instance(self, zone: str = ZONE) -> compute_v1.Instance | None:
        try:
            return self.api.instances.get(project=PROJECT, zone=zone, instance=NAME)
        except gexc.NotFound:
            return None

    def rule(self, name: str) -> compute_v1.Firewall | None:
        try:
            return self.api.firewalls.get(project=PROJECT, firewall=name)
        except gexc.NotFound:
            return None

    def stored(self, zone: str = ZONE) -> dict:
        """The server's own record of the VM, for staging drift the API cannot make."""
        return self.server.sim.store.project(PROJECT)["instances"][zone][NAME]


def _toml(data: dict, prefix: str = "") -> str:
    lines = []
    for table, values in data.items():
        lines.append(f"[{prefix}{table}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items() if not isinstance(v, dict)]
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        if nested:
            lines.append(_toml(nested, f"{prefix}{table}."))
    return "\n".join(lines) + "\n"


def changed(results) -> int:
    return sum(r.count(CHANGED) for r in results)


def step(results, guide: str, title_part: str = ""):
    return next(s for r in results for s in r.steps if s.guide == guide and title_part in s.title)


@pytest.fixture
def server():
    with ComputeServer(faults=FAST) as srv:
        yield srv


@pytest.fixture
def project(server, tmp_path, monkeypatch) -> Cloud:
    # The tasks' own runs (cleanup) retry on the same quick schedule as the test's runs.
    monkeypatch.setattr(context, "open_context", functools.partial(open_context, policy=POLICY))
    return Cloud(server, tmp_path)


# -- guide 1: firewall ---------------------------------------------------------------------------


def test_firewall_insert_rerun_repair_and_cleanup(project):
    first = project.run("firewall")
    assert changed(first) == 2
    api_rule = project.rule("allow-ai-server-ports")
    assert [(a.I_p_protocol, list(a.ports)) for a in api_rule.allowed] == [("tcp", ["8000", "8001"])]
    assert list(api_rule.target_tags) == ["ai-server"] and list(api_rule.source_ranges) == ["0.0.0.0/0"]
    mon = project.rule("allow-monitoring-ports")
    assert list(mon.allowed[0].ports) == ["9100", "9400"] and list(mon.target_tags) == ["monitoring"]
    assert list(mon.source_ranges) == ["10.128.0.0/9"]
    assert "open to the whole internet" in project.text

    assert changed(project.run("firewall")) == 0

    # Someone narrows the rule by hand: it is patched back, and the diff says what changed.
    drift = compute_v1.Firewall(allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["8000"])],
                                source_ranges=["198.51.100.0/24"])
    gcp.wait(project.api.firewalls.patch(project=PROJECT, firewall="allow-ai-server-ports", firewall_resource=drift),
             project.api)
    repaired = project.run("firewall")
    assert changed(repaired) == 1
    fixed = step(repaired, "1-1")
    assert "- source_ranges: 198.51.100.0/24\n+ source_ranges: 0.0.0.0/0" in fixed.diff
    assert "- allowed: tcp:8000\n+ allowed: tcp:8000,8001" in fixed.diff
    assert list(project.rule("allow-ai-server-ports").source_ranges) == ["0.0.0.0/0"]
    assert changed(project.run("firewall")) == 0

    assert changed(project.cleanup(firewall=True, yes=True)) == 2
    assert project.rule("allow-ai-server-ports") is None and project.rule("allow-monitoring-ports") is None
    assert changed(project.cleanup(firewall=True, yes=True)) == 0


def test_firewall_ranges_ports_and_tags_come_from_the_settings(project):
    project.configure(firewall={"api": {"source_ranges": ["203.0.113.7/32"], "ports": [8443]},
                                "monitoring": {"enabled": False}},
                      vllm={"port": 8101}, ai_server={"port": 8100})
    results = project.run("firewall")
    assert changed(results) == 1
    rule = project.rule("allow-ai-server-ports")
    assert list(rule.allowed[0].ports) == ["8443"] and list(rule.source_ranges) == ["203.0.113.7/32"]
    assert project.rule("allow-monitoring-ports") is None
    assert "whole internet" not in project.text
    # Default service ports follow the services' own settings.
    project.configure(firewall={"api": {"ports": []}})
    project.run("firewall")
    assert list(project.rule("allow-ai-server-ports").allowed[0].ports) == ["8100", "8101"]


def test_firewall_refuses_world_open_monitoring_unless_allowed(project):
    project.configure(firewall={"monitoring": {"source_ranges": ["0.0.0.0/0"]}})
    refused = project.run("firewall")
    assert refused[0].status == FAILED
    check = step(refused, "1")
    assert "refusing 0.0.0.0/0 for the monitoring ports 9100, 9400" in check.error
    assert "firewall.allow_world_monitoring = true" in check.error
    assert {s.status for s in refused[0].steps[1:]} == {SKIPPED}
    assert project.rule("allow-ai-server-ports") is None and project.rule("allow-monitoring-ports") is None

    project.configure(firewall={"allow_world_monitoring": True})
    assert changed(project.run("firewall")) == 2
    assert list(project.rule("allow-monitoring-ports").source_ranges) == ["0.0.0.0/0"]


def test_firewall_target_tag_must_be_on_the_vm(project):
    project.configure(gcp={"tags": ["ai-server"]})
    results = project.run("firewall")
    assert results[0].status == FAILED and "B-5" in step(results, "1").error
    assert project.rule("allow-ai-server-ports") is None


def test_firewall_dry_run_shows_the_rules_and_makes_none(project):
    results = project.run("firewall", dry_run=True)
    assert changed(results) == 2 and results[0].dry_run
    assert "+ source_ranges: 10.128.0.0/9" in step(results, "1-2").diff
    assert project.rule("allow-ai-server-ports") is None


# -- guide 2 / 5-1: the VM -------------------------------------------------------------------------


def test_vm_create_rerun_start_tags_drift_and_cleanup(project):
    created = project.run("firewall", "vm")
    assert [r.status for r in created] == [CHANGED, CHANGED]
    vm = project.instance()
    assert vm.status == "RUNNING"
    assert vm.machine_type.endswith("/g2-standard-4") and vm.scheduling.on_host_maintenance == "TERMINATE"
    assert vm.scheduling.automatic_restart and list(vm.tags.items) == ["ai-server", "monitoring"]
    assert [(a.accelerator_type.rsplit("/", 1)[-1], a.accelerator_count) for a in vm.guest_accelerators] == [
        ("nvidia-l4", 1)]
    assert vm.disks[0].disk_size_gb == 200
    assert {i.key: i.value for i in vm.metadata.items}["enable-guest-attributes"] == "TRUE"
    address = vm.network_interfaces[0].access_configs[0].nat_i_p
    assert state.instances(project.root) == [{"name": NAME, "zone": ZONE, "address": address}]
    assert address in step(created, "5-1").summary

    again = project.run("firewall", "vm")
    assert changed(again) == 0 and all(r.status == OK for r in again)

    # Stopped by hand: started again, and its new ephemeral IP recorded.
    gcp.wait(project.api.instances.stop(project=PROJECT, zone=ZONE, instance=NAME), project.api)
    started = project.run("vm")
    assert changed(started) == 3  # started, its new IP recorded, the host key pinned for that IP
    assert "start" in step(started, "2-3", "running").summary
    assert step(started, "2-4", "host key").status == CHANGED
    new_address = project.instance().network_interfaces[0].access_configs[0].nat_i_p
    assert new_address != address and state.find(project.root, NAME)["address"] == new_address

    # A tag removed by hand (B-5) is added back.
    vm = project.instance()
    gcp.wait(project.api.instances.set_tags(project=PROJECT, zone=ZONE, instance=NAME, tags_resource=compute_v1.Tags(
        items=["ai-server"], fingerprint=vm.tags.fingerprint)), project.api)
    tagged = project.run("vm")
    assert changed(tagged) == 1 and "add tag(s) monitoring" in step(tagged, "B-5").summary
    assert list(project.instance().tags.items) == ["ai-server", "monitoring"]

    # Shape drift is reported, not repaired by recreating the VM.
    vm_id = project.instance().id
    with project.server.sim.store.lock:
        project.stored()["machineType"] = project.stored()["machineType"].replace("g2-standard-4", "g2-standard-8")
    drifted = project.run("vm")
    shape = step(drifted, "2-3", "matches")
    assert drifted[0].status == FAILED and changed(drifted) == 0
    assert "- machine_type: g2-standard-8\n+ machine_type: g2-standard-4" in shape.error
    assert "does not recreate" in shape.error
    assert project.instance().id == vm_id and project.instance().machine_type.endswith("g2-standard-8")

    # Section 8: stop, then delete, each idempotent.
    assert changed(project.cleanup(stop=True, yes=True)) == 1
    assert project.instance().status == "TERMINATED" and state.find(project.root, NAME) is None
    assert changed(project.cleanup(stop=True, yes=True)) == 0
    assert changed(project.cleanup(delete=True, yes=True)) == 1
    assert project.instance() is None
    assert project.server.sim.store.project(PROJECT)["disks"].get(ZONE, {}) == {}  # boot disk auto-deleted
    assert changed(project.cleanup(delete=True, yes=True)) == 0


def test_vm_dry_run_plans_the_create_and_calls_nothing_that_changes(project):
    results = project.run("vm", dry_run=True)
    create = step(results, "2-3", "running")
    assert create.status == CHANGED and "create ai-server-l4 in asia-northeast3-a" in create.summary
    for line in ("+ machine_type: g2-standard-4", "+ accelerators: 1 x nvidia-l4", "+ boot_disk: 200 GB pd-ssd",
                 "+ on_host_maintenance: TERMINATE", "+ tags: ai-server, monitoring"):
        assert line in create.diff
    assert results[0].status == CHANGED
    assert project.instance() is None and not state.path(project.root).exists()
    assert project.server.sim.store.project(PROJECT)["operations"] == {}


def test_stockout_fails_over_to_the_next_l4_zone(project):
    project.server.sim.set_faults(stockout_zones=[ZONE])
    project.configure(gcp={"fallback_zones": ["asia-northeast3-c", ZONE_B]})  # -c offers no L4
    results = project.run("vm")
    assert results[0].status == CHANGED
    assert "asia-northeast3-c offer no nvidia-l4, left out" in step(results, "2-2").summary
    assert f"created in {ZONE_B} after a stockout in {ZONE}" in step(results, "2-3", "running").summary
    assert f"{ZONE}: no nvidia-l4 capacity right now (ZONE_RESOURCE_POOL_EXHAUSTED); trying {ZONE_B}" in project.text
    assert project.instance(ZONE) is None and project.instance(ZONE_B).status == "RUNNING"
    assert state.find(project.root, NAME)["zone"] == ZONE_B
    assert changed(project.run("vm")) == 0  # found in its fallback zone next time


def test_stockout_everywhere_is_one_clear_error(project):
    project.server.sim.set_faults(stockout_zones=[ZONE, ZONE_B])
    project.configure(gcp={"fallback_zones": [ZONE_B]})
    results = project.run("vm")
    error = step(results, "2-3", "running").error
    assert results[0].status == FAILED
    assert f"{ZONE}, {ZONE_B} all answered ZONE_RESOURCE_POOL_EXHAUSTED" in error
    assert "not a quota problem" in error and "gcp.fallback_zones" in error and "Nothing was created" in error
    assert project.instance(ZONE) is None and project.instance(ZONE_B) is None


def test_no_configured_zone_offers_the_gpu(project):
    project.configure(gcp={"zone": "asia-northeast3-c"})
    results = project.run("vm")
    error = step(results, "2-2").error
    assert "None of the configured zones (asia-northeast3-c) offers nvidia-l4" in error
    assert "asia-northeast3-a" in error and project.instance() is None


def test_everything_succeeds_with_30_percent_injected_503s(project):
    hits = []
    draw = project.server.sim.draw
    project.server.sim.draw = lambda: hits.append(draw()) or hits[-1]
    project.server.sim.set_faults(error_rate=0.3, error_codes=[503], seed=7)
    assert [r.status for r in project.run("firewall", "vm")] == [CHANGED, CHANGED]
    assert changed(project.run("firewall", "vm")) == 0
    assert changed(project.cleanup(delete=True, firewall=True, yes=True)) == 3
    assert project.instance() is None and project.rule("allow-ai-server-ports") is None
    injected = sum(1 for h in hits if h)
    assert injected >= 10 and 0.15 < injected / len(hits) < 0.45


def test_connection_resets_are_retried_without_doing_anything_twice(project):
    hits = []
    draw = project.server.sim.draw
    project.server.sim.draw = lambda: hits.append(draw()) or hits[-1]
    project.server.sim.set_faults(reset_rate=0.2, seed=3)
    assert [r.status for r in project.run("firewall", "vm")] == [CHANGED, CHANGED]
    project.server.sim.set_faults(reset_rate=0.0)
    assert sum(1 for h in hits if h and h[0] == "reset") >= 3
    inserts = [op for op in project.server.sim.store.project(PROJECT)["operations"].values()
               if op["operationType"] == "insert"]
    assert len(inserts) == 3  # two rules, one VM: retried inserts were deduplicated by their request id


def test_ssd_quota_b16_names_metric_limit_region_and_disks(project):
    project.server.sim.seed_disk(PROJECT, ZONE_B, "old-training-data", 120, "pd-ssd")
    project.server.sim.seed_disk(PROJECT, ZONE, "scratch", 30, "pd-balanced")
    project.server.sim.seed_disk(PROJECT, ZONE, "archive", 500, "pd-standard")  # not SSD: not listed
    results = project.run("vm")
    quota = step(results, "2-3", "quota")
    assert results[0].status == FAILED
    error = quota.error
    assert "Quota SSD_TOTAL_GB in region asia-northeast3" in error and "limit 250" in error and "B-16" in error
    assert "150 already in use" in error and "200 GB pd-ssd boot disk" in error
    assert "old-training-data (asia-northeast3-b, 120 GB pd-ssd, not attached to any VM)" in error
    assert "scratch (asia-northeast3-a, 30 GB pd-balanced" in error and "archive" not in error
    assert "\n" not in error  # one message
    assert project.instance() is None
    assert not any(op["operationType"] == "insert"
                   for op in project.server.sim.store.project(PROJECT)["operations"].values())


def test_gpu_quota_names_the_vm_holding_it(project):
    project.server.sim.set_faults(project_quota_limits={"GPUS_ALL_REGIONS": 8})  # only the region is short
    other = compute_v1.Instance(
        name="other-vm", machine_type=f"zones/{ZONE_B}/machineTypes/g2-standard-4",
        disks=[compute_v1.AttachedDisk(boot=True, auto_delete=True, initialize_params=(
            compute_v1.AttachedDiskInitializeParams(source_image=FAMILY, disk_size_gb=50,
                                                    disk_type=f"zones/{ZONE_B}/diskTypes/pd-balanced")))],
        scheduling=compute_v1.Scheduling(on_host_maintenance="TERMINATE"))
    gcp.wait(project.api.instances.insert(project=PROJECT, zone=ZONE_B, instance_resource=other), project.api)
    results = project.run("vm")
    error = step(results, "2-3", "quota").error
    assert "Quota NVIDIA_L4_GPUS in region asia-northeast3" in error and "limit 1" in error
    assert "other-vm (asia-northeast3-b, 1 GPU, RUNNING)" in error
    assert project.instance() is None


def test_quota_short_region_is_skipped_for_a_fallback_region(project):
    project.server.sim.seed_disk(PROJECT, ZONE, "old", 100, "pd-ssd")
    project.configure(gcp={"fallback_zones": ["us-central1-a"]})
    results = project.run("vm")
    assert results[0].status == CHANGED
    assert "left out for quota: asia-northeast3" in step(results, "2-3", "quota").summary
    assert project.instance("us-central1-a").status == "RUNNING"


def test_deep_learning_image_on_g2_is_refused_before_insert_b1(project):
    project.configure(gcp={"image_project": "deeplearning-platform-release",
                           "image_family": "common-cu128-ubuntu-2204-nvidia-570"})
    results = project.run("vm")
    error = step(results, "2-1").error
    assert results[0].status == FAILED
    assert "Deep Learning VM images" in error and "G2" in error and "B-1" in error
    assert 'gcp.image_project = "ubuntu-os-accelerator-images"' in error and "Nothing was created" in error
    assert "\n" not in error
    assert project.instance() is None
    assert {s.status for s in results[0].steps[1:]} == {SKIPPED}


def test_image_family_that_resolves_to_a_dlvm_project_is_refused(project, monkeypatch):
    """A family looked up anywhere whose newest image lives in deeplearning-platform-release."""
    real = project.server.sim.images

    def images():
        out = real()
        for img in out:
            if img["family"] == "common-cu128-ubuntu-2204-nvidia-570":
                img["_project"] = "my-images"  # its selfLink still names deeplearning-platform-release
        return out

    monkeypatch.setattr(project.server.sim, "images", images)
    project.configure(gcp={"image_project": "my-images", "image_family": "common-cu128-ubuntu-2204-nvidia-570"})
    error = step(project.run("vm"), "2-1").error
    assert "from project deeplearning-platform-release" in error and "B-1" in error
    assert project.instance() is None


def test_host_key_from_guest_attributes_is_pinned(project):
    """The server's VM publishes its host key under guest attributes `hostkeys/`, as the guest agent does."""
    first = project.run("vm")
    pin = step(first, "2-4", "host key")
    assert pin.status == CHANGED and "pinned ssh-ed25519" in pin.summary
    address = state.find(project.root, NAME)["address"]
    published = project.api.instances.get_guest_attributes(request={
        "project": PROJECT, "zone": ZONE, "instance": NAME, "query_path": "hostkeys/"}).query_value.items
    assert hostkeys.pinned(project.root / ".l4-runbook/known_hosts", address) == [
        (i.key, i.value) for i in published]
    assert step(project.run("vm"), "2-4", "host key").status == OK
    project.cleanup(delete=True, yes=True)
    assert hostkeys.pinned(project.root / ".l4-runbook/known_hosts", address) == []


def test_no_host_key_and_no_trust_on_first_use_fails(project):
    project.configure(ssh={"trust_on_first_use": False}, gcp={"guest_attributes": False})
    results = project.run("vm")
    assert step(results, "2-4", "host key").status == FAILED
    assert "no way to verify the SSH host key" in step(results, "2-4", "host key").error


def test_trust_on_first_use_is_said_loudly(project):
    project.configure(gcp={"guest_attributes": False})
    results = project.run("vm")
    assert step(results, "2-4", "host key").status == OK
    assert "TRUSTED ON FIRST USE" in project.text


def test_deploy_runs_the_cloud_sections_first_where_there_is_a_cloud(project):
    out = Output(console=project.console)
    results = tasks_cloud.run_cloud_sections(["firewall", "vm", "vllm"], cli.Options(config=project.config()), out)
    assert [(r.section, r.status) for r in results] == [("firewall", CHANGED), ("vm", CHANGED)]
    assert tasks_cloud.run_cloud_sections(["vllm"], cli.Options(config=project.config()), out) == []
    assert tasks_cloud.run_cloud_sections(["vm"], cli.Options(config=project.config(), local=True), out) == []
    project.configure(inventory={"target": "hosts"})
    config = Path(project.config())
    config.write_text(config.read_text() + '[[inventory.hosts]]\nname = "a"\naddress = "192.0.2.1"\n')
    assert tasks_cloud.run_cloud_sections(["vm"], cli.Options(config=str(config)), out) == []
    assert "skipping vm (hosts are listed by hand)" in project.text


def test_vm_task_reports_and_exits_non_zero_on_failure(project):
    project.configure(gcp={"zone": "asia-northeast3-c"})
    report = project.root / "report.json"
    with pytest.raises(Exit) as failed:
        tasks_cloud._section("vm", project.config(), False, str(report), False)
    assert failed.value.code == 1
    data = json.loads(report.read_text())
    assert data["failed"] and data["sections"][0]["section"] == "vm"


# -- guide 8: the confirmation ---------------------------------------------------------------------


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_cleanup_without_yes_and_without_a_terminal_refuses(project):
    project.run("vm")
    with pytest.raises(Exit) as refused:
        project.cleanup(delete=True, stdin=io.StringIO("y\n"))
    assert refused.value.code == 2
    assert "there is no terminal to ask on: pass --yes" in project.text
    assert project.instance().status == "RUNNING" and state.find(project.root, NAME)


def test_cleanup_asks_on_a_terminal(project, capsys):
    project.run("vm")
    with pytest.raises(Exit):
        project.cleanup(delete=True, stdin=Tty("n\n"))
    assert project.instance().status == "RUNNING"
    assert "Cleanup will delete ai-server-l4" in capsys.readouterr().out
    assert changed(project.cleanup(delete=True, stdin=Tty("y\n"))) == 1
    assert project.instance() is None
    assert changed(project.cleanup(delete=True, stdin=io.StringIO())) == 0  # nothing to do: nothing to ask


def test_cleanup_flags(project):
    with pytest.raises(Exit):
        project.cleanup(stop=True, delete=True, yes=True)
    results = project.cleanup(yes=True)  # no flag: stop
    assert [s.title for s in results[0].steps] == ["VM stopped"]


# -- Google parity: project-wide quota, stockout forms, service account, OS Login -----------------


def test_gpus_all_regions_zero_fails_the_preflight_before_anything_is_created(project, compute_requests):
    project.server.sim.set_faults(project_quota_limits={"GPUS_ALL_REGIONS": 0})
    project.configure(gcp={"fallback_zones": ["us-central1-a"]})
    results = project.run("vm")
    quota = step(results, "2-3", "quota")
    assert results[0].status == FAILED and quota.status == FAILED
    assert "Quota GPUS_ALL_REGIONS (project-wide, all regions) is too small for this VM: limit 0" in quota.error
    assert "another zone or region does not help: request a higher GPUS_ALL_REGIONS quota" in quota.error
    assert "Nothing was created" in quota.error
    assert not [p for m, p, _, _ in compute_requests if m == "POST" and p.endswith("/instances")]


@pytest.mark.parametrize("form", ["operation", "sync"])
def test_stockout_with_details_fails_over_to_the_hinted_zone(project, form):
    """zonesAvailable (errorInfo metadata) names asia-northeast3-b: tried before the configured next zone."""
    project.server.sim.set_faults(stockout_zones=[ZONE], stockout_code="ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS",
                                  stockout_errors=form)
    project.configure(gcp={"fallback_zones": ["us-central1-a", ZONE_B]})
    results = project.run("vm")
    assert results[0].status == CHANGED
    assert f"created in {ZONE_B} after a stockout in {ZONE}" in step(results, "2-3", "running").summary
    assert f"trying {ZONE_B} (the API says {ZONE_B} has capacity)" in project.text
    assert project.instance("us-central1-a") is None


@pytest.mark.parametrize("code", ["ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"])
def test_stockout_without_details_fails_over_in_configured_order(project, code):
    project.server.sim.set_faults(stockout_zones=[ZONE], stockout_code=code, stockout_details=False,
                                  stockout_errors="sync")
    project.configure(gcp={"fallback_zones": ["us-central1-a", ZONE_B]})
    results = project.run("vm")
    assert f"created in us-central1-a after a stockout in {ZONE}" in step(results, "2-3", "running").summary


def test_vm_gets_the_default_service_account_with_gclouds_scopes(project):
    project.run("vm")
    (account,) = project.instance().service_accounts
    assert account.email == "default"
    assert "https://www.googleapis.com/auth/devstorage.read_only" in account.scopes and len(account.scopes) == 7
    project.cleanup(delete=True, yes=True)
    project.configure(gcp={"service_account": "none"})
    project.run("vm")
    assert list(project.instance().service_accounts) == []


@pytest.mark.parametrize("where", ["project", "instance"])
def test_os_login_is_reported_before_ssh(project, where):
    enable = {"key": "enable-oslogin", "value": "TRUE"}
    if where == "project":
        project.server.sim.store.project(PROJECT)["metadata"] = [enable]
    results = project.run("vm")
    if where == "instance":
        project.stored()["metadata"]["items"].append(enable)
        project.text  # noqa: B018 - the first run's output is not what this checks
        results = project.run("vm")
    oslogin = step(results, "2-4", "OS Login")
    assert f"OS Login on ({where} metadata)" in oslogin.summary
    assert f"enable-oslogin=TRUE in the {where} metadata): the VM ignores the ssh-keys metadata" in project.text
    assert "gcloud compute os-login ssh-keys add" in project.text
    titles = [s.title for s in results[0].steps]
    assert titles.index("OS Login vs ssh-keys metadata") < titles.index("SSH host key pinned")
