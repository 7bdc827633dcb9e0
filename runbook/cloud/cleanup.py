"""Guide section 8: stop the VM (cost saving), delete it, delete the firewall rules.

Idempotent like the rest: a VM already stopped or gone, a rule already deleted, is `ok`. A
stopped or deleted VM loses its ephemeral external IP, so its record in state.json goes too;
a deleted VM's pinned host key is dropped, since its address may come back as another machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from google.api_core import exceptions as gexc

from ..config import Settings
from ..engine.steps import Plan
from . import hostkeys, state
from .context import CloudContext
from .firewall import specs
from .instances import STOPPED, locate, nat_ip, settle, zone_of
from .steps import ResourceStep


def _forget(ctx: CloudContext, unpin: bool) -> None:
    old = state.forget(ctx.root, ctx.instance_name)
    if unpin and old and old.get("address") and not ctx.sandbox:
        hostkeys.unpin(ctx.known_hosts(), old["address"])


@dataclass(frozen=True, kw_only=True)
class StopStep(ResourceStep):
    """Guide 8 "VM 중지": the VM is stopped (its disk stays, and is billed)."""

    calls: ClassVar[str] = "instances.stop; drops the VM from .l4-runbook/state.json"

    def read(self, ctx: CloudContext):
        return locate(ctx), state.find(ctx.root, ctx.instance_name)

    def plan(self, fact, ctx: CloudContext) -> Plan:
        instance, recorded = fact
        if instance is None or instance.status in STOPPED:
            if recorded:
                return Plan(True, "forget the recorded address (the VM is not running)", data=None)
            return Plan(False, "no VM" if instance is None else f"already {instance.status} in {zone_of(instance)}")
        return Plan(True, f"stop {instance.name} in {zone_of(instance)} (its disk is kept, and billed)",
                    f"- status: {instance.status} ({nat_ip(instance) or 'no IP'})\n+ status: TERMINATED\n",
                    data=instance)

    def apply(self, plan: Plan, ctx: CloudContext) -> None:
        if plan.data is not None:
            instance = settle(ctx, plan.data, ctx.instance_name)
            if instance.status not in STOPPED:
                ctx.wait(ctx.api.instances.stop(project=ctx.project, zone=zone_of(instance), instance=instance.name),
                         instance.name)
        _forget(ctx, unpin=False)


@dataclass(frozen=True, kw_only=True)
class DeleteStep(ResourceStep):
    """Guide 8 "VM 삭제": the VM and its boot disk are gone."""

    calls: ClassVar[str] = "instances.delete; drops its state.json record and pinned host key"

    def read(self, ctx: CloudContext):
        return locate(ctx), state.find(ctx.root, ctx.instance_name)

    def plan(self, fact, ctx: CloudContext) -> Plan:
        instance, recorded = fact
        if instance is None:
            if recorded:
                return Plan(True, "forget the recorded address (the VM is gone)", data=None)
            return Plan(False, "no VM")
        return Plan(True, f"delete {instance.name} in {zone_of(instance)} and its boot disk",
                    f"- {instance.name} ({instance.status}, {zone_of(instance)}, {nat_ip(instance) or 'no IP'})\n",
                    data=instance)

    def apply(self, plan: Plan, ctx: CloudContext) -> None:
        if plan.data is not None:
            instance = settle(ctx, plan.data, ctx.instance_name)
            try:
                ctx.wait(ctx.api.instances.delete(project=ctx.project, zone=zone_of(instance),
                                                  instance=instance.name), instance.name)
            except gexc.NotFound:
                pass  # gone in the meantime: that is what we wanted
        _forget(ctx, unpin=True)


@dataclass(frozen=True, kw_only=True)
class DeleteRuleStep(ResourceStep):
    """Guide 8 "방화벽 삭제": the rule is gone."""

    calls: ClassVar[str] = "firewalls.delete"
    name: str

    def read(self, ctx: CloudContext):
        try:
            return ctx.api.firewalls.get(project=ctx.project, firewall=self.name)
        except gexc.NotFound:
            return None

    def plan(self, rule, ctx: CloudContext) -> Plan:
        if rule is None:
            return Plan(False, "absent")
        return Plan(True, f"delete {self.name}", f"- firewall rule {self.name}\n")

    def apply(self, plan: Plan, ctx: CloudContext) -> None:
        try:
            ctx.wait(ctx.api.firewalls.delete(project=ctx.project, firewall=self.name), ctx.project)
        except gexc.NotFound:
            pass


def steps(settings: Settings, vm: str = "stop", firewall: bool = False) -> list[ResourceStep]:
    """*vm*: "stop", "delete" or "" (leave it); *firewall*: also delete the rules of section 1."""
    out: list[ResourceStep] = []
    if vm == "stop":
        out.append(StopStep(guide="8", title="VM stopped"))
    elif vm == "delete":
        out.append(DeleteStep(guide="8", title="VM deleted"))
    if firewall:
        out += [DeleteRuleStep(guide="8", title=f"firewall rule {s.name} deleted", name=s.name)
                for s in specs(settings)]
    return out


# -- the fleet: replicas and the load balancer --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DeleteRegionalStep(ResourceStep):
    """The load balancer's regional resource is gone (forwarding rule, backend service or health check)."""

    calls: ClassVar[str] = "forwardingRules/regionBackendServices/regionHealthChecks.delete"
    service: str  # the Api attribute: forwarding_rules, region_backend_services, region_health_checks
    field: str  # the request field naming it: forwarding_rule, backend_service, health_check
    name: str

    def _where(self, ctx: CloudContext) -> dict:
        from .lb import region

        return {"project": ctx.project, "region": region(ctx.settings), self.field: self.name}

    def read(self, ctx: CloudContext):
        try:
            return getattr(ctx.api, self.service).get(**self._where(ctx))
        except gexc.NotFound:
            return None

    def plan(self, found, ctx: CloudContext) -> Plan:
        if found is None:
            return Plan(False, "absent")
        return Plan(True, f"delete {self.name}", f"- {self.field.replace('_', ' ')} {self.name}\n")

    def apply(self, plan: Plan, ctx: CloudContext) -> None:
        try:
            ctx.wait(getattr(ctx.api, self.service).delete(**self._where(ctx)), self.name)
        except gexc.NotFound:
            pass


