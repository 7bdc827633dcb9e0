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
    old = state.forget(ctx.root, ctx.settings.gcp.instance_name)
    if unpin and old and old.get("address") and not ctx.sandbox:
        hostkeys.unpin(ctx.known_hosts(), old["address"])


@dataclass(frozen=True, kw_only=True)
class StopStep(ResourceStep):
    """Guide 8 "VM 중지": the VM is stopped (its disk stays, and is billed)."""

    calls: ClassVar[str] = "instances.stop; drops the VM from .l4-runbook/state.json"

    def read(self, ctx: CloudContext):
        return locate(ctx), state.find(ctx.root, ctx.settings.gcp.instance_name)

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
            instance = settle(ctx, plan.data, ctx.settings.gcp.instance_name)
            if instance.status not in STOPPED:
                ctx.wait(ctx.api.instances.stop(project=ctx.project, zone=zone_of(instance), instance=instance.name),
                         instance.name)
        _forget(ctx, unpin=False)


@dataclass(frozen=True, kw_only=True)
class DeleteStep(ResourceStep):
    """Guide 8 "VM 삭제": the VM and its boot disk are gone."""

    calls: ClassVar[str] = "instances.delete; drops its state.json record and pinned host key"

    def read(self, ctx: CloudContext):
        return locate(ctx), state.find(ctx.root, ctx.settings.gcp.instance_name)

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
            instance = settle(ctx, plan.data, ctx.settings.gcp.instance_name)
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
