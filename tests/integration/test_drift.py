"""Drift by hand on a converged host: each breakage is seen by --dry-run, put back by a run, then quiet.

One sandbox host is converged once (ai-server + node-exporter, the sections of the no-op budget);
every case of testbed.drift.DRIFTS then plants its breakage over SSH, asks `fab deploy --dry-run` for the plan
(the diff must name what was broken), runs the deploy (it must change something and fail nothing,
and the host must be as before), and runs it again (0 changed). The cases are data: one table.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.drift import DRIFTS, NODE, NODE_BIN, OLDER, SECTIONS, Drift, older_release
from testbed.settings import mirror_url as sandbox_url

from helpers import OCR, REPO, SECRET, TOKEN, assert_no_secret, report

pytestmark = pytest.mark.integration


def root_ssh(host, command: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", str(host.ssh_key), "-o", f"UserKnownHostsFile={host.known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"{host.ssh_user}@{host.address}",
         # The command travels base64-encoded, so only the root shell expands it.
         f'sudo sh -c "$(echo {base64.b64encode(command.encode()).decode()} | base64 -d)"'],
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
        "[monitoring.promtail]", 'loki_url = "http://127.0.0.1:3100"',  # required outside the sandbox target
    ]) + "\n")
    first = fab(cfg, "--report", str(tmp / "first.json"))
    assert first.returncode == 0, first.stdout + first.stderr
    quiet = fab(cfg, "--report", str(tmp / "quiet.json"))
    assert quiet.returncode == 0 and sum(s["changed"] for s in report(tmp / "quiet.json")["sections"]) == 0
    # An older node_exporter release: the installed program with the version string of 1.8.2.
    current = root_ssh(h, f"cat {NODE_BIN}").stdout
    put = root_ssh(h, f"mkdir -p {OLDER.rsplit('/', 1)[0]} && cat > {OLDER} && chmod 0755 {OLDER}",
                   data=older_release(current))
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
