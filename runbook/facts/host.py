"""Host facts appendix B needs beyond units, journals, env files and HTTP: libraries, tools, builds.

Every probe prints key=value lines (read with :func:`key_value`); none of them prints a secret.
"""

from __future__ import annotations

from ..config import Settings
from ..engine.steps import q, sha256_probe
from ..sections import ai_server, dcgm, vllm
from ..sections.dcgm_exporter_build import BINARY as EXPORTER_BINARY
from ..sections.dcgm_exporter_build import STAMP as EXPORTER_STAMP
from .batch import Fact
from .common import as_user, key_value

VLLM_UNIT = vllm.UNIT
APP_UNIT = ai_server.UNIT
EXPORTER_UNIT = dcgm.UNIT


def _statuses(*packages: str) -> str:
    """``pkg:NAME=STATUS`` for each package, from one dpkg-query (a package dpkg never heard of prints empty)."""
    names = " ".join(f'"{p}"' for p in packages)  # may hold a shell variable ($v)
    return (f"s=$(dpkg-query -W -f='${{Package}}=${{db:Status-Status}}\\n' {names} 2>/dev/null)\n"
            f"for p in {names}; do echo \"pkg:$p=$(printf '%s\\n' \"$s\" | sed -n \"s/^$p=//p\")\"; done")


def libcuda(s: Settings) -> Fact:
    """Can libcuda.so.1 be loaded with vllm.service's LD_LIBRARY_PATH (B-2)? Tried with dlopen, as vLLM does."""
    return Fact("libcuda", parser=key_value, shell=(
        # LD_LIBRARY_PATH from the unit's Environment= as systemd holds it (a typed D-Bus array, as JSON).
        "p=$(busctl --json=short call org.freedesktop.systemd1 /org/freedesktop/systemd1 "
        f"org.freedesktop.systemd1.Manager LoadUnit s {VLLM_UNIT} 2>/dev/null "
        "| sed -n 's/.*\"data\":\\[\"\\([^\"]*\\)\".*/\\1/p')\n"
        "ld=$(busctl --json=short get-property org.freedesktop.systemd1 \"$p\" org.freedesktop.systemd1.Service "
        "Environment 2>/dev/null | python3 -I -S -c 'import json, sys; print(next((e.split(\"=\", 1)[1] for e in "
        "reversed(json.load(sys.stdin)[\"data\"]) if e.startswith(\"LD_LIBRARY_PATH=\")), \"\"))' 2>/dev/null)\n"
        "echo \"unit_ld=$ld\"\n"
        "echo \"ldconfig=$(ldconfig -p 2>/dev/null | grep -oE 'libcuda\\.so(\\.[0-9]+)*' | sort -u | tr '\\n' ' ')\"\n"
        "if r=$(env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH=\"$ld\" python3 -I -S -c "
        "'import ctypes; ctypes.CDLL(\"libcuda.so.1\")' 2>&1); then echo load=ok; "
        "else echo \"load=$(printf '%s' \"$r\" | tail -1)\"; failed=1; fi\n"
        # Where the library lies on disk matters to a fix (which directory to name); a search of the disk is
        # the slowest part of the probe, so it runs only when vLLM does not run or the library does not load.
        f"if [ -n \"$failed\" ] || ! systemctl is-active -q {VLLM_UNIT}; then\n"
        "  echo \"files=$(find /usr/lib /usr/lib64 /usr/local /opt -maxdepth 4 -name 'libcuda.so.1' 2>/dev/null "
        "| head -5 | tr '\\n' ' ')\"\nfi"
    ))


def venv(s: Settings) -> Fact:
    """B-13: python3 -m venv needs ensurepip, which Debian/Ubuntu ship in python3.X-venv."""
    return Fact("venv", parser=key_value, shell=(
        # One interpreter: its version first, then the import venv needs.
        "r=$(python3 -I -S -c 'import sys; print(\"%d.%d\" % sys.version_info[:2], flush=True); import ensurepip' "
        "2>&1)\n"
        "rc=$?; v=$(printf '%s\\n' \"$r\" | head -1 | grep -xE '[0-9]+\\.[0-9]+')\n"
        "echo \"python=$v\"\n"
        "if [ $rc = 0 ]; then echo ensurepip=ok; elif [ -n \"$v\" ]; then echo \"ensurepip=$(printf '%s' \"$r\" "
        "| tail -1)\"; fi\n"
        + _statuses("python3-venv", "python$v-venv")
    ))


