"""The host facts appendix B needs beyond units, journals and HTTP: files, packages, libraries.

Every probe prints key=value lines. None of them ever prints a secret: the API keys are only
reported as set / empty / absent, and whether the two services' keys are the same is decided on
the host by comparing digests.
"""

from __future__ import annotations

from runbook.config import Settings
from runbook.engine.steps import q
from runbook.sections import ai_server, dcgm, vllm
from runbook.sections.dcgm_exporter_build import BINARY as EXPORTER_BINARY
from runbook.sections.dcgm_exporter_build import STAMP as EXPORTER_STAMP
from runbook.verify.batch import Probe

VLLM_UNIT = vllm.UNIT
APP_UNIT = ai_server.UNIT
EXPORTER_UNIT = dcgm.UNIT
PROMTAIL_CONFIG = "/etc/promtail/config.yml"
ALLOY_CONFIG = "/etc/alloy/config.alloy"
# Non-secret keys of vllm.env worth showing as evidence.
# SERVE_* is the runbook's naming, VLLM_* the guide's (a host not converged yet).
VLLM_ENV_KEYS = ("(VLLM|SERVE)_(MODEL|HOST|PORT|GPU_MEMORY_UTILIZATION|MAX_MODEL_LEN|DTYPE|MAX_LORA_RANK)"
                 "|[A-Z_]*LORA_MODULES[A-Z_]*")


def _status(package: str) -> str:
    return f"$(dpkg-query -W -f='${{db:Status-Status}}' {q(package)} 2>/dev/null || true)"


def vllm_env(s: Settings) -> Probe:
    path = f"{s.vllm.dir}/vllm.env"
    return Probe("vllm:env", f"[ -f {q(path)} ] && echo file=present || echo file=missing\n"
                             f"grep -E '^({VLLM_ENV_KEYS})=' {q(path)} 2>/dev/null")


def libcuda(s: Settings) -> Probe:
    """Can libcuda.so.1 be loaded with vllm.service's LD_LIBRARY_PATH (B-2)? Tried with dlopen, as vLLM does."""
    return Probe("libcuda", (
        f"ld=$(systemctl show -p Environment --value {VLLM_UNIT} | tr ' ' '\\n' | tr -d '\"' "
        "| sed -n 's/^LD_LIBRARY_PATH=//p' | tail -1)\n"
        "echo \"unit_ld=$ld\"\n"
        "echo \"ldconfig=$(ldconfig -p 2>/dev/null | grep -oE 'libcuda\\.so(\\.[0-9]+)*' | sort -u | tr '\\n' ' ')\"\n"
        "echo \"files=$(find /usr/lib /usr/lib64 /usr/local /opt -maxdepth 4 -name 'libcuda.so.1' 2>/dev/null "
        "| head -5 | tr '\\n' ' ')\"\n"
        "if r=$(env -i PATH=/usr/bin:/bin LD_LIBRARY_PATH=\"$ld\" python3 -c "
        "'import ctypes; ctypes.CDLL(\"libcuda.so.1\")' 2>&1); then echo load=ok; "
        "else echo \"load=$(printf '%s' \"$r\" | tail -1)\"; fi"
    ))


def venv(s: Settings) -> Probe:
    """B-13: python3 -m venv needs ensurepip, which Debian/Ubuntu ship in python3.X-venv."""
    return Probe("venv", (
        "v=$(python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])' 2>/dev/null)\n"
        "echo \"python=$v\"\n"
        f"echo \"pkg:python3-venv={_status('python3-venv')}\"\n"
        "[ -n \"$v\" ] && echo \"pkg:python$v-venv=$(dpkg-query -W -f='${db:Status-Status}' python$v-venv "
        "2>/dev/null || true)\"\n"
        "if r=$(python3 -c 'import ensurepip' 2>&1); then echo ensurepip=ok; "
        "else echo \"ensurepip=$(printf '%s' \"$r\" | tail -1)\"; fi"
    ))


MODULES = {  # module -> the package that provides it (guide B-14's two, and the app's own basics)
    "prometheus_fastapi_instrumentator": "prometheus-fastapi-instrumentator",
    "pythonjsonlogger": "python-json-logger",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "httpx": "httpx",
    "dotenv": "python-dotenv",
}


def app_modules(s: Settings) -> Probe:
    py = f"{s.ai_server.dir}/.venv/bin/python"
    code = ("import importlib.util as u\n"
            f"for m in {list(MODULES)!r}:\n"
            "    print(m + '=' + ('ok' if u.find_spec(m) else 'missing'))")
    return Probe("app:modules", f"[ -x {q(py)} ] || {{ echo venv=missing; exit 0; }}\necho venv=present\n"
                                f"{q(py)} -c {q(code)}")


def api_keys(s: Settings) -> Probe:
    """B-15: is VLLM_API_KEY set in both env files, and the same? (No value leaves the host.)"""
    app_env, vllm_env_path = f"{s.ai_server.dir}/.env", f"{s.vllm.dir}/vllm.env"
    return Probe("keys", (
        "key() { sed -n 's/^VLLM_API_KEY=//p' \"$1\" 2>/dev/null | tail -1 | sed -e \"s/^[\\\"']//\" "
        "-e \"s/[\\\"']$//\" -e 's/[[:space:]]*$//'; }\n"
        "state() { [ -f \"$1\" ] || { echo missing; return; }; grep -q '^VLLM_API_KEY=' \"$1\" "
        "|| { echo absent; return; }; [ -n \"$(key \"$1\")\" ] && echo set || echo empty; }\n"
        f"echo \"app=$(state {q(app_env)})\"\necho \"vllm=$(state {q(vllm_env_path)})\"\n"
        f"a=$(key {q(app_env)} | sha256sum); b=$(key {q(vllm_env_path)} | sha256sum)\n"
        "[ \"$a\" = \"$b\" ] && echo same=yes || echo same=no"
    ))


