"""Which hosts a run targets, and how to reach each one.

``target`` in hosts.toml picks the source: the running sandbox hosts, the VM
recorded by ``inv vm``, or a hand-written list. ``--local`` bypasses all of
them and runs on this machine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .errors import RunbookError
from .transport import LocalTransport, SshTransport, Transport

STATE_DIR = ".l4-runbook"


@dataclass(frozen=True)
class Target:
    name: str
    address: str
    user: str
    port: int = 22
    key_file: str = ""
    known_hosts: str = ""
    trust_on_first_use: bool = False


def state_file(cfg: Config) -> Path:
    """Where `inv vm` records the VM's address for the host sections."""
    return cfg.root / STATE_DIR / "state.json"


def _recorded(cfg: Config) -> list[dict]:
    """The VMs `inv vm` recorded that the settings still name (every replica, in the settings' order): a VM
    dropped from hosts.toml is no longer a target (inv vm reports it; inv cleanup --instance removes it)."""
    try:
        records = list(json.loads(state_file(cfg).read_text())["instances"])
    except (OSError, ValueError, KeyError, TypeError):
        return []
    by_name = {r.get("name"): r for r in records if isinstance(r, dict)}
    return [by_name[name] for name, _ in cfg.settings.gcp.replica_list() if name in by_name]


def targets(cfg: Config) -> list[Target]:
    s = cfg.settings
    known = str(cfg.path(s.ssh.known_hosts))
    if s.inventory.target == "hosts":
        return [Target(h.name, h.address, h.user or s.ssh.user, h.port, s.ssh.key_file, known,
                       s.ssh.trust_on_first_use) for h in s.inventory.hosts]
    if s.inventory.target == "sandbox":
        from .testbed_link import load

        sandbox = load("sandbox")

        running = [h for h in sandbox.status() if h.state == "running"]
        if not running:
            raise RunbookError("no sandbox host is running; start one with: inv sandbox.up")
        # A VM that `inv vm` booted through the local API is the target; else every running host.
        by_address = {h.address: h for h in running}
        vms = [(v["name"], by_address[v["address"]]) for v in _recorded(cfg) if v.get("address") in by_address]
        # Sandbox host keys are pinned when the host is made: never trust on first use.
        return [Target(name, h.address, h.ssh_user, 22, str(h.ssh_key), str(h.known_hosts), False)
                for name, h in vms or [(h.name, h) for h in running]]
    path = state_file(cfg)
    vms = _recorded(cfg)
    if not vms:
        raise RunbookError(f"no VM recorded in {path}; create it first with: inv vm")
    return [Target(v["name"], v["address"], s.ssh.user, 22, s.ssh.key_file, known, s.ssh.trust_on_first_use)
            for v in vms]


def connect(cfg: Config, target: Target, notify=print) -> Transport:
    return SshTransport(
        target.name, target.address, target.user, target.port, target.key_file or None,
        Path(target.known_hosts) if target.known_hosts else None, target.trust_on_first_use,
        cfg.settings.ssh.connect_timeout, notify,
    )


def transports(cfg: Config, local: bool = False, only: list[str] | None = None, notify=print) -> list[Transport]:
    if local:
        return [LocalTransport()]
    chosen = targets(cfg)
    if only:
        unknown = sorted(set(only) - {t.name for t in chosen})
        if unknown:
            raise RunbookError(f"--hosts: unknown host(s) {unknown}; known: {[t.name for t in chosen]}")
        chosen = [t for t in chosen if t.name in only]
    return [connect(cfg, t, notify) for t in chosen]
