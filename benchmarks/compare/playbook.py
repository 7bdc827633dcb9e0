"""Running benchmarks/ansible/playbook.yml: ansible-core in its own venv, one inventory, parsed recaps.

Every run gets a fresh ANSIBLE_HOME (control sockets included), so its ssh ControlMaster starts
cold like our own connection does, and is closed when the run ends; the "warm" case shares one
ANSIBLE_HOME, so each run finds the previous run's master still open (ControlPersist).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from testbed.sandbox import SandboxHost

HERE = Path(__file__).resolve().parents[1] / "ansible"
DEFAULT_VENV = Path(__file__).resolve().parents[1] / ".venv-ansible"
DEFAULT_SPEC = "ansible-core>=2.18,<2.20"
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)")


def ensure_ansible(venv: Path, spec: str = DEFAULT_SPEC) -> Path:
    """ansible-playbook from PyPI in *venv* (created on first use); returns its path."""
    playbook = venv / "bin/ansible-playbook"
    if not playbook.exists():
        print(f"installing {spec} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", spec], check=True)
    return playbook


def _env(home: Path) -> dict[str, str]:
    """Everything Ansible keeps (temp files, ssh control sockets) goes under *home*, not ~/.ansible."""
    return {**os.environ, "ANSIBLE_CONFIG": str(HERE / "ansible.cfg"), "ANSIBLE_HOME": str(home),
            "ANSIBLE_LOCAL_TEMP": str(home / "tmp"), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "cp"),
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "PYTHONWARNINGS": "ignore"}


def version(playbook: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="l4rb-ansible-") as home:
        out = subprocess.run([str(playbook), "--version"], capture_output=True, text=True, check=True,
                             env=_env(Path(home))).stdout
    return out.splitlines()[0].strip()


def write_inventory(path: Path, hosts: Sequence[SandboxHost]) -> Path:
    first = hosts[0]
    text = Template((HERE / "inventory.ini.tmpl").read_text()).substitute(
        hosts="\n".join(f"{h.name} ansible_host={h.address}" for h in hosts),
        user=first.ssh_user, key=first.ssh_key, known_hosts=first.known_hosts,
    )
    path.write_text(text)
    return path


@dataclass
class AnsibleRun:
    seconds: float
    rc: int
    output: str
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    changed_tasks: list[str] = field(default_factory=list)
    failed_tasks: list[str] = field(default_factory=list)  # "host: task" of every fatal result
    ssh_invocations: int | None = None
    module_runs: int | None = None  # of those, the ones that ran a module (python3 on the host)

    @property
    def changed(self) -> int:
        return sum(r["changed"] for r in self.recap.values())

    @property
    def tasks(self) -> int:
        """Task results per host (ok + changed + skipped), as the recap counts them."""
        return max((r["ok"] + r["changed"] + r["skipped"] for r in self.recap.values()), default=0)

    @property
    def ok(self) -> bool:
        return self.rc == 0 and bool(self.recap) and not any(r["failed"] or r["unreachable"]
                                                            for r in self.recap.values())


def parse(output: str) -> tuple[dict[str, dict[str, int]], list[str]]:
    """The PLAY RECAP per host, and "host: task" for every changed result."""
    recap, changed, task = {}, [], ""
    for line in output.splitlines():
        if line.startswith("TASK [") or line.startswith("RUNNING HANDLER ["):
            task = line[line.index("[") + 1:line.rindex("]")]
        elif line.startswith("changed: ["):
            changed.append(f"{line[10:line.index(']')]}: {task}")
        elif m := RECAP.match(line):
            recap[m[1]] = dict(zip(("ok", "changed", "unreachable", "failed", "skipped"), map(int, m.groups()[1:]),
                                   strict=True))
    return recap, changed


def failures(output: str) -> list[str]:
    """"host: task" for every fatal result (a failed task ends the play for that host)."""
    failed, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK [") or line.startswith("RUNNING HANDLER ["):
            task = line[line.index("[") + 1:line.rindex("]")]
        elif line.startswith("fatal: [") and "]" in line:
            failed.append(f"{line[8:line.index(']')]}: {task}")
    return failed


def run(playbook: Path, inventory: Path, extra_vars: Path, forks: int = 5, count_ssh: bool = False,
        warm_home: Path | None = None, check: bool = False, limit: str = "") -> AnsibleRun:
    """One ansible-playbook run, timed from start to exit.

    Cold by default: a fresh control socket directory, its ssh master closed at the end. With
    *warm_home*, runs share it and the master stays open (ControlPersist) from one run to the next.
    """
    with tempfile.TemporaryDirectory(prefix="l4rb-ansible-") as tmp:
        home = warm_home or Path(tmp)
        env = _env(home)
        log = Path(tmp) / "ssh.log"
        if count_ssh:
            # Every module, copy and handler is one ssh command; a wrapper counts them.
            wrapper = Path(tmp) / "ssh-counting"
            wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec ssh "$@"\n')
            wrapper.chmod(0o700)
            env["ANSIBLE_SSH_EXECUTABLE"] = str(wrapper)
        command = [str(playbook), "-i", str(inventory), "-e", f"@{extra_vars}", "-f", str(forks),
                   str(HERE / "playbook.yml")] + (["--check", "--diff"] if check else [])
        if limit:
            command += ["--limit", limit]
        started = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE, timeout=900)
        seconds = time.perf_counter() - started
        if warm_home is None:
            close_masters(home)
        recap, changed = parse(proc.stdout)
        result = AnsibleRun(seconds, proc.returncode, proc.stdout + proc.stderr, recap, changed,
                            failures(proc.stdout))
        if count_ssh:
            lines = log.read_text().splitlines() if log.exists() else []
            result.ssh_invocations = len(lines)
            result.module_runs = sum("/usr/bin/python3" in line for line in lines)
        return result


def close_masters(home: Path) -> None:
    for socket in (home / "cp").glob("*") if (home / "cp").is_dir() else ():
        subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "l4rb"], capture_output=True,
                       timeout=10)
