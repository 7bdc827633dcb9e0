"""Running benchmarks/pyinfra/deploy.py: pyinfra in its own venv, a Python inventory, parsed dry runs.

The deploy reads the same vars.json as the Ansible playbook (rendered from our steps). A dry run
(`pyinfra --dry --diff`) prepares every operation against the host's facts and lists, per operation,
the hosts it would change; that list is what is read back here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from testbed.sandbox import SandboxHost

from .bench import NotNoOp

HERE = Path(__file__).resolve().parents[1] / "pyinfra"
DEFAULT_VENV = Path(__file__).resolve().parents[1] / ".venv-pyinfra"
DEFAULT_SPEC = "pyinfra>=3.10,<4"


def ensure_pyinfra(venv: Path, spec: str = DEFAULT_SPEC) -> Path:
    """The pyinfra command from PyPI in *venv* (created on first use); returns its path."""
    exe = venv / "bin/pyinfra"
    if not exe.exists():
        print(f"installing {spec} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", spec], check=True)
    return exe


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore", "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "250"}


def version(exe: Path) -> str:
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True, env=_env()).stdout
    return "pyinfra " + out.strip().rsplit(" ", 1)[-1].lstrip("v")


def write_inventory(path: Path, hosts: Sequence[SandboxHost], vars_path: Path) -> Path:
    """A pyinfra inventory (Python): the hosts, how to reach them (our key, strict known_hosts), sudo."""
    rows = []
    for h in hosts:
        data = {"ssh_hostname": h.address, "ssh_user": h.ssh_user, "ssh_key": str(h.ssh_key),
                "ssh_known_hosts_file": str(h.known_hosts), "ssh_strict_host_key_checking": "yes",
                "_sudo": True, "l4rb_vars": str(vars_path)}
        rows.append(f"    ({h.name!r}, {data!r}),")
    path.write_text("# Rendered by compare_ansible.py: the sandbox hosts of one run.\nl4rb = [\n"
                    + "\n".join(rows) + "\n]\n")
    return path


@dataclass
class PyinfraRun:
    seconds: float
    rc: int
    output: str
    changes: dict[str, list[str]] = field(default_factory=dict)  # host -> operations it would change
    conditional: dict[str, list[str]] = field(default_factory=dict)  # host -> operations that may change
    errors: dict[str, str] = field(default_factory=dict)  # host -> the first error pyinfra reported

    @property
    def changed(self) -> int:
        return sum(len(ops) for ops in self.changes.values())


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


_ERROR = re.compile(r"^\s*\[([^\]]+)\]\s+(?:Error|Unexpected error)\b:?\s*(.*)$")


def _hosts(column: str) -> list[str]:
    """'2 (h1, h2)' -> ['h1', 'h2']; '-' -> []. pyinfra shortens a long list: that is refused, not guessed."""
    count, _, rest = column.strip().partition(" (")
    if not count.isdigit():
        return []
    inside = rest.rpartition(")")[0]
    names = [name.strip() for name in inside.split(",") if name.strip()]
    if inside.endswith("...") or len(names) != int(count):
        raise ValueError(f"pyinfra shortened its host list {column.strip()!r}: ask about fewer hosts at a time")
    return names


def parse(output: str) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, str]]:
    """Per host: the operations a dry run would change, those it may change, and the first error.

    The dry run's "Detected changes" table (as pyinfra 3.10 prints it, see tests/unit/test_drift_table.py)
    has one row per operation and the columns Change and Conditional Change, each "-" or
    "N (host, host)"; the columns are found by the header's words. Errors are "[host] Error: ..." lines.
    """
    changes: dict[str, list[str]] = {}
    conditional: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    lines = output.splitlines()
    for line in lines:
        if m := _ERROR.match(line):
            errors.setdefault(m[1], m[2].strip() or "error")
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "--> Detected changes:")
    except StopIteration:
        return changes, conditional, errors
    header = lines[start + 1]
    at_change, at_conditional = header.index("Change"), header.index("Conditional Change")
    for line in lines[start + 2:]:
        if not line.strip():
            break
        name = line[:at_change].strip()
        for host in _hosts(line[at_change:at_conditional]):
            changes.setdefault(host, []).append(name)
        for host in _hosts(line[at_conditional:]):
            conditional.setdefault(host, []).append(name)
    return changes, conditional, errors


def run(exe: Path, inventory: Path, dry: bool = True, limit: Sequence[str] = ()) -> PyinfraRun:
    """One pyinfra process over *inventory* with benchmarks/pyinfra/deploy.py (--dry --diff by default)."""
    # --dry prints the operations each host would change; -y (no prompt) also skips that detection.
    command = [str(exe), str(inventory), str(HERE / "deploy.py"), "--diff"] + (["--dry"] if dry else ["-y"])
    for name in limit:
        command += ["--limit", name]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=HERE, timeout=900)
    output = _ANSI.sub("", proc.stdout + proc.stderr)
    changes, conditional, errors = parse(output)
    return PyinfraRun(time.perf_counter() - started, proc.returncode, output, changes, conditional, errors)


def check_noop(run: PyinfraRun, what: str) -> PyinfraRun:
    if run.rc != 0 or run.errors:
        raise NotNoOp(f"pyinfra ({what}) failed (exit {run.rc}):\n{run.output[-3000:]}")
    if run.changed:
        raise NotNoOp(f"pyinfra ({what}) is not a no-op: " + "; ".join(
            f"{host}: {', '.join(ops)}" for host, ops in run.changes.items() if ops))
    return run
