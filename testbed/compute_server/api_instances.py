"""VM instances: insert, get, list, aggregatedList, start, stop, suspend, resume, delete, setTags,
getGuestAttributes.

Insert validates like the real service (machine type and GPU in the zone,
image family, G2 vs Deep Learning VM images, live migration with GPUs), then
either creates the VM (PROVISIONING -> STAGING -> RUNNING, the backend
giving it an address) or fails inside the operation (quota, stockout).
"""

from __future__ import annotations

import re
from collections import Counter

from . import catalog, errors, quotas, refs
from .api_catalog import find_image, latest_in_family
from .api_disks import disk_type
from .api_disks import find as find_disk
from .operations import OpContext, task
from .routes import Request, aggregated, listing, route
from .sim import Simulator
from .store import fingerprint, last, new_id, now, public

_IMAGE_REF = re.compile(
    r"^(?:projects/(?P<project>[^/]+)/)?global/images/(?:family/(?P<family>[^/]+)|(?P<name>[^/]+))$"
)
NOT_READY = ("PROVISIONING", "STAGING", "STOPPING", "SUSPENDING", "REPAIRING")


# -- lookups ------------------------------------------------------------------------------------


def find(sim: Simulator, project: str, zone: str, name: str) -> dict:
    inst = sim.store.project(project)["instances"].get(zone, {}).get(name)
    if inst is None:
        raise errors.not_found(f"projects/{project}/zones/{zone}/instances/{name}")
    return inst


def _touch(inst: dict) -> None:
    """Recompute the instance fingerprint after a change, as the service does."""
    inst["fingerprint"] = fingerprint([inst.get(k) for k in ("tags", "labels", "metadata", "scheduling")])


def _machine(sim: Simulator, zone: str, value: str | None) -> catalog.MachineType:
    if not value:
        raise errors.ApiError(400, "required", "Required field 'resource.machineType' not specified")
    name = refs.zonal(value, "resource.machineType", zone, "machineTypes")
    machine = catalog.MACHINE_TYPES.get(name)
    if machine is None or (machine.accelerator and zone not in sim.accelerator_zones(machine.accelerator)):
        raise errors.invalid_field(
            "resource.machineType", value or "", f"Machine type with name '{name}' does not exist in zone '{zone}'."
        )
    return machine


def _accelerators(sim: Simulator, project: str, zone: str, body: dict, machine) -> list[dict]:
    out = []
    for i, acc in enumerate(body.get("guestAccelerators") or []):
        field = f"resource.guestAccelerators[{i}].acceleratorType"
        name = refs.zonal(acc.get("acceleratorType", ""), field, zone, "acceleratorTypes")
        if name not in catalog.ACCELERATORS or zone not in sim.accelerator_zones(name):
            raise errors.invalid_field(
                field,
                acc.get("acceleratorType", ""),
                f"Accelerator type '{name}' does not exist in zone '{zone}'.",
            )
        link = sim.link(project, "zones", zone, "acceleratorTypes", name)
        out.append({"acceleratorType": link, "acceleratorCount": int(acc.get("acceleratorCount") or 0)})
    if machine.accelerator:
        if not out:  # G2 machines come with their L4s
            link = sim.link(project, "zones", zone, "acceleratorTypes", machine.accelerator)
            out = [{"acceleratorType": link, "acceleratorCount": machine.accelerator_counts[0]}]
        for acc in out:
            name = last(acc["acceleratorType"])
            if name != machine.accelerator:
                raise errors.bad_request(f"[{name}, {machine.name}] features are not compatible for creating instance.")
            if acc["acceleratorCount"] not in machine.accelerator_counts:
                allowed = ", ".join(str(c) for c in machine.accelerator_counts)
                raise errors.bad_request(
                    f'The accelerator count "{acc["acceleratorCount"]}" is not allowed. The allowed numbers of '
                    f'accelerator "{name}" to use with machine type "{machine.name}" are: [{allowed}].'
                )
    elif out and not machine.name.startswith("n1-"):
        raise errors.bad_request(
            f"[{last(out[0]['acceleratorType'])}, {machine.name}] features are not compatible for creating instance."
        )
    return out


