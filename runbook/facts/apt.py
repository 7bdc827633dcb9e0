"""What apt and dpkg say: installed DCGM packages and their major, the CUDA sources, apt's own errors.

apt reads its sources on every call, so ``apt-cache policy`` reports a broken source list (a
duplicate CUDA repository with another Signed-By is "E: Conflicting values set for option
Signed-By") exactly as ``apt-get update`` would; those lines are the fact, not our reading of the
files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..engine.steps import q
from .batch import Fact
from .common import key_value

CUDA_SOURCES = r"cuda|developer\.download\.nvidia"


@dataclass(frozen=True)
class Apt:
    installed: dict[str, str] = field(default_factory=dict)  # DCGM package -> version
    candidate: str = ""
    keyring: str = ""
    sources: tuple[str, ...] = ()  # files that name a CUDA repository
    errors: tuple[str, ...] = ()  # apt's own E:/W: lines when it reads its sources

    @property
    def dcgm_major(self) -> int | None:
        """4 for datacenter-gpu-manager-4-*, else the major of datacenter-gpu-manager's version (1:3.3.9 -> 3)."""
        for name in self.installed:
            if m := re.match(r"datacenter-gpu-manager-(\d+)-", name):
                return int(m.group(1))
        version = self.installed.get("datacenter-gpu-manager", "")
        if m := re.match(r"(?:\d+:)?(\d+)\.", version):
            return int(m.group(1))
        return None


def parse(text: str) -> Apt:
    facts = key_value(text)
    installed = {}
    for word in facts.get("installed", "").split():
        name, _, version = word.partition("=")
        installed[name] = version
    errors = tuple(line[6:] for line in text.splitlines() if line.startswith("error="))
    return Apt(installed, facts.get("candidate", "").strip(), facts.get("keyring", ""),
               tuple(facts.get("sources", "").split()), errors)


def apt(package: str) -> Fact:
    status = "$(dpkg-query -W -f='${db:Status-Status}' cuda-keyring 2>/dev/null || true)"
    return Fact("apt", (
        "echo \"installed=$(dpkg-query -W -f='${Package}=${Version}=${db:Status-Status}\\n' 'datacenter-gpu-manager*' "
        "2>/dev/null | sed -n 's/=installed$//p' | tr '\\n' ' ')\"\n"
        f"p=$(apt-cache policy {q(package)} 2>&1)\n"
        "echo \"candidate=$(printf '%s\\n' \"$p\" | sed -n 's/^ *Candidate: //p')\"\n"
        "printf '%s\\n' \"$p\" | grep -E '^(E|W): ' | sed 's/^/error=/'\n"
        f"echo \"keyring={status}\"\n"
        f"echo \"sources=$(grep -rlsE '{CUDA_SOURCES}' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null "
        "| tr '\\n' ' ')\""
    ), timeout=20, parser=parse)
