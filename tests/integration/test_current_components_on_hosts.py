"""The current-components items on the deployed sandbox host: a guide-style host converges to them.

C-1: a host that ships with promtail (as the guide sets it up, no Alloy at all) is found and moved
to Alloy by `inv troubleshoot --only C-1 --fix`; lines logged before and after the cut-over, from
the journal and from the app's log file, each reach Loki exactly once. C-2: the guide's VLLM_HOST /
VLLM_PORT in vllm.env are found (file and line) and `inv vllm` renames them in one run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from test_troubleshoot_stack import Stack, evidence, stack_for

from helpers import inv

pytestmark = pytest.mark.integration
LOKI_STORE = "/var/lib/loki-double/entries.jsonl"
APP_LOG = "/var/log/dojangkok/production/app.log"


@pytest.fixture(scope="module")
def stack(sandbox_state_dir) -> Stack:
    return stack_for(sandbox_state_dir)


def stored(stack: Stack, marker: str) -> list[dict]:
    out = stack.sh(f"sudo grep -F {marker} {LOKI_STORE} || true")
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def arrives(stack: Stack, marker: str, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = stored(stack, marker)
        if got:
            return got
        time.sleep(0.5)
    return []


def log_both(stack: Stack, marker: str) -> None:
    """One journal line of vllm.service (its access log, with the marker in the query) and one line in
    the app's log file."""
    stack.sh(f"curl -sf -o /dev/null 'http://127.0.0.1:8001/health?J-{marker}'")
    stack.sh(f"echo F-{marker} | sudo tee -a {APP_LOG} >/dev/null")


def test_c1_promtail_host_moves_to_alloy_without_gap_or_double(stack: Stack, tmp_path: Path):
    promtail_cfg = tmp_path / "hosts.toml"
    promtail_cfg.write_text(stack.config.read_text().replace("[monitoring.promtail]\n",
                                                             '[monitoring.promtail]\nlog_shipper = "promtail"\n', 1))
    r = inv("promtail", "--config", str(promtail_cfg))
    assert r.returncode == 0 and "end of life since 2026-03-02" in r.stdout, r.stdout + r.stderr
    # The guide's host never had Alloy: no binary, unit, config or state of it.
    stack.sh("sudo systemctl disable --now alloy 2>/dev/null; sudo rm -rf /usr/local/bin/alloy /etc/alloy "
             "/var/lib/alloy /etc/systemd/system/alloy.service && sudo systemctl daemon-reload")
    assert stack.sh("systemctl is-active promtail").strip() == "active"

    log_both(stack, "BEFORE-CUT")
    assert arrives(stack, "J-BEFORE-CUT") and arrives(stack, "F-BEFORE-CUT"), "promtail did not ship"
    got = stack.detect("C-1")
    assert "promtail still runs" in got["summary"] and "end of life" in got["summary"], evidence(got)

    fixed = stack.fix("C-1")
    assert fixed["after"]["verdict"] == "ok"
    assert stack.sh("systemctl is-active alloy promtail || true").split() == ["active", "inactive"]
    assert stack.sh("systemctl is-enabled promtail || true").strip() == "disabled"

    log_both(stack, "AFTER-CUT")
    for marker in ("J-AFTER-CUT", "F-AFTER-CUT"):
        assert arrives(stack, marker), f"{marker} never reached Loki after the cut-over"
    time.sleep(5)  # give a re-read (a duplicate) time to show up
    for marker in ("J-BEFORE-CUT", "F-BEFORE-CUT", "J-AFTER-CUT", "F-AFTER-CUT"):
        assert len(stored(stack, marker)) == 1, (marker, stored(stack, marker))
    journal = stored(stack, "J-AFTER-CUT")[0]["labels"]
    assert journal == {"job": "vllm", "host": "ai-server-l4", "unit": "vllm.service", "service": "vllm"}, journal


def test_c2_guides_vllm_port_is_found_and_renamed_in_one_run(stack: Stack):
    env, unit = "/app/vllm-server/vllm.env", "/etc/systemd/system/vllm.service"
    stack.sh(f"sudo sed -i -e 's/^SERVE_HOST=/VLLM_HOST=/' -e 's/^SERVE_PORT=/VLLM_PORT=/' {env} && "
             f"sudo sed -i -e 's/${{SERVE_HOST}}/${{VLLM_HOST}}/' -e 's/${{SERVE_PORT}}/${{VLLM_PORT}}/' {unit} && "
             "sudo systemctl daemon-reload && sudo systemctl restart vllm")
    stack.healthy(seconds=120)
    got = stack.detect("C-2")
    shown = evidence(got)
    assert "internal communication port" in got["summary"], shown
    assert f"file: {env}:" in shown and "VLLM_PORT=8001" in shown and "process: VLLM_PORT=8001" in shown, shown

    r = inv("vllm", "--config", str(stack.config), "--diff")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "--port ${SERVE_PORT}" in r.stdout, r.stdout[-4000:]
    assert stack.sh(f"sudo grep -c '^VLLM_\\(PORT\\|HOST\\)=' {env} || true").strip() == "0"
    assert "VLLM_PORT" not in stack.sh(f"cat {unit}")
    stack.healthy(seconds=120)
    rc, data, log = stack.troubleshoot("--only", "C-2")
    assert rc == 0 and data["items"][0]["verdict"] == "ok", log