def _image(sim: Simulator, project: str, ref: str, field: str) -> dict:
    path = ref.split("/compute/v1/", 1)[-1] if ref.startswith("https://") else ref
    m = _IMAGE_REF.match(path or "")
    if not m:
        raise errors.invalid_field(field, ref, "The URL is malformed.")
    image_project = m["project"] or project
    try:
        if m["family"]:
            return latest_in_family(sim, image_project, m["family"])
        return find_image(sim, image_project, m["name"])
    except errors.ApiError:
        raise errors.invalid_field(field, ref, "The referenced image resource cannot be found.") from None


def _network_interfaces(sim: Simulator, project: str, zone: str, body: dict) -> list[dict]:
    region = catalog.region_of(zone)
    taken = sum(len(v) for z, v in sim.store.project(project)["instances"].items() if catalog.region_of(z) == region)
    nics = []
    for i, nic in enumerate(body.get("networkInterfaces") or [{}]):
        net = last(nic.get("network") or "default")
        out = {
            "kind": "compute#networkInterface",
            "name": f"nic{i}",
            "network": sim.link(project, "global", "networks", net),
            "subnetwork": sim.link(project, "regions", region, "subnetworks", last(nic.get("subnetwork") or net)),
            "networkIP": f"10.{128 + sim.regions().index(region)}.{i}.{taken + 2}",
            "stackType": "IPV4_ONLY",
            "fingerprint": fingerprint([zone, i, taken]),
        }
        configs = []
        for ac in nic.get("accessConfigs") or []:
            config = {
                "kind": "compute#accessConfig",
                "type": ac.get("type") or "ONE_TO_ONE_NAT",
                "name": ac.get("name") or "External NAT",
                "networkTier": ac.get("networkTier") or "PREMIUM",
            }
            configs.append(config)
        if configs:
            out["accessConfigs"] = configs
        nics.append(out)
    return nics


def _disks(
    sim: Simulator, project: str, zone: str, name: str, body: dict, machine: str
) -> tuple[list, list, dict | None]:
    """Attached-disk entries, new disk records, and the boot image."""
    given = body.get("disks") or []
    if not given:
        raise errors.invalid_field("resource.disks", "", "Boot disk must be specified.")
    existing = sim.store.project(project)["disks"].get(zone, {})
    attached, created, boot_image = [], [], None
    for i, d in enumerate(given):
        boot = bool(d.get("boot")) or (i == 0 and not any(x.get("boot") for x in given))
        init = d.get("initializeParams")
        if init:
            field = f"resource.disks[{i}].initializeParams"
            image = _image(sim, project, init.get("sourceImage", ""), f"{field}.sourceImage")
            kind = disk_type(
                sim, project, zone, init.get("diskType"), f"{field}.diskType", catalog.default_disk_type(machine)
            )
            if machine.startswith("g2-") and kind not in catalog.G2_DISK_TYPES:
                # G2's disk types: https://cloud.google.com/compute/docs/accelerator-optimized-machines (G2);
                # the text is Compute's, as it answers pd-standard on machine series without it
                # ("[pd-standard, n4-standard-2] features are not compatible for creating instance.").
                raise errors.bad_request(f"[{kind}, {machine}] features are not compatible for creating instance.")
            size = int(init.get("diskSizeGb") or image["diskSizeGb"])
            if size < int(image["diskSizeGb"]):
                raise errors.invalid_field(
                    f"{field}.diskSizeGb",
                    str(size),
                    f"Requested disk size cannot be smaller than the image size ({image['diskSizeGb']} GB)",
                )
            disk_name = init.get("diskName") or (name if boot else f"{name}-{i}")
            if disk_name in existing or any(c["name"] == disk_name for c in created):
                raise errors.already_exists(f"projects/{project}/zones/{zone}/disks/{disk_name}")
            if boot:
                boot_image = image
            created.append(
                {
                    "kind": "compute#disk",
                    "id": new_id(),
                    "creationTimestamp": now(),
                    "name": disk_name,
                    "sizeGb": str(size),
                    "zone": sim.link(project, "zones", zone),
                    "status": "READY",
                    "selfLink": sim.link(project, "zones", zone, "disks", disk_name),
                    "sourceImage": image["selfLink"],
                    "sourceImageId": image["id"],
                    "type": sim.link(project, "zones", zone, "diskTypes", kind),
                    "licenses": list(image["licenses"]),
                    "guestOsFeatures": list(image["guestOsFeatures"]),
                    "lastAttachTimestamp": now(),
                    "labelFingerprint": "42WmSpB8rSM=",
                    "users": [sim.link(project, "zones", zone, "instances", name)],
                    "physicalBlockSizeBytes": "4096",
                    "architecture": image["architecture"],
                }
            )
            source, licenses = created[-1]["selfLink"], list(image["licenses"])
        elif d.get("source"):
            disk = find_disk(sim, project, zone, last(d["source"]))
            if disk.get("users"):
                raise errors.resource_in_use(disk["selfLink"].split("/compute/v1/", 1)[-1], disk["users"][0])
            size, source, licenses = int(disk["sizeGb"]), disk["selfLink"], list(disk.get("licenses", []))
        else:
            raise errors.invalid_field(f"resource.disks[{i}]", "", "Disk must have either initializeParams or source.")
        attached.append(
            {
                "kind": "compute#attachedDisk",
                "type": "PERSISTENT",
                "mode": d.get("mode") or "READ_WRITE",
                "source": source,
                "deviceName": d.get("deviceName") or (name if boot else last(source)),
                "index": i,
                "boot": boot,
                "autoDelete": bool(d.get("autoDelete", bool(init))),
                "interface": d.get("interface") or "SCSI",
                "diskSizeGb": str(size),
                "licenses": licenses,
                "architecture": boot_image["architecture"] if boot and boot_image else "X86_64",
            }
        )
    return attached, created, boot_image


