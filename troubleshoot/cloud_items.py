"""Appendix B items on the cloud side: B-1 (image), B-5 (external access), B-16 (SSD quota).

B-1 and B-16 ask the Compute API only (they are about creating the VM). B-5 is checked per host:
whether the ports answer inside the VM and from this machine, and through the API whether a
firewall rule opens them to this VM's network tags.
"""

from __future__ import annotations

import re

from runbook.cloud.images import G2_INCOMPATIBLE_IMAGE_PROJECTS, GOOD_IMAGE, disk_metric
from runbook.config import Settings
from runbook.engine.results import FAILED
from runbook.facts import Fact
from runbook.facts.http import http
from runbook.facts.listeners import holders, listeners

from .cloud_facts import CloudUnavailable, last, region_of
from .context import Evidence, Repair
from .fixes import manual, merge, section_fix
from .model import Diagnostic, Finding, Outcome, found, ok, unknown
from .model import Diagnostic as _Diagnostic

ITEMS: list[_Diagnostic] = []
register = ITEMS.append  # this module's items, in order; troubleshoot.registry collects them

# -- B-1 Deep Learning VM image -----------------------------------------------------------------


def _image_project(image) -> str:
    match = re.search(r"/projects/([^/]+)/", image.self_link or "")
    return match.group(1) if match else ""


def detect_b1(ev: Evidence) -> Finding:
    g = ev.settings.gcp
    configured = f"hosts.toml: gcp.image_project = {g.image_project}, image_family = {g.image_family}, " \
                 f"machine_type = {g.machine_type}"
    g2 = g.machine_type.startswith("g2-")
    if g2 and g.image_project in G2_INCOMPATIBLE_IMAGE_PROJECTS:
        return found(f"Deep Learning VM images ({g.image_project}) cannot boot a G2 (L4) machine: creating the VM "
                     "fails", configured)
    try:
        image = ev.cloud.image()
    except CloudUnavailable as err:
        return ok(f"gcp.image_project is {g.image_project}, not a Deep Learning VM project", configured,
                  f"the family itself was not looked up: {err}")
    if image is None:
        return ok(f"gcp.image_project is {g.image_project}, not a Deep Learning VM project", configured,
                  f"family {g.image_family} does not exist in {g.image_project}: families get renamed, list them "
                  "as in guide 2-1")
    project = _image_project(image) or g.image_project
    if g2 and project in G2_INCOMPATIBLE_IMAGE_PROJECTS:
        return found(f"family {g.image_family} resolves to {image.name} from {project}, a Deep Learning VM image "
                     "that cannot boot a G2 (L4) machine", configured)
    return ok(f"{g.image_family} resolves to {image.name} ({project}, {image.architecture or '?'}), which boots "
              f"on {g.machine_type}")


def _newest_family(r: Repair) -> str:
    try:
        images = r.cloud.images(GOOD_IMAGE[0])
    except CloudUnavailable:
        return GOOD_IMAGE[1]
    usable = [i for i in images if i.family.startswith("ubuntu-accelerator") and i.architecture in ("X86_64", "")
              and not (i.deprecated and i.deprecated.state)]
    usable.sort(key=lambda i: (i.family.startswith("ubuntu-accelerator-2204"), i.creation_timestamp), reverse=True)
    return usable[0].family if usable else GOOD_IMAGE[1]


def fix_b1(r: Repair, finding: Finding) -> Outcome:
    return manual(
        f'In hosts.toml [gcp]: image_project = "{GOOD_IMAGE[0]}" and image_family = "{_newest_family(r)}" (guide B-1)',
        f"Current families: gcloud compute images list --project={GOOD_IMAGE[0]} "
        "--filter=\"family:ubuntu-accelerator\" (guide 2-1)",
        "then run: inv vm",
    )


# -- B-5 external access ------------------------------------------------------------------------

def _targets(s: Settings) -> dict[str, tuple[int, str]]:
    return {"FastAPI": (s.ai_server.port, s.ai_server.health_path), "vLLM": (s.vllm.port, "/health")}


def b5_probes(s: Settings) -> list[Fact]:
    return [*(http(f"http://127.0.0.1:{port}{path}") for port, path in _targets(s).values()), listeners()]


def _allows(rule, port: int) -> bool:
    for allowed in rule.allowed:
        if allowed.I_p_protocol not in ("tcp", "all"):
            continue
        if not allowed.ports:
            return True
        for spec in allowed.ports:
            low, _, high = spec.partition("-")
            if low.isdigit() and int(low) <= port <= int(high or low):
                return True
    return False


