"""`fab deploy` as users run it: several hosts in parallel, overlapping waits, and killed runs that converge."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from runbook.config import NodeExporterConfig
from testbed.settings import mirror_url

from helpers import OCR, REPO, SECRET, TOKEN, assert_no_secret, report, ssh

NODE = NodeExporterConfig()  # the guide's public URLs; each sandbox host has a local copy

pytestmark = pytest.mark.integration
SECTIONS = "vllm,ai-server,node-exporter"


def fleet_config(tmp_path, hosts) -> str:
    lines = ['secrets_file = "none.env"', "[inventory]", 'target = "hosts"']
    for h in hosts:
        lines += ["[[inventory.hosts]]", f'name = "{h.name}"', f'address = "{h.address}"']
    h = hosts[0]
    lines += ["[ssh]", f'user = "{h.ssh_user}"', f'key_file = "{h.ssh_key}"', f'known_hosts = "{h.known_hosts}"',
              "trust_on_first_use = false",
              # Outside the sandbox target the public URLs would be used: point them at each host's kit.
              "[vllm]", 'index_url = "file:///opt/l4rb-sandbox/simple"',
              "[ai_server.source]", f'path = "{REPO / "tests/fixtures/ai_app"}"',
              "[monitoring.node_exporter]",
              f"url = {json.dumps(mirror_url(NODE.url))}",
              f"checksums_url = {json.dumps(mirror_url(NODE.checksums_url))}",
              "[monitoring.promtail]", 'loki_url = "http://127.0.0.1:3100"']
    cfg = tmp_path / "hosts.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return str(cfg)


def fab(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "VLLM_API_KEY": SECRET, "OCR_API": OCR, "BACKEND_INTERNAL_TOKEN": TOKEN}
    return subprocess.Popen([sys.executable, "-m", "fabric", "-r", str(REPO), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True, **popen)


def finish(proc: subprocess.Popen, timeout: int = 900) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def test_three_hosts_in_parallel_then_quiet(tmp_path, sandbox_hosts):
    hosts = sandbox_hosts(3)
    cfg = fleet_config(tmp_path, hosts)
    started = time.monotonic()
    rc, out = finish(fab("deploy", "--config", cfg, "--only", SECTIONS, "--report", str(tmp_path / "r1.json")))
    first = time.monotonic() - started
    assert rc == 0, out
    sections = report(tmp_path / "r1.json")["sections"]
    assert {(s["host"], s["section"]) for s in sections} == {(h.name, n) for h in hosts for n in SECTIONS.split(",")}
    assert all(s["failed"] == 0 for s in sections)
    # vLLM's start overlaps the rest: its wait runs after the other sections on each host.
    for h in hosts:
        assert out.index(f"[{h.name}] vllm (continued)") > out.index(f"[{h.name}] node-exporter (guide §7)")
    rc, out = finish(fab("deploy", "--config", cfg, "--only", SECTIONS, "--report", str(tmp_path / "r2.json")))
    assert rc == 0, out
    again = report(tmp_path / "r2.json")["sections"]
    assert sum(s["changed"] for s in again) == 0 and len(again) == 9
    assert "Nothing to change" in out
    assert_no_secret(out)
    for h in hosts:
        assert json.loads(ssh(h, "curl -s localhost:8000/health"))["status"] == "ok"
    print(f"3 hosts from nothing: {first:.0f}s")


@pytest.mark.parametrize("kill_after", [4.0, 9.0])
def test_killed_deploy_converges_on_the_next_run(tmp_path, sandbox_hosts, kill_after):
    host = sandbox_hosts(1)[0]
    cfg = fleet_config(tmp_path, [host])
    proc = fab("deploy", "--config", cfg, "--only", "vllm,ai-server")
    time.sleep(kill_after)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run dies mid-step, SSH sessions and all
    proc.wait()
    rc, out = finish(fab("deploy", "--config", cfg, "--only", "vllm,ai-server"))
    assert rc == 0, out
    rc, out = finish(fab("deploy", "--config", cfg, "--only", "vllm,ai-server", "--report", str(tmp_path / "r.json")))
    assert rc == 0 and sum(s["changed"] for s in report(tmp_path / "r.json")["sections"]) == 0, out
    assert ssh(host, "systemctl is-active vllm ai-server").split() == ["active", "active"]
