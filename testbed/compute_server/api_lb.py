"""The load balancer's resources: instanceGroups (unmanaged, zonal), regionHealthChecks,
regionBackendServices (with getHealth) and forwardingRules.

Modelled on the backend service-based passthrough Network Load Balancers, external and internal
(https://cloud.google.com/load-balancing/docs/network/networklb-backend-service,
https://cloud.google.com/load-balancing/docs/internal), with the API reference's rules for each field
(https://cloud.google.com/compute/docs/reference/rest/v1/regionBackendServices and its siblings). What is
refused, as Google refuses it: references to resources that do not exist or sit in another region or
zone, a health check whose timeout exceeds its interval, a balancing mode other than CONNECTION for a
passthrough backend service, a forwarding rule whose scheme differs from its backend service's, and
deleting what another resource still uses (resourceInUseByAnotherResource). Messages are paraphrased
where no verbatim sample was at hand. The health of each backend and the forwarding rule's answering
address come from the data plane (dataplane.py).
"""

from __future__ import annotations

import re

from . import catalog, errors
from .routes import Request, aggregated, listing, route
from .sim import Simulator
from .store import fingerprint, last, new_id, now, public

_BASES = ("https://www.googleapis.com/compute/v1/", "https://compute.googleapis.com/compute/v1/")
PASSTHROUGH = ("EXTERNAL", "INTERNAL")


def _ref(sim: Simulator, project: str, value, field: str, scope: str, collection: str) -> tuple[str, str]:
    """(scope value, name) of a full or partial URL [projects/P/]{zones|regions}/S/<collection>/NAME."""
    path = value if isinstance(value, str) else ""
    for base in _BASES:
        if path.startswith(base):
            path = path[len(base):]
    m = re.fullmatch(rf"(?:projects/(?P<project>[^/]+)/)?{scope}/(?P<scope>[^/]+)/{collection}/(?P<name>[^/]+)", path)
    if not m or (m["project"] and m["project"] != project):
        raise errors.invalid_field(field, str(value), "The URL is malformed.")
    return m["scope"], m["name"]


def _in_use(kind: str, path: str, user: str) -> errors.ApiError:
    # Compute's text for deleting a resource another one refers to (the disk form of errors.resource_in_use).
    return errors.ApiError(400, "resourceInUseByAnotherResource",
                           f"The {kind} resource '{path}' is already being used by '{user}'")


def _op(sim: Simulator, req: Request, resource: dict, op_type: str, zone: str | None = None,
        region: str | None = None) -> dict:
    return sim.ops.start(req.project, zone=zone, region=region, op_type=op_type, target_link=resource["selfLink"],
                         target_id=resource["id"], request_id=req.query.get("requestId"))


def _short(link: str) -> str:
    return link.split("/compute/v1/", 1)[-1]


def _users(sim: Simulator, project: str, link: str) -> list[str]:
    """Which resources refer to *link*: backend services (groups, health checks), forwarding rules."""
    proj = sim.store.project(project)
    out = []
    for services in proj["backendServices"].values():
        for bs in services.values():
            refs = [b.get("group") for b in bs.get("backends", [])] + list(bs.get("healthChecks", []))
            if link in refs:
                out.append(bs["selfLink"])
    for rules in proj["forwardingRules"].values():
        for rule in rules.values():
            if rule.get("backendService") == link:
                out.append(rule["selfLink"])
    return out


# -- instance groups (zonal, unmanaged) ---------------------------------------------------------------------------


def _group(sim: Simulator, project: str, zone: str, name: str) -> dict:
    group = sim.store.project(project)["instanceGroups"].get(zone, {}).get(name)
    if group is None:
        raise errors.not_found(f"projects/{project}/zones/{zone}/instanceGroups/{name}")
    return group


