"""A local Compute Engine REST server that the real google-cloud-compute client talks to.

Firewalls, instances, disks, images, accelerator types, regions with quotas,
zone and global operations, with the real service's error shapes and with
fault injection (transient errors, resets, stockouts, quota), so the runbook's
GCP steps can be rehearsed and tested without a cloud account.
"""

from .backend import Backend, DocumentationBackend
from .faults import FailRule, Faults
from .server import ComputeServer
from .sim import Simulator

__all__ = ["Backend", "ComputeServer", "DocumentationBackend", "FailRule", "Faults", "Simulator"]
