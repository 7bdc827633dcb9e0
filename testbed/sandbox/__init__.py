"""The local test bed: real Debian hosts (systemd, sshd, apt, pip) in systemd-nspawn containers.

Each host stands in for the guide's GCP L4 VM: user `ubuntu` with passwordless sudo, reached over
ssh with a pinned host key, packages through the controller's proxy, and a fake NVIDIA L4
(nvidia-smi, libcuda). Needs root. `python -m testbed.sandbox up|status|down` for manual use.
"""

from .errors import SandboxError
from .gpu_kit import install_gpu_kit
from .hosts import boot, create, down, poweroff, remove, status, up
from .image import ensure_image
from .model import SandboxHost
from .preflight import problems

__all__ = [
    "SandboxError", "SandboxHost", "boot", "create", "down", "ensure_image", "install_gpu_kit",
    "poweroff", "problems", "remove", "status", "up",
]
