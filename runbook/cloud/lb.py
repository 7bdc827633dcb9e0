"""One endpoint for the replicas: Google's own passthrough Network Load Balancer in front of the app.

What is made (all regional, in the region of gcp.zone), each created, patched or left alone like the
firewall rules, with a diff on --dry-run:

    firewall rule    <lb>-allow-health-checks: the health-check source ranges (below) to the app's port
    instance groups  <lb>-<zone>: one unmanaged group per zone holding that zone's replicas, named port
                     "http" = ai_server.port
    health check     <lb>-hc: HTTP GET ai_server.port + gcp.lb.health_path, Google's default timing
    backend service  <lb>-bs: loadBalancingScheme EXTERNAL (or INTERNAL), protocol TCP, balancing mode
                     CONNECTION, one backend per instance group
    forwarding rule  <lb>-fr: TCP ai_server.port to the backend service; its address is the endpoint

A backend service with a forwarding rule and no target proxy is the backend service-based external (or
internal) passthrough Network Load Balancer (https://cloud.google.com/load-balancing/docs/network/
networklb-backend-service, https://cloud.google.com/load-balancing/docs/internal): Google's managed engine,
no proxy of ours. Its backends must be in the load balancer's region, so a replica that failed over to
another region is reported and left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from ..config import Settings
from ..engine.steps import Plan
from ..errors import RunbookError
from .context import CloudContext
from .firewall import FirewallStep, RuleSpec
from .instances import last, region_of, zone_of
from .steps import ResourceStep

# Where Google's health-check probes come from, per load balancer type: the "Firewall rules" table of the
# load-balancing docs (https://cloud.google.com/load-balancing/docs/firewall-rules, IPv4 rows of "External
# passthrough Network Load Balancer" and "Internal passthrough Network Load Balancer"; the same ranges are on
# https://cloud.google.com/load-balancing/docs/health-check-concepts, "Probe IP ranges and firewall rules").
HEALTH_CHECK_RANGES = {
    "external": ("35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22"),
    "internal": ("35.191.0.0/16", "130.211.0.0/22"),
}
SCHEME = {"external": "EXTERNAL", "internal": "INTERNAL"}
PORT_NAME = "http"


@dataclass(frozen=True)
class Names:
    firewall: str
    health_check: str
    backend_service: str
    forwarding_rule: str
    prefix: str

    def group(self, zone: str) -> str:
        return f"{self.prefix}-{zone}"[:63].rstrip("-")


def names(settings: Settings) -> Names:
    n = settings.gcp.lb.name
    return Names(f"{n}-allow-health-checks", f"{n}-hc", f"{n}-bs", f"{n}-fr", n)


def region(settings: Settings) -> str:
    return region_of(settings.gcp.zone)


def _link(ctx: CloudContext, *parts: str) -> str:
    """A partial resource URL (projects/P/...), which every reference field of these resources accepts."""
    return "/".join(("projects", ctx.project, *parts))


def health_rule(settings: Settings) -> RuleSpec:
    lb = settings.gcp.lb
    return RuleSpec("health", names(settings).firewall, (settings.ai_server.port,),
                    settings.firewall.api.target_tag, HEALTH_CHECK_RANGES[lb.scheme])


def replicas_in_region(ctx: CloudContext) -> dict[str, list[compute_v1.Instance]]:
    """The configured replicas that exist, by zone of the load balancer's region (one aggregated list)."""
    if "lb_replicas" in ctx.notes:
        return ctx.notes["lb_replicas"]
    wanted = [name for name, _ in ctx.settings.gcp.replica_list()]
    pairs = ctx.api.instances.aggregated_list(request={"project": ctx.project})
    found = {i.name: i for _, scoped in pairs for i in scoped.instances if i.name in wanted}
    by_zone: dict[str, list[compute_v1.Instance]] = {}
    outside = []
    for name in wanted:
        instance = found.get(name)
        if instance is None:
            continue
        if region_of(zone_of(instance)) != region(ctx.settings):
            outside.append(f"{name} ({zone_of(instance)})")
            continue
        by_zone.setdefault(zone_of(instance), []).append(instance)
    ctx.notes["lb_replicas"] = by_zone
    ctx.notes["lb_missing"] = [n for n in wanted if n not in found]
    ctx.notes["lb_outside"] = outside
    return by_zone


