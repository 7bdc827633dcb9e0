"""What each tool's check mode sees of hand-made drift: the breakages of testbed.drift, one at a time per host.

On hosts converged by ours (and found done by Ansible and by pyinfra), each breakage is planted on a
host of its own, then `fab deploy --dry-run`, `ansible-playbook --check --diff` and `pyinfra --dry --diff`
are asked what they would change; ours then repairs the hosts (and must leave them quiet) before the
next breakages. With several hosts, each round plants one breakage per host and asks each tool once
about all of them: every host still holds one breakage at a time, and the answers are read per host.
"""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from testbed.drift import DRIFTS, NODE_BIN, OLDER, Drift, older_release
from testbed.sandbox import SandboxHost

from .bench import Bench, NotNoOp, say
from .config import SECTIONS
from .ours import OursRun
from .playbook import AnsibleRun
from .pyinfra_twin import PyinfraRun

CELL_ITEMS = 3  # what a table cell names at most; the rest is counted
ITEM_CHARS = 70


@dataclass(frozen=True)
class Verdict:
    """One tool's answer about one breakage."""

    seen: bool
    said: tuple[str, ...] = ()  # the steps, tasks or operations it would change
    note: str = ""  # why it could not answer, or what it reported without changing


@dataclass(frozen=True)
class Row:
    drift: Drift
    ours: Verdict
    ansible: Verdict
    pyinfra: Verdict
    repaired: bool  # ours' run put the host back (the case's own check says so)


def root_sh(host: SandboxHost, command: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", str(host.ssh_key), "-o", f"UserKnownHostsFile={host.known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"{host.ssh_user}@{host.address}",
         # The command travels base64-encoded, so only the root shell expands it.
         f'sudo sh -c "$(echo {base64.b64encode(command.encode()).decode()} | base64 -d)"'],
        input=data, capture_output=True, timeout=120)


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ITEM_CHARS else text[:ITEM_CHARS - 1].rstrip() + "…"


def _unique(items: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def ours_verdict(run: OursRun, host: str, drift: Drift) -> Verdict:
    """Our dry run on *host*: each changed step with the first line of its diff (which names the path)."""
    said = [f"{title}: {first or summary}" for title, summary, first in run.changes.get(host, [])]
    if said:
        return Verdict(True, _unique(said))
    alone = run.left_alone.get(host, [])
    if alone:
        return Verdict(True, _unique(alone), "reported, left alone")
    return Verdict(False)


def _tasks(results: Sequence[str], host: str) -> list[str]:
    """The task names of *host*'s "host: role : task" results, without the role."""
    return [r.split(": ", 1)[1].split(" : ", 1)[-1] for r in results if r.split(": ", 1)[0] == host]


def ansible_verdict(run: AnsibleRun, host: str, drift: Drift) -> Verdict:
    """Ansible's check mode on *host*: the tasks (and handlers) it reports as changed."""
    if drift.section not in SECTIONS:
        return Verdict(False, note="not managed by the playbook")
    said = _unique(_tasks(run.changed_tasks, host))
    failed = _tasks(run.failed_tasks, host)
    note = f"check mode failed at {failed[0]!r}" if failed else ""
    return Verdict(bool(said), said, note)


def pyinfra_verdict(run: PyinfraRun, host: str, drift: Drift) -> Verdict:
    """pyinfra's dry run on *host*: the operations it would run (conditional ones counted apart)."""
    if drift.section not in SECTIONS:
        return Verdict(False, note="not managed by the deploy")
    said = _unique(run.changes.get(host, []))
    note = f"dry run failed: {run.errors[host]}" if host in run.errors else ""
    return Verdict(bool(said), said, note)


def cell(verdict: Verdict) -> str:
    """One table cell: detected or not, and what the tool named (a few items, the rest counted)."""
    if not verdict.said and verdict.note and not verdict.seen:
        text = verdict.note
    else:
        text = "**yes**" if verdict.seen else "no"
        items = [_clip(item) for item in verdict.said[:CELL_ITEMS]]
        if len(verdict.said) > CELL_ITEMS:
            items.append(f"+{len(verdict.said) - CELL_ITEMS} more")
        if items:
            text += ": " + "; ".join(items)
        if verdict.note:
            text += f" ({verdict.note})"
    # Markdown: a pipe would end the cell, a backtick pair would start code.
    return text.replace("|", "\\|").replace("`", "'")


def markdown_row(row: Row) -> str:
    return f"| {row.drift.name} | {cell(row.ours)} | {cell(row.ansible)} | {cell(row.pyinfra)} |"


def markdown(rows: list[Row], versions: dict[str, str]) -> str:
    """The table for docs/performance.md, and how many cases each tool saw."""
    out = [f"| breakage | ours `--dry-run` | Ansible `--check --diff` ({versions['ansible']}) "
           f"| pyinfra `--dry --diff` ({versions['pyinfra']}) |", "|---|---|---|---|"]
    out += [markdown_row(row) for row in rows]
    seen = {tool: sum(getattr(r, tool).seen for r in rows) for tool in ("ours", "ansible", "pyinfra")}
    out += ["", f"Seen: ours {seen['ours']}/{len(rows)}, Ansible {seen['ansible']}/{len(rows)}, "
                f"pyinfra {seen['pyinfra']}/{len(rows)}. Put back by ours' run: "
                f"{sum(r.repaired for r in rows if r.drift.repaired)}/{sum(r.drift.repaired for r in rows)}."]
    return "\n".join(out)


def place_older_release(hosts: Sequence[SandboxHost]) -> None:
    """The installed node_exporter with an older version string, ready for the older-release cases."""
    for host in hosts:
        current = root_sh(host, f"cat {NODE_BIN}").stdout
        put = root_sh(host, f"mkdir -p {OLDER.rsplit('/', 1)[0]} && cat > {OLDER} && chmod 0755 {OLDER}",
                      older_release(current))
        if put.returncode != 0:
            raise NotNoOp(f"{host.name}: could not place the older node_exporter: {put.stderr!r}")


def check_modes(bench: Bench, hosts: Sequence[SandboxHost], tools, drifts: Sequence[Drift] = DRIFTS) -> list[Row]:
    """Every case of *drifts*, len(hosts) at a time (one per host); *tools* asks each tool about all hosts."""
    place_older_release(hosts)
    rows: list[Row] = []
    for start in range(0, len(drifts), len(hosts)):
        batch = list(zip(hosts, drifts[start:start + len(hosts)], strict=False))
        for host, drift in batch:
            planted = root_sh(host, drift.plant)
            if planted.returncode != 0:
                raise NotNoOp(f"planting {drift.name!r} on {host.name} failed: {planted.stderr!r}")
        names = [host.name for host, _ in batch]
        dry, check, infra = tools.ours_dry(names), tools.ansible_check(names), tools.pyinfra_dry(names)
        tools.ours_repair(names, "repair of " + ", ".join(d.name for _, d in batch))
        for host, drift in batch:
            back = root_sh(host, drift.back).stdout.decode().strip() == "ok"
            row = Row(drift, ours_verdict(dry, host.name, drift), ansible_verdict(check, host.name, drift),
                      pyinfra_verdict(infra, host.name, drift), back)
            rows.append(row)
            # Each row as soon as it is known: a long run that is stopped still leaves its rows.
            say(f"drift {drift.name!r} on {host.name}: ours {row.ours.seen}, Ansible {row.ansible.seen}, "
                f"pyinfra {row.pyinfra.seen}, put back {back}\n" + markdown_row(row))
        tools.ours_quiet(names, "quiet after " + ", ".join(d.name for _, d in batch))
    return rows