def cloud_problems(ev: Evidence, ports: list[int]) -> tuple[list[str], str]:
    """What the Compute API says keeps *ports* closed to the VM; and a note when it could not be asked."""
    name = ev.settings.gcp.instance_name
    try:
        instance, rules = ev.cloud.instance(), ev.cloud.firewalls()
    except CloudUnavailable as err:
        return [], f"firewall rules and tags not checked: {err}"
    if instance is None:
        return [], f"no VM named {name} in project {ev.cloud.project}: firewall rules and tags not checked"
    tags = list(instance.tags.items)
    network = last(instance.network_interfaces[0].network) if instance.network_interfaces else "default"
    problems = []
    for port in ports:
        opening = [r for r in rules if (r.direction or "INGRESS") == "INGRESS" and not r.disabled
                   and last(r.network or "default") == network and _allows(r, port)]
        applying = [r for r in opening if not r.target_tags or set(r.target_tags) & set(tags)]
        if not opening:
            problems.append(f"no enabled ingress rule on network {network} allows tcp:{port}")
        elif not applying:
            wanted = sorted({t for r in opening for t in r.target_tags})
            problems.append(f"{', '.join(r.name for r in opening)} allow(s) tcp:{port} only to VMs tagged "
                            f"{', '.join(wanted)}; {name} has tags: {', '.join(tags) or 'none'}")
    return list(dict.fromkeys(problems)), ""


def detect_b5(ev: Evidence) -> Finding:
    s = ev.settings
    targets = _targets(s)
    inside = {name: ev.http(http(f"http://127.0.0.1:{port}{path}")).ok for name, (port, path) in targets.items()}
    outside = {name: ev.reach.get(port, path) for name, (port, path) in targets.items()} if ev.reach else {}
    found_listeners = ev.get(listeners())
    loopback = [f"{name} listens on {', '.join(addrs)} only" for name, (port, _) in targets.items()
                if (addrs := [h.address for h in holders(found_listeners, port)])
                and all(a in ("127.0.0.1", "[::1]", "::1") for a in addrs)]
    problems, note = cloud_problems(ev, [port for port, _ in targets.values()])
    seen = [a.describe() for a in outside.values()]
    blocked = [name for name in targets if inside[name] and name in outside and not outside[name].ok]
    evidence = [*(f"from this machine: {line}" for line in seen), note]
    if loopback or problems or blocked:
        inside_only = f"{' and '.join(blocked)} answer inside the VM but not from this machine"
        summary = (loopback or problems or [inside_only])[0]
        rest = [*loopback, *problems][1:] if (loopback or problems) else []
        if blocked and (loopback or problems):
            rest.append(inside_only)
        return found(summary, *rest, *evidence, cloud=bool(problems), loopback=bool(loopback))
    if not any(inside.values()):
        return unknown("the services do not answer inside the VM either, so outside access cannot be judged "
                       "(run: inv verify)", *evidence)
    if not outside and note:
        return unknown("--local and no Compute API: nothing can be tested from outside", note)
    down = [f"{name} (:{targets[name][0]}) does not answer inside the VM either" for name in targets
            if not inside[name]]
    where = "answer from this machine" if outside else "are open (not tested from outside: --local)"
    opened = "; firewall rules and tags let them in" if not note else ""
    shown = ", ".join(f"{name} (:{targets[name][0]})" for name in targets if inside[name])
    return ok(f"{shown} {where}{opened}", *down, *evidence)


def _cloud_fix(r: Repair) -> Outcome:
    from runbook.cloud import firewall as firewall_section
    from runbook.cloud import vm as vm_section
    from runbook.cloud.context import Api, CloudContext
    from runbook.cloud.steps import run_section

    try:
        ctx = CloudContext(r.settings, r.loaded.root, Api(r.cloud.clients), r.out)
    except CloudUnavailable as err:
        return manual(f"The Compute API cannot be reached ({err}); see guide B-5 for the gcloud commands")
    results = [
        run_section(ctx, r.settings.gcp.project_id, "firewall (fix B-5)", "1", firewall_section.steps(r.settings)),
        run_section(ctx, r.settings.gcp.instance_name, "tags (fix B-5)", "B-5",
                    [vm_section.TagsStep(guide="B-5", title="network tags for the firewall rules")]),
    ]
    r.cloud.forget()
    steps = [s for res in results for s in res.steps]
    failed = next((s for s in steps if s.status == FAILED), None)
    return Outcome(applied=True, steps=steps, error=f"{failed.title}: {failed.error}" if failed else "")


def fix_b5(r: Repair, finding: Finding) -> Outcome:
    outcomes = []
    if finding.data.get("cloud"):
        outcomes.append(_cloud_fix(r))
    if finding.data.get("loopback"):
        if r.settings.vllm.host == "0.0.0.0":
            outcomes.append(section_fix(r, "B-5", "vllm", lambda s: s.guide in ("3-3", "3-4", "3-5", "3-6", "3-7")))
        else:
            outcomes.append(manual(f'Set vllm.host = "0.0.0.0" in hosts.toml (now {r.settings.vllm.host}), then run: '
                                   "inv vllm"))
    if not outcomes:
        s = r.settings
        outcomes.append(manual(
            f"Check the firewall rules (gcloud compute firewall-rules list --project={s.gcp.project_id}) and the VM's "
            f"tags (gcloud compute instances describe {s.gcp.instance_name} --zone={s.gcp.zone} "
            "--format=\"get(tags.items)\"), guide B-5",
            "and any firewall on the VM itself (sudo ufw status; sudo nft list ruleset)",
            "then run: inv troubleshoot --only B-5"))
    return merge(*outcomes)


