"""Guide 7-4 / B-7: build the dcgm-exporter tag that matches the DCGM installed on the host.

dcgm-exporter's main branch (4.x) needs libdcgm.so.4 and fails on DCGM 3 with "the libdcgm.so.4
library was not found" (B-7); the guide pins 3.3.9-3.6.1 by hand. Here the probe reads which
libdcgm.so.N the host's linker knows (and the DCGM package versions), plan() picks the configured tag
for that major version, and the build runs only when the installed binary was built from another
tag, another remote, or was changed since. The build is recorded in a stamp next to the binary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..engine.steps import Plan, RunState, Step, q, record_sha256_script, sha256_probe

BINARY = "/usr/local/bin/dcgm-exporter"
STAMP = "/var/lib/l4-runbook/dcgm-exporter.build"
SRC = "/opt/l4-runbook/src/dcgm-exporter"
GO_HOME = "/opt/l4-runbook/go"


def major_of(version: str) -> str:
    """'1:3.3.9' -> '3'; '' when there is no version."""
    match = re.match(r"(?:\d+:)?(\d+)\.", version.strip())
    return match.group(1) if match else ""


@dataclass(frozen=True, kw_only=True)
class DcgmExporterBuild(Step):
    """Clone *git* at the tag for the host's DCGM major, ``make binary``, install it, stamp it."""

    git: str
    tags: dict[str, str]
    package: str
    go_path: str  # directories prepended to PATH for the build (where `go` lives)
    go_proxy: str = ""

    def probe(self) -> str:
        return (
            "printf 'libs=%s\\n' \"$(ldconfig -p 2>/dev/null | grep -o 'libdcgm\\.so\\.[0-9]*' | sort -u "
            "| tr '\\n' ' ')\"\n"
            "printf 'installed=%s\\n' \"$(dpkg-query -W -f='${Package}=${Version}=${db:Status-Status}\\n' "
            "'datacenter-gpu-manager*' 2>/dev/null | sed -n 's/=installed$//p' | tr '\\n' ' ')\"\n"
            f"printf 'candidate=%s\\n' \"$(apt-cache policy {q(self.package)} 2>/dev/null "
            "| sed -n 's/^ *Candidate: //p')\"\n"
            f"printf 'stamp=%s\\n' \"$(cat {STAMP} 2>/dev/null)\"\n"
            # The binary is hashed (the digest of the build is reused only while the file is untouched).
            + sha256_probe(BINARY, STAMP + ".key")
        )

    @staticmethod
    def facts(fact: str) -> dict[str, str]:
        return dict(line.split("=", 1) for line in fact.splitlines() if "=" in line)

    def dcgm_major(self, facts: dict[str, str]) -> tuple[str, str]:
        """(major, evidence) from libdcgm.so.N, else the installed package, else apt's candidate."""
        libs = sorted({m for m in re.findall(r"libdcgm\.so\.(\d+)", facts.get("libs", ""))}, key=int)
        packages = dict(p.split("=", 1) for p in facts.get("installed", "").split() if "=" in p)
        package_majors = {major_of(v) for v in packages.values()} - {""}
        if libs:
            both = [m for m in libs if m in package_majors]
            major = (both or libs)[-1]
            return major, f"libdcgm.so.{major}" + (f", {', '.join(f'{p} {v}' for p, v in packages.items())}"
                                                  if packages else "")
        if package_majors:
            major = max(package_majors, key=int)
            return major, f"installed {', '.join(f'{p} {v}' for p, v in packages.items())}"
        candidate = facts.get("candidate", "").strip()
        if major_of(candidate):
            return major_of(candidate), f"to be installed: {self.package} {candidate}"
        return "", ""

    def plan(self, fact: str, state: RunState) -> Plan:
        facts = self.facts(fact)
        stamp = dict(p.split("=", 1) for p in facts.get("stamp", "").split() if "=" in p)
        binary = facts.get("sha256", "").strip()
        major, evidence = self.dcgm_major(facts)
        if not major:
            return Plan(True, "build the dcgm-exporter tag for the DCGM that step 7-2 installs "
                        f"({', '.join(f'DCGM {k}: {v}' for k, v in sorted(self.tags.items()))})",
                        "+ dcgm-exporter: tag chosen once DCGM is installed\n", data=None)
        tag = self.tags.get(major)
        if tag is None:
            return Plan(False, f"DCGM {major} has no exporter tag", error=(
                f"DCGM {major} is installed ({evidence}) but monitoring.dcgm.exporter_tags has no tag for it "
                f"(known: {sorted(self.tags)}); add exporter_tags.\"{major}\" = \"<dcgm-exporter tag>\" (guide B-7)"))
        if stamp.get("git") == self.git and stamp.get("tag") == tag and binary and stamp.get("sha256") == binary:
            return Plan(False, f"dcgm-exporter {tag} for DCGM {major} ({evidence})")
        if not binary:
            why = f"build dcgm-exporter {tag} for DCGM {major} ({evidence})"
        elif stamp.get("tag") and stamp.get("tag") != tag:
            why = f"rebuild dcgm-exporter for DCGM {major}: {stamp['tag']} -> {tag} ({evidence}; B-7)"
        elif stamp.get("git") and stamp.get("git") != self.git:
            why = f"rebuild dcgm-exporter {tag} from {self.git}"
        else:
            why = f"rebuild dcgm-exporter {tag}: {BINARY} was not built by this runbook or changed since"
        return Plan(True, why, f"- dcgm-exporter: {stamp.get('tag', '(none)')}\n+ dcgm-exporter: {tag} "
                    f"(DCGM {major})\n", data=(tag, major))

    def _build(self, tag: str, major: str) -> str:
        env = (f"export PATH={self.go_path}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "
               f"HOME=/root GOPATH={GO_HOME} GOCACHE={GO_HOME}/cache GOTOOLCHAIN=local"
               + (f" GOPROXY={q(self.go_proxy)}" if self.go_proxy else "") + "\n")
        return (
            "set -e\n" + env
            + f"rm -rf {SRC}\nmkdir -p {SRC.rsplit('/', 1)[0]}\n"
            f"git -c advice.detachedHead=false clone -q --depth 1 --branch {q(tag)} {q(self.git)} {SRC}\n"
            f"cd {SRC}\n"
            # Go refuses (or silently downloads another toolchain) when go.mod wants a newer Go: say so plainly.
            "need=$(sed -n 's/^go \\([0-9][0-9.]*\\).*/\\1/p' go.mod | head -1)\n"
            "have=$(go env GOVERSION | sed 's/^go//')\n"
            f"if [ -n \"$need\" ] && ! printf '%s\\n%s\\n' \"$need\" \"$have\" | sort -V -C; then echo \"Go $have is "
            f"older than the go $need that dcgm-exporter {tag} needs: use monitoring.dcgm.go.method = 'tarball' with "
            "a newer version (guide 7-3)\" >&2; exit 1; fi\n"
            "make binary\n"
            f"install -m 0755 cmd/dcgm-exporter/dcgm-exporter {BINARY}.l4rb-new\n"
            f"mv -f {BINARY}.l4rb-new {BINARY}\nldconfig\n"
            f"mkdir -p {STAMP.rsplit('/', 1)[0]}\n"
            f"printf 'git=%s tag=%s dcgm=%s commit=%s sha256=%s\\n' {q(self.git)} {q(tag)} {q(major)} "
            f"\"$(git rev-parse HEAD)\" \"$(sha256sum {BINARY} | cut -d' ' -f1)\" > {STAMP}\n"
            + record_sha256_script(BINARY, STAMP + ".key")
        )

    def script(self, plan: Plan) -> str:
        if plan.data is None:  # only in a dry run on a host without DCGM yet
            return ("echo 'DCGM is not installed: no libdcgm.so.N to match a dcgm-exporter tag to (step 7-2)' >&2; "
                    "exit 1")
        return self._build(*plan.data)

    def doc(self) -> dict[str, str]:
        tags = ", ".join(f"DCGM {k} -> `{v}`" for k, v in sorted(self.tags.items()))
        return {
            "checks": f"`ldconfig -p` (libdcgm.so.N), DCGM package versions, the build stamp `{STAMP}` and "
                      f"`sha256sum {BINARY}`",
            "changes": f"`{BINARY}` built from {self.git} at the tag for the host's DCGM major ({tags}; B-7)",
            "runs": f"git clone --depth 1 --branch TAG {self.git}; go.mod's Go version checked; make binary; "
                    f"install to {BINARY}; ldconfig",
        }
