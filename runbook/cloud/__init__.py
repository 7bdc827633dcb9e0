"""The guide's cloud sections on Compute Engine, through google-cloud-compute (REST), no gcloud.

    guide 1     firewall.py   the two ingress rules (service ports, monitoring ports)
    guide 2-1   preflight.py  newest image of the family; Deep Learning VM images refused on G2 (B-1)
    guide 2-2   preflight.py  zones offering the L4; quota for boot disk and GPUs (B-16)
    guide 2-3   vm.py         create (zone failover on stockout), start if stopped, tags (B-5), drift
    guide 5-1   vm.py         the external IP, recorded in state.py for the host tasks
    (ssh)       hostkeys.py   the VM's host key pinned before the first connection
    guide 8     cleanup.py    stop / delete the VM, delete the rules
    (fleet)     replicas.py   several VMs (gcp.replicas or [[gcp.instances]]): one vm section each, in parallel
    (fleet)     lb.py         Google's passthrough load balancer in front of the replicas (inv lb)

Steps are ResourceSteps (steps.py) run by the same kind of check -> diff -> apply loop as the
host steps. For the sandbox, local_api.py runs our Compute server with sandbox_backend.py, so
"creating a VM" boots a sandbox host.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # google-cloud-compute is imported by a cloud section's run, not by listing tasks
    from ..config import Settings
    from ..engine.results import SectionResult
    from .context import CloudContext
    from .steps import ResourceStep


def _from(module: str, function: str) -> Callable:
    """*function* of the cloud module, imported on first call."""
    def call(*args):
        return getattr(import_module(f"{__name__}.{module}"), function)(*args)

    call.__name__ = call.__qualname__ = f"{module}.{function}"
    return call


@dataclass(frozen=True)
class CloudSection:
    name: str
    guide: str
    title: str
    build: Callable[[Settings], list[ResourceStep]]
    host: Callable[[Settings], str]  # the label in the output and summary's host column
    per_replica: bool = False  # run once per replica (a row each), not once for the project
    # Part of a deploy only when this says so (asked for by name, it always runs).
    wanted: Callable[[Settings], bool] = lambda s: True


CLOUD_SECTIONS: dict[str, CloudSection] = {
    s.name: s
    for s in [
        CloudSection("firewall", "1", "firewall rules for the service and monitoring ports", _from("firewall", "steps"),
                     lambda s: s.gcp.project_id),
        CloudSection("vm", "2", "the L4 VM: created, running, as configured, its IP recorded", _from("vm", "steps"),
                     lambda s: s.gcp.instance_name, per_replica=True),
        CloudSection("lb", "2", "one endpoint for the replicas through Google's load balancer", _from("lb", "steps"),
                     lambda s: s.gcp.lb.name, wanted=lambda s: s.gcp.lb_wanted),
    ]
}


def run(ctx: CloudContext, names: list[str]) -> list[SectionResult]:
    """Sections in order; a failed one stops the rest (no VM without its firewall). A section that is not
    wanted by the settings (the load balancer of a single VM) is left out unless it is the only one asked for."""
    from ..engine.results import FAILED
    from .replicas import run_per_replica
    from .steps import run_section

    results = []
    for name in names:
        section = CLOUD_SECTIONS[name]
        if names != [name] and not section.wanted(ctx.settings):
            continue
        if section.per_replica:
            batch = run_per_replica(ctx, name, section.guide, section.build(ctx.settings))
        else:
            batch = [run_section(ctx, section.host(ctx.settings), name, section.guide, section.build(ctx.settings))]
        results += batch
        if any(r.status == FAILED for r in batch):
            break
    return results