def _named_ports(ports) -> list[dict]:
    out = []
    for i, port in enumerate(ports or []):
        number = int(port.get("port", 0))
        if not 1 <= number <= 65535:
            raise errors.invalid_field(f"resource.namedPorts[{i}].port", str(number), "Must be between 1 and 65535.")
        Simulator.check_name(f"resource.namedPorts[{i}].name", port.get("name", ""))
        out.append({"name": port["name"], "port": number})
    return out


@route("POST", "/zones/{zone}/instanceGroups")
def insert_group(sim: Simulator, req: Request) -> dict:
    project, zone, body = req.project, req.params["zone"], req.body or {}
    sim.require_zone(project, zone)
    sim.check_name("resource.name", body.get("name", ""))
    with sim.store.lock:
        groups = sim.store.project(project)["instanceGroups"].setdefault(zone, {})
        if body["name"] in groups:
            raise errors.already_exists(f"projects/{project}/zones/{zone}/instanceGroups/{body['name']}")
        ports = _named_ports(body.get("namedPorts"))
        network = last(body.get("network") or "default")
        group = {"kind": "compute#instanceGroup", "id": new_id(), "creationTimestamp": now(), "name": body["name"],
                 "description": body.get("description", ""), "zone": sim.link(project, "zones", zone),
                 "network": sim.link(project, "global", "networks", network), "size": 0,
                 "selfLink": sim.link(project, "zones", zone, "instanceGroups", body["name"]),
                 "fingerprint": fingerprint(ports), "_members": []}
        if ports:
            group["namedPorts"] = ports
        groups[body["name"]] = group
        sim.store.commit()
        return _op(sim, req, group, "compute.instanceGroups.insert", zone=zone)


