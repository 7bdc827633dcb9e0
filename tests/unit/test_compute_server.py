"""The local Compute REST server, driven by the real google-cloud-compute client through runbook.gcp."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from google.api_core import exceptions as gexc
from google.cloud import compute_v1
from hypothesis import given
from hypothesis import strategies as st

from runbook import gcp
from testbed.compute_server import ComputeServer, Faults, filters
from testbed.compute_server.backend import DocumentationBackend

from compute_api import FAST, POLICY

PROJECT = "demo-project"
ZONE = "asia-northeast3-a"
REGION = "asia-northeast3"
FAMILY = "projects/ubuntu-os-accelerator-images/global/images/family/ubuntu-accelerator-2204-amd64-with-nvidia-580"
DLVM = "projects/deeplearning-platform-release/global/images/family/common-cu128-ubuntu-2204-nvidia-570"


def vm(name="vm1", zone=ZONE, size=200, image=FAMILY, machine="g2-standard-4", tags=("ai-server", "monitoring"),
       maintenance="TERMINATE") -> compute_v1.Instance:  # fmt: skip
    """The guide's section 2-3 VM, as the client sends it."""
    return compute_v1.Instance(
        name=name,
        machine_type=f"zones/{zone}/machineTypes/{machine}",
        guest_accelerators=[
            compute_v1.AcceleratorConfig(
                accelerator_type=f"zones/{zone}/acceleratorTypes/nvidia-l4", accelerator_count=1
            )
        ],
        disks=[
            compute_v1.AttachedDisk(
                boot=True,
                auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    disk_size_gb=size, disk_type=f"zones/{zone}/diskTypes/pd-ssd", source_image=image
                ),
            )
        ],
        scheduling=compute_v1.Scheduling(on_host_maintenance=maintenance, automatic_restart=True),
        tags=compute_v1.Tags(items=list(tags)),
        network_interfaces=[
            compute_v1.NetworkInterface(
                network="global/networks/default",
                access_configs=[compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")],
            )
        ],
    )


def firewall(name="allow-ai-server-ports", ports=("8000", "8001"), tags=("ai-server",)) -> compute_v1.Firewall:
    return compute_v1.Firewall(
        name=name,
        direction="INGRESS",
        priority=1000,
        network="global/networks/default",
        allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=list(ports))],
        source_ranges=["0.0.0.0/0"],
        target_tags=list(tags),
    )


def create_vm(api, **kw) -> compute_v1.Instance:
    api.wait(api.instances.insert(project=PROJECT, zone=kw.get("zone", ZONE), instance_resource=vm(**kw)))
    return api.instances.get(project=PROJECT, zone=kw.get("zone", ZONE), instance=kw.get("name", "vm1"))


def nat_ip(inst: compute_v1.Instance) -> str:
    configs = inst.network_interfaces[0].access_configs
    return configs[0].nat_i_p if configs else ""


def quotas(api, region=REGION) -> dict[str, tuple[float, float]]:
    r = api.regions.get(project=PROJECT, region=region)
    return {q.metric: (q.limit, q.usage) for q in r.quotas}