@dataclass(frozen=True, kw_only=True)
class ReplicasStep(ResourceStep):
    """The replicas the load balancer serves exist in its region (a regional load balancer's backends must)."""

    calls: ClassVar[str] = "instances.aggregatedList (a read)"

    def read(self, ctx: CloudContext):
        return replicas_in_region(ctx)

    def plan(self, by_zone, ctx: CloudContext) -> Plan:
        count = sum(len(v) for v in by_zone.values())
        missing, outside = ctx.notes["lb_missing"], ctx.notes["lb_outside"]
        if outside:
            ctx.out.warn(f"left out of the load balancer (not in region {region(ctx.settings)}): {', '.join(outside)}")
        if not count and not ctx.dry_run:
            return Plan(False, error=f"no replica exists in {region(ctx.settings)} yet; create them first: inv vm")
        note = f"; not created yet: {', '.join(missing)}" if missing else ""
        zones = ", ".join(f"{z} ({len(v)})" for z, v in sorted(by_zone.items()))
        return Plan(False, f"{count} replica(s) in {zones or 'no zone yet'}{note}")


def _group_view(group: compute_v1.InstanceGroup | None, members: list[str]) -> dict[str, str]:
    ports = ", ".join(sorted(f"{p.name}:{p.port}" for p in group.named_ports)) if group else "-"
    return {"named_ports": ports or "-", "instances": ", ".join(sorted(members)) or "-"}


@dataclass(frozen=True, kw_only=True)
class InstanceGroupsStep(ResourceStep):
    """Per zone an unmanaged instance group holding that zone's replicas, with the named port http.

    Never emptied: a replica no longer in the settings stays in its group until inv cleanup removes it."""

    calls: ClassVar[str] = ("instanceGroups.insert, instanceGroups.addInstances, instanceGroups.setNamedPorts, "
                            "instanceGroups.listInstances (a read)")

    def read(self, ctx: CloudContext):
        n = names(ctx.settings)
        out = {}
        for zone, instances in sorted(replicas_in_region(ctx).items()):
            try:
                group = ctx.api.instance_groups.get(project=ctx.project, zone=zone, instance_group=n.group(zone))
                listed = ctx.api.instance_groups.list_instances(
                    project=ctx.project, zone=zone, instance_group=n.group(zone),
                    instance_groups_list_instances_request_resource=compute_v1.InstanceGroupsListInstancesRequest(
                        instance_state="ALL"))
                members = [last(i.instance) for i in listed]
            except gexc.NotFound:
                group, members = None, []
            out[zone] = (group, members, instances)
        return out

    def plan(self, fact, ctx: CloudContext) -> Plan:
        n, port = names(ctx.settings), ctx.settings.ai_server.port
        todo, diff, kept = [], "", []
        for zone, (group, members, instances) in fact.items():
            want_members = sorted({*members, *(i.name for i in instances)})
            have = _group_view(group, members)
            want = {"named_ports": f"{PORT_NAME}:{port}", "instances": ", ".join(want_members)}
            extra = [m for m in members if m not in {i.name for i in instances}]
            kept += extra
            if group is None:
                diff += f"+ {n.group(zone)}: " + "; ".join(f"{k}: {v}" for k, v in want.items()) + "\n"
                todo.append((zone, "insert", [i.self_link for i in instances]))
                continue
            add = [i.self_link for i in instances if i.name not in members]
            ports_differ = have["named_ports"] != want["named_ports"]
            if add or ports_differ:
                diff += "".join(f"- {n.group(zone)} {k}: {have[k]}\n+ {n.group(zone)} {k}: {want[k]}\n"
                                for k in want if have[k] != want[k])
                todo.append((zone, "update", (add, ports_differ)))
        if kept:
            ctx.out.warn(f"left in their instance groups (not in the settings; inv cleanup --instance NAME removes "
                         f"them): {', '.join(kept)}")
        summary = ", ".join(f"{n.group(z)}" for z in fact) or "no replica yet"
        if not todo:
            return Plan(False, summary)
        return Plan(True, f"{len(todo)} instance group(s) to create or update", diff, data=todo)

    def apply(self, plan: Plan, ctx: CloudContext) -> str:
        n, port = names(ctx.settings), ctx.settings.ai_server.port
        groups = ctx.api.instance_groups
        for zone, action, arg in plan.data:
            name = n.group(zone)
            if action == "insert":
                ctx.wait(groups.insert(project=ctx.project, zone=zone, instance_group_resource=compute_v1.InstanceGroup(
                    name=name, description="l4-runbook: the replicas of this zone behind the load balancer",
                    named_ports=[compute_v1.NamedPort(name=PORT_NAME, port=port)],
                    network=_link(ctx, "global", "networks", ctx.settings.gcp.network))), name)
                add, set_ports = arg, False
            else:
                add, set_ports = arg
            if set_ports:
                group = groups.get(project=ctx.project, zone=zone, instance_group=name)
                ctx.wait(groups.set_named_ports(
                    project=ctx.project, zone=zone, instance_group=name,
                    instance_groups_set_named_ports_request_resource=compute_v1.InstanceGroupsSetNamedPortsRequest(
                        named_ports=[compute_v1.NamedPort(name=PORT_NAME, port=port)],
                        fingerprint=group.fingerprint)), name)
            if add:
                ctx.wait(groups.add_instances(
                    project=ctx.project, zone=zone, instance_group=name,
                    instance_groups_add_instances_request_resource=compute_v1.InstanceGroupsAddInstancesRequest(
                        instances=[compute_v1.InstanceReference(instance=link) for link in add])), name)
        return f"{len(plan.data)} instance group(s) created or updated"