def _available_zones(sim: Simulator, zone: str, accelerator: str | None) -> list[str]:
    region = catalog.region_of(zone)
    pool = sim.accelerator_zones(accelerator) if accelerator else sim.zones()
    return [z for z in pool if catalog.region_of(z) == region and z != zone and z not in sim.faults.stockout_zones]


def _capacity_failure(sim: Simulator, project: str, zone: str, machine: str, accs: list[dict]) -> dict | None:
    if zone not in sim.faults.stockout_zones:
        return None
    accelerator = last(accs[0]["acceleratorType"]) if accs else None
    attachment = f"{accelerator}:{accs[0]['acceleratorCount']}" if accs else ""
    args = (project, zone, machine, attachment, _available_zones(sim, zone, accelerator))
    form = {"code": sim.faults.stockout_code, "details": sim.faults.stockout_details}
    if sim.faults.stockout_errors == "sync":
        raise errors.stockout_error(*args, **form)
    f = errors.stockout_failure(*args, **form)
    return {"code": f.code, "message": f.message, "http_status": f.http_status, "details": f.details}


def _quota_failure(sim: Simulator, project: str, zone: str, need: Counter) -> dict | None:
    region = catalog.region_of(zone)
    over = quotas.exceeded(sim, sim.store.project(project), region, need)
    if not over:
        over, region = quotas.project_exceeded(sim, sim.store.project(project), need), None
    if not over:
        return None
    if sim.faults.quota_errors == "sync":
        raise errors.quota_api_error(over[0], over[1], region)
    f = quotas.failure(over[0], over[1], region)
    return {"code": f.code, "message": f.message, "http_status": f.http_status, "details": f.details}


def _op(sim: Simulator, req: Request, zone: str, op_type: str, inst: dict, task_name: str | None, spec=None) -> dict:
    return sim.ops.start(
        req.project,
        zone=zone,
        op_type=op_type,
        target_link=inst["selfLink"],
        target_id=inst["id"],
        task_name=task_name,
        spec={"zone": zone, "name": inst["name"], **(spec or {})},
        request_id=req.query.get("requestId"),
    )


# -- endpoints ----------------------------------------------------------------------------------