def admin(server, path, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(server.url + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {server.token}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status, json.loads(resp.read())


# -- firewalls ----------------------------------------------------------------------------------


def test_firewall_insert_get_patch_delete(api):
    op = api.firewalls.insert(project=PROJECT, firewall_resource=firewall())
    assert isinstance(op, compute_v1.Operation) and "/global/operations/" in op.self_link
    done = api.wait(op)
    assert done.status == compute_v1.Operation.Status.DONE and done.operation_type == "insert"

    got = api.firewalls.get(project=PROJECT, firewall="allow-ai-server-ports")
    assert got.allowed[0].I_p_protocol == "tcp" and list(got.allowed[0].ports) == ["8000", "8001"]
    assert list(got.target_tags) == ["ai-server"] and list(got.source_ranges) == ["0.0.0.0/0"]
    assert got.network.endswith(f"projects/{PROJECT}/global/networks/default")

    api.wait(api.firewalls.patch(project=PROJECT, firewall=got.name, firewall_resource={"target_tags": ["x", "y"]}))
    patched = api.firewalls.get(project=PROJECT, firewall=got.name)
    assert list(patched.target_tags) == ["x", "y"] and list(patched.allowed[0].ports) == ["8000", "8001"]
    assert patched.id == got.id

    assert [f.name for f in api.firewalls.list(project=PROJECT)] == ["allow-ai-server-ports"]
    api.wait(api.firewalls.delete(project=PROJECT, firewall=got.name))
    with pytest.raises(gexc.NotFound):
        api.firewalls.get(project=PROJECT, firewall=got.name)


def test_404_and_409_reach_the_client_with_the_real_shape(api):
    api.wait(api.firewalls.insert(project=PROJECT, firewall_resource=firewall()))
    with pytest.raises(gexc.Conflict) as conflict:
        api.firewalls.insert(project=PROJECT, firewall_resource=firewall())
    assert conflict.value.code == 409
    assert conflict.value.errors == [
        {
            "message": f"The resource 'projects/{PROJECT}/global/firewalls/allow-ai-server-ports' already exists",
            "domain": "global",
            "reason": "alreadyExists",
        }
    ]
    with pytest.raises(gexc.NotFound) as missing:
        api.instances.get(project=PROJECT, zone=ZONE, instance="nope")
    assert missing.value.errors[0]["reason"] == "notFound"
    assert f"The resource 'projects/{PROJECT}/zones/{ZONE}/instances/nope' was not found" in str(missing.value)
    body = missing.value.response.json()["error"]
    assert body["code"] == 404 and body["status"] == "NOT_FOUND"


# -- instances ----------------------------------------------------------------------------------


class GatedBackend(DocumentationBackend):
    """Addresses from TEST-NET-3 like the default backend, but the VM comes up only when the test says so
    (or after 10 s): the operation stays RUNNING, the instance STAGING, for as long as a client needs to
    see it, however slowly a loaded machine serves its polls."""

    def __init__(self):
        super().__init__()
        self.booting, self.release = threading.Event(), threading.Event()

    def create(self, instance):
        self.booting.set()
        self.release.wait(10)
        return super().create(instance)


class StateLog:
    """Every state the server stores for an instance and its operations, in order. The store's commit runs
    under its lock at every change, so wrapping it sees each state exactly once, with no poll to miss one."""

    def __init__(self, server: ComputeServer, name: str = "vm1", zone: str = ZONE):
        self.instance: list[str] = []
        self.operations: dict[str, list[str]] = {}
        store, commit = server.sim.store, server.sim.store.commit

        def recording_commit() -> None:
            project = store.data["projects"].get(PROJECT, {})
            inst = project.get("instances", {}).get(zone, {}).get(name)
            if inst is not None:
                _append_new(self.instance, inst["status"])
            for op_name, op in project.get("operations", {}).items():
                _append_new(self.operations.setdefault(op_name, []), op["status"])
            commit()

        store.commit = recording_commit


def _append_new(seen: list[str], value: str) -> None:
    if not seen or seen[-1] != value:
        seen.append(value)


def test_instance_insert_runs_with_address_tags_and_gpu():
    backend = GatedBackend()
    seen = []

    def progress(o):
        seen.append(compute_v1.Operation.Status(o.status).name)
        if seen[-1] == "RUNNING":
            backend.release.set()  # the wait has reported RUNNING: now the VM may come up

    # The VM boots only once the wait has reported RUNNING; a wait call that begins after the operation
    # turned RUNNING blocks until the next change, so each call returns within 0.2 s (as the real API may
    # return early) and the wait sees the RUNNING state however late its first call arrives.
    with ComputeServer(faults={**FAST, "wait_max_s": 0.2}, backend=backend) as server:
        api = gcp.clients(server.url, gcp.bearer(server.token), policy=POLICY)
        op = api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm())
        assert op.zone.endswith(f"/zones/{ZONE}") and op.operation_type == "insert"
        api.wait(op, progress=progress)
        assert seen[-1] == "DONE" and "RUNNING" in seen
        inst = api.instances.get(project=PROJECT, zone=ZONE, instance="vm1")
        assert inst.status == "RUNNING"
        assert ipaddress.ip_address(nat_ip(inst)) in ipaddress.ip_network("203.0.113.0/24")
        assert list(inst.tags.items) == ["ai-server", "monitoring"] and inst.tags.fingerprint
        assert inst.machine_type.endswith(f"/zones/{ZONE}/machineTypes/g2-standard-4")
        assert inst.guest_accelerators[0].accelerator_type.endswith("/acceleratorTypes/nvidia-l4")
        assert inst.guest_accelerators[0].accelerator_count == 1
        assert inst.scheduling.on_host_maintenance == "TERMINATE" and inst.scheduling.automatic_restart

        boot = api.disks.get(project=PROJECT, zone=ZONE, disk="vm1")
        assert boot.size_gb == 200 and boot.type_.endswith("/diskTypes/pd-ssd")
        assert boot.source_image.endswith("ubuntu-accelerator-2204-amd64-with-nvidia-580-v20260128")
        assert list(boot.users) == [inst.self_link]
        assert inst.disks[0].source == boot.self_link and inst.disks[0].boot



def test_instance_goes_provisioning_staging_running():
    backend = GatedBackend()
    with ComputeServer(faults=FAST, backend=backend) as server:
        log = StateLog(server)
        api = gcp.clients(server.url, gcp.bearer(server.token), policy=POLICY)
        op = api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm())
        # While the VM boots, a client reads the states in between.
        assert backend.booting.wait(10)
        assert api.instances.get(project=PROJECT, zone=ZONE, instance="vm1").status == "STAGING"
        assert api.zone_operations.get(project=PROJECT, zone=ZONE, operation=op.name).status.name == "RUNNING"
        backend.release.set()
        api.wait(op)
        assert api.instances.get(project=PROJECT, zone=ZONE, instance="vm1").status == "RUNNING"
        assert api.zone_operations.get(project=PROJECT, zone=ZONE, operation=op.name).status.name == "DONE"
    # Every state the server went through, none skipped, none out of order.
    assert log.instance == ["PROVISIONING", "STAGING", "RUNNING"]
    assert log.operations == {op.name: ["PENDING", "RUNNING", "DONE"]}