# -- B-16 SSD quota -----------------------------------------------------------------------------

def detect_b16(ev: Evidence) -> Finding:
    g = ev.settings.gcp
    region = region_of(g.zone)
    metric = disk_metric(g.boot_disk_type)
    try:
        instance, quotas, disks = ev.cloud.instance(), ev.cloud.quotas(region), ev.cloud.disks()
    except CloudUnavailable as err:
        return unknown(str(err))
    quota = quotas.get(metric)
    if quota is None:
        return unknown(f"region {region} reports no {metric} quota")
    held = sorted(((zone, d) for zone, d in disks
                   if region_of(zone) == region and disk_metric(last(d.type_)) == metric),
                  key=lambda pair: -pair[1].size_gb)
    listing = [f"{d.name} ({zone}, {d.size_gb} GB {last(d.type_)}, "
               f"{'used by ' + ', '.join(last(u) for u in d.users) if d.users else 'not attached to any VM'})"
               for zone, d in held]
    use = f"{metric} in {region}: {quota.usage:g} of {quota.limit:g} GB in use"
    unused = [(zone, d.name, d.size_gb) for zone, d in held if not d.users]
    if instance is not None:
        if quota.usage > quota.limit:
            return found(f"{metric} in {region} is over its limit: {quota.usage:g} of {quota.limit:g} GB", *listing,
                         region=region, metric=metric, need=0, unused=unused, usage=quota.usage)
        return ok(f"{g.instance_name} exists; {use}")
    if quota.usage + g.boot_disk_gb > quota.limit:
        return found(f"{metric} quota exceeded (Limit: {quota.limit:g}) in region {region}: {quota.usage:g} GB are in "
                     f"use, the VM's {g.boot_disk_gb} GB {g.boot_disk_type} boot disk does not fit", *listing,
                     region=region, metric=metric, need=g.boot_disk_gb, unused=unused, usage=quota.usage)
    return ok(f"{use}; the VM's {g.boot_disk_gb} GB {g.boot_disk_type} boot disk fits")


def fix_b16(r: Repair, finding: Finding) -> Outcome:
    d = finding.data
    project = r.settings.gcp.project_id
    lines = [f"Delete disks you no longer need, e.g. the unattached ones: gcloud compute disks delete {name} "
             f"--zone={zone} --project={project}   ({size} GB)" for zone, name, size in d["unused"]]
    if not lines:
        lines.append(f"List the disks holding the quota: gcloud compute disks list --project={project} "
                     f"--filter=\"zone:{d['region']}\" --format=\"table(name,sizeGb,status,users)\"")
    lines += [
        f"Or ask for more: Google Cloud console > IAM & Admin > Quotas, filter {d['metric']}, region {d['region']}, "
        f"Edit quotas: at least {d['usage'] + d['need']:g} GB",
        f"Or choose a smaller boot disk: gcp.boot_disk_gb (now {r.settings.gcp.boot_disk_gb}) in hosts.toml",
        "then run: inv vm",
    ]
    return manual(*lines)


register(Diagnostic(
    "B-1", "Deep Learning VM image not usable", "Creating the VM on a G2 machine type with a Deep Learning VM image "
    "fails.",
    "`deeplearning-platform-release` images are not compatible with G2 machine types.",
    "gcp.image_project and the image the configured family resolves to (Compute API: images.getFromFamily), "
    "against the machine type.",
    "Manual (a setting): prints the ubuntu-os-accelerator-images project and its newest ubuntu-accelerator family "
    "to put into hosts.toml.",
    detect_b1, scope="cloud", fix=fix_b1))

register(Diagnostic(
    "B-5", "No access from outside", "Works inside the VM, but not from outside.",
    "The firewall rule is missing, or the VM lacks the rule's target tag.",
    "GETs /health on 8000 and 8001 inside the VM and from this machine; which addresses they listen on; through "
    "the Compute API, whether an enabled ingress rule opens each port to one of the VM's network tags.",
    "Creates or corrects the firewall rules (the firewall section's steps) and adds the missing tags to the VM; "
    "a service bound to 127.0.0.1 is rewritten from the vllm section; otherwise lists what to check.",
    detect_b5, scope="host", probes=b5_probes, fix=fix_b5))

register(Diagnostic(
    "B-16", "SSD quota exceeded", "Creating the VM fails: `SSD_TOTAL_GB quota exceeded (Limit: 250.0) in region "
    "asia-northeast3`.",
    "Existing disks already hold the region's SSD quota (250 GB), so the new boot disk does not fit.",
    "The region's SSD_TOTAL_GB limit and usage (regions.get) against the boot disk; every disk that holds it "
    "(disks.aggregatedList) with its size and users.",
    "Manual (deleting data or raising a quota needs a person): the delete command for each unattached disk, the "
    "console path for a quota increase, and the smaller-disk setting.",
    detect_b16, scope="cloud", fix=fix_b16))
