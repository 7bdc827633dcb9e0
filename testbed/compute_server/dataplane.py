"""A stand-in for Google's load-balancing data plane: health checks that really probe, and a forwarding
rule address that really answers.

What it follows of Google's documented behaviour (https://cloud.google.com/load-balancing/docs/
health-check-concepts and https://cloud.google.com/load-balancing/docs/network/networklb-backend-service,
paraphrased):
- every backend of a backend service is probed every `checkIntervalSec`; an HTTP probe succeeds only on
  an HTTP 200 within `timeoutSec`; a backend turns HEALTHY after `healthyThreshold` successes in a row and
  UNHEALTHY after `unhealthyThreshold` failures in a row; a new backend starts UNHEALTHY;
- probes come from Google's probe ranges, so they only arrive where an ingress firewall rule allows those
  ranges to the port for the VM's tags (no rule: every probe fails, as the docs warn); a VM that is not
  RUNNING fails its probes;
- new connections go only to HEALTHY backends, chosen by a hash of the connection (the passthrough load
  balancer's default 5-tuple affinity); when no backend is healthy, new connections are spread over all
  of them (the docs' "all backends unhealthy" fallback of passthrough load balancers).
Where it differs: Google's passthrough load balancer is not a proxy (packets reach the VM unchanged and it
answers the client directly); here a small TCP relay on this machine forwards each connection, so the
backend sees the relay's address. The probes go to the VM's external address, where Google's reach the
VM through the load balancer's address. Neither changes what the runbook can observe.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .store import last

if TYPE_CHECKING:
    from .sim import Simulator

# Where the probes come from (https://cloud.google.com/load-balancing/docs/firewall-rules, IPv4 rows of the
# passthrough Network Load Balancers).
PROBE_RANGES = {
    "EXTERNAL": ("35.191.0.0/16", "209.85.152.0/22", "209.85.204.0/22"),
    "INTERNAL": ("35.191.0.0/16", "130.211.0.0/22"),
}
TICK_S = 0.2


@dataclass
class _Health:
    state: str = "UNHEALTHY"
    successes: int = 0
    failures: int = 0
    due: float = 0.0
    busy: bool = False

    def record(self, ok: bool, healthy_after: int, unhealthy_after: int) -> None:
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= healthy_after:
                self.state = "HEALTHY"
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= unhealthy_after:
                self.state = "UNHEALTHY"


@dataclass(frozen=True)
class _Target:
    service: str  # backend service selfLink
    member: str  # instance selfLink
    address: str  # natIP, "" when none
    running: bool
    reachable: bool  # a firewall rule lets the probes in
    port: int
    path: str
    timeout: float
    interval: float
    healthy_after: int
    unhealthy_after: int


@dataclass
class _Listener:
    sock: socket.socket
    service: str = ""
    conns: set = field(default_factory=set)


def _covers(rules: list[dict], ranges: tuple[str, ...], port: int, tags: list[str], network: str) -> bool:
    """Ingress rules of the VM's network that allow tcp:*port* for its tags cover every probe range."""
    allowed = []
    for rule in rules:
        if rule.get("disabled") or rule.get("direction", "INGRESS") != "INGRESS" or last(rule["network"]) != network:
            continue
        if rule.get("targetTags") and not set(rule["targetTags"]) & set(tags):
            continue
        allows = rule.get("allowed", [])
        if not any(a["IPProtocol"] in ("tcp", "all") and _port_in(a.get("ports"), port) for a in allows):
            continue
        allowed += [ipaddress.ip_network(r) for r in rule.get("sourceRanges", [])]
    return all(any(ipaddress.ip_network(want).subnet_of(have) for have in allowed if have.version == 4)
               for want in ranges)


def _port_in(ports: list[str] | None, port: int) -> bool:
    if not ports:
        return True
    for spec in ports:
        low, _, high = spec.partition("-")
        if int(low) <= port <= int(high or low):
            return True
    return False


def _probe(target: _Target) -> bool:
    if not (target.running and target.address and target.reachable):
        return False
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{target.address}:{target.port}{target.path}", timeout=target.timeout) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


