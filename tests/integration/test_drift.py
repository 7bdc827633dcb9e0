"""Drift by hand on a converged host: each breakage is seen by --dry-run, put back by a run, then quiet.

One sandbox host is converged once (ai-server + node-exporter, the sections of the no-op budget);
every case of DRIFTS then plants its breakage over SSH, asks `fab deploy --dry-run` for the plan
(the diff must name what was broken), runs the deploy (it must change something and fail nothing,
and the host must be as before), and runs it again (0 changed). The cases are data: one table.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook.config import NodeExporterConfig
from runbook.sections.mirrors import sandbox_url

from helpers import OCR, REPO, SECRET, TOKEN, assert_no_secret, report

pytestmark = pytest.mark.integration


def _node_exporter_builder():
    """The test bed's node_exporter release builder (a script, not a package)."""
    spec = importlib.util.spec_from_file_location("l4rb_node_exporter_build",
                                                  REPO / "testbed/standins/node_exporter/build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


NODE = NodeExporterConfig()
SECTIONS = "ai-server,node-exporter"
APP = "/app/ai-server"
SITE = f"{APP}/.venv/lib/python3*/site-packages"
UV = "/opt/l4-runbook/uv/bin/uv"
NODE_BIN = "/usr/local/bin/node_exporter"
OLDER = "/opt/l4rb-drift/node_exporter-1.8.2"  # the same program, reporting an older release


@dataclass(frozen=True)
class Drift:
    name: str
    plant: str  # shell, run as root on the converged host
    seen: tuple[str, ...]  # what the dry-run's summaries and diffs must say
    back: str  # shell that prints "ok" once the host is as the runbook wants it
    repaired: bool = True  # False: reported by the plan, left alone by the run (not the runbook's)


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
    Drift("node_exporter replaced by another executable", f"cp /bin/true {NODE_BIN}",
          (f"{NODE_BIN} was changed since it was installed", "says 'true (GNU coreutils)"),
          ok_if(f"{NODE_BIN} --version 2>&1 | grep -q 'version {NODE.version} '")),
    Drift("node_exporter put back to an older release", f"cp {OLDER} {NODE_BIN}",
          (f"{NODE_BIN} was changed since it was installed", "node_exporter, version 1.8.2"),
          ok_if(f"{NODE_BIN} --version 2>&1 | grep -q 'version {NODE.version} '")),
    Drift("older node_exporter with its stamp rewritten to match",
          f"cp {OLDER} {NODE_BIN} && sed -i \"s/installed=.*/installed=$(sha256sum {NODE_BIN} | cut -d' ' -f1)/\" "
          "/var/lib/l4-runbook/downloads/node_exporter",
          (f"{NODE_BIN} reports version 1.8.2, not {NODE.version}",),
          ok_if(f"{NODE_BIN} --version 2>&1 | grep -q 'version {NODE.version} '")),
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
          ok_if("! systemctl show -P ExecStart node_exporter.service | grep -q disable-defaults")),
    Drift("env file edited", f"sed -i 's/^APP_ENV=.*/APP_ENV=debug/' {APP}/.env",
          ("-APP_ENV=debug", "+APP_ENV=production"), ok_if(f"grep -qx APP_ENV=production {APP}/.env")),
    Drift("env file mode", f"chmod 0644 {APP}/.env", (f"{APP}/.env: mode 0644 -> 0600",),
          ok_if(f"[ \"$(stat -c %a {APP}/.env)\" = 600 ]")),
]


def root_ssh(host, command: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", str(host.ssh_key), "-o", f"UserKnownHostsFile={host.known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"{host.ssh_user}@{host.address}",
         f"sudo sh -c {json.dumps(command)}"],
        input=data, capture_output=True, timeout=120,
    )


def fab(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VLLM_API_KEY": SECRET, "OCR_API": OCR, "BACKEND_INTERNAL_TOKEN": TOKEN}
    return subprocess.run([sys.executable, "-m", "fabric", "-r", str(REPO), "deploy", "--config", str(cfg),
                           "--only", SECTIONS, *args], capture_output=True, text=True, env=env, timeout=900)


@pytest.fixture(scope="module")
def converged(sandbox_host, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drift")
    h = sandbox_host
    cfg = tmp / "hosts.toml"
    cfg.write_text("\n".join([
        'secrets_file = "none.env"', "[inventory]", 'target = "hosts"',
        "[[inventory.hosts]]", f'name = "{h.name}"', f'address = "{h.address}"',
        "[ssh]", f'user = "{h.ssh_user}"', f'key_file = "{h.ssh_key}"', f'known_hosts = "{h.known_hosts}"',
        "trust_on_first_use = false",
        "[ai_server.source]", f'path = "{REPO / "tests/fixtures/ai_app"}"',
        "[monitoring.node_exporter]",
        f"url = {json.dumps(sandbox_url(NODE.url))}",
        f"checksums_url = {json.dumps(sandbox_url(NODE.checksums_url))}",
    ]) + "\n")
    first = fab(cfg, "--report", str(tmp / "first.json"))
    assert first.returncode == 0, first.stdout + first.stderr
    quiet = fab(cfg, "--report", str(tmp / "quiet.json"))
    assert quiet.returncode == 0 and sum(s["changed"] for s in report(tmp / "quiet.json")["sections"]) == 0
    # An older node_exporter release: the installed program with the version string of 1.8.2.
    current = root_ssh(h, f"cat {NODE_BIN}").stdout
    put = root_ssh(h, f"mkdir -p {OLDER.rsplit('/', 1)[0]} && cat > {OLDER} && chmod 0755 {OLDER}",
                   data=_node_exporter_builder().with_version(current, "1.8.2"))
    assert put.returncode == 0, put.stderr
    return cfg, tmp


def _said(path: Path) -> str:
    steps = [s for section in report(path)["sections"] for s in section["steps"]]
    return "\n".join(f"{s['summary']}\n{s['diff']}" for s in steps)


@pytest.mark.parametrize("drift", DRIFTS, ids=[d.name for d in DRIFTS])
def test_drift_is_seen_then_put_back(converged, sandbox_host, drift: Drift):
    cfg, tmp = converged
    planted = root_ssh(sandbox_host, drift.plant)
    assert planted.returncode == 0, planted.stderr
    true_sha = root_ssh(sandbox_host, "sha256sum /bin/true").stdout.decode()[:12]

    dry = fab(cfg, "--dry-run", "--report", str(tmp / "dry.json"))
    assert dry.returncode == 0, dry.stdout + dry.stderr
    said = _said(tmp / "dry.json")
    for text in drift.seen:
        assert text.replace("{true}", true_sha) in said, f"--dry-run does not say {text!r}:\n{said}"
    sections = report(tmp / "dry.json")["sections"]
    planned = sum(s["changed"] for s in sections)
    assert planned >= 1 if drift.repaired else planned == 0
    assert all(s["commands"] == 1 for s in sections), "a dry run reads each section in one command"
    assert_no_secret(dry.stdout + said)

    run = fab(cfg, "--report", str(tmp / "run.json"))
    assert run.returncode == 0, run.stdout + run.stderr
    changed = sum(s["changed"] for s in report(tmp / "run.json")["sections"])
    assert changed >= 1 if drift.repaired else changed == 0

    again = fab(cfg, "--report", str(tmp / "again.json"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert sum(s["changed"] for s in report(tmp / "again.json")["sections"]) == 0, _said(tmp / "again.json")
    assert root_ssh(sandbox_host, drift.back).stdout.decode().strip() == "ok"
