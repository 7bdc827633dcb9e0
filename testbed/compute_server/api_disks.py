"""Zonal persistent disks: get, list, aggregatedList, insert, delete.

Disks matter to the runbook through quota (guide B-16: an old pd-ssd holding
SSD_TOTAL_GB), so quota is checked on insert and a disk in use cannot go.
"""

from __future__ import annotations

from . import catalog, errors, quotas, refs
from .operations import OpContext, task
from .routes import Request, aggregated, listing, route
from .sim import Simulator
from .store import public


def disk_type(sim: Simulator, project: str, zone: str, value: str | None, field: str, default: str) -> str:
    name = refs.zonal(value, field, zone, "diskTypes") if value else default
    if name not in catalog.DISK_TYPES:
        raise errors.invalid_field(field, value or "", f"Disk type '{name}' does not exist in zone '{zone}'.")
    return name


def find(sim: Simulator, project: str, zone: str, name: str) -> dict:
    disk = sim.store.project(project)["disks"].get(zone, {}).get(name)
    if disk is None:
        raise errors.not_found(f"projects/{project}/zones/{zone}/disks/{name}")
    return disk


@route("GET", "/zones/{zone}/disks/{disk}")
def get(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        return public(find(sim, req.project, req.params["zone"], req.params["disk"]))


@route("GET", "/zones/{zone}/disks")
def list_(sim: Simulator, req: Request) -> dict:
    zone = req.params["zone"]
    sim.require_zone(req.project, zone)
    with sim.store.lock:
        items = [public(d) for d in sim.store.project(req.project)["disks"].get(zone, {}).values()]
    return listing(req, items, "compute#diskList", sim.link(req.project, "zones", zone, "disks"))


@route("GET", "/aggregated/disks")
def aggregated_list(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        disks = sim.store.project(req.project)["disks"]
        scopes = {f"zones/{z}": [public(d) for d in disks.get(z, {}).values()] for z in sim.zones()}
    return aggregated(req, scopes, "disks", "compute#diskAggregatedList", sim.link(req.project, "aggregated", "disks"))


@route("POST", "/zones/{zone}/disks")
def insert(sim: Simulator, req: Request) -> dict:
    zone, body = req.params["zone"], req.body or {}
    sim.require_zone(req.project, zone)
    name = body.get("name", "")
    sim.check_name("resource.name", name)
    kind = disk_type(sim, req.project, zone, body.get("type"), "resource.type", "pd-standard")
    size = int(body.get("sizeGb") or 10)
    with sim.store.lock:
        proj = sim.store.project(req.project)
        if name in proj["disks"].get(zone, {}):
            raise errors.already_exists(f"projects/{req.project}/zones/{zone}/disks/{name}")
        region = catalog.region_of(zone)
        over = quotas.exceeded(sim, proj, region, quotas.disk_needs(kind, size))
        if over:
            raise errors.quota_api_error(over[0], over[1], region)
        disk = sim.seed_disk(req.project, zone, name, size, kind)
        if body.get("description"):
            proj["disks"][zone][name]["description"] = body["description"]
        proj["disks"][zone][name]["status"] = "CREATING"
        return sim.ops.start(
            req.project,
            zone=zone,
            op_type="insert",
            target_link=disk["selfLink"],
            target_id=disk["id"],
            task_name="disk.ready",
            spec={"zone": zone, "name": name},
            request_id=req.query.get("requestId"),
        )


@task("disk.ready")
def _ready(sim: Simulator, ctx: OpContext) -> None:
    ctx.sleep(sim.faults.op_running_s)
    with sim.store.lock:
        disk = sim.store.project(ctx.project)["disks"].get(ctx.spec["zone"], {}).get(ctx.spec["name"])
        if disk:
            disk["status"] = "READY"
            sim.store.commit()


@route("DELETE", "/zones/{zone}/disks/{disk}")
def delete(sim: Simulator, req: Request) -> dict:
    zone, name = req.params["zone"], req.params["disk"]
    with sim.store.lock:
        disk = find(sim, req.project, zone, name)
        if disk.get("users"):
            raise errors.resource_in_use(f"projects/{req.project}/zones/{zone}/disks/{name}", disk["users"][0])
        del sim.store.project(req.project)["disks"][zone][name]
        return sim.ops.start(
            req.project,
            zone=zone,
            op_type="delete",
            target_link=disk["selfLink"],
            target_id=disk["id"],
            request_id=req.query.get("requestId"),
        )
