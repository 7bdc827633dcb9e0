"""The simulated cloud as one object: resources, faults, backend, operations.

HTTP is a thin layer over this (see server.py); tests and the sandbox can also
reach in here directly to seed disks or change faults.
"""

from __future__ import annotations

import random
import re
import threading

from . import catalog, errors, guest
from .backend import Backend, DocumentationBackend
from .faults import Faults
from .operations import Operations
from .store import BASE, Store, new_id, now

NAME_RE = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")


class Simulator:
    def __init__(self, store: Store | None = None, faults: Faults | dict | None = None, backend: Backend | None = None):
        self.store = store or Store()
        self.backend: Backend = backend or DocumentationBackend()
        self.stopping = threading.Event()
        self.workers: list[threading.Thread] = []
        saved = self.store.data.get("faults")
        if isinstance(faults, dict):
            faults = Faults.model_validate(faults)
        self._faults = faults or (Faults.model_validate(saved) if saved else Faults())
        self._rng = random.Random(self._faults.seed)
        self._rng_lock = threading.Lock()
        with self.store.lock:
            self.store.data["faults"] = self._faults.model_dump()
            self.store.commit()
        self.ops = Operations(self)
        from .dataplane import DataPlane

        self.data_plane = DataPlane(self)
        watch = getattr(self.backend, "watch", None)
        if watch is not None:  # a backend whose VMs can power themselves off reports it (backend.py)
            watch(self.guest_stopped, self.stopping)

    # -- faults -----------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    def set_faults(self, patch: dict | None = None, *, replace: bool = False, **kw) -> Faults:
        """Change faults at run time: top-level keys of `patch`/`kw` replace the current ones."""
        patch = {**(patch or {}), **kw}
        new = Faults.model_validate(patch) if replace else self._faults.merged(patch)
        with self.store.lock:
            reseed = new.seed != self._faults.seed or "seed" in patch
            self._faults = new
            self.store.data["faults"] = new.model_dump()
            self.store.commit()
        if reseed:
            with self._rng_lock:
                self._rng = random.Random(new.seed)
        return new

    def draw(self) -> tuple[str, int] | None:
        """Decide whether this call is hit by an injected reset or transient error."""
        f = self._faults
        if not (f.error_rate or f.reset_rate):
            return None
        with self._rng_lock:
            if f.reset_rate and self._rng.random() < f.reset_rate:
                return ("reset", 0)
            if f.error_rate and self._rng.random() < f.error_rate:
                return ("error", self._rng.choice(f.error_codes or [503]))
        return None

    def take_fail_rule(self, method: str, path: str) -> int | None:
        with self.store.lock:
            rules = list(self._faults.fail_next)
            for i, rule in enumerate(rules):
                if rule.method and rule.method.upper() != method.upper():
                    continue
                if not re.search(rule.path, path):
                    continue
                if rule.count <= 1:
                    rules.pop(i)
                else:
                    rules[i] = rule.model_copy(update={"count": rule.count - 1})
                self._faults = self._faults.model_copy(update={"fail_next": rules})
                self.store.data["faults"] = self._faults.model_dump()
                self.store.commit()
                return rule.status
        return None

    # -- catalog views that faults can change -----------------------------------------------

    def accelerator_zones(self, accelerator: str) -> list[str]:
        return list(self._faults.accelerator_zones.get(accelerator, []))

    def zones(self) -> list[str]:
        extra = {z for zones in self._faults.accelerator_zones.values() for z in zones}
        return sorted(set(catalog.ZONES) | extra)

    def regions(self) -> list[str]:
        return sorted({catalog.region_of(z) for z in self.zones()})

    def images(self) -> list[dict]:
        hidden = set(self._faults.hidden_image_families)
        return [img for img in catalog.images(BASE) if img["family"] not in hidden]

    def require_zone(self, project: str, zone: str) -> None:
        if zone not in self.zones():
            raise errors.not_found(f"projects/{project}/zones/{zone}")

    def require_region(self, project: str, region: str) -> None:
        if region not in self.regions():
            raise errors.not_found(f"projects/{project}/regions/{region}")

    def guest_stopped(self, project: str, zone: str, name: str) -> bool:
        """The VM's guest powered itself off (guest.py)."""
        return guest.guest_stopped(self, project, zone, name)

    def backend_guest_attributes(self, instance: dict) -> list[dict]:
        """[{namespace, key, value}] the VM's guest agent published; a backend without the hook publishes none."""
        publish = getattr(self.backend, "guest_attributes", None)
        return list(publish(instance)) if publish else []

    def lb_address(self, project: str, scheme: str) -> str:
        """An address for a new forwarding rule: the backend's pool if it has one (the sandbox's answers on this
        machine), else documentation space (RFC 5737 TEST-NET-2) for external and the region's internal range
        for internal rules; never one another rule holds. Call with the store lock held."""
        taken = {r.get("IPAddress") for rules in self.store.project(project)["forwardingRules"].values()
                 for r in rules.values()}
        pool = getattr(self.backend, "lb_addresses", None)
        candidates = pool(scheme) if pool else (
            (f"198.51.100.{n}" for n in range(10, 255)) if scheme == "EXTERNAL" else
            (f"10.127.255.{n}" for n in range(10, 255)))
        for address in candidates:
            if address not in taken:
                return address
        raise errors.ApiError(403, "quotaExceeded", "Quota 'FORWARDING_RULES' exceeded.", domain="usageLimits")

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def link(project: str, *parts: str) -> str:
        return BASE + "/".join(("projects", project, *parts))

    @staticmethod
    def check_name(field: str, name: str) -> None:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise errors.invalid_field(
                field, str(name), "Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'"
            )

    def seed_disk(
        self, project: str, zone: str, name: str, size_gb: int, disk_type: str = "pd-ssd", users: list | None = None
    ) -> dict:
        """Put a disk in place without an operation (an old, forgotten disk: guide B-16)."""
        self.require_zone(project, zone)
        self.check_name("resource.name", name)
        with self.store.lock:
            disks = self.store.project(project)["disks"].setdefault(zone, {})
            if name in disks:
                raise errors.already_exists(f"projects/{project}/zones/{zone}/disks/{name}")
            disk = {
                "kind": "compute#disk",
                "id": new_id(),
                "creationTimestamp": now(),
                "name": name,
                "sizeGb": str(int(size_gb)),
                "zone": self.link(project, "zones", zone),
                "status": "READY",
                "selfLink": self.link(project, "zones", zone, "disks", name),
                "type": self.link(project, "zones", zone, "diskTypes", disk_type),
                "labelFingerprint": "42WmSpB8rSM=",
                "physicalBlockSizeBytes": "4096",
                "architecture": "X86_64",
            }
            if users:
                disk["users"] = list(users)
            disks[name] = disk
            self.store.commit()
            return dict(disk)

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.data_plane.stop()
        with self.store.lock:
            self.store.changed.notify_all()
        for t in list(self.workers):
            t.join(timeout)