def test_stop_and_start(api):
    create_vm(api)
    api.wait(api.instances.stop(project=PROJECT, zone=ZONE, instance="vm1"))
    stopped = api.instances.get(project=PROJECT, zone=ZONE, instance="vm1")
    assert stopped.status == "TERMINATED" and not nat_ip(stopped)  # ephemeral address released
    api.wait(api.instances.stop(project=PROJECT, zone=ZONE, instance="vm1"))  # stopping twice is fine

    api.wait(api.instances.start(project=PROJECT, zone=ZONE, instance="vm1"))
    started = api.instances.get(project=PROJECT, zone=ZONE, instance="vm1")
    assert started.status == "RUNNING" and nat_ip(started)


def test_set_tags_needs_the_current_fingerprint(api):
    inst = create_vm(api, tags=("monitoring",))
    current = inst.tags.fingerprint
    tags = compute_v1.Tags(items=["monitoring", "ai-server"], fingerprint=current)
    api.wait(api.instances.set_tags(project=PROJECT, zone=ZONE, instance="vm1", tags_resource=tags))
    updated = api.instances.get(project=PROJECT, zone=ZONE, instance="vm1").tags
    assert list(updated.items) == ["monitoring", "ai-server"] and updated.fingerprint != current

    stale = compute_v1.Tags(items=["ai-server"], fingerprint=current)
    with pytest.raises(gexc.PreconditionFailed) as err:
        api.instances.set_tags(project=PROJECT, zone=ZONE, instance="vm1", tags_resource=stale)
    assert err.value.code == 412 and err.value.errors[0]["reason"] == "conditionNotMet"


def test_delete_removes_vm_and_auto_delete_boot_disk(api, server):
    server.sim.seed_disk(PROJECT, ZONE, "data", 10, "pd-standard")
    create_vm(api)
    api.wait(api.instances.delete(project=PROJECT, zone=ZONE, instance="vm1"))
    with pytest.raises(gexc.NotFound):
        api.instances.get(project=PROJECT, zone=ZONE, instance="vm1")
    assert [d.name for d in api.disks.list(project=PROJECT, zone=ZONE)] == ["data"]


def test_disk_in_use_cannot_be_deleted(api):
    create_vm(api)
    with pytest.raises(gexc.BadRequest) as err:
        api.disks.delete(project=PROJECT, zone=ZONE, disk="vm1")
    assert err.value.errors[0]["reason"] == "resourceInUseByAnotherResource"


def test_same_request_id_gives_the_same_operation(server, api):
    retry_id = "6f1c2d1e-8b7a-4c55-9a43-2b1f0e9d7c11"
    req = {"project": PROJECT, "zone": ZONE, "instance_resource": vm(), "request_id": retry_id}
    first = api.instances.raw.insert_unary(request=req)
    again = api.instances.raw.insert_unary(request=req)
    assert first.name == again.name
    assert [i.name for i in api.instances.list(project=PROJECT, zone=ZONE)] == ["vm1"]


def test_deep_learning_image_is_refused_on_g2(api):
    with pytest.raises(gexc.BadRequest) as err:
        api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm(image=DLVM))
    assert "features are not compatible for creating instance" in str(err.value)
    assert "g2-standard-4" in str(err.value)


def test_gpu_vm_must_not_live_migrate(api):
    with pytest.raises(gexc.BadRequest, match="do not support live migration"):
        api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm(maintenance="MIGRATE"))


def test_missing_image_family_and_unknown_machine(api):
    with pytest.raises(gexc.BadRequest, match="referenced image resource cannot be found"):
        api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm(image=FAMILY + "-nope"))
    with pytest.raises(gexc.BadRequest, match="Machine type with name 'g2-standard-4' does not exist"):
        api.instances.insert(project=PROJECT, zone="asia-northeast3-c", instance_resource=vm(zone="asia-northeast3-c"))


# -- images, accelerators, regions --------------------------------------------------------------


def test_image_from_family_is_the_newest_non_deprecated(api, server):
    img = api.images.get_from_family(
        project="ubuntu-os-accelerator-images", family="ubuntu-accelerator-2204-amd64-with-nvidia-580"
    )
    assert img.name == "ubuntu-accelerator-2204-amd64-with-nvidia-580-v20260128" and img.status == "READY"
    assert img.self_link.endswith("/projects/ubuntu-os-accelerator-images/global/images/" + img.name)

    listed = api.images.list(request={"project": "ubuntu-os-accelerator-images", "filter": "family eq ubuntu-accel.*"})
    assert {i.family for i in listed} >= {img.family, "ubuntu-accelerator-2204-amd64-with-nvidia-570"}
    assert any(i.deprecated.state == "DEPRECATED" for i in listed)
    assert api.images.get_from_family(
        project="deeplearning-platform-release", family="common-cu128-ubuntu-2204-nvidia-570"
    )

    server.sim.set_faults(hidden_image_families=[img.family])  # the family was renamed
    with pytest.raises(gexc.NotFound):
        api.images.get_from_family(project="ubuntu-os-accelerator-images", family=img.family)


