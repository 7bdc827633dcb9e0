"""What the hosts themselves saw: ssh logins and sudo commands (journald), and the managed state.

Counting on the host treats both tools alike: neither reports its own figure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from runbook.engine.steps import q
from testbed.sandbox import SandboxHost


@dataclass(frozen=True)
class Seen:
    logins: int
    sudo: int


def seen(host: SandboxHost, start: float, end: float) -> Seen:
    """sshd logins and sudo commands logged between *start* and *end* (the host shares our clock)."""
    out = host.ssh(f"sudo journalctl -t sshd -t sudo --since @{int(start) - 1} -o short-unix --no-pager",
                   timeout=60).stdout
    logins = sudo = 0
    for line in out.splitlines():
        stamp, _, text = line.partition(" ")
        try:
            when = float(stamp)
        except ValueError:
            continue
        if start <= when <= end:
            logins += "Accepted publickey" in text
            sudo += "COMMAND=" in text
    return Seen(logins, sudo)


def fingerprint_script(ai: dict, node: dict) -> str:
    """Owner, mode and sha256 of everything both tools manage, the venv's packages, the units' state."""
    paths = [d["path"] for d in ai["directories"]] + [f["dest"] for f in ai["files"] + node["files"]]
    paths += [ai["source"]["stamp"], ai["uv"]["link"], ai["venv"]["marker"]]
    paths += [node["download"]["dest"], node["download"]["stamp"]]
    quoted = " ".join(q(p) for p in paths)
    app = q(ai["source"]["dest"])
    return (
        f"for p in {quoted}; do stat -c '%F %U:%G %a %n' \"$p\"; [ -f \"$p\" ] && sha256sum < \"$p\"; done\n"
        f"cd {app} && find . -path ./.venv -prune -o -name __pycache__ -prune -o -path ./.env -prune "
        "-o -type f -print | sort | xargs sha256sum\n"
        f"uv pip freeze --python {q(ai['packages']['python'])} 2>/dev/null\n"
        f"systemctl is-enabled {q(ai['service'])} {q(node['service'])}; "
        f"systemctl is-active {q(ai['service'])} {q(node['service'])}\n"
    )


def fingerprint(host: SandboxHost, script: str) -> str:
    """A digest of the managed state (identical hosts, identical digests)."""
    out = host.ssh(["sudo", "bash", "-c", script], timeout=60).stdout
    return hashlib.sha256(out.encode()).hexdigest()[:16]
