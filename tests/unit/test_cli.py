"""The entry points users type: `inv` and `fab` from the repo root, with no extra flags."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "VLLM_API_KEY": "cli-test-key-123", "OCR_API": "cli-test-ocr-456"}


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([*args], cwd=cwd, capture_output=True, text=True, env=ENV, timeout=120)


def test_inv_and_fab_list_the_same_tasks():
    inv = run(str(BIN / "inv"), "--list")
    fab = run(str(BIN / "fab"), "--list")
    assert inv.returncode == 0 and fab.returncode == 0, inv.stderr + fab.stderr
    for task in ("deploy", "vllm", "ai-server", "docs", "sandbox.up", "sandbox.down"):
        assert f"  {task} " in inv.stdout, task
        assert f"  {task} " in fab.stdout, task


def test_unknown_section_in_deploy_is_refused(tmp_path):
    r = run(str(BIN / "fab"), "deploy", "--only", "vlm")
    assert r.returncode == 2 and "unknown section(s) ['vlm']" in r.stdout


def test_unreachable_host_is_one_clear_error_and_nothing_leaks(tmp_path):
    cfg = tmp_path / "hosts.toml"
    cfg.write_text('secrets_file = "none"\n[inventory]\ntarget = "hosts"\n[[inventory.hosts]]\n'
                   'name = "nowhere"\naddress = "127.0.0.1"\nport = 1\n[ssh]\nknown_hosts = "kh"\n'
                   'connect_timeout = 3\n[monitoring.promtail]\nloki_url = "http://loki.example.com:3100"\n')
    r = run(str(BIN / "inv"), "ai-server", "--config", str(cfg), "--report", str(tmp_path / "r.json"))
    out = r.stdout + r.stderr
    assert r.returncode == 2  # README: 2 for an unreachable inventory, nothing touched
    assert "nowhere (127.0.0.1): cannot connect over SSH" in out and "Traceback" not in out
    assert "cli-test-key-123" not in out and "cli-test-key-123" not in (tmp_path / "r.json").read_text()


def test_bad_config_exits_2_before_any_host(tmp_path):
    cfg = tmp_path / "hosts.toml"
    cfg.write_text('[inventory]\ntarget = "hosts"\n[[inventory.hosts]]\nname = "h"\naddress = "127.0.0.1"\n'
                   'port = 1\n[vllm]\nport = "eighty"\n[ai_server]\nbackend_callback_base_url = "https://x.io/v1"\n')
    r = run(str(BIN / "inv"), "vllm", "--config", str(cfg))
    out = r.stdout + r.stderr
    assert r.returncode == 2
    assert "vllm.port" in out and "backend_callback_base_url" in out and "cannot connect" not in out
