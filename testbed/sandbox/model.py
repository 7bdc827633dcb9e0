"""SandboxHost: what callers (tests, the runbook over Fabric) need to reach one host."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class SandboxHost:
    name: str
    index: int
    address: str
    ssh_user: str
    ssh_key: Path
    known_hosts: Path
    proxy_url: str
    state: str  # "running", "stopped", or "missing" (in state.json but its root is gone)
    action: str | None = None  # what up() did: "created", "booted" or "reused"
    root: Path | None = None
    console_log: Path | None = None

    def ssh(
        self, command: str | Sequence[str], *, check: bool = True, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on the host as ssh_user, host key checked against our known_hosts."""
        from .ssh import run_ssh

        return run_ssh(self, command, check=check, timeout=timeout, input=input)
