"""zoneOperations, regionOperations and globalOperations: get, list, wait, delete."""

from __future__ import annotations

from .routes import Request, listing, route
from .sim import Simulator
from .store import public


@route("GET", "/zones/{zone}/operations/{operation}")
def get_zone_op(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        return public(sim.ops.find(req.project, req.params["zone"], req.params["operation"]))


@route("POST", "/zones/{zone}/operations/{operation}/wait")
def wait_zone_op(sim: Simulator, req: Request) -> dict:
    return sim.ops.wait(req.project, req.params["zone"], req.params["operation"])


@route("GET", "/zones/{zone}/operations")
def list_zone_ops(sim: Simulator, req: Request) -> dict:
    zone = req.params["zone"]
    sim.require_zone(req.project, zone)
    with sim.store.lock:
        items = sim.ops.listing(req.project, zone)
    return listing(req, items, "compute#operationList", sim.link(req.project, "zones", zone, "operations"))


@route("DELETE", "/zones/{zone}/operations/{operation}")
def delete_zone_op(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        sim.ops.find(req.project, req.params["zone"], req.params["operation"])
        op = sim.store.project(req.project)["operations"]
        if op[req.params["operation"]]["status"] == "DONE":
            del op[req.params["operation"]]
            sim.store.commit()
    return {}


@route("GET", "/global/operations/{operation}")
def get_global_op(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        return public(sim.ops.find(req.project, None, req.params["operation"]))


@route("POST", "/global/operations/{operation}/wait")
def wait_global_op(sim: Simulator, req: Request) -> dict:
    return sim.ops.wait(req.project, None, req.params["operation"])


@route("GET", "/global/operations")
def list_global_ops(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        items = sim.ops.listing(req.project, None)
    return listing(req, items, "compute#operationList", sim.link(req.project, "global", "operations"))


@route("DELETE", "/global/operations/{operation}")
def delete_global_op(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        sim.ops.find(req.project, None, req.params["operation"])
        ops = sim.store.project(req.project)["operations"]
        if ops[req.params["operation"]]["status"] == "DONE":
            del ops[req.params["operation"]]
            sim.store.commit()
    return {}


# regionOperations: the load balancer's regional resources (health checks, backend services, forwarding rules)


@route("GET", "/regions/{region}/operations/{operation}")
def get_region_op(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        return public(sim.ops.find(req.project, None, req.params["operation"], req.params["region"]))


@route("POST", "/regions/{region}/operations/{operation}/wait")
def wait_region_op(sim: Simulator, req: Request) -> dict:
    return sim.ops.wait(req.project, None, req.params["operation"], req.params["region"])


@route("GET", "/regions/{region}/operations")
def list_region_ops(sim: Simulator, req: Request) -> dict:
    region = req.params["region"]
    sim.require_region(req.project, region)
    with sim.store.lock:
        items = sim.ops.listing(req.project, None, region)
    return listing(req, items, "compute#operationList", sim.link(req.project, "regions", region, "operations"))


@route("DELETE", "/regions/{region}/operations/{operation}")
def delete_region_op(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        sim.ops.find(req.project, None, req.params["operation"], req.params["region"])
        ops = sim.store.project(req.project)["operations"]
        if ops[req.params["operation"]]["status"] == "DONE":
            del ops[req.params["operation"]]
            sim.store.commit()
    return {}
