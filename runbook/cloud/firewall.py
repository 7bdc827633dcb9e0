"""Guide section 1: the two ingress rules (1-1 service ports, 1-2 monitoring ports).

Names, ports, target tags and source ranges come from the [firewall] settings. A rule that
is missing is inserted, one that differs is patched (the diff is shown), an equal one is left
alone. Safer than the guide: the monitoring exporters are refused to 0.0.0.0/0 unless
`firewall.allow_world_monitoring` says so, and world-open service ports get a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from ..config import FirewallRule, Settings, world_open
from ..engine.steps import Plan
from .context import CloudContext
from .instances import last
from .steps import ResourceStep

# Fields of a rule the runbook owns; anything else on the rule is left as it is.
FIELDS = ("network", "direction", "priority", "allowed", "source_ranges", "target_tags", "source_tags", "disabled")
# List fields a PATCH cannot empty (an empty list is not sent): clearing them takes an UPDATE.
_CLEARABLE = ("source_tags",)


@dataclass(frozen=True)
class RuleSpec:
    kind: str  # "api" (guide 1-1), "monitoring" (guide 1-2) or "health" (the load balancer's probes)
    name: str
    ports: tuple[int, ...]
    target_tag: str
    source_ranges: tuple[str, ...]


def specs(settings: Settings) -> list[RuleSpec]:
    fw = settings.firewall
    api_ports = fw.api.ports or [settings.ai_server.port, settings.vllm.port]
    rules: list[tuple[str, FirewallRule, list[int]]] = [("api", fw.api, api_ports),
                                                        ("monitoring", fw.monitoring, fw.monitoring.ports)]
    return [RuleSpec(kind, r.name, tuple(sorted(set(ports))), r.target_tag, tuple(r.source_ranges))
            for kind, r, ports in rules if r.enabled]


def desired(spec: RuleSpec, settings: Settings) -> compute_v1.Firewall:
    guide = {"api": "1-1 vLLM + FastAPI", "health": "load balancer health checks"}.get(
        spec.kind, "1-2 monitoring (Prometheus scraping)")
    return compute_v1.Firewall(
        name=spec.name,
        description=f"l4-runbook, guide {guide}",
        network=f"global/networks/{settings.gcp.network}",
        direction="INGRESS",
        priority=settings.firewall.priority,
        allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=[str(p) for p in spec.ports])],
        source_ranges=list(spec.source_ranges),
        target_tags=[spec.target_tag],
        disabled=False,
    )


def view(rule: compute_v1.Firewall) -> dict[str, str]:
    """The owned fields as comparable text (order-free lists, names instead of URLs)."""
    allowed = sorted(f"{a.I_p_protocol}:{','.join(sorted(a.ports, key=_port_key))}" for a in rule.allowed)
    return {
        "network": last(rule.network or "default"),
        "direction": rule.direction or "INGRESS",
        "priority": str(rule.priority),
        "allowed": " ".join(allowed) or "-",
        "source_ranges": ", ".join(sorted(rule.source_ranges)) or "-",
        "target_tags": ", ".join(sorted(rule.target_tags)) or "-",
        "source_tags": ", ".join(sorted(rule.source_tags)) or "-",
        "disabled": str(bool(rule.disabled)).lower(),
    }


def _port_key(port: str) -> int:
    return int(port.split("-", 1)[0]) if port.split("-", 1)[0].isdigit() else 0


def _world(ranges: tuple[str, ...]) -> list[str]:
    """The ranges, when together they open more than a /8 of the internet (as good as 0.0.0.0/0)."""
    return list(ranges) if world_open(ranges) else []


def refusal(spec: RuleSpec, settings: Settings) -> str:
    """Why this rule must not be made as configured ('' if it may)."""
    if spec.target_tag not in settings.gcp.tags:
        return (f"target tag {spec.target_tag!r} of {spec.name} is not in gcp.tags {list(settings.gcp.tags)}: "
                "the VM would not get this rule (guide B-5). Add it to gcp.tags or change the rule's target_tag.")
    world = _world(spec.source_ranges)
    if spec.kind == "monitoring" and world and not settings.firewall.allow_world_monitoring:
        return (f"refusing {', '.join(world)} for the monitoring ports {', '.join(map(str, spec.ports))} "
                f"({spec.name}): node_exporter and dcgm-exporter would tell anyone on the internet about this "
                "machine. Set firewall.monitoring.source_ranges to your Prometheus server's address "
                "(e.g. \"203.0.113.7/32\"), or set firewall.allow_world_monitoring = true to accept that.")
    return ""


@dataclass(frozen=True, kw_only=True)
class CheckStep(ResourceStep):
    """Before any call: every rule is acceptable, so a refusal leaves nothing half done."""

    def plan(self, fact, ctx: CloudContext) -> Plan:
        rules = specs(ctx.settings)
        problems = [p for p in (refusal(spec, ctx.settings) for spec in rules) if p]
        if problems:
            return Plan(False, "refused", error="\n".join(problems))
        notes = []
        for spec in rules:
            world = _world(spec.source_ranges)
            if world and spec.kind == "api":
                ctx.out.warn(f"{spec.name}: ports {', '.join(map(str, spec.ports))} are open to the whole internet "
                             f"({', '.join(world)}, as in the guide); list your backend's addresses in "
                             "firewall.api.source_ranges to narrow it")
                notes.append(f"{spec.name} world-open (warning above)")
            elif world:
                notes.append(f"{spec.name} world-open (firewall.allow_world_monitoring = true)")
        return Plan(False, "; ".join(notes) or "source ranges are limited")


@dataclass(frozen=True, kw_only=True)
class FirewallStep(ResourceStep):
    """The rule exists exactly as configured: inserted if missing, patched if different."""

    calls: ClassVar[str] = "firewalls.insert, or firewalls.patch (firewalls.update where a list must be emptied)"
    spec: RuleSpec

    def read(self, ctx: CloudContext):
        try:
            return ctx.api.firewalls.get(project=ctx.project, firewall=self.spec.name)
        except gexc.NotFound:
            return None

    def plan(self, current, ctx: CloudContext) -> Plan:
        want = desired(self.spec, ctx.settings)
        target = view(want)
        summary = f"tcp:{','.join(map(str, self.spec.ports))} from {', '.join(self.spec.source_ranges)} " \
                  f"to tag {self.spec.target_tag}"
        if current is None:
            diff = "".join(f"+ {k}: {v}\n" for k, v in target.items())
            return Plan(True, f"create {self.spec.name}: {summary}", diff, data=("insert", want))
        have = view(current)
        changed = [k for k in FIELDS if have[k] != target[k]]
        if not changed:
            return Plan(False, summary)
        diff = "".join(f"- {k}: {have[k]}\n+ {k}: {target[k]}\n" for k in changed)
        verb = "update" if any(k in _CLEARABLE and target[k] == "-" for k in changed) else "patch"
        return Plan(True, f"{verb} {self.spec.name}: {', '.join(changed)} differ", diff, data=(verb, want))

    def apply(self, plan: Plan, ctx: CloudContext) -> None:
        verb, want = plan.data
        rules = ctx.api.firewalls
        if verb == "insert":
            op = rules.insert(project=ctx.project, firewall_resource=want)
        elif verb == "patch":
            op = rules.patch(project=ctx.project, firewall=self.spec.name, firewall_resource=want)
        else:
            op = rules.update(project=ctx.project, firewall=self.spec.name, firewall_resource=want)
        ctx.wait(op, ctx.project)


def steps(settings: Settings) -> list[ResourceStep]:
    guide = {"api": "1-1", "monitoring": "1-2"}
    rules = [FirewallStep(guide=guide[s.kind], title=f"firewall rule {s.name}", spec=s) for s in specs(settings)]
    return [CheckStep(guide="1", title="source ranges and target tags acceptable"), *rules]
