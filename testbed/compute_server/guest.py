"""A VM whose guest powers itself off: what the API shows afterwards.

On Compute Engine, shutting the operating system down from inside the VM (``sudo poweroff``) stops the VM
as a stop through the API would: it ends TERMINATED with its disks kept and its ephemeral external address
released, and ``instances.start`` brings it back (Compute Engine docs, "Compute instance lifecycle" and
"Stop and start a compute instance"). The backend that plays the VMs reports such a power-off through its
optional ``watch`` hook (see backend.py); nobody called the API, so no operation is recorded here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .store import now

if TYPE_CHECKING:
    from .sim import Simulator


def guest_stopped(sim: Simulator, project: str, zone: str, name: str) -> bool:
    """The guest of *name* powered off: RUNNING -> TERMINATED. False when the instance is not RUNNING
    (an API stop, start or delete is under way, and its operation owns the status) or is gone."""
    with sim.store.lock:
        inst = sim.store.project(project)["instances"].get(zone, {}).get(name)
        if inst is None or inst["status"] != "RUNNING":
            return False
        for nic in inst.get("networkInterfaces", [])[:1]:
            for config in nic.get("accessConfigs", [])[:1]:
                config.pop("natIP", None)  # the ephemeral external address goes with the running VM
        inst["status"] = "TERMINATED"
        inst["lastStopTimestamp"] = now()
        sim.store.commit()
        return True
