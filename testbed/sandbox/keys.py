"""SSH trust between the controller and its hosts, with host keys pinned from the start.

The controller has one client key (<state>/id_ed25519). Each host's ed25519 host key is generated
on the controller and written into the host's root before its first boot, and its public half goes
into our known_hosts under the host's address, so ssh always runs with StrictHostKeyChecking=yes.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .paths import client_key, known_hosts
from .shell import run


def ensure_client_key() -> Path:
    key = client_key()
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "l4-runbook-sandbox", "-f", key])
    key.chmod(0o600)
    return key


def client_public_key() -> str:
    return Path(f"{ensure_client_key()}.pub").read_text().strip()


def make_host_key(root: Path, hostname: str) -> str:
    """Create the host's ed25519 key pair inside its root; returns the public key line."""
    key = root / "etc/ssh/ssh_host_ed25519_key"
    for old in (key, Path(f"{key}.pub")):
        if old.exists():
            old.unlink()
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{hostname}", "-f", key])
    key.chmod(0o600)
    return Path(f"{key}.pub").read_text().strip()


def host_public_key(root: Path) -> str:
    return (root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().strip()


def pin(address: str, public_key: str) -> None:
    """Make public_key the only known key for address in our known_hosts."""
    key_type, key_data = public_key.split()[:2]
    _rewrite(lambda lines: [*_without(lines, address), f"{address} {key_type} {key_data}"])


def unpin(address: str) -> None:
    _rewrite(lambda lines: _without(lines, address))


def _without(lines: list[str], address: str) -> list[str]:
    return [line for line in lines if line.split(" ", 1)[0] != address]


def _rewrite(change) -> None:
    path = known_hosts()
    lines = path.read_text().splitlines() if path.exists() else []
    text = "".join(f"{line}\n" for line in change(lines))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".known_hosts.")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
