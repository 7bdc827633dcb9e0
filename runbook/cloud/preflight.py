"""Guide 2-1, 2-2 and quota: everything `inv vm` checks before it creates anything.

Each check turns a failure the API would give late and cryptically (a G2 refusing a Deep
Learning VM image, a stockout-free zone without L4s, SSD_TOTAL_GB held by old disks) into one
message up front, naming what to change. They only run when the VM has to be created.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..engine.steps import Plan
from .context import CloudContext
from .images import G2_INCOMPATIBLE_IMAGE_PROJECTS, GOOD_IMAGE, disk_metric
from .instances import configured_zones, last, locate, region_of, spread_zones, zone_of
from .steps import ResourceStep


def b1_message(machine: str, project: str, image: str) -> str:
    return (
        f"Refusing image {image} from project {project} for a {machine} VM: Deep Learning VM images "
        f"({', '.join(G2_INCOMPATIBLE_IMAGE_PROJECTS)}) cannot boot G2 (L4) machine types, so the create "
        f"would fail (guide B-1). Set gcp.image_project = \"{GOOD_IMAGE[0]}\" and gcp.image_family = "
        f"\"{GOOD_IMAGE[1]}\" (or a newer ubuntu-accelerator family, guide 2-1). Nothing was created."
    )


def _exists(ctx: CloudContext) -> str:
    """'' when the VM must be created; otherwise why the check is not needed."""
    instance = locate(ctx)
    return f"not needed: {instance.name} exists in {zone_of(instance)}" if instance else ""


@dataclass(frozen=True, kw_only=True)
class ImageStep(ResourceStep):
    """2-1: the newest image of the family, refused early if it cannot boot the machine (B-1)."""

    calls: ClassVar[str] = "images.getFromFamily (a read; refuses before any insert)"

    def read(self, ctx: CloudContext):
        if _exists(ctx):
            return None
        g = ctx.settings.gcp
        if g.machine_type.startswith("g2-") and g.image_project in G2_INCOMPATIBLE_IMAGE_PROJECTS:
            return {"project": g.image_project, "name": f"family {g.image_family}", "arch": "", "link": ""}
        image = ctx.api.images.get_from_family(project=g.image_project, family=g.image_family)
        project = image.self_link.split("/projects/", 1)[-1].split("/", 1)[0] if image.self_link else g.image_project
        ctx.notes["image"] = image.self_link
        return {"project": project, "name": image.name, "arch": image.architecture,
                "link": image.self_link, "created": image.creation_timestamp[:10]}

    def plan(self, fact, ctx: CloudContext) -> Plan:
        if fact is None:
            return Plan(False, _exists(ctx))
        machine = ctx.settings.gcp.machine_type
        if machine.startswith("g2-"):
            if fact["project"] in G2_INCOMPATIBLE_IMAGE_PROJECTS:
                return Plan(False, "Deep Learning VM image on G2", error=b1_message(machine, fact["project"],
                                                                                   fact["name"]))
            if fact["arch"] and fact["arch"] != "X86_64":
                return Plan(False, f"{fact['arch']} image", error=(
                    f"Image {fact['name']} is built for {fact['arch']}; {machine} is an x86-64 machine. "
                    "Choose an amd64 family (guide 2-1). Nothing was created."))
        return Plan(False, f"{fact['name']} (newest of {ctx.settings.gcp.image_family}, {fact['created']})")


@dataclass(frozen=True, kw_only=True)
class ZonesStep(ResourceStep):
    """2-2: which configured zones offer the GPU at all; the others are left out of the failover."""

    calls: ClassVar[str] = "acceleratorTypes.aggregatedList (a read)"

    def read(self, ctx: CloudContext):
        if _exists(ctx):
            return None
        accelerator = ctx.settings.gcp.accelerator_type
        pairs = ctx.api.accelerator_types.aggregated_list(
            request={"project": ctx.project, "filter": f'name = "{accelerator}"'})
        offering = sorted({last(scope) for scope, scoped in pairs
                           if any(a.name == accelerator for a in scoped.accelerator_types)})
        wanted = spread_zones(ctx, offering)
        ctx.notes["candidates"] = [z for z in wanted if z in offering]
        return {"offering": offering, "wanted": wanted}

    def plan(self, fact, ctx: CloudContext) -> Plan:
        if fact is None:
            return Plan(False, _exists(ctx))
        accelerator = ctx.settings.gcp.accelerator_type
        usable = [z for z in fact["wanted"] if z in fact["offering"]]
        without = [z for z in fact["wanted"] if z not in fact["offering"]]
        if not usable:
            near = [z for z in fact["offering"] if region_of(z) in {region_of(w) for w in fact["wanted"]}]
            return Plan(False, f"no configured zone offers {accelerator}", error=(
                f"None of the configured zones ({', '.join(fact['wanted'])}) offers {accelerator} (guide 2-2). "
                f"Zones that do{' nearby' if near else ''}: {', '.join(near or fact['offering']) or 'none'}. "
                "Set gcp.zone and gcp.fallback_zones to some of them. Nothing was created."))
        note = f"; {', '.join(without)} offer no {accelerator}, left out" if without else ""
        return Plan(False, f"{accelerator} in {len(fact['offering'])} zones; will try {', '.join(usable)}{note}")


def gpu_metric(accelerator: str) -> str:
    """nvidia-l4 -> NVIDIA_L4_GPUS, nvidia-tesla-t4 -> NVIDIA_T4_GPUS (the regional quota metric)."""
    return accelerator.upper().replace("-", "_").replace("TESLA_", "") + "_GPUS"


# Project-wide GPU quota: every GPU in every region counts against it, next to the regional one
# ("Allocation quotas", https://cloud.google.com/compute/resource-usage); read from projects.get.
GLOBAL_GPU_METRIC = "GPUS_ALL_REGIONS"


def project_info(ctx: CloudContext):
    """projects.get, once per run: the project-wide quotas and the common instance metadata."""
    if "project" not in ctx.notes:
        ctx.notes["project"] = ctx.api.projects.get(project=ctx.project)
    return ctx.notes["project"]


@dataclass(frozen=True)
class Shortfall:
    metric: str
    region: str  # "" for a project-wide quota
    limit: float
    usage: float
    need: float
    users: list[str]

    def message(self, ctx: CloudContext) -> str:
        g = ctx.settings.gcp
        if not self.region:
            held = f" In use by: {'; '.join(self.users)}." if self.users else ""
            return (
                f"Quota {self.metric} (project-wide, all regions) is too small for this VM: limit {self.limit:g}, "
                f"{self.usage:g} already in use, the VM needs {self.need:g} more.{held} This limit is for the whole "
                f"project, so another zone or region does not help: request a higher {self.metric} quota "
                f"(Console: IAM & Admin > Quotas, filter {self.metric}; new projects often start at 0). "
                "Nothing was created."
            )
        head = (f"Quota {self.metric} in region {self.region} is too small for this VM: limit {self.limit:g}, "
                f"{self.usage:g} already in use, the VM needs {self.need:g} more")
        held = f"In use by: {'; '.join(self.users)}." if self.users else "Nothing listed holds it (usage may lag)."
        if self.metric.endswith("TOTAL_GB"):
            return (
                f"{head} for its {g.boot_disk_gb} GB {g.boot_disk_type} boot disk (guide B-16). {held} "
                f"Delete disks you no longer need (`gcloud compute disks list --filter=\"zone:{self.region}\" "
                f"--format=\"table(name,sizeGb,status,users)\"`), choose a smaller gcp.boot_disk_gb, or request "
                f"a higher {self.metric} quota (Console: IAM & Admin > Quotas). Nothing was created."
            )
        return (
            f"{head}. {held} Stopped VMs release their GPUs: stop one you do not need, use a zone in "
            f"another region (gcp.fallback_zones), or request a higher {self.metric} quota "
            "(Console: IAM & Admin > Quotas). Nothing was created."
        )


@dataclass(frozen=True, kw_only=True)
class QuotaStep(ResourceStep):
    """Quota: project-wide GPUs (GPUS_ALL_REGIONS), then per candidate region the boot disk (SSD_TOTAL_GB,
    B-16) and the GPUs."""

    calls: ClassVar[str] = "projects.get, regions.get, disks/instances.aggregatedList (reads)"

    def read(self, ctx: CloudContext):
        if _exists(ctx):
            return None
        g = ctx.settings.gcp
        project_wide = None
        q = next((q for q in project_info(ctx).quotas if q.metric == GLOBAL_GPU_METRIC), None)
        if q is not None and q.usage + g.accelerator_count > q.limit:
            project_wide = Shortfall(GLOBAL_GPU_METRIC, "", q.limit, q.usage, g.accelerator_count,
                                     self._users(ctx, GLOBAL_GPU_METRIC, ""))
        need = {disk_metric(g.boot_disk_type): g.boot_disk_gb, gpu_metric(g.accelerator_type): g.accelerator_count}
        candidates = ctx.notes.get("candidates", configured_zones(ctx))
        short: dict[str, list[Shortfall]] = {}
        for region in dict.fromkeys(region_of(z) for z in candidates):
            quotas = {q.metric: q for q in ctx.api.regions.get(project=ctx.project, region=region).quotas}
            for metric, amount in need.items():
                q = quotas.get(metric)
                if q is not None and q.usage + amount > q.limit:
                    short.setdefault(region, []).append(
                        Shortfall(metric, region, q.limit, q.usage, amount, self._users(ctx, metric, region)))
        ctx.notes["candidates"] = [z for z in candidates if region_of(z) not in short and not project_wide]
        return {"candidates": candidates, "short": short, "project_wide": project_wide}

    def _users(self, ctx: CloudContext, metric: str, region: str) -> list[str]:
        """What holds the quota: the disks (B-16) or the running VMs with GPUs."""
        if metric.endswith("TOTAL_GB"):
            out = []
            for scope, scoped in ctx.api.disks.aggregated_list(request={"project": ctx.project}):
                for d in scoped.disks:
                    if region_of(last(scope)) == region and disk_metric(last(d.type_)) == metric:
                        users = ", ".join(last(u) for u in d.users)
                        out.append((d.size_gb, f"{d.name} ({last(scope)}, {d.size_gb} GB {last(d.type_)}, "
                                               f"{'used by ' + users if users else 'not attached to any VM'})"))
            return [text for _, text in sorted(out, key=lambda pair: -pair[0])]
        out = []
        for scope, scoped in ctx.api.instances.aggregated_list(request={"project": ctx.project}):
            for i in scoped.instances:
                gpus = sum(a.accelerator_count for a in i.guest_accelerators
                           if metric == GLOBAL_GPU_METRIC or gpu_metric(last(a.accelerator_type)) == metric)
                here = not region or region_of(last(scope)) == region  # "" : every region (project-wide)
                if here and gpus and i.status not in ("TERMINATED", "STOPPED", "SUSPENDED"):
                    out.append(f"{i.name} ({last(scope)}, {gpus} GPU, {i.status})")
        return out

    def plan(self, fact, ctx: CloudContext) -> Plan:
        if fact is None:
            return Plan(False, _exists(ctx))
        if fact.get("project_wide"):
            s = fact["project_wide"]
            return Plan(False, f"{s.metric} quota exceeded (project-wide)", error=s.message(ctx))
        short = fact["short"]
        left = [z for z in fact["candidates"] if region_of(z) not in short]
        messages = [s.message(ctx) for shortfalls in short.values() for s in shortfalls]
        if not left:
            return Plan(False, f"quota exceeded in {', '.join(short)}", error="\n".join(messages))
        note = f"; left out for quota: {', '.join(sorted(short))}" if short else ""
        if short:
            for message in messages:
                ctx.out.warn(message.replace(" Nothing was created.", ""))
        return Plan(False, f"enough quota in {', '.join(dict.fromkeys(region_of(z) for z in left))}{note}")
