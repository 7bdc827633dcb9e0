"""Who listens on which TCP port, as the kernel says (``ss -ltnpH``), with the systemd unit of each holder.

The unit comes from the process's cgroup (``/proc/PID/cgroup``), so "port 8000 is held by
ai-server.service" is decided by systemd's bookkeeping, not by a process name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .batch import Fact

SHELL = (
    "s=$(ss -ltnpH 2>/dev/null); printf '%s\\n' \"$s\"\n"
    "echo @@L4RB-CGROUPS\n"
    "for pid in $(printf '%s\\n' \"$s\" | grep -oE 'pid=[0-9]+' | cut -d= -f2 | sort -u); do\n"
    "  echo \"$pid $(grep -oE '[^/]+\\.service' /proc/$pid/cgroup 2>/dev/null | tail -1)\"\n"
    "done"
)


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    process: str
    pid: int
    unit: str

    def describe(self) -> str:
        who = f"{self.process} (pid {self.pid}" + (f", {self.unit})" if self.unit else ")")
        return f"{self.address}:{self.port} held by {who}" if self.process else f"{self.address}:{self.port}"


def parse(text: str) -> list[Listener]:
    sockets, _, cgroups = text.partition("@@L4RB-CGROUPS\n")
    units = {}
    for line in cgroups.splitlines():
        pid, _, unit = line.partition(" ")
        if pid.isdigit():
            units[int(pid)] = unit.strip()
    out = []
    for line in sockets.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        address, _, port = parts[3].rpartition(":")
        users = re.search(r'users:\(\("([^"]*)",pid=(\d+)', line)
        process, pid = (users.group(1), int(users.group(2))) if users else ("", 0)
        if port.isdigit():
            out.append(Listener(address, int(port), process, pid, units.get(pid, "")))
    return out


def listeners() -> Fact:
    return Fact("listeners", SHELL, parser=parse)


def holders(found: list[Listener], port: int) -> list[Listener]:
    return [x for x in found if x.port == port]
