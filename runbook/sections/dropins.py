"""Drop-ins that override what the runbook writes into a unit are moved aside, never deleted.

systemd applies every ``/etc/systemd/system/UNIT.d/*.conf`` after the unit file, so a drop-in that
resets ExecStart=, adds an EnvironmentFile= or sets one of the unit's variables wins over the file
the runbook manages: rewriting the unit alone changes nothing the service sees. The step reads the
unit as systemd does (runbook.facts.unit), names each conflicting line, and renames the drop-in to a
dated backup (``NAME.conf.l4rb-aside-YYYYmmdd-HHMMSS``, which systemd no longer reads); the diff
shows what stops applying. Drop-ins that touch nothing the runbook manages stay where they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.steps import Plan, RunState, Step, q
from ..facts.unit import Unit
from ..facts.unit import parse as parse_unit
from ..facts.unit import unit as unit_fact

SYSTEM_DIRS = ("/etc/systemd/system/", "/run/systemd/system/")  # the admin's places, not a package's


@dataclass(frozen=True, kw_only=True)
class DropInsAside(Step):
    unit: str
    keys: tuple[str, ...]  # unit settings the runbook writes (ExecStart, EnvironmentFile, User, ...)
    variables: tuple[str, ...]  # environment variables the runbook sets (Environment= and its env file)

    def probe(self) -> str:
        return unit_fact(self.unit).shell

    def conflicts(self, u: Unit) -> dict[str, list[str]]:
        """Drop-in path -> its lines that override a managed setting."""
        out: dict[str, list[str]] = {}
        for path in u.dropins:
            if not path.startswith(SYSTEM_DIRS) or not path.endswith(".conf"):
                continue
            for setting in u.settings_in(path):
                key, _, value = setting.text.partition("=")
                key = key.strip()
                managed = key in self.keys or (key == "Environment" and any(
                    f"{v}=" in value for v in self.variables))
                if managed:
                    out.setdefault(path, []).append(f"line {setting.line}: {setting.text}")
        return out

    def plan(self, fact: str, state: RunState) -> Plan:
        u = parse_unit(self.unit, fact)
        found = self.conflicts(u)
        if not found:
            return Plan(False, f"no drop-in overrides the managed settings of {self.unit}")
        files = dict(u.files)
        diff = "".join(
            f"--- {path}\n+++ {path}.l4rb-aside-<date> (no longer read by systemd)\n"
            + "".join(f"-{line}\n" for line in files.get(path, ()))
            for path in found)
        lines = "; ".join(f"{path} {', '.join(v)}" for path, v in found.items())
        return Plan(True, f"move aside drop-in(s) overriding {self.unit}: {lines}", diff, data=sorted(found))

    def script(self, plan: Plan) -> str:
        moves = "\n".join(f"mv -f {q(p)} {q(p)}.l4rb-aside-$stamp && echo \"moved {p} to {p}.l4rb-aside-$stamp\""
                          for p in plan.data)
        return f"set -e\nstamp=$(date -u +%Y%m%d-%H%M%S)\n{moves}\nsystemctl daemon-reload\n"

    def doc(self) -> dict[str, str]:
        return {"checks": f"the drop-ins of {self.unit} (`systemctl show -p DropInPaths`, `systemctl cat`) for lines "
                          f"setting {', '.join(self.keys)} or Environment= of {', '.join(self.variables)}",
                "changes": "each such drop-in renamed to a dated backup (`*.conf.l4rb-aside-DATE`), never deleted",
                "runs": "mv; systemctl daemon-reload"}
