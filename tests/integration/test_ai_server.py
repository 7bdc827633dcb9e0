"""Guide section 4 on a real sandbox host over SSH: converge, re-run, drift, secrets, bad config."""

import json
import tomllib
import urllib.request
from pathlib import Path

import pytest

from helpers import REPO, SECRET, assert_no_secret, inv, report, ssh

pytestmark = pytest.mark.integration


def write_config(tmp_path: Path, host, **ai_server) -> Path:
    """The example hosts.toml, pointed at the sandbox host, with overrides."""
    text = (REPO / "hosts.toml").read_text()
    data = tomllib.loads(text)
    lines = [
        'secrets_file = "none.env"',
        "[inventory]",
        'target = "hosts"',
        "[[inventory.hosts]]",
        f'name = "{host.name}"',
        f'address = "{host.address}"',
        "[ssh]",
        f'user = "{host.ssh_user}"',
        f'key_file = "{host.ssh_key}"',
        f'known_hosts = "{host.known_hosts}"',
        "trust_on_first_use = false",
        "[ai_server]",
        *(f"{k} = {json.dumps(v)}" for k, v in ai_server.items()),
        "[ai_server.source]",
        f'path = "{REPO / data["ai_server"]["source"]["path"]}"',
        "[monitoring.promtail]", 'loki_url = "http://127.0.0.1:3100"',
    ]
    path = tmp_path / "hosts.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_config_changes_nothing(tmp_path, sandbox_host):
    cfg = write_config(tmp_path, sandbox_host, port=70000, backend_callback_base_url="https://b.example.com/api/v1")
    r = inv("ai-server", "--config", str(cfg))
    assert r.returncode == 2
    assert "ai_server.port" in r.stdout + r.stderr and "must not end with /v1" in r.stdout + r.stderr
    assert ssh(sandbox_host, "test -e /app/ai-server && echo present || echo absent").strip() == "absent"


def test_dry_run_shows_plan_and_changes_nothing(tmp_path, sandbox_host):
    cfg = write_config(tmp_path, sandbox_host)
    r = inv("ai-server", "--config", str(cfg), "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "would change" in out and "+ExecStart=/app/ai-server/.venv/bin/uvicorn app.main:app" in out
    assert "+VLLM_API_KEY=********" in out
    assert_no_secret(r.stdout + r.stderr)
    assert ssh(sandbox_host, "test -e /app/ai-server && echo present || echo absent").strip() == "absent"


def test_converge_then_noop_then_repair(tmp_path, sandbox_host):
    cfg = write_config(tmp_path, sandbox_host)
    # Watch the host's process list during the whole first run: no secret may appear in any argv.
    ssh(sandbox_host, "nohup sh -c 'while :; do ps -eo args >> /tmp/ps-watch.log; sleep 0.05; done' "
                      ">/dev/null 2>&1 & echo $! > /tmp/ps-watch.pid")
    first = inv("ai-server", "--config", str(cfg), "--report", str(tmp_path / "r1.json"))
    ssh(sandbox_host, "kill $(cat /tmp/ps-watch.pid)")
    assert first.returncode == 0, first.stdout + first.stderr
    r1 = report(tmp_path / "r1.json")["sections"][0]
    assert r1["changed"] > 5 and r1["failed"] == 0

    second = inv("ai-server", "--config", str(cfg), "--report", str(tmp_path / "r2.json"))
    assert second.returncode == 0, second.stdout + second.stderr
    r2 = report(tmp_path / "r2.json")["sections"][0]
    assert r2["changed"] == 0 and r2["commands"] == 1
    assert "Nothing to change" in second.stdout

    # The service answers over the network, from here, not only on the host.
    with urllib.request.urlopen(f"http://{sandbox_host.address}:8000/health", timeout=10) as resp:
        assert resp.status == 200 and json.loads(resp.read())["env"] == "production"

    # Secrets: not in our output, not in any argv seen on the host, .env private and owned by the user.
    for text in (first.stdout, first.stderr, second.stdout, (tmp_path / "r1.json").read_text()):
        assert_no_secret(text)
    assert_no_secret(ssh(sandbox_host, "sudo cat /tmp/ps-watch.log"))
    assert ssh(sandbox_host, "stat -c '%U %a' /app/ai-server/.env").strip() == f"{sandbox_host.ssh_user} 600"
    world_readable = ssh(sandbox_host, f"sudo grep -rl {SECRET} /app /etc /tmp /var/log /home 2>/dev/null | "
                                       "xargs -r stat -c '%a %n' | awk '$1 ~ /[4-7]$/'")
    assert world_readable.strip() == ""
    # Guide 4-1 / B-18 directories and 4-4 unit user.
    assert ssh(sandbox_host, "stat -c %U /app/ai-server/resources/s3 /var/log/dojangkok/production").split() == [
        sandbox_host.ssh_user] * 2
    assert f"User={sandbox_host.ssh_user}" in ssh(sandbox_host, "cat /etc/systemd/system/ai-server.service")

    # A changed setting rewrites .env and restarts the service exactly once; then quiet again.
    started = ssh(sandbox_host, "systemctl show -p InvocationID --value ai-server").strip()
    cfg = write_config(tmp_path, sandbox_host, http_timeout_sec=45)
    third = inv("ai-server", "--config", str(cfg), "--report", str(tmp_path / "r3.json"))
    assert third.returncode == 0, third.stdout + third.stderr
    changed = [s["title"] for s in report(tmp_path / "r3.json")["sections"][0]["steps"] if s["status"] == "changed"]
    assert changed == ["/app/ai-server/.env", "ai-server.service enabled and running"]
    assert ssh(sandbox_host, "systemctl show -p InvocationID --value ai-server").strip() != started
    assert "HTTP_TIMEOUT_SEC=45" in ssh(sandbox_host, "sudo cat /app/ai-server/.env")

    # Drift (someone chmods .env) is repaired, without a restart of anything else.
    ssh(sandbox_host, "sudo chmod 644 /app/ai-server/.env")
    fourth = inv("ai-server", "--config", str(cfg), "--report", str(tmp_path / "r4.json"))
    assert fourth.returncode == 0
    assert ssh(sandbox_host, "stat -c %a /app/ai-server/.env").strip() == "600"
