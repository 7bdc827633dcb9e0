"""Read-only endpoints: images, accelerator types, zones, regions with quotas."""

from __future__ import annotations

from . import catalog, errors, quotas
from .routes import Request, aggregated, listing, route
from .sim import Simulator
from .store import public


def _project_images(sim: Simulator, project: str) -> list[dict]:
    return [img for img in sim.images() if img["_project"] == project]


def latest_in_family(sim: Simulator, project: str, family: str) -> dict:
    found = [i for i in _project_images(sim, project) if i["family"] == family and "deprecated" not in i]
    if not found:
        raise errors.not_found(f"projects/{project}/global/images/family/{family}")
    return max(found, key=lambda i: i["creationTimestamp"])


def find_image(sim: Simulator, project: str, name: str) -> dict:
    for img in _project_images(sim, project):
        if img["name"] == name:
            return img
    raise errors.not_found(f"projects/{project}/global/images/{name}")


@route("GET", "/global/images/family/{family}")
def get_from_family(sim: Simulator, req: Request) -> dict:
    return public(latest_in_family(sim, req.project, req.params["family"]))


@route("GET", "/global/images/{image}")
def get_image(sim: Simulator, req: Request) -> dict:
    return public(find_image(sim, req.project, req.params["image"]))


@route("GET", "/global/images")
def list_images(sim: Simulator, req: Request) -> dict:
    items = [public(i) for i in _project_images(sim, req.project)]
    return listing(req, items, "compute#imageList", sim.link(req.project, "global", "images"))


# -- accelerator types -------------------------------------------------------------------------


def _accelerator(sim: Simulator, project: str, zone: str, name: str) -> dict:
    description, max_cards, _ = catalog.ACCELERATORS[name]
    return {
        "kind": "compute#acceleratorType",
        "id": str(10_000 + sorted(catalog.ACCELERATORS).index(name)),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": name,
        "description": description,
        "zone": sim.link(project, "zones", zone),
        "selfLink": sim.link(project, "zones", zone, "acceleratorTypes", name),
        "maximumCardsPerInstance": max_cards,
    }


def accelerators_in(sim: Simulator, project: str, zone: str) -> list[dict]:
    return [
        _accelerator(sim, project, zone, name)
        for name in sorted(catalog.ACCELERATORS)
        if zone in sim.accelerator_zones(name)
    ]


@route("GET", "/zones/{zone}/acceleratorTypes")
def list_accelerator_types(sim: Simulator, req: Request) -> dict:
    zone = req.params["zone"]
    sim.require_zone(req.project, zone)
    items = accelerators_in(sim, req.project, zone)
    return listing(req, items, "compute#acceleratorTypeList", sim.link(req.project, "zones", zone, "acceleratorTypes"))


@route("GET", "/zones/{zone}/acceleratorTypes/{name}")
def get_accelerator_type(sim: Simulator, req: Request) -> dict:
    zone, name = req.params["zone"], req.params["name"]
    sim.require_zone(req.project, zone)
    if zone not in sim.accelerator_zones(name) or name not in catalog.ACCELERATORS:
        raise errors.not_found(f"projects/{req.project}/zones/{zone}/acceleratorTypes/{name}")
    return _accelerator(sim, req.project, zone, name)


@route("GET", "/aggregated/acceleratorTypes")
def aggregated_accelerator_types(sim: Simulator, req: Request) -> dict:
    scopes = {f"zones/{z}": accelerators_in(sim, req.project, z) for z in sim.zones()}
    return aggregated(
        req,
        scopes,
        "acceleratorTypes",
        "compute#acceleratorTypeAggregatedList",
        sim.link(req.project, "aggregated", "acceleratorTypes"),
    )


# -- zones and regions -------------------------------------------------------------------------


def _zone(sim: Simulator, project: str, zone: str) -> dict:
    return {
        "kind": "compute#zone",
        "id": str(2000 + sim.zones().index(zone)),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": zone,
        "description": zone,
        "status": "UP",
        "region": sim.link(project, "regions", catalog.region_of(zone)),
        "selfLink": sim.link(project, "zones", zone),
        "availableCpuPlatforms": ["Intel Cascade Lake", "Intel Ice Lake", "AMD Milan"],
        "supportsPzs": False,
    }


@route("GET", "/zones")
def list_zones(sim: Simulator, req: Request) -> dict:
    items = [_zone(sim, req.project, z) for z in sim.zones()]
    return listing(req, items, "compute#zoneList", sim.link(req.project, "zones"))


@route("GET", "/zones/{zone}")
def get_zone(sim: Simulator, req: Request) -> dict:
    sim.require_zone(req.project, req.params["zone"])
    return _zone(sim, req.project, req.params["zone"])


def _region(sim: Simulator, project: str, region: str) -> dict:
    with sim.store.lock:
        quota_list = quotas.quotas(sim, sim.store.project(project), region)
    return {
        "kind": "compute#region",
        "id": str(1000 + sim.regions().index(region)),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": region,
        "description": region,
        "status": "UP",
        "zones": [sim.link(project, "zones", z) for z in sim.zones() if catalog.region_of(z) == region],
        "quotas": quota_list,
        "selfLink": sim.link(project, "regions", region),
        "supportsPzs": False,
    }


@route("GET", "/regions")
def list_regions(sim: Simulator, req: Request) -> dict:
    items = [_region(sim, req.project, r) for r in sim.regions()]
    return listing(req, items, "compute#regionList", sim.link(req.project, "regions"))


@route("GET", "/regions/{region}")
def get_region(sim: Simulator, req: Request) -> dict:
    sim.require_region(req.project, req.params["region"])
    return _region(sim, req.project, req.params["region"])