def desired_health_check(ctx: CloudContext) -> compute_v1.HealthCheck:
    lb = ctx.settings.gcp.lb
    return compute_v1.HealthCheck(
        name=names(ctx.settings).health_check,
        description="l4-runbook: the app's health endpoint on every replica",
        type_="HTTP",
        http_health_check=compute_v1.HTTPHealthCheck(port=ctx.settings.ai_server.port, request_path=lb.health_path),
        check_interval_sec=lb.check_interval_sec, timeout_sec=lb.timeout_sec,
        healthy_threshold=lb.healthy_threshold, unhealthy_threshold=lb.unhealthy_threshold,
    )


def health_check_view(hc: compute_v1.HealthCheck) -> dict[str, str]:
    http = hc.http_health_check
    return {"type": hc.type_ or "-", "port": str(http.port), "request_path": http.request_path or "/",
            "check_interval_sec": str(hc.check_interval_sec), "timeout_sec": str(hc.timeout_sec),
            "healthy_threshold": str(hc.healthy_threshold), "unhealthy_threshold": str(hc.unhealthy_threshold)}


def _get_or_none(get, **params):
    """One resource read through the client, None where Google answers 404 (not created yet, or deleted)."""
    try:
        return get(**params)
    except gexc.NotFound:
        return None


def forwarding_rule(ctx: CloudContext) -> compute_v1.ForwardingRule | None:
    """The load balancer's forwarding rule as Google has it (its step and the endpoint read the same)."""
    return _get_or_none(ctx.api.forwarding_rules.get, project=ctx.project, region=region(ctx.settings),
                        forwarding_rule=names(ctx.settings).forwarding_rule)


def _diff(have: dict[str, str] | None, want: dict[str, str]) -> str:
    if have is None:
        return "".join(f"+ {k}: {v}\n" for k, v in want.items())
    return "".join(f"- {k}: {have[k]}\n+ {k}: {v}\n" for k, v in want.items() if have.get(k) != v)