@route("POST", "/zones/{zone}/instances")
def insert(sim: Simulator, req: Request) -> dict:
    project, zone, body = req.project, req.params["zone"], req.body or {}
    sim.require_zone(project, zone)
    name = body.get("name", "")
    sim.check_name("resource.name", name)
    with sim.store.lock:
        zone_instances = sim.store.project(project)["instances"].setdefault(zone, {})
        if name in zone_instances:
            raise errors.already_exists(f"projects/{project}/zones/{zone}/instances/{name}")
        machine = _machine(sim, zone, body.get("machineType"))
        accs = _accelerators(sim, project, zone, body, machine)
        attached, new_disks, image = _disks(sim, project, zone, name, body, machine.name)
        if image and machine.name.startswith("g2-"):
            if image["_project"] in catalog.G2_INCOMPATIBLE_IMAGE_PROJECTS or image["architecture"] != "X86_64":
                raise errors.bad_request(
                    f"[{image['name']}, {machine.name}] features are not compatible for creating instance."
                )
        scheduling = {
            "onHostMaintenance": "MIGRATE",
            "automaticRestart": True,
            "preemptible": False,
            "provisioningModel": "STANDARD",
            **{k: v for k, v in (body.get("scheduling") or {}).items() if v not in ([], None)},
        }
        # GPU VMs cannot live-migrate, so onHostMaintenance must be TERMINATE (paraphrased from
        # https://cloud.google.com/compute/docs/gpus/gpu-host-maintenance); the error text is Compute's.
        if accs and scheduling["onHostMaintenance"] != "TERMINATE":
            raise errors.bad_request("Instances with guest accelerators do not support live migration.")

        need = Counter({"INSTANCES": 1})
        need.update(quotas.instance_needs({"machineType": machine.name, "guestAccelerators": accs}))
        for disk in new_disks:
            need.update(quotas.disk_needs(disk["type"], int(disk["sizeGb"])))
        failure = _quota_failure(sim, project, zone, need) or _capacity_failure(sim, project, zone, machine.name, accs)

        self_link = sim.link(project, "zones", zone, "instances", name)
        tags = list(dict.fromkeys((body.get("tags") or {}).get("items") or []))
        for i, tag in enumerate(tags):
            sim.check_name(f"resource.tags.items[{i}]", tag)
        meta_items = (body.get("metadata") or {}).get("items") or []
        inst = {
            "kind": "compute#instance",
            "id": new_id(),
            "creationTimestamp": now(),
            "name": name,
            "description": body.get("description", ""),
            "tags": {"items": tags, "fingerprint": fingerprint(tags)} if tags else {"fingerprint": fingerprint([])},
            "machineType": sim.link(project, "zones", zone, "machineTypes", machine.name),
            "status": "PROVISIONING",
            "zone": sim.link(project, "zones", zone),
            "canIpForward": bool(body.get("canIpForward", False)),
            "networkInterfaces": _network_interfaces(sim, project, zone, body),
            "disks": attached,
            "metadata": {"kind": "compute#metadata", "fingerprint": fingerprint(meta_items), "items": meta_items},
            "serviceAccounts": body.get("serviceAccounts") or [],
            "selfLink": self_link,
            "scheduling": scheduling,
            "cpuPlatform": "Intel Cascade Lake",
            "labels": body.get("labels") or {},
            "labelFingerprint": fingerprint(body.get("labels") or {}),
            "startRestricted": False,
            "deletionProtection": bool(body.get("deletionProtection", False)),
        }
        if accs:
            inst["guestAccelerators"] = accs
        if not meta_items:
            del inst["metadata"]["items"]
        _touch(inst)
        if failure:
            return _op(sim, req, zone, "insert", inst, "instance.fail", {"fail": failure})
        zone_instances[name] = inst
        disks = sim.store.project(project)["disks"].setdefault(zone, {})
        for disk in new_disks:
            disks[disk["name"]] = disk
        for entry in attached:  # attaching pre-existing disks
            disk = disks.get(last(entry["source"]))
            if disk is not None and self_link not in disk.setdefault("users", []):
                disk["users"].append(self_link)
        return _op(sim, req, zone, "insert", inst, "instance.insert")


