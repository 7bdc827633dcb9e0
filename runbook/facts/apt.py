"""What apt and dpkg say about DCGM: installed packages and their major, apt's candidates, the CUDA sources.

One fact for step 7-2 (which DCGM major to install), B-6 (why apt cannot install it) and B-7 (which
major the exporter must match). apt reads its sources on every call, so ``apt-cache policy`` reports a
broken source list (a duplicate CUDA repository with another Signed-By is "E: Conflicting values set
for option Signed-By") exactly as ``apt-get update`` would; those lines are the fact, not our reading of
the files. The candidates of all DCGM packages come from one ``apt-cache policy`` call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..engine.steps import q
from .batch import Fact
from .common import key_value

CUDA_SOURCES = r"cuda|developer\.download\.nvidia"
KEY = "apt"


def usable(candidate: str) -> bool:
    """apt has a version to install ('(none)': it knows the name, but no source offers it)."""
    return bool(candidate.strip()) and candidate.strip() != "(none)"


@dataclass(frozen=True)
class Apt:
    installed: dict[str, str] = field(default_factory=dict)  # DCGM package -> version
    candidates: dict[str, str] = field(default_factory=dict)  # "3", "4", "4cuda" -> apt's candidate ('' unknown)
    cuda: str = ""  # the CUDA major nvidia-smi reports ('' without a driver)
    cuda_package: str = ""  # the DCGM 4 package for that CUDA major
    keyring: str = ""
    sources: tuple[str, ...] = ()  # files that name a CUDA repository
    errors: tuple[str, ...] = ()  # apt's own E:/W: lines when it reads its sources

    @property
    def dcgm_major(self) -> int | None:
        """4 for datacenter-gpu-manager-4-*, else the major of datacenter-gpu-manager's version (1:3.3.9 -> 3)."""
        majors = []
        for name, version in self.installed.items():
            if m := re.match(r"datacenter-gpu-manager-(\d+)-", name):
                majors.append(int(m.group(1)))
            elif m := re.match(r"(?:\d+:)?(\d+)\.", version):
                majors.append(int(m.group(1)))
        return max(majors, default=None)


def parse(text: str) -> Apt:
    facts = key_value(text)
    installed = {}
    for word in facts.get("installed", "").split():
        name, _, version = word.partition("=")
        installed[name] = version
    candidates = {major: facts.get(f"candidate{major}", "").strip() for major in ("3", "4", "4cuda")}
    errors = tuple(line[6:] for line in text.splitlines() if line.startswith("error="))
    return Apt(installed, candidates, facts.get("cuda", "").strip(), facts.get("cudapkg", "").strip(),
               facts.get("keyring", ""), tuple(facts.get("sources", "").split()), errors)


def _candidate(package_var: str) -> str:
    """The Candidate: line of one package in the policy output held in $p."""
    return (f"printf '%s\\n' \"$p\" | awk -v pkg=\"${package_var}:\" '$0 == pkg {{f=1; next}} /^[^ ]/ {{f=0}} "
            "f && $1 == \"Candidate:\" {print $2; exit}'")


def shell(package_3: str, package_4: str, package_4_cuda: str, cuda: bool = True) -> str:
    return (
        "echo \"installed=$(dpkg-query -W -f='${Package}=${Version}=${db:Status-Status}\\n' 'datacenter-gpu-manager*' "
        "2>/dev/null | sed -n 's/=installed$//p' | tr '\\n' ' ')\"\n"
        + ("cuda=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\\([0-9][0-9]*\\)\\..*/\\1/p' | head -1)\n"
           if cuda else "cuda=\n")
        +
        f"p3={q(package_3)}; p4={q(package_4)}; template={q(package_4_cuda)}; p4cuda=${{template//'{{cuda}}'/$cuda}}\n"
        "echo \"cuda=$cuda\"; [ -n \"$cuda\" ] && echo \"cudapkg=$p4cuda\"\n"
        # One apt-cache call for every package (and apt's complaints about its sources, on stderr).
        "p=$(apt-cache policy \"$p3\" \"$p4\" ${cuda:+\"$p4cuda\"} 2>&1)\n"
        f"echo \"candidate3=$({_candidate('p3')})\"\n"
        f"echo \"candidate4=$({_candidate('p4')})\"\n"
        f"[ -n \"$cuda\" ] && echo \"candidate4cuda=$({_candidate('p4cuda')})\"\n"
        "printf '%s\\n' \"$p\" | grep -E '^(E|W): ' | sed 's/^/error=/'\n"
        "echo \"keyring=$(dpkg-query -W -f='${db:Status-Status}' cuda-keyring 2>/dev/null || true)\"\n"
        f"echo \"sources=$(grep -rlsE '{CUDA_SOURCES}' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null "
        "| grep -E '\\.(list|sources)$' | tr '\\n' ' ')\"\n"
        "true"
    )


def apt(package_3: str = "datacenter-gpu-manager", package_4: str = "datacenter-gpu-manager-4-core",
        package_4_cuda: str = "datacenter-gpu-manager-4-cuda{cuda}", cuda: bool = True) -> Fact:
    """The DCGM packages as dpkg and apt see them (one fact per run: the packages come from the settings).

    *cuda*: also ask nvidia-smi for the driver's CUDA major and apt for DCGM 4's package of that major, which
    the install step needs; diagnoses leave it out (nvidia-smi is the slowest probe of a whole batch).
    """
    return Fact(KEY + ":cuda" if cuda else KEY, shell(package_3, package_4, package_4_cuda, cuda), timeout=20,
                parser=parse)


def dcgm_apt(dcgm, cuda: bool = False) -> Fact:
    """:func:`apt` for the packages of *dcgm* (monitoring.dcgm)."""
    return apt(dcgm.package, dcgm.package_4, dcgm.package_4_cuda, cuda)
