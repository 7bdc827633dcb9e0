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

from ..engine.steps import AptPackages, Plan, RunState, Step
from ..facts.apt import Apt, apt, parse, usable
from ..facts.batch import Fact


@dataclass(frozen=True, kw_only=True)
class DcgmPackages(Step):
    """Install the DCGM packages of the chosen major (see the module docstring)."""

    major: str  # "auto", "3" or "4"
    package_3: str
    package_4: str
    package_4_cuda: str  # may contain {cuda}: the CUDA major nvidia-smi reports

    def fact(self) -> Fact:
        """The same fact B-6 and B-7 read (runbook.facts.apt)."""
        return apt(self.package_3, self.package_4, self.package_4_cuda)

    def probe(self) -> str:
        return self.fact().shell

    def choose(self, facts: Apt) -> tuple[str, tuple[str, ...], str]:
        """(major, packages, why) or raises ValueError with what a person must decide."""
        installed = facts.installed
        have = str(facts.dcgm_major or "")
        offers4 = usable(facts.candidates.get("4", ""))
        if self.major == "auto":
            if have:
                major, why = have, f"DCGM {have} is installed ({', '.join(installed)}): kept"
            elif offers4:
                major, why = "4", f"the CUDA repository offers {self.package_4} {facts.candidates['4']}"
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
        if facts.cuda_package and usable(facts.candidates.get("4cuda", "")):
            packages.append(facts.cuda_package)
        return major, tuple(packages), why

    def plan(self, fact: str, state: RunState) -> Plan:
        facts = parse(fact)
        try:
            major, packages, why = self.choose(facts)
        except ValueError as err:
            return Plan(False, "DCGM would be downgraded", error=str(err))
        missing = tuple(p for p in packages if p not in facts.installed)
        if not missing:
            return Plan(False, f"DCGM {major}: {', '.join(packages)} ({why})")
        if not usable(facts.candidates.get(major, "")):
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
