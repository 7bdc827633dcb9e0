"""Finding the VM and reading it: shared by `inv vm` and `inv cleanup`.

The VM may sit in any configured zone (after a failover, in a fallback zone), so it is
found by name over all zones with one aggregated list, not assumed to be in `gcp.zone`.
"""

from __future__ import annotations

import time

from google.cloud import compute_v1

from ..errors import RunbookError
from . import state
from .context import CloudContext

SETTLING = ("PROVISIONING", "STAGING", "STOPPING", "SUSPENDING", "REPAIRING")
STOPPED = ("TERMINATED", "STOPPED")


def last(url: str) -> str:
    """The name at the end of a resource URL (zone, machine type, disk type...)."""
    return url.rstrip("/").rsplit("/", 1)[-1]


def region_of(zone: str) -> str:
    return zone.rsplit("-", 1)[0]


def zone_of(instance: compute_v1.Instance) -> str:
    return last(instance.zone)


def nat_ip(instance: compute_v1.Instance) -> str:
    """Guide 5-1: networkInterfaces[0].accessConfigs[0].natIP."""
    for nic in instance.network_interfaces[:1]:
        for config in nic.access_configs[:1]:
            return config.nat_i_p
    return ""


def configured_zones(ctx: CloudContext) -> list[str]:
    """The zones to try, in order: the replica's pinned zone (else gcp.zone), then gcp.fallback_zones."""
    g = ctx.settings.gcp
    return list(dict.fromkeys([ctx.pinned_zone or g.zone, *g.fallback_zones]))


def spread_zones(ctx: CloudContext, offering: list[str]) -> list[str]:
    """A fleet replica without a pinned zone starts in its own zone of the region's GPU zones (gcp.zone first,
    the others in name order, taken in turn by replica number), then tries the rest of them and
    gcp.fallback_zones: replicas spread over zones, so one zone's stockout does not take them all."""
    g = ctx.settings.gcp
    if ctx.pinned_zone or not g.several:
        return configured_zones(ctx)
    region = region_of(g.zone)
    local = [z for z in [g.zone, *sorted(offering)] if z in offering and region_of(z) == region]
    local = list(dict.fromkeys(local)) or [g.zone]
    turn = ctx.index % len(local)
    return list(dict.fromkeys([*local[turn:], *local[:turn], *g.fallback_zones]))


def locate(ctx: CloudContext, refresh: bool = False) -> compute_v1.Instance | None:
    """The VM named in the settings, in whichever zone it is; cached for the run."""
    if "instance" in ctx.notes and not refresh:
        return ctx.notes["instance"]
    name = ctx.instance_name
    pairs = ctx.api.instances.aggregated_list(request={"project": ctx.project, "filter": f'name = "{name}"'})
    found = [i for _, scoped in pairs for i in scoped.instances if i.name == name]
    recorded = state.find(ctx.root, name) or {}
    order = [recorded.get("zone"), *configured_zones(ctx)]
    found.sort(key=lambda i: order.index(zone_of(i)) if zone_of(i) in order else len(order))
    if len(found) > 1:
        ctx.out.warn(f"{name} exists in {len(found)} zones ({', '.join(zone_of(i) for i in found)}); "
                     f"using the one in {zone_of(found[0])}")
    ctx.notes["instance"] = found[0] if found else None
    return ctx.notes["instance"]


def get(ctx: CloudContext, zone: str) -> compute_v1.Instance:
    instance = ctx.api.instances.get(project=ctx.project, zone=zone, instance=ctx.instance_name)
    ctx.notes["instance"] = instance
    return instance


def settle(ctx: CloudContext, instance: compute_v1.Instance, label: str, poll: float = 2.0) -> compute_v1.Instance:
    """Wait while the VM is between states (booting, stopping) so the next call is allowed."""
    deadline = time.monotonic() + ctx.settings.gcp.operation_timeout
    while instance.status in SETTLING:
        if time.monotonic() > deadline:
            raise RunbookError(f"{instance.name} stayed {instance.status} for "
                               f"{ctx.settings.gcp.operation_timeout}s; check it in the console")
        ctx.out.progress(label, f"{instance.name} is {instance.status}", limit=ctx.settings.gcp.operation_timeout)
        time.sleep(poll)
        instance = get(ctx, zone_of(instance))
    return instance
