"""Hand-made drift on a converged host, as data: the tests and the comparison benchmark plant the same.

Each case is a breakage planted as root on a host converged with `ai-server` and `node-exporter`,
what `--dry-run` must say about it, and a shell check that prints "ok" once the host is put back.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from runbook.config import NodeExporterConfig

NODE = NodeExporterConfig()
SECTIONS = "ai-server,node-exporter"
APP = "/app/ai-server"
SITE = f"{APP}/.venv/lib/python3*/site-packages"
UV = "/opt/l4-runbook/uv/bin/uv"
NODE_BIN = "/usr/local/bin/node_exporter"
OLDER = "/opt/l4rb-drift/node_exporter-1.8.2"  # the same program, reporting an older release
OLDER_VERSION = "1.8.2"


def older_release(binary: bytes) -> bytes:
    """The installed node_exporter as the test bed's builder makes an older release of it."""
    spec = importlib.util.spec_from_file_location(
        "l4rb_node_exporter_build", Path(__file__).resolve().parent / "standins/node_exporter/build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.with_version(binary, OLDER_VERSION)


@dataclass(frozen=True)
class Drift:
    name: str
    plant: str  # shell, run as root on the converged host
    seen: tuple[str, ...]  # what the dry-run's summaries and diffs must say
    back: str  # shell that prints "ok" once the host is as the runbook wants it
    repaired: bool = True  # False: reported by the plan, left alone by the run (not the runbook's)
    section: str = "ai-server"  # the section whose state it breaks


def ok_if(test: str) -> str:
    return f"if {test}; then echo ok; else echo drift; fi"


UNTOUCHED = ok_if(f"! grep -q hotfix {APP}/app/main.py")
DRIFTS = [
    Drift("app file edited, stamp left as it was", f"echo '# hotfix' >> {APP}/app/main.py",
          ("~ app/main.py: content differs",), UNTOUCHED),
    Drift("app file missing", f"rm {APP}/app/__init__.py", ("+ app/__init__.py: missing (file)",),
          ok_if(f"[ -f {APP}/app/__init__.py ]")),
    Drift("extra file in a fully managed directory", f"echo 'x = 1' > {APP}/app/hotfix.py",
          ("- app/hotfix.py: not in the source tree (removed: app/ is fully managed)",),
          ok_if(f"[ ! -e {APP}/app/hotfix.py ]")),
    Drift("extra file at the shared top of the app directory", f"echo notes > {APP}/NOTES.txt",
          (f"not managed, left alone at the top of {APP}: NOTES.txt",),
          ok_if(f"[ -f {APP}/NOTES.txt ]") + f"; rm -f {APP}/NOTES.txt", repaired=False),
    Drift("app file mode", f"chmod 0600 {APP}/app/main.py", ("~ app/main.py: mode 0600 -> 0644",),
          ok_if(f"[ \"$(stat -c %a {APP}/app/main.py)\" = 644 ]")),
    Drift("app file owner", f"chown root:root {APP}/app/main.py", ("~ app/main.py: owner root:root -> ubuntu:ubuntu",),
          ok_if(f"[ \"$(stat -c %U:%G {APP}/app/main.py)\" = ubuntu:ubuntu ]")),
    Drift("app directory mode", f"chmod 0700 {APP}/app", ("~ app: mode 0700 -> 0755",),
          ok_if(f"[ \"$(stat -c %a {APP}/app)\" = 755 ]")),
    Drift("top-level app file edited", f"sed -i 's/^name = .*/name = \"hacked\"/' {APP}/pyproject.toml",
          ("~ pyproject.toml: content differs",), ok_if(f"! grep -q hacked {APP}/pyproject.toml")),
    Drift("uv replaced by /bin/true", "ln -sfn /bin/true /usr/local/bin/uv",
          ("/usr/local/bin/uv points to /bin/true", "`uv --version` says 'true (GNU coreutils)"),
          ok_if(f"[ \"$(readlink /usr/local/bin/uv)\" = {UV} ] && uv --version | grep -q '^uv '")),
    Drift("uv binary overwritten in place", f"cp /bin/true {UV}",
          (f"{UV} sha256 {'{true}'}",), ok_if("uv --version | grep -q '^uv '")),
    Drift("node_exporter replaced by another executable", f"install -m 0755 /bin/true {NODE_BIN}",
          (f"{NODE_BIN} was changed since it was installed", "says 'true (GNU coreutils)"),
          ok_if(f"{NODE_BIN} --version 2>&1 | grep -q 'version {NODE.version} '"), section="node-exporter"),
    Drift("node_exporter put back to an older release", f"install -m 0755 {OLDER} {NODE_BIN}",
          (f"{NODE_BIN} was changed since it was installed", "node_exporter, version 1.8.2"),
          ok_if(f"{NODE_BIN} --version 2>&1 | grep -q 'version {NODE.version} '"), section="node-exporter"),
    Drift("older node_exporter with its stamp rewritten to match",
          f"install -m 0755 {OLDER} {NODE_BIN} && sed -i "
          f"\"s/installed=.*/installed=$(sha256sum {NODE_BIN} | cut -d' ' -f1)/\" "
          "/var/lib/l4-runbook/downloads/node_exporter",
          (f"{NODE_BIN} reports version 1.8.2, not {NODE.version}",),
          ok_if(f"{NODE_BIN} --version 2>&1 | grep -q 'version {NODE.version} '"), section="node-exporter"),
    Drift("a venv package's files deleted", f"rm -rf {SITE}/uvicorn/protocols",
          ("reinstall uvicorn (files gone or changed)", "~ python package uvicorn"),
          ok_if(f"[ -d $(echo {SITE})/uvicorn/protocols ]")),
    Drift("venv marker present, interpreter gone", f"rm {APP}/.venv/bin/python",
          (f"venv {APP}/.venv",), ok_if(f"{APP}/.venv/bin/python -c 'import uvicorn'")),
    Drift("ai-server unit edited", "sed -i 's/^RestartSec=5/RestartSec=1/' /etc/systemd/system/ai-server.service",
          ("-RestartSec=1", "+RestartSec=5"),
          ok_if("[ \"$(systemctl show -P RestartUSec ai-server.service)\" = 5s ]")),
    Drift("node_exporter unit edited",
          "sed -i 's|^ExecStart=.*|& --collector.disable-defaults|' /etc/systemd/system/node_exporter.service",
          ("+ExecStart=/usr/local/bin/node_exporter\n",),
          ok_if("! systemctl show -P ExecStart node_exporter.service | grep -q disable-defaults"),
          section="node-exporter"),
    Drift("env file edited", f"sed -i 's/^APP_ENV=.*/APP_ENV=debug/' {APP}/.env",
          ("-APP_ENV=debug", "+APP_ENV=production"), ok_if(f"grep -qx APP_ENV=production {APP}/.env")),
    Drift("env file mode", f"chmod 0644 {APP}/.env", (f"{APP}/.env: mode 0644 -> 0600",),
          ok_if(f"[ \"$(stat -c %a {APP}/.env)\" = 600 ]")),
]