def test_accelerator_types_list_l4_zones(api, server):
    server.sim.set_faults(accelerator_zones={"nvidia-l4": ["asia-northeast3-a", "asia-northeast3-b", "us-central1-a"]})
    pairs = api.accelerator_types.aggregated_list(request={"project": PROJECT, "filter": "name = nvidia-l4"})
    zones = sorted(scope.split("/")[-1] for scope, scoped in pairs if scoped.accelerator_types)
    assert zones == ["asia-northeast3-a", "asia-northeast3-b", "us-central1-a"]
    in_zone = api.accelerator_types.list(project=PROJECT, zone="asia-northeast3-b")
    assert [(a.name, a.description) for a in in_zone] == [("nvidia-l4", "NVIDIA L4")]
    assert not api.accelerator_types.list(project=PROJECT, zone="asia-northeast3-c")


def test_region_quota_usage_follows_instances_and_disks(api):
    before = quotas(api)
    assert before["SSD_TOTAL_GB"] == (250.0, 0.0) and before["NVIDIA_L4_GPUS"][1] == 0.0
    create_vm(api)
    after = quotas(api)
    assert after["SSD_TOTAL_GB"][1] == 200.0 and after["CPUS"][1] == 4.0
    assert after["NVIDIA_L4_GPUS"][1] == 1.0 and after["INSTANCES"][1] == 1.0
    api.wait(api.instances.stop(project=PROJECT, zone=ZONE, instance="vm1"))
    stopped = quotas(api)
    assert stopped["CPUS"][1] == 0.0 and stopped["NVIDIA_L4_GPUS"][1] == 0.0
    assert stopped["SSD_TOTAL_GB"][1] == 200.0 and stopped["INSTANCES"][1] == 1.0  # disks stay


# -- failures the guide ran into -----------------------------------------------------------------


def test_ssd_quota_exceeded_inside_the_operation(api, server):
    server.sim.seed_disk(PROJECT, "asia-northeast3-b", "old-data", 100, "pd-ssd")  # guide B-16
    op = api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm(size=200))
    with pytest.raises(gcp.OperationError) as err:
        api.wait(op)
    failed = err.value
    assert failed.code == "QUOTA_EXCEEDED" and failed.http_status == 403
    assert failed.errors[0].message == "Quota 'SSD_TOTAL_GB' exceeded. Limit: 250.0 in region asia-northeast3."
    info = failed.errors[0].error_details[0].quota_info
    assert info.metric_name == "compute.googleapis.com/ssd_total_storage" and info.limit == 250.0
    assert info.dimensions["region"] == REGION
    assert failed.operation.http_error_message == "FORBIDDEN"
    with pytest.raises(gexc.NotFound):  # nothing was created
        api.instances.get(project=PROJECT, zone=ZONE, instance="vm1")


def test_quota_errors_can_be_synchronous(api, server):
    server.sim.set_faults(quota_errors="sync", quota_limits={"SSD_TOTAL_GB": 100})
    with pytest.raises(gexc.Forbidden) as err:
        api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm(size=200))
    assert err.value.errors[0]["reason"] == "quotaExceeded"
    assert "Quota 'SSD_TOTAL_GB' exceeded. Limit: 100.0 in region asia-northeast3." in str(err.value)


def test_stockout_in_an_injected_zone(api, server):
    server.sim.set_faults(stockout_zones=[ZONE])
    with pytest.raises(gcp.OperationError) as err:
        api.wait(api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm()))
    assert err.value.code == "ZONE_RESOURCE_POOL_EXHAUSTED" and err.value.http_status == 503
    assert f"The zone 'projects/{PROJECT}/zones/{ZONE}' does not have enough resources" in err.value.errors[0].message
    meta = err.value.errors[0].error_details[2].error_info.metadatas
    assert meta["zone"] == ZONE and meta["zonesAvailable"] == "asia-northeast3-b"
    with pytest.raises(gexc.NotFound):
        api.instances.get(project=PROJECT, zone=ZONE, instance="vm1")
    other = create_vm(api, zone="asia-northeast3-b")  # the next zone has capacity
    assert other.status == "RUNNING"


def test_start_of_a_stopped_vm_can_hit_a_stockout(api, server):
    create_vm(api)
    api.wait(api.instances.stop(project=PROJECT, zone=ZONE, instance="vm1"))
    server.sim.set_faults(stockout_zones=[ZONE])
    with pytest.raises(gcp.OperationError, match="ZONE_RESOURCE_POOL_EXHAUSTED"):
        api.wait(api.instances.start(project=PROJECT, zone=ZONE, instance="vm1"))
    assert api.instances.get(project=PROJECT, zone=ZONE, instance="vm1").status == "TERMINATED"


