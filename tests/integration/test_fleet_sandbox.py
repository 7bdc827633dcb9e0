"""Three replicas behind Google's load balancer, in the sandbox: `gcp.replicas = 3` boots three sandbox VMs
in at least two zones through the local Compute server; `fab deploy` runs the whole guide on each (vLLM, the
app, monitoring), makes the load balancer, whose address answers /health through the data plane, and ends with
the section 6 checklist, green on every replica and for the load balancer; a second deploy changes nothing; a
replica whose app stops shows unhealthy in the backend service while the address still answers;
`inv cleanup --delete --yes` removes everything in dependency order."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from compute_contract import read_recording, violations
from rich.console import Console

from runbook.cloud import lb_verify, state
from runbook.cloud.context import load_settings
from runbook.engine.output import Output
from testbed import local_api, sandbox

from helpers import OCR, REPO, SECRET, TOKEN, inv, report, wait_for

pytestmark = pytest.mark.integration
HOSTS_TOML = f"""
secrets_file = "none.env"
[gcp]
project_id = "fleet-sandbox"
replicas = 3
[gcp.lb]
check_interval_sec = 2
timeout_sec = 2
[inventory]
target = "sandbox"
[ai_server.source]
path = "{REPO / 'tests/fixtures/ai_app'}"
"""
# The simulated project starts with room for one L4 VM; a fleet of three asks for more, as one would.
ROOM = {"quota_limits": {"NVIDIA_L4_GPUS": 8, "SSD_TOTAL_GB": 4096}, "project_quota_limits": {"GPUS_ALL_REGIONS": 8}}


def fab(*args: str) -> tuple[int, str]:
    env = {**os.environ, "VLLM_API_KEY": SECRET, "OCR_API": OCR, "BACKEND_INTERNAL_TOKEN": TOKEN}
    done = subprocess.run([sys.executable, "-m", "fabric", "-r", str(REPO), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, timeout=900)
    return done.returncode, done.stdout


def _admin(url: str, path: str, body: dict) -> None:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="POST", headers={
        "Authorization": f"Bearer {local_api.token()}", "Content-Type": "application/json"})
    urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10).close()


def _lb_rows(root: Path, until, seconds: float = 90) -> dict[str, str]:
    """check title -> status of the load balancer's verify rows, polled until *until(rows)* holds."""
    settings, _ = load_settings(root / "hosts.toml")
    quiet = Output(console=Console(file=io.StringIO()))
    return wait_for(lambda: {r.title: r.status for r in lb_verify.report(settings, root, quiet).rows}, until, seconds,
                    every=1)


def _sandbox_host(root: Path, name: str) -> sandbox.SandboxHost:
    address = state.find(root, name)["address"]
    return next(h for h in sandbox.status() if h.address == address)


def test_three_replicas_behind_one_load_balancer(sandbox_state_dir: Path, tmp_path: Path, monkeypatch):
    recording = tmp_path / "requests.jsonl"
    monkeypatch.setenv("L4RB_COMPUTE_RECORD", str(recording))
    (tmp_path / "hosts.toml").write_text(HOSTS_TOML)
    config = str(tmp_path / "hosts.toml")
    try:
        _admin(local_api.ensure_running(), "/_admin/faults", ROOM)

        rc, out = fab("deploy", "--config", config, "--report", str(tmp_path / "r1.json"))
        assert rc == 0, out
        first = report(tmp_path / "r1.json")
        sections = first["sections"]
        names = ["ai-server-l4-1", "ai-server-l4-2", "ai-server-l4-3"]
        assert [s["host"] for s in sections if s["section"] == "vm"] == names
        for section in ("vllm", "ai-server", "dcgm", "node-exporter", "promtail"):
            assert sorted(s["host"] for s in sections if s["section"] == section) == names, section
        assert all(s["failed"] == 0 for s in sections)
        # All green: the checklist on every replica (prometheus and autostop are not set here) and the LB's rows.
        verified = {h["host"]: {r["check"]: r["status"] for r in h["rows"]} for h in first["verify"]["hosts"]}
        assert first["verify"]["ok"] and set(names) <= set(verified), first["verify"]
        for name in names:
            assert {c for c, status in verified[name].items() if status != "ok"} == {"prometheus", "autostop"}, \
                verified[name]
        balancers = set(verified) - set(names)
        assert balancers and {s for b in balancers for s in verified[b].values()} == {"ok"}, verified
        # Each replica ships its logs under its own host label (its Loki stand-in lists the label's values).
        for name in names:
            replica = _sandbox_host(tmp_path, name)
            values = wait_for(lambda h=replica: json.loads(h.ssh(
                "curl -s http://127.0.0.1:3100/loki/api/v1/label/host/values", timeout=30).stdout or "{}")
                .get("data"), bool, 90, every=2)
            assert values == [name], (name, values)
        records = state.instances(tmp_path)
        assert len({r["zone"] for r in records}) >= 2 and {r["name"] for r in records} == set(names)
        assert {r["address"] for r in records} <= {h.address for h in sandbox.status() if h.state == "running"}

        backend = "ai-server-lb-bs"
        healthy = _lb_rows(tmp_path, lambda rows: set(rows.values()) == {"ok"})
        assert healthy == {"load balancer answers /health": "ok",
                           **{f"{n} healthy in {backend}": "ok" for n in names}}, healthy

        rc, out = fab("deploy", "--config", config, "--report", str(tmp_path / "r2.json"))
        assert rc == 0, out
        again = report(tmp_path / "r2.json")
        assert sum(s["changed"] for s in again["sections"]) == 0 and again["verify"]["ok"], out

        # One replica's app stops: the load balancer marks it, its address still answers through the others.
        host = _sandbox_host(tmp_path, "ai-server-l4-2")
        host.ssh("sudo systemctl stop ai-server", timeout=60)
        rows = _lb_rows(tmp_path, lambda rows: rows.get(f"ai-server-l4-2 healthy in {backend}") == "failed")
        assert rows[f"ai-server-l4-2 healthy in {backend}"] == "failed", rows
        assert rows["load balancer answers /health"] == "ok", rows
        assert rows[f"ai-server-l4-1 healthy in {backend}"] == "ok", rows

        gone = inv("cleanup", "--config", config, "--delete", "--yes")
        assert gone.returncode == 0, gone.stdout + gone.stderr
        sent = read_recording(recording)
        deletes = [path.split("/")[-2] for method, path, _, _ in sent if method == "DELETE"]
        assert list(dict.fromkeys(deletes)) == ["forwardingRules", "backendServices", "healthChecks",
                                                "instanceGroups", "instances", "firewalls"], deletes
        assert state.instances(tmp_path) == []
        assert not [h for h in sandbox.status() if h.address in {r["address"] for r in records}]
        assert violations(sent) == []  # every request checked against compute.v1.json
    finally:
        local_api.stop(forget=True)
