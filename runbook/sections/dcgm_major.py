"""Guide 7-2 / B-7: which DCGM major to install, chosen on the host and never downgraded.

The guide installs DCGM 3 (``datacenter-gpu-manager``). NVIDIA now ships DCGM 4 as
``datacenter-gpu-manager-4-core`` plus ``datacenter-gpu-manager-4-cuda<N>`` for the driver's CUDA
major (NVIDIA's DCGM installation docs; dcgm-exporter's 4.x images install ``-4-core``). With
``dcgm.major = "auto"`` a host keeps the major it has; a host without DCGM gets 4 when the CUDA
repository offers it, else 3. An explicit 3 on a host that has 4 is refused, not downgraded (the
exporter tag follows the major: dcgm_exporter_build).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.steps import AptPackages, Plan, RunState, Step, q
from .dcgm_exporter_build import major_of


def _usable(candidate: str) -> bool:
    return bool(candidate.strip()) and candidate.strip() != "(none)"


@dataclass(frozen=True, kw_only=True)
class DcgmPackages(Step):
    """Install the DCGM packages of the chosen major (see the module docstring)."""

    major: str  # "auto", "3" or "4"
    package_3: str
    package_4: str
    package_4_cuda: str  # may contain {cuda}: the CUDA major nvidia-smi reports

    def probe(self) -> str:
        policy = "apt-cache policy {} 2>/dev/null | sed -n 's/^ *Candidate: //p'"
        return (
            "printf 'installed=%s\\n' \"$(dpkg-query -W -f='${Package}=${Version}=${db:Status-Status}\\n' "
            "'datacenter-gpu-manager*' 2>/dev/null | sed -n 's/=installed$//p' | tr '\\n' ' ')\"\n"
            f"printf 'candidate3=%s\\n' \"$({policy.format(q(self.package_3))})\"\n"
            f"printf 'candidate4=%s\\n' \"$({policy.format(q(self.package_4))})\"\n"
            "cuda=$(nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\\([0-9][0-9]*\\)\\..*/\\1/p' | head -1)\n"
            f"template={q(self.package_4_cuda)}\ncudapkg=${{template//'{{cuda}}'/$cuda}}\n"
            "printf 'cuda=%s\\ncudapkg=%s\\n' \"$cuda\" \"$cudapkg\"\n"
            "[ -n \"$cuda\" ] && printf 'candidate4cuda=%s\\n' "
            f"\"$({policy.format(chr(34) + '$cudapkg' + chr(34))})\"\n"
            "true"
        )

    @staticmethod
    def facts(fact: str) -> dict[str, str]:
        return dict(line.split("=", 1) for line in fact.splitlines() if "=" in line)

    def choose(self, facts: dict[str, str]) -> tuple[str, tuple[str, ...], str]:
        """(major, packages, why) or raises ValueError with what a person must decide."""
        installed = dict(p.split("=", 1) for p in facts.get("installed", "").split() if "=" in p)
        have = max((major_of(v) for v in installed.values() if major_of(v)), key=int, default="")
        offers4 = _usable(facts.get("candidate4", ""))
        if self.major == "auto":
            if have:
                major, why = have, f"DCGM {have} is installed ({', '.join(installed)}): kept"
            elif offers4:
                major, why = "4", f"the CUDA repository offers {self.package_4} {facts['candidate4'].strip()}"
            else:
                major, why = "3", f"the CUDA repository has no {self.package_4}: DCGM 3 ({self.package_3})"
        else:
            major, why = self.major, f"monitoring.dcgm.major = {self.major}"
            if have and int(have) > int(major):
                raise ValueError(f"DCGM {have} is installed ({', '.join(f'{p} {v}' for p, v in installed.items())}) "
                                 f"and monitoring.dcgm.major = {major}: the runbook never downgrades DCGM. Set "
                                 f"major = \"auto\" (or {have}), or remove DCGM {have} by hand first")
        if major == "3":
            return major, (self.package_3,), why
        packages = [self.package_4]
        if facts.get("cuda") and _usable(facts.get("candidate4cuda", "")):
            packages.append(facts["cudapkg"])
        return major, tuple(packages), why

    def plan(self, fact: str, state: RunState) -> Plan:
        facts = self.facts(fact)
        try:
            major, packages, why = self.choose(facts)
        except ValueError as err:
            return Plan(False, "DCGM would be downgraded", error=str(err))
        installed = {p.split("=", 1)[0] for p in facts.get("installed", "").split()}
        missing = tuple(p for p in packages if p not in installed)
        if not missing:
            return Plan(False, f"DCGM {major}: {', '.join(packages)} ({why})")
        candidate = facts.get("candidate3" if major == "3" else "candidate4", "")
        if not _usable(candidate):
            return Plan(False, f"apt has no {packages[0]}", error=(
                f"apt does not know {packages[0]} (Unable to locate package, guide B-6): is the CUDA repository "
                "registered and apt-get update run? See inv troubleshoot --only B-6"))
        return Plan(True, f"install DCGM {major}: {' '.join(missing)} ({why})",
                    "".join(f"+ package {p}\n" for p in missing), data=missing)

    def script(self, plan: Plan) -> str:
        return AptPackages(guide=self.guide, title=self.title, names=plan.data).script(plan)

    def doc(self) -> dict[str, str]:
        return {
            "checks": "installed `datacenter-gpu-manager*` packages (dpkg), apt's candidates for "
                      f"`{self.package_3}` and `{self.package_4}`, the CUDA major in `nvidia-smi`",
            "changes": f"DCGM of major {self.major}: 3 -> `{self.package_3}`; 4 -> `{self.package_4}` (+ "
                       f"`{self.package_4_cuda}` when offered). auto keeps the installed major, else 4 when "
                       "the repository has it; never a downgrade",
            "runs": "apt-get install -y the chosen packages",
        }
