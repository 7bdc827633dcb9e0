"""The simulated project's resources: one JSON-able dict behind one lock.

Saved atomically (temp file + rename) after every change when a path is given,
so a server started from the CLI keeps its VMs, disks, firewalls and faults
across restarts. Keys starting with "_" are bookkeeping and never served.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import secrets
import tempfile
import threading
from datetime import datetime
from pathlib import Path

BASE = "https://www.googleapis.com/compute/v1/"


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="milliseconds")


def new_id() -> str:
    return str(secrets.randbits(62) + 10**18)


def fingerprint(value) -> str:
    raw = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).digest()[:8]
    return base64.b64encode(raw).decode()


def last(url_or_name: str) -> str:
    return url_or_name.rstrip("/").rsplit("/", 1)[-1]


def public(resource: dict) -> dict:
    """A deep copy without bookkeeping keys."""
    return {k: copy.deepcopy(v) for k, v in resource.items() if not k.startswith("_")}


def _empty_project() -> dict:
    return {"firewalls": {}, "instances": {}, "disks": {}, "operations": {}, "request_ids": {},
            # the load balancer's resources: instance groups by zone; the rest by region
            "instanceGroups": {}, "healthChecks": {}, "backendServices": {}, "forwardingRules": {}}


class Store:
    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path else None
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.data: dict = {"projects": {}, "faults": None}
        if self.path and self.path.exists():
            self.data = json.loads(self.path.read_text())
            self.data.setdefault("projects", {})
            self.data.setdefault("faults", None)

    def project(self, name: str) -> dict:
        proj = self.data["projects"].setdefault(name, _empty_project())
        for key, value in _empty_project().items():
            proj.setdefault(key, value)
        return proj

    def commit(self) -> None:
        """Persist and wake anyone waiting on a change. Call with the lock held."""
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".compute-state.", dir=self.path.parent)
            with os.fdopen(fd, "w") as f:
                json.dump(self.data, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        self.changed.notify_all()

    def snapshot(self) -> dict:
        with self.lock:
            return copy.deepcopy(self.data)

    def replace_projects(self, projects: dict) -> None:
        with self.lock:
            self.data["projects"] = copy.deepcopy(projects)
            self.commit()