@dataclass(frozen=True, kw_only=True)
class HealthCheckStep(ResourceStep):
    """The regional HTTP health check on the app's /health (port ai_server.port): inserted or patched."""

    calls: ClassVar[str] = "regionHealthChecks.insert or regionHealthChecks.patch"

    def read(self, ctx: CloudContext):
        return _get_or_none(ctx.api.region_health_checks.get, project=ctx.project, region=region(ctx.settings),
                            health_check=names(ctx.settings).health_check)

    def plan(self, current, ctx: CloudContext) -> Plan:
        want = desired_health_check(ctx)
        target = health_check_view(want)
        summary = f"HTTP :{target['port']}{target['request_path']} every {target['check_interval_sec']}s"
        if current is None:
            return Plan(True, f"create {want.name}: {summary}", _diff(None, target), data="insert")
        diff = _diff(health_check_view(current), target)
        if not diff:
            return Plan(False, summary)
        return Plan(True, f"patch {want.name}", diff, data="patch")

    def apply(self, plan: Plan, ctx: CloudContext) -> None:
        want, where = desired_health_check(ctx), {"project": ctx.project, "region": region(ctx.settings)}
        checks = ctx.api.region_health_checks
        if plan.data == "insert":
            op = checks.insert(**where, health_check_resource=want)
        else:
            op = checks.patch(**where, health_check=want.name, health_check_resource=want)
        ctx.wait(op, want.name)


def desired_backend_service(ctx: CloudContext) -> compute_v1.BackendService:
    n, r = names(ctx.settings), region(ctx.settings)
    zones = sorted(replicas_in_region(ctx))
    return compute_v1.BackendService(
        name=n.backend_service,
        description="l4-runbook: the replicas' instance groups",
        load_balancing_scheme=SCHEME[ctx.settings.gcp.lb.scheme],
        protocol="TCP",
        health_checks=[_link(ctx, "regions", r, "healthChecks", n.health_check)],
        backends=[compute_v1.Backend(group=_link(ctx, "zones", z, "instanceGroups", n.group(z)),
                                     balancing_mode="CONNECTION") for z in zones],
    )


def backend_service_view(bs: compute_v1.BackendService) -> dict[str, str]:
    return {"load_balancing_scheme": bs.load_balancing_scheme or "-", "protocol": bs.protocol or "-",
            "health_checks": ", ".join(sorted(last(h) for h in bs.health_checks)) or "-",
            "backends": ", ".join(sorted(f"{last(b.group)} ({b.balancing_mode})" for b in bs.backends)) or "-"}


@dataclass(frozen=True, kw_only=True)
class BackendServiceStep(ResourceStep):
    """The regional backend service: the health check and one backend per instance group, patched as zones change.

    Its scheme cannot change in place, so a different scheme is reported."""

    calls: ClassVar[str] = "regionBackendServices.insert or regionBackendServices.patch"

    def read(self, ctx: CloudContext):
        return _get_or_none(ctx.api.region_backend_services.get, project=ctx.project, region=region(ctx.settings),
                            backend_service=names(ctx.settings).backend_service)

    def plan(self, current, ctx: CloudContext) -> Plan:
        want = desired_backend_service(ctx)
        target = backend_service_view(want)
        summary = f"{target['load_balancing_scheme']} TCP, backends {target['backends']}"
        if current is None:
            return Plan(True, f"create {want.name}: {summary}", _diff(None, target), data="insert")
        have = backend_service_view(current)
        diff = _diff(have, target)
        if not diff:
            return Plan(False, summary)
        if have["load_balancing_scheme"] != target["load_balancing_scheme"]:
            return Plan(False, "scheme differs", diff, error=(
                f"{want.name} is {have['load_balancing_scheme']}, the settings say {target['load_balancing_scheme']} "
                "(gcp.lb.scheme): a backend service's scheme cannot change in place. Delete the load balancer "
                "(inv cleanup --lb --yes) and run inv lb again, or set gcp.lb.scheme back."))
        return Plan(True, f"patch {want.name}", diff, data="patch")

    def apply(self, plan: Plan, ctx: CloudContext) -> None:
        want, where = desired_backend_service(ctx), {"project": ctx.project, "region": region(ctx.settings)}
        services = ctx.api.region_backend_services
        if plan.data == "insert":
            op = services.insert(**where, backend_service_resource=want)
        else:  # a patch must carry the current fingerprint (BackendService.fingerprint, API reference)
            want.fingerprint = services.get(**where, backend_service=want.name).fingerprint
            op = services.patch(**where, backend_service=want.name, backend_service_resource=want)
        ctx.wait(op, want.name)


