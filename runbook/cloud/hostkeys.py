"""SSH host keys of the VM: pinned before the first connection where the API can tell us them.

Real GCP: a VM created with `enable-guest-attributes=TRUE` has its guest agent publish its host
keys under the guest attribute path `hostkeys/`; reading them through the authenticated API and
writing them into the project's known_hosts means even the first SSH connection is verified.
Where they are not available, the key is trusted on first use only if `ssh.trust_on_first_use`
says so (the transport then records it and says so loudly); host key checking is never off.
Sandbox VMs are pinned by testbed.sandbox when it makes the host.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from google.api_core import exceptions as gexc

# Key types the guest agent publishes (as OpenSSH names them).
SUPPORTED = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa")


def from_guest_attributes(api, project: str, zone: str, instance: str) -> list[tuple[str, str]] | None:
    """[(key type, base64 key)] the VM published: [] if none yet, None if guest attributes are unavailable."""
    try:
        found = api.instances.get_guest_attributes(
            request={"project": project, "zone": zone, "instance": instance, "query_path": "hostkeys/"}
        )
    except gexc.NotFound as exc:
        # "The resource 'hostkeys/' of type 'Guest Attribute' was not found": not published yet.
        return [] if "Guest Attribute" in str(exc) else None
    except gexc.BadRequest:  # guest attributes disabled on this VM
        return None
    keys = []
    for item in found.query_value.items:
        value = item.value.split()[0] if item.value.split() else ""
        if item.namespace == "hostkeys" and item.key in SUPPORTED and value:
            keys.append((item.key, value))
    return sorted(keys)


def pinned(known_hosts: Path, address: str) -> list[tuple[str, str]]:
    """[(key type, base64 key)] recorded for *address* (plain, unhashed entries)."""
    out = []
    for line in _lines(known_hosts):
        parts = line.split()
        if len(parts) >= 3 and address in parts[0].split(","):
            out.append((parts[1], parts[2]))
    return sorted(out)


@contextlib.contextmanager
def _locked(known_hosts: Path) -> Iterator[None]:
    """One writer at a time (the replicas of a fleet pin their keys side by side, other runs may too)."""
    known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(known_hosts.parent / f".{known_hosts.name}.lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def pin(known_hosts: Path, address: str, keys: list[tuple[str, str]]) -> None:
    """Make *keys* the only ones known for *address*."""
    with _locked(known_hosts):
        kept = [line for line in _lines(known_hosts) if address not in line.split(" ", 1)[0].split(",")]
        _write(known_hosts, [*kept, *(f"{address} {kind} {data}" for kind, data in keys)])


def unpin(known_hosts: Path, address: str) -> bool:
    """Forget *address* (its VM is gone: the address may come back as someone else's)."""
    with _locked(known_hosts):
        lines = _lines(known_hosts)
        kept = [line for line in lines if address not in line.split(" ", 1)[0].split(",")]
        if len(kept) != len(lines):
            _write(known_hosts, kept)
        return len(kept) != len(lines)


def _lines(known_hosts: Path) -> list[str]:
    try:
        return [line for line in known_hosts.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def _write(known_hosts: Path, lines: list[str]) -> None:
    known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=known_hosts.parent, prefix=".known_hosts.")
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{line}\n" for line in lines))
    os.chmod(tmp, 0o644)
    os.replace(tmp, known_hosts)
