"""verify's rows for the load balancer: its address answers the app's health path, and Google's own view
(regionBackendServices.getHealth) of every replica is HEALTHY.

They look from where a client looks (the controller, like the guide's 5-2) and ask the load balancer
itself, so a replica that is up on its host but failing its health checks (firewall, a stopped app)
shows here even while the address still answers through the others.
"""

from __future__ import annotations

import time

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from ..config import Settings
from ..engine.output import Output
from ..engine.status import FAILED, OK
from ..verify.reach import fetch
from ..verify.run import HostReport, RowResult
from .context import open_context
from .instances import last
from .lb import names, region
from .steps import describe


def wanted(settings: Settings) -> bool:
    return settings.inventory.target != "hosts" and settings.gcp.lb_wanted


def _health(ctx, groups: dict[str, str]) -> dict[str, str]:
    """instance name -> healthState, over every group of the backend service."""
    states: dict[str, str] = {}
    n = names(ctx.settings)
    for link in groups.values():
        answer = ctx.api.region_backend_services.get_health(
            project=ctx.project, region=region(ctx.settings), backend_service=n.backend_service,
            resource_group_reference_resource=compute_v1.ResourceGroupReference(group=link))
        for status in answer.health_status:
            states[last(status.instance)] = status.health_state or "UNKNOWN"
    return states


def report(settings: Settings, root, out: Output) -> HostReport:
    """One report, labelled with the load balancer's name: the endpoint row, then a row per replica."""
    started = time.monotonic()
    n = names(settings)
    result = HostReport(settings.gcp.lb.name, "")
    try:
        ctx = open_context(settings, root, out)
        rule = ctx.api.forwarding_rules.get(project=ctx.project, region=region(settings),
                                            forwarding_rule=n.forwarding_rule)
        service = ctx.api.region_backend_services.get(project=ctx.project, region=region(settings),
                                                      backend_service=n.backend_service)
    except gexc.NotFound as err:
        result.rows.append(RowResult("lb-endpoint", "load balancer answers /health", "6", FAILED,
                                     f"{describe(err)} (create it: inv lb)"))
        return result
    except Exception as err:  # no API, no credentials: one red row, not a traceback
        result.rows.append(RowResult("lb-endpoint", "load balancer answers /health", "6", FAILED, describe(err)))
        return result
    result.address = rule.I_p_address
    host = f"[{rule.I_p_address}]" if ":" in rule.I_p_address else rule.I_p_address
    answer = fetch(f"http://{host}:{settings.ai_server.port}{settings.gcp.lb.health_path}")
    result.rows.append(RowResult("lb-endpoint", "load balancer answers /health", "6",
                                 OK if answer.ok else FAILED, answer.describe()))
    groups = {last(b.group): b.group for b in service.backends}
    try:
        states = _health(ctx, groups)
    except Exception as err:
        states, problem = {}, describe(err)
    else:
        problem = ""
    for name, _ in settings.gcp.replica_list():
        state = states.get(name)
        if state == "HEALTHY":
            row = RowResult("lb-backend", f"{name} healthy in {n.backend_service}", "6", OK, "HEALTHY (getHealth)")
        else:
            why = problem or (f"{state} (getHealth): the load balancer sends it no traffic" if state
                              else f"not a backend of {n.backend_service} (inv lb adds it)")
            row = RowResult("lb-backend", f"{name} healthy in {n.backend_service}", "6", FAILED, why)
        result.rows.append(row)
    result.seconds = round(time.monotonic() - started, 2)
    return result


def reports(settings: Settings, root, out: Output) -> list[HostReport]:
    """[the load balancer's report] when the settings have one, else []."""
    if not wanted(settings):
        return []
    return [report(settings, root, out)]