# -- backend hook -------------------------------------------------------------------------------


class HostBackend:
    """Boots when told to and answers from a test network, like the sandbox will."""

    def __init__(self, fail=False):
        self.fail, self.calls = fail, []
        self.booting, self.release = threading.Event(), threading.Event()

    def create(self, instance):
        self.calls.append(("create", instance["name"], list(instance["tags"].get("items", []))))
        self.booting.set()
        self.release.wait(10)
        if self.fail:
            raise RuntimeError("host did not boot")
        return "10.231.7.2"

    def start(self, instance):
        self.calls.append(("start", instance["name"]))
        return "10.231.7.2"

    def stop(self, instance):
        self.calls.append(("stop", instance["name"]))

    def delete(self, instance):
        self.calls.append(("delete", instance["name"]))


def test_backend_boot_shows_as_a_running_operation():
    backend = HostBackend()
    with ComputeServer(faults=FAST, backend=backend) as srv:
        api = gcp.clients(srv.url, gcp.bearer(srv.token), policy=POLICY)
        op = api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm())
        assert backend.booting.wait(5)
        assert api.zone_operations.get(project=PROJECT, zone=ZONE, operation=op.name).status.name == "RUNNING"
        assert api.instances.get(project=PROJECT, zone=ZONE, instance="vm1").status == "STAGING"
        backend.release.set()
        api.wait(op)
        assert nat_ip(api.instances.get(project=PROJECT, zone=ZONE, instance="vm1")) == "10.231.7.2"
        for verb in ("stop", "start", "delete"):
            api.wait(getattr(api.instances, verb)(project=PROJECT, zone=ZONE, instance="vm1"))
    assert backend.calls == [
        ("create", "vm1", ["ai-server", "monitoring"]),
        ("stop", "vm1"),
        ("start", "vm1"),
        ("delete", "vm1"),
    ]


def test_backend_failure_fails_the_operation_and_leaves_nothing():
    backend = HostBackend(fail=True)
    backend.release.set()
    with ComputeServer(faults=FAST, backend=backend) as srv:
        api = gcp.clients(srv.url, gcp.bearer(srv.token), policy=POLICY)
        with pytest.raises(gcp.OperationError, match="host did not boot"):
            api.wait(api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm()))
        assert not api.instances.list(project=PROJECT, zone=ZONE)
        assert not api.disks.list(project=PROJECT, zone=ZONE)


# -- operations, admin, persistence, CLI ---------------------------------------------------------


def test_operations_get_list_and_404(api):
    op = api.firewalls.insert(project=PROJECT, firewall_resource=firewall())
    api.wait(op)
    assert api.global_operations.get(project=PROJECT, operation=op.name).progress == 100
    assert op.name in [o.name for o in api.global_operations.list(project=PROJECT)]
    with pytest.raises(gexc.NotFound):
        api.zone_operations.get(project=PROJECT, zone=ZONE, operation=op.name)  # it is global


def test_admin_endpoints(server, api):
    status, faults = admin(server, "/_admin/faults", "POST", {"stockout_zones": ["us-central1-a"], "seed": 3})
    assert status == 200 and faults["stockout_zones"] == ["us-central1-a"] and faults["seed"] == 3
    assert server.sim.faults.stockout_zones == ["us-central1-a"]
    status, disk = admin(
        server, "/_admin/disks", "POST", {"project": PROJECT, "zone": ZONE, "name": "old", "sizeGb": 240}
    )
    assert status == 201 and disk["sizeGb"] == "240"
    assert quotas(api)["SSD_TOTAL_GB"][1] == 240.0
    _, state = admin(server, "/_admin/state")
    assert "old" in state["projects"][PROJECT]["disks"][ZONE]
    with pytest.raises(urllib.error.HTTPError) as bad:
        admin(server, "/_admin/faults", "POST", {"error_rate": 2})
    assert bad.value.code == 400
    admin(server, "/_admin/state", "DELETE")
    assert not api.disks.list(project=PROJECT, zone=ZONE)


def test_state_survives_a_restart(tmp_path):
    path = tmp_path / "compute.json"
    with ComputeServer(state_path=str(path), faults={**FAST, "stockout_zones": ["us-east4-a"]}) as srv:
        api = gcp.clients(srv.url, gcp.bearer(srv.token), policy=POLICY)
        api.wait(api.firewalls.insert(project=PROJECT, firewall_resource=firewall()))
        address = nat_ip(create_vm(api))
    with ComputeServer(state_path=str(path)) as srv:
        api = gcp.clients(srv.url, gcp.bearer(srv.token), policy=POLICY)
        assert api.firewalls.get(project=PROJECT, firewall="allow-ai-server-ports").priority == 1000
        assert nat_ip(api.instances.get(project=PROJECT, zone=ZONE, instance="vm1")) == address
        assert srv.sim.faults.stockout_zones == ["us-east4-a"]


