"""A compute_server Backend whose VMs are real sandbox hosts.

Inserting an instance through the local Compute API boots a sandbox host (systemd, sshd, the
fake L4) and reports its 10.231.N.2 address as the external IP; stop powers it off keeping its
root, start boots it again, delete removes it. Which host plays which instance is kept in
<sandbox state dir>/compute-vms.json, so every call is idempotent: creating the same instance
twice (a retried operation after a server restart) reuses its host.

A guest that powers itself off (`systemctl poweroff` inside the host: its systemd-nspawn exits) is
noticed by `watch` and reported to the server, which shows the instance TERMINATED with its disk
kept, as Compute Engine does when a VM's operating system shuts down.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _key(instance: dict) -> str:
    """project/zone/name of the instance, from its selfLink."""
    link = instance.get("selfLink", "")
    if "/projects/" in link:
        parts = link.split("/projects/", 1)[1].split("/")
        return f"{parts[0]}/{parts[2]}/{parts[-1]}"
    return f"?/{instance.get('zone', '').rsplit('/', 1)[-1]}/{instance.get('name', '')}"


class SandboxBackend:
    WATCH_EVERY_S = 1.0  # how often `watch` looks at the hosts (a guest's poweroff itself takes seconds)

    def __init__(self, sandbox=None, folder: Path | None = None):
        if sandbox is None:
            from testbed import sandbox
        self.sandbox = sandbox
        self._folder = folder

    def _dir(self) -> Path:
        if self._folder is not None:
            return self._folder
        from .sandbox.paths import state_dir

        return state_dir()

    @contextmanager
    def _mapping(self) -> Iterator[dict[str, str]]:
        """instance key -> sandbox host name, read and written under a lock."""
        folder = self._dir()
        path = folder / "compute-vms.json"
        with open(folder / "compute-vms.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            mapping = json.loads(path.read_text()) if path.exists() else {}
            before = dict(mapping)
            yield mapping
            if mapping != before:
                fd, tmp = tempfile.mkstemp(dir=folder, prefix=".compute-vms.")
                with os.fdopen(fd, "w") as out:
                    json.dump(mapping, out, indent=2, sort_keys=True)
                os.replace(tmp, path)

    def _known(self, mapping: dict[str, str], name: str | None) -> bool:
        return name is not None and any(h.name == name for h in self.sandbox.status())

    def create(self, instance: dict) -> str:
        with self._mapping() as mapping:
            name = mapping.get(_key(instance))
            host = self.sandbox.create(name) if self._known(mapping, name) else self.sandbox.create()
            mapping[_key(instance)] = host.name
            return host.address

    def start(self, instance: dict) -> str:
        with self._mapping() as mapping:
            name = mapping.get(_key(instance))
            if not self._known(mapping, name):  # its host was taken down meanwhile: a fresh one
                host = self.sandbox.create()
                mapping[_key(instance)] = host.name
                return host.address
            return self.sandbox.boot(name).address

    def stop(self, instance: dict) -> None:
        with self._mapping() as mapping:
            name = mapping.get(_key(instance))
            if self._known(mapping, name):
                self.sandbox.poweroff(name)

    def powered_off(self, seen_running: set[str]) -> list[str]:
        """Instance keys whose host was running when last looked at (*seen_running*, updated here) and is
        stopped now: their guest powered itself off, or the host was stopped through the API meanwhile."""
        with self._mapping() as mapping:
            hosts = dict(mapping)
        states = {h.name: h.state for h in self.sandbox.status()}
        gone = []
        for key, name in hosts.items():
            if states.get(name) == "running":
                seen_running.add(key)
            elif key in seen_running:
                seen_running.discard(key)
                gone.append(key)
        seen_running &= set(hosts)
        return gone

    def watch(self, report: Callable[[str, str, str], None], stopping: threading.Event) -> None:
        """Report every guest that powers itself off as report(project, zone, name), until *stopping* is set.

        The server ignores a report for an instance it is stopping, starting or deleting itself (its
        status is not RUNNING then), so a stop through the API is not reported twice.
        """
        def loop() -> None:
            seen: set[str] = set()
            while not stopping.wait(self.WATCH_EVERY_S):
                try:
                    gone = self.powered_off(seen)
                except (OSError, ValueError):  # a state file being replaced: look again next time
                    continue
                for key in gone:
                    project, zone, name = key.split("/", 2)
                    report(project, zone, name)

        threading.Thread(target=loop, name="sandbox-guest-watch", daemon=True).start()

    def guest_attributes(self, instance: dict) -> list[dict]:
        """The VM's real SSH host keys, as its guest agent publishes them under `hostkeys/` (key = key type,
        value = base64 key): read from the host's own /etc/ssh, the files its sshd serves."""
        with self._mapping() as mapping:
            name = mapping.get(_key(instance))
        host = next((h for h in self.sandbox.status() if h.name == name), None) if name else None
        if host is None or host.root is None:
            return []
        out = []
        for pub in sorted((Path(host.root) / "etc/ssh").glob("ssh_host_*_key.pub")):
            parts = pub.read_text().split()
            if len(parts) >= 2:
                out.append({"namespace": "hostkeys", "key": parts[0], "value": parts[1]})
        return out

    def lb_addresses(self, scheme: str) -> Iterator[str]:
        """Forwarding rule addresses that answer on this machine (the data plane's relay listens there): loopback
        addresses of a /24 of 127.0.0.0/8 picked by the sandbox state dir, so two sandboxes never share one."""
        import hashlib

        digest = hashlib.sha256(str(self._dir()).encode()).digest()
        net = f"127.{100 + digest[0] % 100}.{digest[1]}"
        return (f"{net}.{n}" for n in range(1, 255))

    def delete(self, instance: dict) -> None:
        with self._mapping() as mapping:
            name = mapping.pop(_key(instance), None)
            if self._known(mapping, name):
                self.sandbox.remove(name)


def factory() -> SandboxBackend:
    """`--backend testbed.sandbox_backend:factory`"""
    return SandboxBackend()