def _groups(ctx: CloudContext) -> list:
    """The load balancer's instance groups, in every zone (one aggregated list)."""
    from .lb import names

    prefix = names(ctx.settings).prefix
    pairs = ctx.api.instance_groups.aggregated_list(request={"project": ctx.project})
    return [g for _, scoped in pairs for g in scoped.instance_groups
            if g.name.startswith(f"{prefix}-") and g.zone and g.name == names(ctx.settings).group(last_zone(g))]


def last_zone(group) -> str:
    return group.zone.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True, kw_only=True)
class DeleteGroupsStep(ResourceStep):
    """The load balancer's per-zone instance groups are gone (their VMs stay)."""

    calls: ClassVar[str] = "instanceGroups.aggregatedList (a read), instanceGroups.delete"

    def read(self, ctx: CloudContext):
        return _groups(ctx)

    def plan(self, groups, ctx: CloudContext) -> Plan:
        if not groups:
            return Plan(False, "absent")
        return Plan(True, f"delete {', '.join(g.name for g in groups)}",
                    "".join(f"- instance group {g.name} ({last_zone(g)})\n" for g in groups), data=groups)

    def apply(self, plan: Plan, ctx: CloudContext) -> None:
        for group in plan.data:
            try:
                ctx.wait(ctx.api.instance_groups.delete(project=ctx.project, zone=last_zone(group),
                                                        instance_group=group.name), group.name)
            except gexc.NotFound:
                pass


@dataclass(frozen=True, kw_only=True)
class LeaveGroupStep(ResourceStep):
    """Before one replica is deleted: it leaves the load balancer's instance group, so no traffic is sent to it."""

    calls: ClassVar[str] = "instanceGroups.removeInstances"

    def read(self, ctx: CloudContext):
        from google.cloud import compute_v1

        from .lb import names

        instance = locate(ctx)
        if instance is None:
            return None
        group = names(ctx.settings).group(zone_of(instance))
        try:
            members = ctx.api.instance_groups.list_instances(
                project=ctx.project, zone=zone_of(instance), instance_group=group,
                instance_groups_list_instances_request_resource=compute_v1.InstanceGroupsListInstancesRequest(
                    instance_state="ALL"))
        except gexc.NotFound:
            return None
        return (instance, group) if any(m.instance.rsplit("/", 1)[-1] == instance.name for m in members) else None

    def plan(self, fact, ctx: CloudContext) -> Plan:
        if fact is None:
            return Plan(False, "in no instance group of the load balancer")
        instance, group = fact
        return Plan(True, f"remove {instance.name} from {group}", f"- {group}: {instance.name}\n", data=fact)

    def apply(self, plan: Plan, ctx: CloudContext) -> None:
        from google.cloud import compute_v1

        instance, group = plan.data
        ctx.wait(ctx.api.instance_groups.remove_instances(
            project=ctx.project, zone=zone_of(instance), instance_group=group,
            instance_groups_remove_instances_request_resource=compute_v1.InstanceGroupsRemoveInstancesRequest(
                instances=[compute_v1.InstanceReference(instance=instance.self_link)])), group)


def lb_steps(settings: Settings) -> list[ResourceStep]:
    """The load balancer torn down in dependency order: what refers to a resource goes before it."""
    from .lb import names

    n = names(settings)
    return [
        DeleteRegionalStep(guide="8", title=f"forwarding rule {n.forwarding_rule} deleted", service="forwarding_rules",
                           field="forwarding_rule", name=n.forwarding_rule),
        DeleteRegionalStep(guide="8", title=f"backend service {n.backend_service} deleted",
                           service="region_backend_services", field="backend_service", name=n.backend_service),
        DeleteRegionalStep(guide="8", title=f"health check {n.health_check} deleted", service="region_health_checks",
                           field="health_check", name=n.health_check),
        DeleteGroupsStep(guide="8", title="instance groups deleted"),
    ]


def vm_steps(action: str, leave_group: bool) -> list[ResourceStep]:
    out: list[ResourceStep] = []
    if action == "stop":
        out.append(StopStep(guide="8", title="VM stopped"))
    elif action == "delete":
        if leave_group:
            out.append(LeaveGroupStep(guide="8", title="out of the load balancer's instance group"))
        out.append(DeleteStep(guide="8", title="VM deleted"))
    return out


def firewall_steps(settings: Settings, guide_rules: bool, health_rule: bool) -> list[ResourceStep]:
    from .lb import names

    out: list[ResourceStep] = []
    if health_rule:
        name = names(settings).firewall
        out.append(DeleteRuleStep(guide="8", title=f"firewall rule {name} deleted", name=name))
    if guide_rules:
        out += [DeleteRuleStep(guide="8", title=f"firewall rule {s.name} deleted", name=s.name)
                for s in specs(settings)]
    return out