def test_unfinished_operation_resumes_after_restart(tmp_path):
    path = tmp_path / "compute.json"
    srv = ComputeServer(state_path=str(path), faults={"op_pending_s": 5, "op_running_s": 0.05}).start()
    api = gcp.clients(srv.url, gcp.bearer(srv.token), policy=POLICY)
    op = api.firewalls.insert(project=PROJECT, firewall_resource=firewall())
    srv.stop()
    with ComputeServer(state_path=str(path), faults=FAST) as srv2:  # faults given win over saved ones
        api = gcp.clients(srv2.url, gcp.bearer(srv2.token), policy=POLICY)
        assert api.wait(op, timeout=10).status == compute_v1.Operation.Status.DONE


def test_cli_prints_its_url_and_serves(tmp_path):
    state = tmp_path / "cli.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.compute_server", "--port", "0", "--state", str(state),
         "--stockout", "us-central1-a", "--error-rate", "0.3", "--seed", "5",
         "--disk", f"{PROJECT}/{ZONE}/old:100", "--accelerator", "nvidia-l4=us-east4-b",
         "--backend", "testbed.compute_server.backend:DocumentationBackend"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = proc.stdout.readline().strip()
        token = proc.stdout.readline().strip()  # no --token-file: a random one, on the second line
        assert url.startswith("http://127.0.0.1:")
        faults_request = urllib.request.Request(url + "/_admin/faults", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(faults_request, timeout=5) as resp:
            faults = json.loads(resp.read())
        assert faults["stockout_zones"] == ["us-central1-a"] and faults["error_rate"] == 0.3 and faults["seed"] == 5
        api = gcp.clients(url, gcp.bearer(token), policy=POLICY)
        assert [d.name for d in api.disks.list(project=PROJECT, zone=ZONE)] == ["old"]
        assert [a.name for a in api.accelerator_types.list(project=PROJECT, zone="us-east4-b")] == ["nvidia-l4"]
    finally:
        proc.terminate()
        proc.wait(10)
    assert json.loads(state.read_text())["faults"]["seed"] == 5


def test_finished_operations_are_pruned(api, server, monkeypatch):
    monkeypatch.setattr("testbed.compute_server.operations.KEEP_DONE", 3)
    ops = [
        api.wait(api.firewalls.insert(project=PROJECT, firewall_resource=firewall(name=f"fw-{i}"))) for i in range(6)
    ]
    api.wait(api.firewalls.delete(project=PROJECT, firewall="fw-0"))
    kept = [o.name for o in api.global_operations.list(project=PROJECT)]
    assert len(kept) <= 4 and ops[-1].name in kept and ops[0].name not in kept


def test_concurrent_clients_do_not_trip_over_each_other(api):
    names = [f"fw-{i}" for i in range(8)]
    errors = []

    def make(name):
        try:
            api.wait(api.firewalls.insert(project=PROJECT, firewall_resource=firewall(name=name)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert sorted(f.name for f in api.firewalls.list(project=PROJECT)) == names


# -- list filters -------------------------------------------------------------------------------

names = st.from_regex(r"[a-z][-a-z0-9]{0,20}", fullmatch=True)


@given(names, names)
def test_filter_equality_matches_exactly(a, b):
    assert filters.matches({"name": a}, f"name = {b}") == (a == b)
    assert filters.matches({"name": a}, f'name != "{b}"') == (a != b)


def test_filter_forms():
    res = {"name": "nvidia-l4", "zone": "https://x/compute/v1/projects/p/zones/us-central1-a", "tags": {"items": ["a"]}}
    assert filters.matches(res, "name eq nvidia-.*")
    assert not filters.matches(res, "name eq nvidia")  # whole value
    assert filters.matches(res, "zone = us-central1-a")
    assert filters.matches(res, "(name = nvidia-l4) (tags.items = a)")
    assert not filters.matches(res, "(name = nvidia-l4) (tags.items = b)")
    assert filters.matches(res, "(name = nope) OR (tags.items = a)")
    assert filters.matches(res, "labels.env:*") is False


def test_faults_model_rejects_nonsense():
    with pytest.raises(ValueError):
        Faults(error_rate=1.5)
    assert Faults(quota_limits={"SSD_TOTAL_GB": 100}).quota_limit(REGION, "SSD_TOTAL_GB") == 100
    assert Faults().quota_limit(REGION, "SSD_TOTAL_GB") == 250


# -- strict like Google: URL forms, G2 disk types, unknown fields, request ids ---------------------


def _raw(server, method: str, path: str, body: dict | None = None, query: str = "") -> tuple[int, dict]:
    url = f"{server.url}/compute/v1/projects/{PROJECT}{path}" + (f"?{query}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                        "Authorization": f"Bearer {server.token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _refused(api, **changes) -> gexc.BadRequest:
    body = vm()
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split(".")
        for p in parents:
            target = getattr(target, p)[0] if p in ("disks", "guest_accelerators") else getattr(target, p)
        setattr(target, leaf, value)
    with pytest.raises(gexc.BadRequest) as err:
        api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=body)
    return err.value


@pytest.mark.parametrize(("field", "value", "api_field"), [
    ("machine_type", "g2-standard-4", "resource.machineType"),
    ("guest_accelerators.accelerator_type", "nvidia-l4", "resource.guestAccelerators[0].acceleratorType"),
    ("disks.initialize_params.disk_type", "pd-ssd", "resource.disks[0].initializeParams.diskType"),
])
def test_bare_names_are_malformed_urls(api, field, value, api_field):
    err = _refused(api, **{field: value})
    assert err.errors[0]["message"] == f"Invalid value for field '{api_field}': '{value}'. The URL is malformed."
    assert err.errors[0]["reason"] == "invalid"


def test_urls_naming_another_zone_are_refused_and_full_urls_accepted(api):
    other = "asia-northeast3-b"
    err = _refused(api, machine_type=f"zones/{other}/machineTypes/g2-standard-4")
    assert f"'zones/{other}/machineTypes/g2-standard-4'" in err.message and f"('{ZONE}')" in err.message
    assert err.errors[0]["message"].startswith("Invalid value for field 'resource.machineType'")
    err = _refused(api, **{"disks.initialize_params.disk_type": f"projects/{PROJECT}/zones/{other}/diskTypes/pd-ssd"})
    assert "resource.disks[0].initializeParams.diskType" in err.message
    full = vm()
    full.machine_type = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{ZONE}/machineTypes/g2-standard-4"
    api.wait(api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=full))
    assert api.instances.get(project=PROJECT, zone=ZONE, instance="vm1").machine_type.endswith("/g2-standard-4")


@pytest.mark.parametrize("kind", ["pd-balanced", "pd-ssd", "hyperdisk-ml", "hyperdisk-throughput"])
def test_g2_takes_its_disk_types(api, kind):
    body = vm()
    body.disks[0].initialize_params.disk_type = f"zones/{ZONE}/diskTypes/{kind}"
    api.wait(api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=body))


def test_pd_standard_on_g2_is_refused_with_googles_text(api):
    err = _refused(api, **{"disks.initialize_params.disk_type": f"zones/{ZONE}/diskTypes/pd-standard"})
    assert err.errors[0]["message"] == "[pd-standard, g2-standard-4] features are not compatible for creating instance."
    assert gcp.explain(err).startswith("Disk type pd-standard cannot be used with g2-standard-4: G2 machines take")


@pytest.mark.sends_invalid_requests
def test_unknown_fields_and_wrong_types_get_googles_400(server):
    body = json.loads(compute_v1.Instance.to_json(vm()))
    status, answer = _raw(server, "POST", f"/zones/{ZONE}/instances", {**body, "gpuCount": 1},
                          "requestId=5a2e8f5e-3b5b-4d0c-9f7e-1c2d3e4f5a6b")
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert answer["error"]["message"] == "Invalid JSON payload received. Unknown name \"gpuCount\" at 'resource': " \
                                         "Cannot find field."
    assert answer["error"]["details"] == [{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [
        {"field": "resource", "description": answer["error"]["message"]}]}]
    body["scheduling"]["onHostMaintenance"] = "LIVE"
    status, answer = _raw(server, "POST", f"/zones/{ZONE}/instances", body)
    assert status == 400 and "resource.scheduling.on_host_maintenance" in answer["error"]["message"]
    status, answer = _raw(server, "GET", "/aggregated/instances", query="pageSize=5")
    assert status == 400 and "Cannot bind query parameter" in answer["error"]["message"]
    assert server.sim.store.project(PROJECT)["instances"].get(ZONE, {}) == {}


@pytest.mark.sends_invalid_requests
@pytest.mark.parametrize("request_id", ["retry-1", "00000000-0000-0000-0000-000000000000"])
def test_request_id_must_be_a_non_zero_uuid(api, request_id):
    with pytest.raises(gexc.BadRequest) as err:
        api.instances.raw.insert_unary(request={"project": PROJECT, "zone": ZONE, "instance_resource": vm(),
                                                "request_id": request_id})
    assert err.value.errors[0]["message"].startswith(f"Invalid value for field 'requestId': '{request_id}'")
    assert "must be a valid UUID with the exception that zero UUID is not supported" in err.value.message


# -- project-wide quota, stockout forms, guest attributes, resume --------------------------------


def test_projects_get_has_project_quotas_and_gpus_all_regions_is_enforced(api, server):
    q = {x.metric: (x.limit, x.usage) for x in api.projects.get(project=PROJECT).quotas}
    assert q["GPUS_ALL_REGIONS"] == (1.0, 0.0)
    create_vm(api)
    assert {x.metric: x.usage for x in api.projects.get(project=PROJECT).quotas}["GPUS_ALL_REGIONS"] == 1.0
    with pytest.raises(gcp.OperationError) as err:  # another region has its own NVIDIA_L4_GPUS, not another global
        create_vm(api, name="vm2", zone="us-central1-a")
    assert err.value.code == "QUOTA_EXCEEDED"
    assert err.value.errors[0].message == "Quota 'GPUS_ALL_REGIONS' exceeded. Limit: 1.0 globally."
    info = err.value.errors[0].error_details[0].quota_info
    assert (info.metric_name, info.limit_name) == ("compute.googleapis.com/gpus_all_regions",
                                                   "GPUS-ALL-REGIONS-per-project")
    assert "across all regions" in gcp.explain(err.value) and "another zone or region cannot help" in gcp.explain(
        err.value)


@pytest.mark.parametrize("code", ["ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"])
@pytest.mark.parametrize("details", [True, False])
def test_stockout_forms_in_the_operation(api, server, code, details):
    server.sim.set_faults(stockout_zones=[ZONE], stockout_code=code, stockout_details=details)
    with pytest.raises(gcp.OperationError) as err:
        create_vm(api)
    assert err.value.code == code and err.value.http_status == 503
    assert gcp.zones_available(err.value) == (["asia-northeast3-b"] if details else [])
    assert len(err.value.errors[0].error_details) == (3 if details else 0)
    if code.endswith("_WITH_DETAILS"):
        assert err.value.errors[0].message.endswith("to fulfill the request.  '(resource type:compute)'.")
    assert gcp.explain(err.value).startswith(f"Zone {ZONE} has no capacity")


@pytest.mark.parametrize("code", ["ZONE_RESOURCE_POOL_EXHAUSTED", "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS"])
@pytest.mark.parametrize("details", [True, False])
def test_stockout_forms_answered_at_once_are_not_retried(api, server, code, details, compute_requests):
    server.sim.set_faults(stockout_zones=[ZONE], stockout_code=code, stockout_details=details,
                          stockout_errors="sync")
    with pytest.raises(gexc.ServiceUnavailable) as err:
        api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm())
    assert code in [e["reason"] for e in err.value.errors]
    assert gcp.is_stockout(err.value) and not gcp.is_transient(err.value)
    assert gcp.zones_available(err.value) == (["asia-northeast3-b"] if details else [])
    assert sum(1 for m, p, _, _ in compute_requests if m == "POST" and p.endswith("/instances")) == 1
    hint = "Zones with capacity right now: asia-northeast3-b"
    assert (hint in gcp.explain(err.value)) == details


class KeyBackend:
    """Publishes a host key as the guest agent does (namespace hostkeys, key = key type)."""

    def __init__(self):
        self.key = "AAAAC3NzaC1lZDI1NTE5AAAAIOriginalKeyOriginalKeyOriginalKeyOrig"

    create = start = lambda self, instance: "10.231.7.2"  # noqa: E731
    stop = delete = lambda self, instance: None  # noqa: E731

    def guest_attributes(self, instance):
        return [{"namespace": "hostkeys", "key": "ssh-ed25519", "value": self.key}]


def test_guest_attributes_publish_host_keys_when_enabled():
    room = {"quota_limits": {"NVIDIA_L4_GPUS": 4, "SSD_TOTAL_GB": 1000},
            "project_quota_limits": {"GPUS_ALL_REGIONS": 4}}
    with ComputeServer(faults={**FAST, **room}, backend=KeyBackend()) as srv:
        api = gcp.clients(srv.url, gcp.bearer(srv.token), policy=POLICY)
        create_vm(api)
        with pytest.raises(gexc.BadRequest):  # not enabled in the metadata
            api.instances.get_guest_attributes(request={"project": PROJECT, "zone": ZONE, "instance": "vm1",
                                                        "query_path": "hostkeys/"})
        body = vm(name="vm2")
        body.metadata = compute_v1.Metadata(items=[compute_v1.Items(key="enable-guest-attributes", value="TRUE")])
        api.wait(api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=body))
        got = api.instances.get_guest_attributes(request={"project": PROJECT, "zone": ZONE, "instance": "vm2",
                                                           "query_path": "hostkeys/"})
        assert [(i.namespace, i.key, i.value) for i in got.query_value.items] == [
            ("hostkeys", "ssh-ed25519", KeyBackend().key)]
        with pytest.raises(gexc.NotFound, match="of type 'Guest Attribute' was not found"):
            api.instances.get_guest_attributes(request={"project": PROJECT, "zone": ZONE, "instance": "vm2",
                                                        "query_path": "other/"})


def test_suspend_and_resume(api, server):
    create_vm(api)
    api.wait(api.instances.suspend(project=PROJECT, zone=ZONE, instance="vm1"))
    assert api.instances.get(project=PROJECT, zone=ZONE, instance="vm1").status == "SUSPENDED"
    assert quotas(api)["NVIDIA_L4_GPUS"][1] == 0.0
    api.wait(api.instances.resume(project=PROJECT, zone=ZONE, instance="vm1"))
    inst = api.instances.get(project=PROJECT, zone=ZONE, instance="vm1")
    assert inst.status == "RUNNING" and nat_ip(inst)
    api.wait(api.instances.stop(project=PROJECT, zone=ZONE, instance="vm1"))
    with pytest.raises(gexc.BadRequest, match="not suspended"):
        api.instances.resume(project=PROJECT, zone=ZONE, instance="vm1")
