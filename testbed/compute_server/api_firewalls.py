"""Firewall rules (global): insert, get, list, patch, update, delete.

Changes apply at once; the returned global operation only paces the caller.
"""

from __future__ import annotations

import re

from . import errors
from .routes import Request, listing, route
from .sim import Simulator
from .store import new_id, now, public

_PORT = re.compile(r"\d{1,5}(-\d{1,5})?")
_SERVER_FIELDS = ("kind", "id", "creationTimestamp", "selfLink")


def _network(sim: Simulator, project: str, value: str | None) -> str:
    value = value or "default"
    if value.startswith("https://"):
        return value
    if "/" not in value:
        return sim.link(project, "global", "networks", value)
    if value.startswith("projects/"):
        return sim.link(*value.split("/", 2)[1:])
    return sim.link(project, *value.split("/"))


def _rules(rules: list, field: str) -> list[dict]:
    out = []
    for i, rule in enumerate(rules or []):
        proto = str(rule.get("IPProtocol", "")).lower()
        if not proto:
            raise errors.invalid_field(f"resource.{field}[{i}].IPProtocol", "", "Required field not specified.")
        entry = {"IPProtocol": proto}
        ports = [str(p) for p in rule.get("ports", [])]
        for j, port in enumerate(ports):
            if not _PORT.fullmatch(port):
                raise errors.invalid_field(f"resource.{field}[{i}].ports[{j}]", port, "Invalid port specification.")
        if ports:
            entry["ports"] = ports
        out.append(entry)
    return out


def _normalize(sim: Simulator, project: str, body: dict, existing: dict | None = None) -> dict:
    fw = {k: v for k, v in body.items() if k not in _SERVER_FIELDS}
    name = fw.get("name", "")
    sim.check_name("resource.name", name)
    fw["network"] = _network(sim, project, fw.get("network"))
    fw["direction"] = fw.get("direction") or "INGRESS"
    fw["priority"] = int(fw.get("priority", 1000))
    if not 0 <= fw["priority"] <= 65535:
        raise errors.invalid_field("resource.priority", str(fw["priority"]), "Must be between 0 and 65535.")
    fw["allowed"] = _rules(fw.get("allowed", []), "allowed")
    fw["denied"] = _rules(fw.get("denied", []), "denied")
    if fw["allowed"] and fw["denied"]:
        raise errors.bad_request("Only one of allowed or denied may be specified.")
    if not fw["allowed"] and not fw["denied"]:
        raise errors.invalid_field("resource.allowed", "", "At least one allowed or denied rule is required.")
    for key in ("allowed", "denied", "sourceRanges", "targetTags", "sourceTags", "destinationRanges"):
        if not fw.get(key):
            fw.pop(key, None)
    fw.setdefault("description", "")
    fw.setdefault("disabled", False)
    fw.setdefault("logConfig", {"enable": False})
    fw["kind"] = "compute#firewall"
    fw["id"] = existing["id"] if existing else new_id()
    fw["creationTimestamp"] = existing["creationTimestamp"] if existing else now()
    fw["selfLink"] = sim.link(project, "global", "firewalls", name)
    return fw


def _get(sim: Simulator, project: str, name: str) -> dict:
    fw = sim.store.project(project)["firewalls"].get(name)
    if fw is None:
        raise errors.not_found(f"projects/{project}/global/firewalls/{name}")
    return fw


def _op(sim: Simulator, req: Request, op_type: str, fw: dict) -> dict:
    return sim.ops.start(
        req.project,
        zone=None,
        op_type=op_type,
        target_link=fw["selfLink"],
        target_id=fw["id"],
        request_id=req.query.get("requestId"),
    )


@route("POST", "/global/firewalls")
def insert(sim: Simulator, req: Request) -> dict:
    body = req.body or {}
    with sim.store.lock:
        firewalls = sim.store.project(req.project)["firewalls"]
        if body.get("name") in firewalls:
            raise errors.already_exists(f"projects/{req.project}/global/firewalls/{body['name']}")
        fw = _normalize(sim, req.project, body)
        firewalls[fw["name"]] = fw
        return _op(sim, req, "insert", fw)


@route("GET", "/global/firewalls/{firewall}")
def get(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        return public(_get(sim, req.project, req.params["firewall"]))


@route("GET", "/global/firewalls")
def list_(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        items = [public(fw) for fw in sim.store.project(req.project)["firewalls"].values()]
    return listing(req, items, "compute#firewallList", sim.link(req.project, "global", "firewalls"))


def _change(sim: Simulator, req: Request, merge: bool) -> dict:
    name = req.params["firewall"]
    body = req.body or {}
    with sim.store.lock:
        current = _get(sim, req.project, name)
        if body.get("name", name) != name:
            raise errors.invalid_field("resource.name", body["name"], "The name of a firewall cannot be changed.")
        merged = {**current, **body} if merge else {**body, "name": name}
        fw = _normalize(sim, req.project, merged, existing=current)
        sim.store.project(req.project)["firewalls"][name] = fw
        return _op(sim, req, "patch" if merge else "update", fw)


@route("PATCH", "/global/firewalls/{firewall}")
def patch(sim: Simulator, req: Request) -> dict:
    return _change(sim, req, merge=True)


@route("PUT", "/global/firewalls/{firewall}")
def update(sim: Simulator, req: Request) -> dict:
    return _change(sim, req, merge=False)


@route("DELETE", "/global/firewalls/{firewall}")
def delete(sim: Simulator, req: Request) -> dict:
    with sim.store.lock:
        fw = _get(sim, req.project, req.params["firewall"])
        del sim.store.project(req.project)["firewalls"][fw["name"]]
        return _op(sim, req, "delete", fw)