@route("GET", "/zones/{zone}/instances/{instance}")
def get(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        return public(find(sim, req.project, req.params["zone"], req.params["instance"]))


@route("GET", "/zones/{zone}/instances")
def list_(sim: Simulator, req: Request) -> dict:
    zone = req.params["zone"]
    sim.require_zone(req.project, zone)
    with sim.store.lock:
        items = [public(i) for i in sim.store.project(req.project)["instances"].get(zone, {}).values()]
    return listing(req, items, "compute#instanceList", sim.link(req.project, "zones", zone, "instances"))


@route("GET", "/aggregated/instances")
def aggregated_list(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        by_zone = sim.store.project(req.project)["instances"]
        scopes = {f"zones/{z}": [public(i) for i in by_zone.get(z, {}).values()] for z in sim.zones()}
    link = sim.link(req.project, "aggregated", "instances")
    return aggregated(req, scopes, "instances", "compute#instanceAggregatedList", link)


def _not_ready(path: str) -> errors.ApiError:
    return errors.ApiError(400, "resourceNotReady", f"The resource '{path}' is not ready")


def _power_on(sim: Simulator, req: Request, zone: str, verb: str, inst: dict) -> dict:
    """start and resume alike: the VM needs its CPUs and GPUs again, so quota and capacity apply first."""
    project = req.project
    failure = _quota_failure(sim, project, zone, quotas.instance_needs(inst)) or _capacity_failure(
        sim, project, zone, last(inst["machineType"]), inst.get("guestAccelerators", [])
    )
    if failure:
        return _op(sim, req, zone, verb, inst, "instance.fail", {"fail": failure})
    inst["status"] = "PROVISIONING"
    sim.store.commit()
    return _op(sim, req, zone, verb, inst, f"instance.{verb}")


@route("POST", "/zones/{zone}/instances/{instance}/start")
def start(sim: Simulator, req: Request) -> dict:
    project, zone, name = req.project, req.params["zone"], req.params["instance"]
    with sim.store.lock:
        inst = find(sim, project, zone, name)
        if inst["status"] == "RUNNING":
            return _op(sim, req, zone, "start", inst, None)
        if inst["status"] in NOT_READY:
            raise _not_ready(f"projects/{project}/zones/{zone}/instances/{name}")
        return _power_on(sim, req, zone, "start", inst)


@route("POST", "/zones/{zone}/instances/{instance}/stop")
def stop(sim: Simulator, req: Request) -> dict:
    project, zone, name = req.project, req.params["zone"], req.params["instance"]
    with sim.store.lock:
        inst = find(sim, project, zone, name)
        if inst["status"] == "TERMINATED":
            return _op(sim, req, zone, "stop", inst, None)
        if inst["status"] in NOT_READY:
            raise _not_ready(f"projects/{project}/zones/{zone}/instances/{name}")
        inst["status"] = "STOPPING"
        sim.store.commit()
        return _op(sim, req, zone, "stop", inst, "instance.stop")


@route("POST", "/zones/{zone}/instances/{instance}/suspend")
def suspend(sim: Simulator, req: Request) -> dict:
    """RUNNING -> SUSPENDING -> SUSPENDED (https://cloud.google.com/compute/docs/instances/suspend-resume-instance)."""
    project, zone, name = req.project, req.params["zone"], req.params["instance"]
    with sim.store.lock:
        inst = find(sim, project, zone, name)
        if inst["status"] == "SUSPENDED":
            return _op(sim, req, zone, "suspend", inst, None)
        if inst["status"] != "RUNNING":
            raise _not_ready(f"projects/{project}/zones/{zone}/instances/{name}")
        inst["status"] = "SUSPENDING"
        sim.store.commit()
        return _op(sim, req, zone, "suspend", inst, "instance.suspend")


@route("POST", "/zones/{zone}/instances/{instance}/resume")
def resume(sim: Simulator, req: Request) -> dict:
    """Only a SUSPENDED VM resumes; it needs its CPUs and GPUs again, so quota and capacity apply as for start
    (https://cloud.google.com/compute/docs/instances/suspend-resume-instance)."""
    project, zone, name = req.project, req.params["zone"], req.params["instance"]
    with sim.store.lock:
        inst = find(sim, project, zone, name)
        if inst["status"] == "RUNNING":
            return _op(sim, req, zone, "resume", inst, None)
        if inst["status"] != "SUSPENDED":
            # Paraphrased: resume is refused for a VM that is not suspended.
            raise errors.bad_request(f"The instance '{name}' is not suspended (status {inst['status']}).")
        return _power_on(sim, req, zone, "resume", inst)


def _guest_attributes_enabled(sim: Simulator, project: str, inst: dict) -> bool:
    """enable-guest-attributes=TRUE in the instance's metadata, else in the project's (instance wins)."""
    from .api_projects import metadata_items

    for items in ((inst.get("metadata") or {}).get("items") or [], metadata_items(sim, project)):
        for item in items:
            if item.get("key") == "enable-guest-attributes":
                return str(item.get("value", "")).upper() == "TRUE"
    return False


@route("GET", "/zones/{zone}/instances/{instance}/getGuestAttributes")
def get_guest_attributes(sim: Simulator, req: Request) -> dict:
    """What the VM's guest agent published (the backend plays the agent): the SSH host keys under
    `hostkeys/` (https://cloud.google.com/compute/docs/metadata/manage-guest-attributes)."""
    project, zone, name = req.project, req.params["zone"], req.params["instance"]
    query_path, key = req.query.get("queryPath", ""), req.query.get("variableKey", "")
    with sim.store.lock:
        inst = public(find(sim, project, zone, name))
        enabled = _guest_attributes_enabled(sim, project, inst)
    if not enabled:
        # Paraphrased: guest attributes must be enabled by metadata before they can be read.
        raise errors.bad_request(f"Guest attributes are disabled for instance '{name}'.")
    published = sim.backend_guest_attributes(inst) if inst["status"] == "RUNNING" else []
    link = sim.link(project, "zones", zone, "instances", name) + "/getGuestAttributes"
    if key:
        for entry in published:
            if f"{entry['namespace']}/{entry['key']}" == key:
                return {"kind": "compute#guestAttributes", "variableKey": key, "variableValue": entry["value"],
                        "selfLink": link}
        raise errors.ApiError(404, "notFound", f"The resource '{key}' of type 'Guest Attribute' was not found.")
    namespace = query_path.rstrip("/")
    chosen = [e for e in published if not namespace or e["namespace"] == namespace]
    if not chosen:
        # The text the runbook's host-key reader keys on when nothing is published yet.
        raise errors.ApiError(404, "notFound", f"The resource '{query_path}' of type 'Guest Attribute' was not found.")
    return {"kind": "compute#guestAttributes", "queryPath": query_path, "queryValue": {"items": chosen},
            "selfLink": link}


@route("DELETE", "/zones/{zone}/instances/{instance}")
def delete(sim: Simulator, req: Request) -> dict:
    project, zone, name = req.project, req.params["zone"], req.params["instance"]
    with sim.store.lock:
        inst = find(sim, project, zone, name)
        if inst.get("deletionProtection"):
            raise errors.ApiError(
                400,
                "resourceInUseByAnotherResource",
                "Invalid resource usage: 'Resource cannot be deleted if it's protected against deletion.'.",
            )
        if inst["status"] != "TERMINATED":
            inst["status"] = "STOPPING"
        sim.store.commit()
        return _op(sim, req, zone, "delete", inst, "instance.delete")


@route("POST", "/zones/{zone}/instances/{instance}/setTags")
def set_tags(sim: Simulator, req: Request) -> dict:
    project, zone, name = req.project, req.params["zone"], req.params["instance"]
    body = req.body or {}
    with sim.store.lock:
        inst = find(sim, project, zone, name)
        if body.get("fingerprint") != inst["tags"]["fingerprint"]:
            raise errors.fingerprint_mismatch("tags")
        items = list(dict.fromkeys(body.get("items") or []))
        for i, tag in enumerate(items):
            sim.check_name(f"resource.tags.items[{i}]", tag)
        inst["tags"] = (
            {"items": items, "fingerprint": fingerprint(items)} if items else {"fingerprint": fingerprint([])}
        )
        _touch(inst)
        sim.store.commit()
        return _op(sim, req, zone, "setTags", inst, None)


# -- operation tasks ----------------------------------------------------------------------------


def _snapshot(sim: Simulator, ctx: OpContext, status: str | None = None) -> dict | None:
    """Set the status (if given) and return a copy for the backend; None if the VM is gone."""
    with sim.store.lock:
        inst = sim.store.project(ctx.project)["instances"].get(ctx.spec["zone"], {}).get(ctx.spec["name"])
        if inst is None:
            return None
        if status:
            inst["status"] = status
            sim.store.commit()
        return public(inst)


def _set_nat_ip(inst: dict, address: str | None) -> None:
    for nic in inst.get("networkInterfaces", [])[:1]:
        for config in nic.get("accessConfigs", [])[:1]:
            if address:
                config["natIP"] = address
            else:
                config.pop("natIP", None)


def _came_up(sim: Simulator, ctx: OpContext, address: str, snapshot: dict) -> None:
    with sim.store.lock:
        inst = sim.store.project(ctx.project)["instances"].get(ctx.spec["zone"], {}).get(ctx.spec["name"])
        if inst is not None:
            _set_nat_ip(inst, address)
            inst["status"] = "RUNNING"
            inst["lastStartTimestamp"] = now()
            sim.store.commit()
            return
    sim.backend.delete(snapshot)  # deleted while booting: do not leak the host


def _backend_failed(action: str, exc: Exception) -> errors.OpFailure:
    return errors.OpFailure("INTERNAL_ERROR", f"Failed to {action} the instance: {exc}", 500)


@task("instance.insert")
def _insert(sim: Simulator, ctx: OpContext) -> None:
    ctx.sleep(sim.faults.op_running_s / 2)
    snapshot = _snapshot(sim, ctx, "STAGING")
    ctx.sleep(sim.faults.op_running_s / 2)
    if snapshot is None:
        return
    try:
        address = sim.backend.create(snapshot)
    except Exception as exc:
        _remove(sim, ctx, snapshot)  # a VM that never came up is not left behind
        raise _backend_failed("create", exc) from exc
    _came_up(sim, ctx, address, snapshot)


@task("instance.start")
def _start(sim: Simulator, ctx: OpContext) -> None:
    ctx.sleep(sim.faults.op_running_s / 2)
    snapshot = _snapshot(sim, ctx, "STAGING")
    ctx.sleep(sim.faults.op_running_s / 2)
    if snapshot is None:
        return
    try:
        address = sim.backend.start(snapshot)
    except Exception as exc:
        _snapshot(sim, ctx, "TERMINATED")
        raise _backend_failed("start", exc) from exc
    _came_up(sim, ctx, address, snapshot)


@task("instance.resume")
def _resume(sim: Simulator, ctx: OpContext) -> None:
    _start(sim, ctx)  # the backend brings the host back like a start


@task("instance.suspend")
def _suspend(sim: Simulator, ctx: OpContext) -> None:
    ctx.sleep(sim.faults.op_running_s)
    snapshot = _snapshot(sim, ctx)
    if snapshot is None:
        return
    sim.backend.stop(snapshot)
    with sim.store.lock:
        inst = sim.store.project(ctx.project)["instances"].get(ctx.spec["zone"], {}).get(ctx.spec["name"])
        if inst is not None:
            _set_nat_ip(inst, None)
            inst["status"] = "SUSPENDED"
            sim.store.commit()


@task("instance.stop")
def _stop(sim: Simulator, ctx: OpContext) -> None:
    ctx.sleep(sim.faults.op_running_s)
    snapshot = _snapshot(sim, ctx)
    if snapshot is None:
        return
    sim.backend.stop(snapshot)
    with sim.store.lock:
        inst = sim.store.project(ctx.project)["instances"].get(ctx.spec["zone"], {}).get(ctx.spec["name"])
        if inst is not None:
            _set_nat_ip(inst, None)  # the ephemeral external address goes with the VM
            inst["status"] = "TERMINATED"
            inst["lastStopTimestamp"] = now()
            sim.store.commit()


def _remove(sim: Simulator, ctx: OpContext, snapshot: dict) -> None:
    """Forget the instance; release its disks, deleting those marked autoDelete."""
    zone, name = ctx.spec["zone"], ctx.spec["name"]
    with sim.store.lock:
        proj = sim.store.project(ctx.project)
        inst = proj["instances"].get(zone, {}).pop(name, None)
        if inst is not None:  # a deleted VM leaves its unmanaged instance groups
            from .api_lb import forget_instance

            forget_instance(sim, ctx.project, inst["selfLink"])
        disks = proj["disks"].get(zone, {})
        for entry in (inst or {}).get("disks", []):
            disk = disks.get(last(entry["source"]))
            if disk is None:
                continue
            disk["users"] = [u for u in disk.get("users", []) if u != snapshot["selfLink"]]
            if not disk["users"]:
                del disk["users"]
                if entry.get("autoDelete"):
                    del disks[disk["name"]]
        sim.store.commit()


@task("instance.delete")
def _delete(sim: Simulator, ctx: OpContext) -> None:
    ctx.sleep(sim.faults.op_running_s)
    snapshot = _snapshot(sim, ctx)
    if snapshot is None:
        return
    sim.backend.delete(snapshot)
    _remove(sim, ctx, snapshot)


@task("instance.fail")
def _fail(sim: Simulator, ctx: OpContext) -> None:
    ctx.sleep(sim.faults.op_running_s)
    f = ctx.spec["fail"]
    raise errors.OpFailure(f["code"], f["message"], f["http_status"], f.get("details"))