def log_dir(s: Settings) -> Probe:
    d = s.ai_server.log_dir
    parent = d.rsplit("/", 1)[0] or "/"
    return Probe("logdir", (
        f"u=$(systemctl show -p User --value {APP_UNIT} 2>/dev/null); u=${{u:-root}}\necho \"user=$u\"\n"
        f"for x in {q(parent)} {q(d)}; do\n"
        "  echo \"stat:$x=$(stat -c '%F|%U|%G|%a' \"$x\" 2>/dev/null || echo missing)\"\ndone\n"
        f"if [ -d {q(d)} ] && runuser -u \"$u\" -- test -w {q(d)} 2>/dev/null; then echo writable=yes; "
        "else echo writable=no; fi\n"
        f"echo \"logs=$(ls -1 {q(d)} 2>/dev/null | grep -c '\\.log$')\""
    ))


def dcgm_packages(s: Settings) -> Probe:
    package = s.monitoring.dcgm.package
    return Probe("dcgm:packages", (
        f"echo \"status={_status(package)}\"\n"
        "echo \"installed=$(dpkg-query -W -f='${Package}=${Version}=${db:Status-Status}\\n' 'datacenter-gpu-manager*' "
        "2>/dev/null | sed -n 's/=installed$//p' | tr '\\n' ' ')\"\n"
        f"echo \"candidate=$(apt-cache policy {q(package)} 2>/dev/null | sed -n 's/^ *Candidate: //p')\"\n"
        f"echo \"keyring={_status('cuda-keyring')}\"\n"
        "echo \"sources=$(grep -rlsE 'cuda|developer\\.download\\.nvidia' /etc/apt/sources.list "
        "/etc/apt/sources.list.d 2>/dev/null | tr '\\n' ' ')\""
    ))


def exporter_build(s: Settings) -> Probe:
    b = q(EXPORTER_BINARY)
    return Probe("dcgm:exporter", (
        f"[ -x {b} ] && echo binary=present || echo binary=missing\n"
        f"echo \"wants=$(grep -aoE 'libdcgm\\.so\\.[0-9]+' {b} 2>/dev/null | sort -u | tr '\\n' ' ')\"\n"
        "echo \"libs=$(ldconfig -p 2>/dev/null | grep -oE 'libdcgm\\.so\\.[0-9]+' | sort -u | tr '\\n' ' ')\"\n"
        f"echo \"stamp=$(cat {q(EXPORTER_STAMP)} 2>/dev/null)\"\n"
        f"echo \"sha=$(sha256sum {b} 2>/dev/null | cut -d' ' -f1)\""
    ), timeout=20)


def build_tools(s: Settings) -> Probe:
    return Probe("build-tools", (
        "echo \"make=$(command -v make || true)\"\necho \"gcc=$(command -v gcc || true)\"\n"
        f"echo \"pkg:make={_status('make')}\"\necho \"pkg:build-essential={_status('build-essential')}\""
    ))


def counters(s: Settings) -> Probe:
    return Probe("dcgm:counters", f"[ -f {q(dcgm.COUNTERS)} ] || {{ echo MISSING; exit 0; }}\n"
                                  f"grep -oE '^DCGM_FI_[A-Z0-9_]+' {q(dcgm.COUNTERS)}")


def shipper_config(s: Settings) -> Probe:
    path = PROMTAIL_CONFIG if s.monitoring.promtail.log_shipper == "promtail" else ALLOY_CONFIG
    return Probe("shipper:config", f"cat {q(path)}")


def loki(s: Settings, fallback: str) -> Probe:
    """The Loki the shipper actually pushes to (from its config), asked from the host as it would (B-17)."""
    if s.monitoring.promtail.log_shipper == "promtail":
        read = f"sed -n 's/^[[:space:]]*-[[:space:]]*url:[[:space:]]*//p' {PROMTAIL_CONFIG} 2>/dev/null | head -1"
    else:
        read = (f"sed -n 's/^[[:space:]]*url[[:space:]]*=[[:space:]]*\"\\(.*\\)\"/\\1/p' {ALLOY_CONFIG} "
                "2>/dev/null | head -1")
    return Probe("loki", (
        f"url=$({read}); url=${{url%/loki/api/v1/push}}; url=${{url:-{fallback}}}\necho \"url=$url\"\n"
        "err=$(mktemp); code=$(curl -sS --noproxy '*' -o /dev/null -m 4 -w '%{http_code}' \"$url/ready\" 2>\"$err\")\n"
        "echo \"code=${code:-000}\"; echo \"error=$(tr '\\n' ' ' < \"$err\")\"; rm -f \"$err\""
    ), timeout=10)


def listening(s: Settings) -> Probe:
    return Probe("listen", "ss -ltnH 2>/dev/null")
