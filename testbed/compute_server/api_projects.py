"""projects.get: the project, its common instance metadata and its project-wide quotas.

Project.quotas holds the limits that no region change helps with (GPUS_ALL_REGIONS, ...), and
commonInstanceMetadata the keys every VM inherits (enable-oslogin among them): both are read by
the runbook's preflight (compute.v1.json, Project schema; https://cloud.google.com/compute/resource-usage).
"""

from __future__ import annotations

import zlib

from . import quotas
from .routes import Request, route
from .sim import Simulator
from .store import fingerprint


def metadata_items(sim: Simulator, project: str) -> list[dict]:
    """The project's common instance metadata items (set by tests through the simulator)."""
    return sim.store.project(project).setdefault("metadata", [])


@route("GET", "")
def get(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        data = sim.store.project(req.project)
        items = list(metadata_items(sim, req.project))
        quota_list = quotas.project_quotas(sim, data)
    number = str(100_000_000_000 + zlib.crc32(req.project.encode()) % 900_000_000_000)
    meta = {"kind": "compute#metadata", "fingerprint": fingerprint(items)}
    if items:
        meta["items"] = items
    return {
        "kind": "compute#project",
        "id": number,
        "creationTimestamp": "2024-01-02T03:04:05.678-08:00",
        "name": req.project,
        "commonInstanceMetadata": meta,
        "quotas": quota_list,
        "selfLink": sim.link(req.project),
        "defaultServiceAccount": f"{number}-compute@developer.gserviceaccount.com",
        "xpnProjectStatus": "UNSPECIFIED_XPN_PROJECT_STATUS",
        "defaultNetworkTier": "PREMIUM",
    }