def desired_forwarding_rule(ctx: CloudContext) -> compute_v1.ForwardingRule:
    n, r, scheme = names(ctx.settings), region(ctx.settings), ctx.settings.gcp.lb.scheme
    rule = compute_v1.ForwardingRule(
        name=n.forwarding_rule,
        description="l4-runbook: the replicas' one endpoint",
        I_p_protocol="TCP",
        ports=[str(ctx.settings.ai_server.port)],
        load_balancing_scheme=SCHEME[scheme],
        backend_service=_link(ctx, "regions", r, "backendServices", n.backend_service),
    )
    if scheme == "internal":  # an internal address comes from the VPC network's subnet in the region
        rule.network = _link(ctx, "global", "networks", ctx.settings.gcp.network)
    return rule


def forwarding_rule_view(rule: compute_v1.ForwardingRule) -> dict[str, str]:
    return {"load_balancing_scheme": rule.load_balancing_scheme or "-", "protocol": rule.I_p_protocol or "-",
            "ports": ", ".join(rule.ports) or "-", "backend_service": last(rule.backend_service) or "-"}


@dataclass(frozen=True, kw_only=True)
class ForwardingRuleStep(ResourceStep):
    """The forwarding rule, whose address is the endpoint: inserted once; a difference is reported, not repaired.

    Its fields cannot change in place, and deleting it would take away the address people use."""

    calls: ClassVar[str] = "forwardingRules.insert"

    def read(self, ctx: CloudContext):
        return forwarding_rule(ctx)

    def plan(self, current, ctx: CloudContext) -> Plan:
        want = desired_forwarding_rule(ctx)
        target = forwarding_rule_view(want)
        if current is None:
            return Plan(True, f"create {want.name} (an address is assigned)", _diff(None, target), data=want)
        diff = _diff(forwarding_rule_view(current), target)
        address = f"{current.I_p_address}:{ctx.settings.ai_server.port}"
        if not diff:
            return Plan(False, f"endpoint http://{address}")
        return Plan(False, "differs", diff, error=(
            f"{want.name} differs from the settings and a forwarding rule cannot be changed in place. Delete the "
            f"load balancer (inv cleanup --lb --yes; its address {current.I_p_address} goes too) and run inv lb."))

    def apply(self, plan: Plan, ctx: CloudContext) -> str:
        where = {"project": ctx.project, "region": region(ctx.settings)}
        ctx.wait(ctx.api.forwarding_rules.insert(**where, forwarding_rule_resource=plan.data), plan.data.name)
        rule = ctx.api.forwarding_rules.get(**where, forwarding_rule=plan.data.name)
        return f"endpoint http://{rule.I_p_address}:{ctx.settings.ai_server.port}"


def steps(settings: Settings) -> list[ResourceStep]:
    return [
        ReplicasStep(guide="2", title="replicas in the load balancer's region"),
        FirewallStep(guide="1", title=f"firewall rule {names(settings).firewall} (health-check probes)",
                     spec=health_rule(settings)),
        InstanceGroupsStep(guide="2", title="an unmanaged instance group per zone, named port http"),
        HealthCheckStep(guide="6", title=f"health check {names(settings).health_check} on the app's /health"),
        BackendServiceStep(guide="2", title=f"backend service {names(settings).backend_service}"),
        ForwardingRuleStep(guide="5-1", title=f"forwarding rule {names(settings).forwarding_rule}: the endpoint"),
    ]


def endpoint(ctx: CloudContext) -> str | None:
    """The forwarding rule's address, None when there is none."""
    rule = forwarding_rule(ctx)
    if rule is None:
        return None
    if not rule.I_p_address:
        raise RunbookError(f"{rule.name} has no address")
    return rule.I_p_address
