"""Where a simulated VM actually lives.

The server calls the backend from inside an operation's progress, outside its
lock, so a backend that takes a minute to boot a host shows as an operation
in RUNNING for that minute. A backend that raises fails the operation.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import struct
import threading
from typing import Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    """Instance lifecycle hook. `instance` is a copy of the API resource (name, zone, tags, metadata...)."""

    def create(self, instance: dict) -> str:
        """Bring the VM up for the first time; return its external address (natIP)."""
        ...

    def start(self, instance: dict) -> str:
        """Bring a stopped VM back up; return its (possibly new) external address."""
        ...

    def stop(self, instance: dict) -> None: ...

    def delete(self, instance: dict) -> None: ...

    # Optional: `guest_attributes(instance) -> [{"namespace", "key", "value"}]`, what the VM's guest agent
    # publishes (its SSH host keys under namespace "hostkeys"); without it getGuestAttributes finds none.
    # Optional: `watch(report, stopping)`, called once when the server starts: the backend calls
    # `report(project, zone, name)` whenever a VM's guest powered itself off (until `stopping` is set), and the
    # instance becomes TERMINATED as on Compute Engine (guest.py); without it a VM only stops through the API.


class DocumentationBackend:
    """Hands out addresses from 203.0.113.0/24 (TEST-NET-3): nothing ever answers there."""

    def __init__(self) -> None:
        self._hosts = [str(h) for h in ipaddress.ip_network("203.0.113.0/24").hosts()]
        self._next = 9  # skip the first few, like a real pool would not start at .1
        self._lock = threading.Lock()

    def _address(self) -> str:
        with self._lock:
            addr = self._hosts[self._next % len(self._hosts)]
            self._next += 1
            return addr

    def create(self, instance: dict) -> str:
        return self._address()

    def start(self, instance: dict) -> str:
        return self._address()  # ephemeral external IPs change across stop/start

    def stop(self, instance: dict) -> None:
        return None

    def delete(self, instance: dict) -> None:
        return None

    def guest_attributes(self, instance: dict) -> list[dict]:
        """The guest agent's host key, stable per VM: a well-formed ssh-ed25519 public key (RFC 8709 wire
        form: string "ssh-ed25519", string 32-byte key) derived from the VM's selfLink and creation time."""
        seed = hashlib.sha256(f"{instance['selfLink']}@{instance.get('creationTimestamp', '')}".encode()).digest()
        blob = b"".join(struct.pack(">I", len(part)) + part for part in (b"ssh-ed25519", seed))
        return [{"namespace": "hostkeys", "key": "ssh-ed25519", "value": base64.b64encode(blob).decode()}]