@route("GET", "/zones/{zone}/instanceGroups/{instanceGroup}")
def get_group(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        return public(_group(sim, req.project, req.params["zone"], req.params["instanceGroup"]))


@route("GET", "/zones/{zone}/instanceGroups")
def list_groups(sim: Simulator, req: Request) -> dict:
    zone = req.params["zone"]
    sim.require_zone(req.project, zone)
    with sim.store.lock:
        items = [public(g) for g in sim.store.project(req.project)["instanceGroups"].get(zone, {}).values()]
    return listing(req, items, "compute#instanceGroupList", sim.link(req.project, "zones", zone, "instanceGroups"))


@route("GET", "/aggregated/instanceGroups")
def aggregated_groups(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        by_zone = sim.store.project(req.project)["instanceGroups"]
        scopes = {f"zones/{z}": [public(g) for g in by_zone.get(z, {}).values()] for z in sim.zones()}
    return aggregated(req, scopes, "instanceGroups", "compute#instanceGroupAggregatedList",
                      sim.link(req.project, "aggregated", "instanceGroups"))


def _members_of(sim: Simulator, req: Request, group: dict, field: str) -> list[str]:
    """The instances a request names, as selfLinks; each must exist in the group's zone."""
    zone = last(group["zone"])
    links = []
    for i, ref in enumerate((req.body or {}).get("instances") or []):
        where, name = _ref(sim, req.project, ref.get("instance"), f"{field}[{i}].instance", "zones", "instances")
        if where != zone:
            # Paraphrased: an unmanaged group holds VMs of its own zone only.
            raise errors.invalid_field(f"{field}[{i}].instance", ref.get("instance", ""),
                                       f"The instance must be in the instance group's zone ('{zone}').")
        if name not in sim.store.project(req.project)["instances"].get(zone, {}):
            raise errors.not_found(f"projects/{req.project}/zones/{zone}/instances/{name}")
        links.append(sim.link(req.project, "zones", zone, "instances", name))
    return links


@route("POST", "/zones/{zone}/instanceGroups/{instanceGroup}/addInstances")
def add_instances(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        group = _group(sim, req.project, req.params["zone"], req.params["instanceGroup"])
        links = _members_of(sim, req, group, "resource.instances")
        for link in links:
            if link in group["_members"]:
                # Compute's answer when a VM is added to a group that already holds it (reason memberAlreadyExists).
                raise errors.ApiError(400, "memberAlreadyExists", f"The resource '{_short(link)}' is already a "
                                      f"member of '{_short(group['selfLink'])}'")
        group["_members"] = [*group["_members"], *links]
        group["size"] = len(group["_members"])
        sim.store.commit()
        return _op(sim, req, group, "compute.instanceGroups.addInstances", zone=req.params["zone"])


@route("POST", "/zones/{zone}/instanceGroups/{instanceGroup}/removeInstances")
def remove_instances(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        group = _group(sim, req.project, req.params["zone"], req.params["instanceGroup"])
        links = set(_members_of(sim, req, group, "resource.instances"))
        group["_members"] = [m for m in group["_members"] if m not in links]
        group["size"] = len(group["_members"])
        sim.store.commit()
        return _op(sim, req, group, "compute.instanceGroups.removeInstances", zone=req.params["zone"])


@route("POST", "/zones/{zone}/instanceGroups/{instanceGroup}/listInstances")
def list_instances(sim: Simulator, req: Request) -> dict:
    state = (req.body or {}).get("instanceState") or "ALL"
    with sim.store.lock:
        group = _group(sim, req.project, req.params["zone"], req.params["instanceGroup"])
        zone_instances = sim.store.project(req.project)["instances"].get(req.params["zone"], {})
        items = []
        for link in group["_members"]:
            inst = zone_instances.get(last(link))
            status = inst["status"] if inst else "TERMINATED"
            if state == "RUNNING" and status != "RUNNING":
                continue
            items.append({"instance": link, "status": status, "name": last(link),
                          **({"namedPorts": group["namedPorts"]} if group.get("namedPorts") else {})})
    out = listing(req, items, "compute#instanceGroupsListInstances", group["selfLink"] + "/listInstances")
    for item in out.get("items", []):
        item.pop("name", None)  # only used to order the page
    return out


@route("POST", "/zones/{zone}/instanceGroups/{instanceGroup}/setNamedPorts")
def set_named_ports(sim: Simulator, req: Request) -> dict:
    body = req.body or {}
    with sim.store.lock:
        group = _group(sim, req.project, req.params["zone"], req.params["instanceGroup"])
        if body.get("fingerprint") and body["fingerprint"] != group["fingerprint"]:
            raise errors.fingerprint_mismatch("instance group")
        ports = _named_ports(body.get("namedPorts"))
        group["namedPorts"] = ports
        group["fingerprint"] = fingerprint(ports)
        sim.store.commit()
        return _op(sim, req, group, "compute.instanceGroups.setNamedPorts", zone=req.params["zone"])


@route("DELETE", "/zones/{zone}/instanceGroups/{instanceGroup}")
def delete_group(sim: Simulator, req: Request) -> dict:
    zone, name = req.params["zone"], req.params["instanceGroup"]
    with sim.store.lock:
        group = _group(sim, req.project, zone, name)
        users = _users(sim, req.project, group["selfLink"])
        if users:
            raise _in_use("instance_group", _short(group["selfLink"]), _short(users[0]))
        del sim.store.project(req.project)["instanceGroups"][zone][name]
        sim.store.commit()
        return _op(sim, req, group, "compute.instanceGroups.delete", zone=zone)


def forget_instance(sim: Simulator, project: str, self_link: str) -> None:
    """A deleted VM leaves every unmanaged group it was in. Call with the store lock held."""
    for groups in sim.store.project(project)["instanceGroups"].values():
        for group in groups.values():
            if self_link in group["_members"]:
                group["_members"] = [m for m in group["_members"] if m != self_link]
                group["size"] = len(group["_members"])


# -- regional health checks ----------------------------------------------------------------------------------------


def _regional(sim: Simulator, project: str, kind: str, region: str, name: str, path: str) -> dict:
    found = sim.store.project(project)[kind].get(region, {}).get(name)
    if found is None:
        raise errors.not_found(f"projects/{project}/regions/{region}/{path}/{name}")
    return found


_HC_SERVER = ("kind", "id", "creationTimestamp", "selfLink", "region")


def _health_check(sim: Simulator, project: str, region: str, body: dict, existing: dict | None = None) -> dict:
    hc = {k: v for k, v in body.items() if k not in _HC_SERVER}
    sim.check_name("resource.name", hc.get("name", ""))
    kind = hc.get("type")
    if kind not in ("TCP", "SSL", "HTTP", "HTTPS", "HTTP2", "GRPC"):
        raise errors.invalid_field("resource.type", str(kind or ""), "Health check type must be specified.")
    spec_key = {"TCP": "tcpHealthCheck", "SSL": "sslHealthCheck", "HTTP": "httpHealthCheck",
                "HTTPS": "httpsHealthCheck", "HTTP2": "http2HealthCheck", "GRPC": "grpcHealthCheck"}[kind]
    spec = dict(hc.get(spec_key) or {})
    # Google's defaults (https://cloud.google.com/load-balancing/docs/health-check-concepts): port 80 for
    # HTTP, request path /, interval 5 s, timeout 5 s, healthy and unhealthy thresholds 2.
    spec.setdefault("port", 80)
    spec.setdefault("requestPath", "/")
    spec.setdefault("proxyHeader", "NONE")
    if not 1 <= int(spec["port"]) <= 65535:
        raise errors.invalid_field(f"resource.{spec_key}.port", str(spec["port"]), "Must be between 1 and 65535.")
    if not str(spec["requestPath"]).startswith("/"):
        raise errors.invalid_field(f"resource.{spec_key}.requestPath", spec["requestPath"], "Must start with '/'.")
    hc[spec_key] = {**spec, "port": int(spec["port"])}
    for key, default in (("checkIntervalSec", 5), ("timeoutSec", 5), ("healthyThreshold", 2),
                         ("unhealthyThreshold", 2)):
        hc[key] = int(hc.get(key) or default)
    if hc["timeoutSec"] > hc["checkIntervalSec"]:
        # "It is invalid for timeoutSec to have greater value than checkIntervalSec" (HealthCheck.timeoutSec in
        # compute.v1.json); the message around it is Compute's "Invalid value for field" form.
        raise errors.invalid_field("resource.timeoutSec", str(hc["timeoutSec"]),
                                   "timeoutSec must be less than or equal to checkIntervalSec.")
    hc.setdefault("description", "")
    hc.update(kind="compute#healthCheck", id=existing["id"] if existing else new_id(),
              creationTimestamp=existing["creationTimestamp"] if existing else now(),
              region=sim.link(project, "regions", region),
              selfLink=sim.link(project, "regions", region, "healthChecks", hc["name"]))
    return hc


@route("POST", "/regions/{region}/healthChecks")
def insert_health_check(sim: Simulator, req: Request) -> dict:
    project, region, body = req.project, req.params["region"], req.body or {}
    sim.require_region(project, region)
    with sim.store.lock:
        checks = sim.store.project(project)["healthChecks"].setdefault(region, {})
        if body.get("name") in checks:
            raise errors.already_exists(f"projects/{project}/regions/{region}/healthChecks/{body['name']}")
        hc = _health_check(sim, project, region, body)
        checks[hc["name"]] = hc
        sim.store.commit()
        return _op(sim, req, hc, "compute.regionHealthChecks.insert", region=region)


@route("GET", "/regions/{region}/healthChecks/{healthCheck}")
def get_health_check(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        return public(_regional(sim, req.project, "healthChecks", req.params["region"], req.params["healthCheck"],
                                "healthChecks"))


@route("GET", "/regions/{region}/healthChecks")
def list_health_checks(sim: Simulator, req: Request) -> dict:
    region = req.params["region"]
    with sim.store.lock:
        items = [public(h) for h in sim.store.project(req.project)["healthChecks"].get(region, {}).values()]
    return listing(req, items, "compute#healthCheckList", sim.link(req.project, "regions", region, "healthChecks"))


def _change_health_check(sim: Simulator, req: Request, merge: bool) -> dict:
    region, name = req.params["region"], req.params["healthCheck"]
    body = req.body or {}
    with sim.store.lock:
        current = _regional(sim, req.project, "healthChecks", region, name, "healthChecks")
        if body.get("name", name) != name:
            raise errors.invalid_field("resource.name", body["name"], "The name of a health check cannot be changed.")
        merged = {**current, **body} if merge else {**body, "name": name}
        hc = _health_check(sim, req.project, region, merged, existing=current)
        sim.store.project(req.project)["healthChecks"][region][name] = hc
        sim.store.commit()
        return _op(sim, req, hc, "compute.regionHealthChecks." + ("patch" if merge else "update"), region=region)


@route("PATCH", "/regions/{region}/healthChecks/{healthCheck}")
def patch_health_check(sim: Simulator, req: Request) -> dict:
    return _change_health_check(sim, req, merge=True)


@route("PUT", "/regions/{region}/healthChecks/{healthCheck}")
def update_health_check(sim: Simulator, req: Request) -> dict:
    return _change_health_check(sim, req, merge=False)


def _delete_unused_regional(sim: Simulator, req: Request, collection: str, param: str, kind: str,
                            method: str) -> dict:
    """Delete a regional resource nothing refers to; Google refuses one still in use (see _in_use)."""
    region, name = req.params["region"], req.params[param]
    with sim.store.lock:
        resource = _regional(sim, req.project, collection, region, name, collection)
        users = _users(sim, req.project, resource["selfLink"])
        if users:
            raise _in_use(kind, _short(resource["selfLink"]), _short(users[0]))
        del sim.store.project(req.project)[collection][region][name]
        sim.store.commit()
        return _op(sim, req, resource, method, region=region)


@route("DELETE", "/regions/{region}/healthChecks/{healthCheck}")
def delete_health_check(sim: Simulator, req: Request) -> dict:
    return _delete_unused_regional(sim, req, "healthChecks", "healthCheck", "health_check",
                                   "compute.regionHealthChecks.delete")


# -- regional backend services -------------------------------------------------------------------------------------

_BS_SERVER = ("kind", "id", "creationTimestamp", "selfLink", "region", "fingerprint")


def _backend_service(sim: Simulator, project: str, region: str, body: dict, existing: dict | None = None) -> dict:
    bs = {k: v for k, v in body.items() if k not in _BS_SERVER}
    sim.check_name("resource.name", bs.get("name", ""))
    scheme = bs.get("loadBalancingScheme") or "INTERNAL"  # the regional default (API reference)
    bs["loadBalancingScheme"] = scheme
    protocol = bs.get("protocol") or "TCP"
    bs["protocol"] = protocol
    proj = sim.store.project(project)
    checks = []
    for i, ref in enumerate(bs.get("healthChecks") or []):
        where, name = _ref(sim, project, ref, f"resource.healthChecks[{i}]", "regions", "healthChecks")
        if where != region:
            raise errors.invalid_field(f"resource.healthChecks[{i}]", ref,
                                       f"The health check must be in the backend service's region ('{region}').")
        if name not in proj["healthChecks"].get(region, {}):
            raise errors.not_found(f"projects/{project}/regions/{region}/healthChecks/{name}")
        checks.append(sim.link(project, "regions", region, "healthChecks", name))
    if scheme in PASSTHROUGH and len(checks) != 1:
        # A passthrough load balancer's backend service takes exactly one health check (paraphrased).
        raise errors.invalid_field("resource.healthChecks", str(len(checks)),
                                   "Exactly one health check must be specified for this backend service.")
    backends = []
    for i, backend in enumerate(bs.get("backends") or []):
        zone, name = _ref(sim, project, backend.get("group"), f"resource.backends[{i}].group", "zones",
                          "instanceGroups")
        if catalog.region_of(zone) != region:
            raise errors.invalid_field(f"resource.backends[{i}].group", backend.get("group", ""),
                                       f"The backend must be in the backend service's region ('{region}').")
        if name not in proj["instanceGroups"].get(zone, {}):
            raise errors.not_found(f"projects/{project}/zones/{zone}/instanceGroups/{name}")
        mode = backend.get("balancingMode") or "CONNECTION"
        if scheme in PASSTHROUGH and mode != "CONNECTION":
            # Passthrough load balancers balance connections only (API reference, Backend.balancingMode).
            raise errors.invalid_field(f"resource.backends[{i}].balancingMode", mode,
                                       f"Balancing mode must be CONNECTION for a {scheme} backend service.")
        backends.append({**backend, "group": sim.link(project, "zones", zone, "instanceGroups", name),
                         "balancingMode": mode})
    groups = [b["group"] for b in backends]
    if len(groups) != len(set(groups)):
        raise errors.invalid_field("resource.backends", "", "Duplicate backend group.")
    bs["healthChecks"], bs["backends"] = checks, backends
    if not backends:
        bs.pop("backends")
    bs.setdefault("description", "")
    bs.update(kind="compute#backendService", id=existing["id"] if existing else new_id(),
              creationTimestamp=existing["creationTimestamp"] if existing else now(),
              region=sim.link(project, "regions", region),
              selfLink=sim.link(project, "regions", region, "backendServices", bs["name"]))
    bs["fingerprint"] = fingerprint({k: v for k, v in bs.items() if k != "fingerprint"})
    return bs


@route("POST", "/regions/{region}/backendServices")
def insert_backend_service(sim: Simulator, req: Request) -> dict:
    project, region, body = req.project, req.params["region"], req.body or {}
    sim.require_region(project, region)
    with sim.store.lock:
        services = sim.store.project(project)["backendServices"].setdefault(region, {})
        if body.get("name") in services:
            raise errors.already_exists(f"projects/{project}/regions/{region}/backendServices/{body['name']}")
        bs = _backend_service(sim, project, region, body)
        services[bs["name"]] = bs
        sim.store.commit()
        return _op(sim, req, bs, "compute.regionBackendServices.insert", region=region)


@route("GET", "/regions/{region}/backendServices/{backendService}")
def get_backend_service(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        return public(_regional(sim, req.project, "backendServices", req.params["region"],
                                req.params["backendService"], "backendServices"))


@route("GET", "/regions/{region}/backendServices")
def list_backend_services(sim: Simulator, req: Request) -> dict:
    region = req.params["region"]
    with sim.store.lock:
        items = [public(b) for b in sim.store.project(req.project)["backendServices"].get(region, {}).values()]
    return listing(req, items, "compute#backendServiceList",
                   sim.link(req.project, "regions", region, "backendServices"))


def _change_backend_service(sim: Simulator, req: Request, merge: bool) -> dict:
    region, name = req.params["region"], req.params["backendService"]
    body = req.body or {}
    with sim.store.lock:
        current = _regional(sim, req.project, "backendServices", region, name, "backendServices")
        if body.get("name", name) != name:
            raise errors.invalid_field("resource.name", body["name"],
                                       "The name of a backend service cannot be changed.")
        # "An up-to-date fingerprint must be provided in order to update the BackendService, otherwise the request
        # will fail with error 412 conditionNotMet" (BackendService.fingerprint in compute.v1.json).
        if body.get("fingerprint") != current["fingerprint"]:
            raise errors.fingerprint_mismatch("backend service")
        if body.get("loadBalancingScheme", current["loadBalancingScheme"]) != current["loadBalancingScheme"]:
            # Paraphrased: the scheme is fixed when the backend service is created.
            raise errors.invalid_field("resource.loadBalancingScheme", body["loadBalancingScheme"],
                                       "The load balancing scheme of a backend service cannot be changed.")
        merged = {**current, **body} if merge else {**body, "name": name}
        bs = _backend_service(sim, req.project, region, merged, existing=current)
        sim.store.project(req.project)["backendServices"][region][name] = bs
        sim.store.commit()
        return _op(sim, req, bs, "compute.regionBackendServices." + ("patch" if merge else "update"), region=region)


@route("PATCH", "/regions/{region}/backendServices/{backendService}")
def patch_backend_service(sim: Simulator, req: Request) -> dict:
    return _change_backend_service(sim, req, merge=True)


@route("PUT", "/regions/{region}/backendServices/{backendService}")
def update_backend_service(sim: Simulator, req: Request) -> dict:
    return _change_backend_service(sim, req, merge=False)


@route("DELETE", "/regions/{region}/backendServices/{backendService}")
def delete_backend_service(sim: Simulator, req: Request) -> dict:
    return _delete_unused_regional(sim, req, "backendServices", "backendService", "backend_service",
                                   "compute.regionBackendServices.delete")


@route("POST", "/regions/{region}/backendServices/{backendService}/getHealth")
def get_health(sim: Simulator, req: Request) -> dict:
    """Each instance of one backend group as the health checks see it (BackendServiceGroupHealth)."""
    region, name = req.params["region"], req.params["backendService"]
    with sim.store.lock:
        bs = _regional(sim, req.project, "backendServices", region, name, "backendServices")
        zone, group_name = _ref(sim, req.project, (req.body or {}).get("group"), "resource.group", "zones",
                                "instanceGroups")
        link = sim.link(req.project, "zones", zone, "instanceGroups", group_name)
        if link not in [b["group"] for b in bs.get("backends", [])]:
            # Paraphrased: only a backend of this service can be asked about.
            raise errors.invalid_field("resource.group", (req.body or {}).get("group", ""),
                                       f"The group is not a backend of backend service '{name}'.")
        group = _group(sim, req.project, zone, group_name)
        port = next((p["port"] for p in group.get("namedPorts", [])), None)
        rules = [r for r in sim.store.project(req.project)["forwardingRules"].get(region, {}).values()
                 if r.get("backendService") == bs["selfLink"]]
        instances = sim.store.project(req.project)["instances"].get(zone, {})
        statuses = []
        for member in group["_members"]:
            inst = instances.get(last(member))
            status = {"instance": member, "healthState": sim.data_plane.state(bs["selfLink"], member)}
            if inst:
                status["ipAddress"] = inst["networkInterfaces"][0]["networkIP"]
            if port:
                status["port"] = port
            if rules:
                status["forwardingRule"] = rules[0]["selfLink"]
                status["forwardingRuleIp"] = rules[0]["IPAddress"]
            statuses.append(status)
    out = {"kind": "compute#backendServiceGroupHealth"}
    if statuses:
        out["healthStatus"] = statuses
    return out


# -- forwarding rules (regional) -----------------------------------------------------------------------------------


@route("POST", "/regions/{region}/forwardingRules")
def insert_forwarding_rule(sim: Simulator, req: Request) -> dict:
    project, region, body = req.project, req.params["region"], dict(req.body or {})
    sim.require_region(project, region)
    sim.check_name("resource.name", body.get("name", ""))
    with sim.store.lock:
        proj = sim.store.project(project)
        rules = proj["forwardingRules"].setdefault(region, {})
        if body["name"] in rules:
            raise errors.already_exists(f"projects/{project}/regions/{region}/forwardingRules/{body['name']}")
        if not body.get("backendService") and not body.get("target"):
            raise errors.invalid_field("resource.target", "", "A backend service or a target must be specified.")
        if body.get("target"):
            raise errors.invalid_field("resource.target", body["target"],
                                       "Target proxies and pools are not modelled by this server.")
        where, name = _ref(sim, project, body["backendService"], "resource.backendService", "regions",
                           "backendServices")
        bs = proj["backendServices"].get(where, {}).get(name)
        if where != region or bs is None:
            raise errors.not_found(f"projects/{project}/regions/{where}/backendServices/{name}")
        scheme = body.get("loadBalancingScheme") or "EXTERNAL"
        if scheme != bs["loadBalancingScheme"]:
            # Paraphrased: the forwarding rule's scheme must be the backend service's.
            raise errors.invalid_field("resource.loadBalancingScheme", scheme,
                                       f"The backend service's load balancing scheme is {bs['loadBalancingScheme']}.")
        protocol = body.get("IPProtocol") or "TCP"
        ports = [str(p) for p in body.get("ports") or []]
        if len(ports) > 5:
            raise errors.invalid_field("resource.ports", ",".join(ports), "At most 5 ports may be specified.")
        if protocol != bs["protocol"]:
            raise errors.invalid_field("resource.IPProtocol", protocol,
                                       f"The backend service's protocol is {bs['protocol']}.")
        address = body.get("IPAddress") or sim.lb_address(project, scheme)
        rule = {**{k: v for k, v in body.items() if k not in ("kind", "id", "selfLink", "region")},
                "kind": "compute#forwardingRule", "id": new_id(), "creationTimestamp": now(),
                "IPAddress": address, "IPProtocol": protocol, "loadBalancingScheme": scheme,
                "backendService": bs["selfLink"], "region": sim.link(project, "regions", region),
                "selfLink": sim.link(project, "regions", region, "forwardingRules", body["name"]),
                "networkTier": body.get("networkTier") or "PREMIUM", "description": body.get("description", "")}
        if ports:
            rule["ports"] = ports
        if scheme == "INTERNAL":
            rule["network"] = sim.link(project, "global", "networks", last(body.get("network") or "default"))
        rule["fingerprint"] = fingerprint(rule)
        rules[rule["name"]] = rule
        sim.store.commit()
        return _op(sim, req, rule, "compute.forwardingRules.insert", region=region)


@route("GET", "/regions/{region}/forwardingRules/{forwardingRule}")
def get_forwarding_rule(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        return public(_regional(sim, req.project, "forwardingRules", req.params["region"],
                                req.params["forwardingRule"], "forwardingRules"))


@route("GET", "/regions/{region}/forwardingRules")
def list_forwarding_rules(sim: Simulator, req: Request) -> dict:
    region = req.params["region"]
    with sim.store.lock:
        items = [public(r) for r in sim.store.project(req.project)["forwardingRules"].get(region, {}).values()]
    return listing(req, items, "compute#forwardingRuleList",
                   sim.link(req.project, "regions", region, "forwardingRules"))


@route("GET", "/aggregated/forwardingRules")
def aggregated_forwarding_rules(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        by_region = sim.store.project(req.project)["forwardingRules"]
        scopes = {f"regions/{r}": [public(x) for x in by_region.get(r, {}).values()] for r in sim.regions()}
    return aggregated(req, scopes, "forwardingRules", "compute#forwardingRuleAggregatedList",
                      sim.link(req.project, "aggregated", "forwardingRules"))


@route("DELETE", "/regions/{region}/forwardingRules/{forwardingRule}")
def delete_forwarding_rule(sim: Simulator, req: Request) -> dict:
    region, name = req.params["region"], req.params["forwardingRule"]
    with sim.store.lock:
        rule = _regional(sim, req.project, "forwardingRules", region, name, "forwardingRules")
        del sim.store.project(req.project)["forwardingRules"][region][name]
        sim.store.commit()
        return _op(sim, req, rule, "compute.forwardingRules.delete", region=region)
