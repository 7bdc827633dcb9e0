"""What each tool's check mode sees of hand-made drift: the breakages of testbed.drift, one at a time.

On a host converged by ours (and found done by Ansible), each breakage is planted, then
`fab deploy --dry-run` and `ansible-playbook --check --diff` are asked what they would change; ours
then repairs the host (and must leave it quiet) before the next breakage.
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass

from testbed.drift import DRIFTS, NODE_BIN, OLDER, Drift, older_release
from testbed.sandbox import SandboxHost

from .bench import Bench, NotNoOp, say


@dataclass
class Seen:
    drift: Drift
    ours: tuple[str, ...]  # changed steps of our dry run (or its "left alone" notes)
    ansible: tuple[str, ...]  # changed tasks of Ansible's check mode
    repaired: bool


def root_sh(host: SandboxHost, command: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", str(host.ssh_key), "-o", f"UserKnownHostsFile={host.known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"{host.ssh_user}@{host.address}",
         # The command travels base64-encoded, so only the root shell expands it.
         f'sudo sh -c "$(echo {base64.b64encode(command.encode()).decode()} | base64 -d)"'],
        input=data, capture_output=True, timeout=120)


def _short(line: str) -> str:
    return line.split(": ", 2)[-1]


def check_modes(bench: Bench, host: SandboxHost, cfg, inventory, vars_path) -> list[Seen]:
    current = root_sh(host, f"cat {NODE_BIN}").stdout
    put = root_sh(host, f"mkdir -p {OLDER.rsplit('/', 1)[0]} && cat > {OLDER} && chmod 0755 {OLDER}",
                  older_release(current))
    if put.returncode != 0:
        raise NotNoOp(f"could not place the older node_exporter: {put.stderr!r}")
    rows = []
    for drift in DRIFTS:
        planted = root_sh(host, drift.plant)
        if planted.returncode != 0:
            raise NotNoOp(f"planting {drift.name!r} failed: {planted.stderr!r}")
        dry = bench.ours_dry(cfg)
        check = bench.ansible_check(inventory, vars_path)
        ours_seen = tuple(_short(s) for s in dry.changed_steps) or tuple(dry.notes)
        rows.append(Seen(drift, ours_seen, tuple(_short(t) for t in check.changed_tasks), False))
        bench.ours(cfg, f"repair of {drift.name}", noop=False)
        rows[-1].repaired = root_sh(host, drift.back).stdout.decode().strip() == "ok"
        bench.ours(cfg, f"quiet after {drift.name}")
        # Each row as soon as it is known: a long run that is stopped still leaves its rows.
        say(f"drift {drift.name!r}: ours sees {len(ours_seen)}, Ansible --check sees {len(rows[-1].ansible)}\n"
            + markdown_row(rows[-1]))
    return rows


def markdown_row(row: Seen) -> str:
    ours = "; ".join(row.ours) or "**not seen**"
    ansible = "; ".join(row.ansible) or "**not seen**"
    if not row.drift.repaired:
        ours = f"reported, left alone: {ours}"
    return f"| {row.drift.name} | {ours.replace('|', '/')} | {ansible.replace('|', '/')} |"


def markdown(rows: list[Seen], ansible_version: str) -> str:
    """The table for docs/performance.md."""
    out = [f"| breakage | ours `--dry-run` | Ansible `--check --diff` ({ansible_version}) |", "|---|---|---|"]
    out += [markdown_row(row) for row in rows]
    seen_ours = sum(bool(r.ours) for r in rows)
    seen_ansible = sum(bool(r.ansible) for r in rows)
    out += ["", f"Seen: ours {seen_ours}/{len(rows)}, Ansible {seen_ansible}/{len(rows)}."]
    return "\n".join(out)