class DataPlane:
    def __init__(self, sim: Simulator):
        self.sim = sim
        self._lock = threading.Lock()
        self._health: dict[tuple[str, str], _Health] = {}
        self._backends: dict[str, list[_Target]] = {}  # backend service -> its targets, as last seen
        self._listeners: dict[tuple[str, int], _Listener] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life ---------------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="data-plane", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for key in list(self._listeners):
                self._close(key)
        if self._thread:
            self._thread.join(2)

    def state(self, service: str, member: str) -> str:
        with self._lock:
            health = self._health.get((service, member))
            return health.state if health else "UNHEALTHY"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # the control plane lives on whatever one round of probing meets
                pass
            self._stop.wait(TICK_S)

    # -- what exists ------------------------------------------------------------------------------------------------

    def _snapshot(self) -> tuple[dict[str, list[_Target]], dict[tuple[str, int], str]]:
        services: dict[str, list[_Target]] = {}
        rules: dict[tuple[str, int], str] = {}
        with self.sim.store.lock:
            for project in list(self.sim.store.data["projects"]):
                proj = self.sim.store.project(project)
                firewalls = list(proj["firewalls"].values())
                for region_services in proj["backendServices"].values():
                    for bs in region_services.values():
                        services[bs["selfLink"]] = self._targets(proj, bs, firewalls)
                for region_rules in proj["forwardingRules"].values():
                    for rule in region_rules.values():
                        for port in rule.get("ports", []):
                            rules[(rule["IPAddress"], int(str(port).split("-")[0]))] = rule["backendService"]
        return services, rules

    def _targets(self, proj: dict, bs: dict, firewalls: list[dict]) -> list[_Target]:
        if not bs.get("healthChecks"):
            return []
        check_region, check_name = bs["healthChecks"][0].split("/regions/")[1].split("/healthChecks/")
        hc = proj["healthChecks"].get(check_region, {}).get(check_name)
        if hc is None or hc.get("type") != "HTTP":
            return []
        spec = hc["httpHealthCheck"]
        out = []
        for backend in bs.get("backends", []):
            zone, name = backend["group"].split("/zones/")[1].split("/instanceGroups/")
            group = proj["instanceGroups"].get(zone, {}).get(name)
            for member in (group or {}).get("_members", []):
                inst = proj["instances"].get(zone, {}).get(last(member))
                if inst is None:
                    continue
                nic = inst["networkInterfaces"][0]
                address = next((c.get("natIP", "") for c in nic.get("accessConfigs", [])), "")
                reachable = _covers(firewalls, PROBE_RANGES.get(bs["loadBalancingScheme"], ()), spec["port"],
                                    (inst.get("tags") or {}).get("items", []), last(nic["network"]))
                out.append(_Target(bs["selfLink"], member, address, inst["status"] == "RUNNING", reachable,
                                   spec["port"], spec.get("requestPath", "/"), float(hc["timeoutSec"]),
                                   float(hc["checkIntervalSec"]), hc["healthyThreshold"], hc["unhealthyThreshold"]))
        return out

    # -- one round --------------------------------------------------------------------------------------------------

    def _tick(self) -> None:
        services, rules = self._snapshot()
        now = time.monotonic()
        with self._lock:
            self._backends = services
            live = {(t.service, t.member) for targets in services.values() for t in targets}
            for key in [k for k in self._health if k not in live]:
                del self._health[key]
            for targets in services.values():
                for target in targets:
                    health = self._health.setdefault((target.service, target.member), _Health(due=now))
                    if not health.busy and now >= health.due:
                        health.busy = True
                        threading.Thread(target=self._check, args=(target, health), daemon=True).start()
            for key in [k for k in self._listeners if k not in rules]:
                self._close(key)
            for key, service in rules.items():
                if key not in self._listeners:
                    self._open(key)
                if key in self._listeners:
                    self._listeners[key].service = service

    def _check(self, target: _Target, health: _Health) -> None:
        started = time.monotonic()
        ok = _probe(target)
        with self._lock:
            health.record(ok, target.healthy_after, target.unhealthy_after)
            health.due = started + target.interval
            health.busy = False

    # -- the forwarding rule's address ------------------------------------------------------------------------------

    def _open(self, key: tuple[str, int]) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(key)
            sock.listen(64)
        except OSError:  # an address this machine does not have (documentation space): nothing answers there
            return
        listener = _Listener(sock)
        self._listeners[key] = listener
        threading.Thread(target=self._accept, args=(listener, key[1]), daemon=True).start()

    def _close(self, key: tuple[str, int]) -> None:
        listener = self._listeners.pop(key)
        try:
            listener.sock.close()
        except OSError:
            pass

    def _pick(self, service: str, client: tuple) -> _Target | None:
        with self._lock:
            targets = [t for t in self._backends.get(service, []) if t.address and t.running]
            healthy = [t for t in targets if self._health.get((t.service, t.member), _Health()).state == "HEALTHY"]
        pool = healthy or targets
        if not pool:
            return None
        return sorted(pool, key=lambda t: t.member)[hash(client) % len(pool)]

    def _accept(self, listener: _Listener, port: int) -> None:
        while True:
            try:
                conn, client = listener.sock.accept()
            except OSError:
                return
            target = self._pick(listener.service, client)
            if target is None:
                conn.close()
                continue
            threading.Thread(target=self._relay, args=(conn, target.address, port), daemon=True).start()

    @staticmethod
    def _relay(conn: socket.socket, address: str, port: int) -> None:
        try:
            upstream = socket.create_connection((address, port), timeout=10)
        except OSError:
            conn.close()  # the chosen backend does not answer: the client sees the connection end
            return
        upstream.settimeout(None)

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

        back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
        back.start()
        pump(conn, upstream)
        back.join()
        conn.close()
        upstream.close()
