"""What the sandbox needs from the controller, checked up front so failures say what to install."""

from __future__ import annotations

import os
import shutil

from .errors import SandboxError

TOOLS = {
    "debootstrap": "debootstrap",
    "systemd-nspawn": "systemd-container",
    "tinyproxy": "tinyproxy",
    "ip": "iproute2",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "gcc": "gcc",
    "chroot": "coreutils",
}


def problems() -> list[str]:
    found = []
    if os.geteuid() != 0:
        found.append("not root (netns, nspawn and debootstrap need root: run with sudo)")
    missing = sorted({pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)})
    if missing:
        found.append(f"missing packages {' '.join(missing)}: run `make deps` as root in a checkout "
                     f"(testbed/install-deps.sh installs testbed/system-packages.txt)")
    return found


def check() -> None:
    issues = problems()
    if issues:
        raise SandboxError("the sandbox cannot run here: " + "; ".join(issues))
