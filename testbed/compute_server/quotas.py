"""Regional and project-wide quota: limits from the faults, usage computed from what exists.

Usage follows Compute Engine's accounting: stopped (TERMINATED) VMs keep
their disks and their INSTANCES slot but not their CPUs or GPUs; pd-ssd and
pd-balanced count toward SSD_TOTAL_GB, pd-standard toward DISKS_TOTAL_GB.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from . import catalog, errors
from .store import last

if TYPE_CHECKING:
    from .sim import Simulator


def instance_needs(instance: dict) -> Counter:
    """CPUs and GPUs a running instance holds (not its disks)."""
    need: Counter = Counter()
    machine = catalog.MACHINE_TYPES.get(last(instance.get("machineType", "")))
    if machine:
        need["CPUS"] += machine.cpus
    for acc in instance.get("guestAccelerators", []):
        meta = catalog.ACCELERATORS.get(last(acc.get("acceleratorType", "")))
        if meta:
            need[meta[2]] += int(acc.get("acceleratorCount", 0))
    return need


def disk_needs(disk_type: str, size_gb: int) -> Counter:
    if last(disk_type) in catalog.HYPERDISK_TYPES:  # Hyperdisk has quotas of its own, not modelled here
        return Counter()
    metric = "SSD_TOTAL_GB" if last(disk_type) in catalog.SSD_DISK_TYPES else "DISKS_TOTAL_GB"
    return Counter({metric: int(size_gb)})


def usage(project_data: dict, region: str) -> Counter:
    used: Counter = Counter()
    for zone, instances in project_data["instances"].items():
        if catalog.region_of(zone) != region:
            continue
        for inst in instances.values():
            used["INSTANCES"] += 1
            if inst.get("status") not in ("TERMINATED", "SUSPENDED"):
                used.update(instance_needs(inst))
                if any(
                    ac.get("natIP") for nic in inst.get("networkInterfaces", []) for ac in nic.get("accessConfigs", [])
                ):
                    used["IN_USE_ADDRESSES"] += 1
    for zone, disks in project_data["disks"].items():
        if catalog.region_of(zone) != region:
            continue
        for disk in disks.values():
            used.update(disk_needs(disk.get("type", ""), int(disk.get("sizeGb", 0))))
    return used


def metrics(sim: Simulator, region: str) -> list[str]:
    names = list(catalog.DEFAULT_QUOTA_LIMITS)
    extra = set(sim.faults.quota_limits) | set(sim.faults.region_quota_limits.get(region, {}))
    return names + sorted(extra - set(names))


def quotas(sim: Simulator, project_data: dict, region: str) -> list[dict]:
    used = usage(project_data, region)
    return [
        {"metric": m, "limit": float(sim.faults.quota_limit(region, m)), "usage": float(used.get(m, 0))}
        for m in metrics(sim, region)
    ]


def exceeded(sim: Simulator, project_data: dict, region: str, need: Counter) -> tuple[str, float] | None:
    """The first metric that `need` would push over its limit, with that limit."""
    used = usage(project_data, region)
    for metric, amount in need.items():
        if amount <= 0:
            continue
        limit = sim.faults.quota_limit(region, metric)
        if used.get(metric, 0) + amount > limit:
            return metric, limit
    return None


def failure(metric: str, limit: float, region: str | None) -> errors.OpFailure:
    """The operation error; `region` None for a project-wide metric ("... globally.")."""
    metric_name, limit_name = catalog.QUOTA_NAMES.get(
        metric, (f"compute.googleapis.com/{metric.lower()}", f"{metric.replace('_', '-')}-per-project-region")
    )
    return errors.quota_failure(metric, limit, region, metric_name, limit_name)


# -- project-wide (projects.get -> Project.quotas) -------------------------------------------------------


def global_needs(need: Counter) -> Counter:
    """What a regional need adds to the project-wide metrics (GPUs to GPUS_ALL_REGIONS, CPUs to CPUS_ALL_REGIONS)."""
    out: Counter = Counter()
    for metric, amount in need.items():
        if metric.endswith("_GPUS"):
            out["GPUS_ALL_REGIONS"] += amount
        elif metric == "CPUS":
            out["CPUS_ALL_REGIONS"] += amount
    return out


def project_usage(project_data: dict) -> Counter:
    used: Counter = Counter()
    for instances in project_data["instances"].values():
        for inst in instances.values():
            if inst.get("status") not in ("TERMINATED", "SUSPENDED"):
                used.update(global_needs(instance_needs(inst)))
    used["FIREWALLS"] = len(project_data["firewalls"])
    return used


def project_quotas(sim: Simulator, project_data: dict) -> list[dict]:
    used = project_usage(project_data)
    names = list(catalog.DEFAULT_PROJECT_QUOTA_LIMITS)
    names += sorted(set(sim.faults.project_quota_limits) - set(names))
    return [{"metric": m, "limit": float(sim.faults.project_quota_limit(m)), "usage": float(used.get(m, 0))}
            for m in names]


def project_exceeded(sim: Simulator, project_data: dict, need: Counter) -> tuple[str, float] | None:
    used = project_usage(project_data)
    for metric, amount in global_needs(need).items():
        limit = sim.faults.project_quota_limit(metric)
        if amount > 0 and used.get(metric, 0) + amount > limit:
            return metric, limit
    return None