def exporter_build(s: Settings) -> Fact:
    b = q(EXPORTER_BINARY)
    return Fact("dcgm:exporter", parser=key_value, shell=(
        f"[ -x {b} ] && echo binary=present || echo binary=missing\n"
        f"echo \"wants=$(grep -aoE 'libdcgm\\.so\\.[0-9]+' {b} 2>/dev/null | sort -u | tr '\\n' ' ')\"\n"
        "echo \"libs=$(ldconfig -p 2>/dev/null | grep -oE 'libdcgm\\.so\\.[0-9]+' | sort -u | tr '\\n' ' ')\"\n"
        f"echo \"stamp=$(cat {q(EXPORTER_STAMP)} 2>/dev/null)\"\n"
        # The digest the build recorded, reused while the kernel's identity of the file is unchanged (a speed-up
        # of the build step's own, not a stamp): hashing the binary is the costliest part of this probe.
        + "{\n" + sha256_probe(EXPORTER_BINARY, EXPORTER_STAMP + ".key") + "\n} | sed 's/^sha256=/sha=/'"
    ), timeout=20)


def build_tools(s: Settings) -> Fact:
    return Fact("build-tools", parser=key_value, shell=(
        "echo \"make=$(command -v make || true)\"\necho \"gcc=$(command -v gcc || true)\"\n"
        + _statuses("make", "build-essential")
    ))


def counters(s: Settings) -> Fact:
    return Fact("dcgm:counters", f"[ -f {q(dcgm.COUNTERS)} ] || {{ echo MISSING; exit 0; }}\n"
                                  f"grep -oE '^DCGM_FI_[A-Z0-9_]+' {q(dcgm.COUNTERS)}")


USER = '"$u"'  # the shell variable the probe sets to the user
URL_RE = "https?://[^\"' ]+"


def loki(urls_from: str, fallback: str) -> Fact:
    """Every Loki URL the shipper's config names (and the configured one), asked from the host (B-17).

    The config is not read here: each http(s) URL in the file is tried, and the controller picks the
    one the YAML parser says is the client's push URL.
    """
    return Fact("loki", (
        f"for url in $(grep -oE {q(URL_RE)} {q(urls_from)} 2>/dev/null | sort -u) {q(fallback)}; do\n"
        "  [ -n \"$url\" ] || continue; base=${url%/loki/api/v1/push}; err=$(mktemp)\n"
        "  code=$(curl -sS --noproxy '*' -o /dev/null -m 4 -w '%{http_code}' \"$base/ready\" 2>\"$err\")\n"
        "  echo \"$base ${code:-000} $(tr '\\n' ' ' < \"$err\")\"; rm -f \"$err\"\n"
        "done"
    ), timeout=12, parser=parse_loki)


def parse_loki(text: str) -> dict[str, tuple[str, str]]:
    """base URL -> (HTTP code, curl's error)."""
    out = {}
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) >= 2:
            out[parts[0]] = (parts[1], parts[2].strip() if len(parts) > 2 else "")
    return out


def log_dir(s: Settings) -> Fact:
    """The app's log directory and its parent: type (and a link's target), owner, mode, and whether the
    ai-server service user can write there (B-18)."""
    d = s.ai_server.log_dir
    parent = d.rsplit("/", 1)[0] or "/"
    return Fact("logdir", parser=key_value, shell=(
        f"u=$(systemctl show -p User --value {APP_UNIT} 2>/dev/null); u=${{u:-root}}\necho \"user=$u\"\n"
        f"for x in {q(parent)} {q(d)}; do\n"
        "  echo \"stat:$x=$(stat -c '%F|%U|%G|%a' \"$x\" 2>/dev/null || echo missing)\"\n"
        "  echo \"target:$x=$(stat -L -c '%F' \"$x\" 2>/dev/null || echo missing)\"\ndone\n"
        f"if [ -d {q(d)} ] && {as_user(USER)}test -w {q(d)}/ 2>/dev/null; then echo writable=yes; "
        "else echo writable=no; fi\n"
        f"echo \"logs=$(ls -1 {q(d)}/ 2>/dev/null | grep -c '\\.log$')\""
    ))
