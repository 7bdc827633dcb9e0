"""The runs themselves: each checked to be a no-op (or it stops the benchmark), and timed round-robin."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from runbook import config as config_mod
from runbook.sections.common import HostInfo
from testbed.sandbox import SandboxHost

from . import ours, playbook, render
from .config import write_config

STARTED = time.monotonic()


class NotNoOp(Exception):
    """A run that should have changed nothing changed something (or failed): no figure for it."""


def say(message: str) -> None:
    print(f"[{time.monotonic() - STARTED:5.0f}s] {message}", flush=True)


def check_ours(run: ours.OursRun, what: str) -> ours.OursRun:
    if not run.ok:
        raise NotNoOp(f"ours ({what}) failed (exit {run.rc}):\n{run.output[-3000:]}")
    if run.changed:
        raise NotNoOp(f"ours ({what}) is not a no-op: {run.changed} step(s) changed:\n  "
                      + "\n  ".join(run.changed_steps))
    return run


def check_ansible(run: playbook.AnsibleRun, what: str, noop: bool = True) -> playbook.AnsibleRun:
    if not run.ok:
        raise NotNoOp(f"Ansible ({what}) failed (exit {run.rc}):\n{run.output[-3000:]}")
    if noop and run.changed:
        raise NotNoOp(f"Ansible ({what}) is not a no-op: changed={run.changed}:\n  " + "\n  ".join(run.changed_tasks))
    return run


def timed(label: str, runs: int, funcs: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Each function *runs* times, round-robin, so drift on the machine hits all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for i in range(runs):
        for name, func in funcs.items():
            times[name].append(func())
        say(f"{label}: round {i + 1}/{runs}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()))
    return times


class Bench:
    """One private work directory (configs, vars with secrets, reports) and the Ansible to run."""

    def __init__(self, work: Path, ansible: Path) -> None:
        self.work, self.ansible = work, ansible

    def prepare(self, name: str, hosts: list[SandboxHost]) -> tuple[Path, Path, Path, dict]:
        """hosts.toml, the Ansible inventory and vars.json for *hosts*, in a folder of their own."""
        folder = self.work / name
        folder.mkdir(mode=0o700)
        cfg = write_config(folder / "hosts.toml", hosts)
        loaded = config_mod.load(cfg)
        vars_path = render.write_vars(loaded, HostInfo(hosts[0].name, hosts[0].ssh_user), folder)
        inventory = playbook.write_inventory(folder / "inventory.ini", hosts)
        return cfg, inventory, vars_path, json.loads(vars_path.read_text())

    def ours(self, cfg: Path, what: str, noop: bool = True, hosts: str = "") -> ours.OursRun:
        run = ours.run(cfg, self.work / "report.json", hosts)
        if not noop and run.ok:
            return run
        return check_ours(run, what)

    def ours_dry(self, cfg: Path, hosts: str = "") -> ours.OursRun:
        """Our --dry-run: what it would change (it must not fail)."""
        run = ours.run(cfg, self.work / "report.json", hosts, dry_run=True)
        if not run.ok:
            raise NotNoOp(f"ours --dry-run failed (exit {run.rc}):\n{run.output[-3000:]}")
        return run

    def ansible_check(self, inventory: Path, vars_path: Path, limit: str = "") -> playbook.AnsibleRun:
        """Ansible's check mode with diffs: the tasks it would change."""
        return playbook.run(self.ansible, inventory, vars_path, check=True, limit=limit)

    def ansible_run(self, inventory: Path, vars_path: Path, what: str, forks: int = 5, noop: bool = True,
                    count_ssh: bool = False, warm: bool = False) -> playbook.AnsibleRun:
        home = self.work / "ansible-warm" if warm else None
        return check_ansible(playbook.run(self.ansible, inventory, vars_path, forks, count_ssh, home), what, noop)
