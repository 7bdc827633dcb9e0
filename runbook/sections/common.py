"""Pieces several sections share: who the host's login user is, installing uv."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from ..config import Config
from ..engine.steps import (
    Plan,
    RunState,
    Step,
    key_values,
    q,
    record_sha256_script,
    reported_version,
    sha256_probe,
    version_probe,
)

UV_HOME = "/opt/l4-runbook/uv"
UV_LINK = "/usr/local/bin/uv"
UV_RECORD = "/var/lib/l4-runbook/uv.key"  # the binary's identity when it was hashed (a speed-up only)


@dataclass(frozen=True)
class HostInfo:
    """What a section needs to know about the host before its facts are read."""

    name: str
    login_user: str


def index_flags(cfg: Config) -> str:
    """The [python] package index settings as pip/uv flags (empty: PyPI)."""
    py = cfg.settings.python
    return "".join(f" {flag} {q(url)}" for flag, url in (("--index-url", py.index_url),
                                                          ("--extra-index-url", py.extra_index_url)) if url)


def record_sha256(line: str) -> str:
    """The hex sha256 of a RECORD line ("path,sha256=<urlsafe base64, unpadded>,size"); '' if none."""
    match = re.search(r",sha256=([A-Za-z0-9_-]+)", line)
    if not match:
        return ""
    value = match.group(1)
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).hex()


@dataclass(frozen=True, kw_only=True)
class UvInstalled(Step):
    """uv in its own venv, linked as /usr/local/bin/uv, and really that uv.

    Three facts, none of them our own stamp: the link points into the venv; the binary's sha256 is the
    one pip wrote into the uv wheel's RECORD when it installed it; and ``uv --version`` reports the
    installed distribution's version (``/bin/true --version`` exits 0 but says nothing).
    """

    spec: str  # e.g. "uv" or "uv==0.8.3"
    index: str = ""  # pip index flags

    @property
    def _binary(self) -> str:
        return f"{UV_HOME}/bin/uv"

    def probe(self) -> str:
        return (f"printf 'link=%s\\n' \"$(readlink {UV_LINK})\"\n"
                f"{sha256_probe(self._binary, UV_RECORD)}\n"
                f"{version_probe(UV_LINK + ' --version')}\n"
                f"for r in {UV_HOME}/lib/python3*/site-packages/uv-*.dist-info/RECORD; do [ -f \"$r\" ] || continue\n"
                "  printf 'dist=%s\\n' \"$(basename \"$(dirname \"$r\")\")\"\n"
                "  printf 'record=%s\\n' \"$(grep -m1 -E '^([^,]*/)?bin/uv,' \"$r\")\"\ndone")

    def plan(self, fact: str, state: RunState) -> Plan:
        f = key_values(fact)
        dist = re.match(r"uv-([^-]+)\.dist-info$", f.get("dist", ""))
        installed = dist.group(1) if dist else ""
        recorded = record_sha256(f.get("record", ""))
        actual = f.get("sha256", "").strip()
        line = f.get("version", "").strip()
        reported = reported_version(line, r"^uv (\S+)")
        pinned = self.spec.split("==", 1)[1].strip() if "==" in self.spec else ""
        problems = []
        if not installed:
            problems.append(f"no uv distribution in {UV_HOME}")
        else:
            if f.get("link", "") != self._binary:
                problems.append(f"{UV_LINK} points to {f.get('link') or '(not a link)'}, not {self._binary}")
            if actual != recorded:
                problems.append(f"{self._binary} sha256 {actual[:12] or '(missing)'} is not the installed "
                                f"{recorded[:12] or '(no RECORD entry)'}")
            if reported != installed:
                problems.append(f"`uv --version` says {line!r}, not uv {installed}")
            if pinned and installed != pinned:
                problems.append(f"uv {installed} installed, {pinned} wanted")
        if not problems:
            return Plan(False, f"uv {installed} (sha256 matches its RECORD)")
        return Plan(True, f"(re)install uv: {problems[0]}", "".join(f"~ {p}\n" for p in problems)
                    + f"+ uv from {self.spec} in {UV_HOME}, linked as {UV_LINK}\n")

    def script(self, plan: Plan) -> str:
        return (f"set -e\nrm -rf {UV_HOME} {UV_RECORD}\npython3 -m venv {UV_HOME}\n"
                f"{UV_HOME}/bin/pip install -q{self.index} {q(self.spec)}\nln -sfn {self._binary} {UV_LINK}\n"
                f"{UV_LINK} --version\n" + record_sha256_script(self._binary, UV_RECORD))

    def doc(self) -> dict[str, str]:
        return {"checks": f"`{UV_LINK}` links to `{self._binary}`, whose sha256 is the one in the uv wheel's "
                          f"RECORD, and `uv --version` reports that distribution's version",
                "changes": f"uv ({self.spec}) in `{UV_HOME}`, linked as `{UV_LINK}`",
                "runs": self.script(Plan(True))}


def uv_install_step(cfg: Config) -> UvInstalled:
    """uv from the package index into its own venv (the guide's curl | sh needs the open internet)."""
    return UvInstalled(guide="4-2", title="uv installed", spec=cfg.settings.python.uv_spec,
                       index=index_flags(cfg))
