"""A deploy or a fix that restarts vLLM judges vLLM's checks after the restart, with the stand-in's real start time.

vLLM needs 1-6 minutes to start on an L4 (guide B-12); the stand-in takes its default 20 s. Each case
makes vLLM restart the way a user would, runs the real CLI, and wants exit 0 with every row green:
(a) `deploy` after a change to vllm.service, (b) `deploy` after `systemctl stop vllm`, (c) `troubleshoot
--fix` of an item whose fix restarts vLLM, then `verify` at once. They share the session's deployed host.
"""

from __future__ import annotations

import json
import time

import pytest
from test_troubleshoot_stack import Stack, run_checks, stack_for

pytestmark = pytest.mark.integration
UNIT = "/etc/systemd/system/vllm.service"
VERIFY_ROWS = ["gpu", "vllm-health", "vllm-models", "app-health", "external", "node-exporter", "dcgm-exporter",
               "promtail", "log-shipper"]
# No monitoring.prometheus_url in the stack's settings: that row is skipped (test_prometheus sets one).
VERIFY_WANTED = {**dict.fromkeys(VERIFY_ROWS, "ok"), "prometheus": "skipped"}


@pytest.fixture(scope="module")
def stack(sandbox_state_dir) -> Stack:
    return stack_for(sandbox_state_dir)


def invocation(stack: Stack) -> str:
    return stack.sh("systemctl show -p InvocationID --value vllm").strip()


def seconds_to_ready(stack: Stack) -> float:
    """From the current vLLM process's first journal line to its "Application startup complete"."""
    lines = stack.sh(f"journalctl _SYSTEMD_INVOCATION_ID={invocation(stack)} -o short-unix --no-pager").splitlines()
    stamps = [(float(line.split(" ", 1)[0]), line) for line in lines if line[:1].isdigit()]
    ready = next(t for t, line in stamps if "Application startup complete" in line)
    return ready - stamps[0][0]


def deploy(stack: Stack, tmp_path, name: str) -> tuple[dict, str]:
    """`deploy` (every section, then verify) as a user runs it; its report and output."""
    report = tmp_path / f"{name}.json"
    r = run_checks("deploy", "--config", str(stack.config), "--report", str(report), timeout=900)
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["failed"] is False
    steps = {s["guide"]: s for section in data["sections"] for s in section["steps"] if section["section"] == "vllm"}
    assert steps["3-6"]["status"] == "ok" and steps["3-7"]["status"] == "ok", steps
    assert "3 models" in steps["3-7"]["summary"]
    assert "Every checklist row is green." in r.stdout, r.stdout[-4000:]
    return data, r.stdout


def test_the_stand_in_starts_at_its_default_time(stack: Stack):
    """No setting shortens the start on this host: what follows runs against a 20 s start."""
    assert "VLLM_DOUBLE_START_SECONDS" not in stack.sh("cat /etc/l4rb-standins/vllm.env")
    assert "VLLM_DOUBLE_START_SECONDS" not in stack.sh("systemctl show -p Environment vllm")


def test_deploy_after_a_change_to_the_unit(stack: Stack, tmp_path):
    before = invocation(stack)
    stack.sh(f"echo '# edited by hand' | sudo tee -a {UNIT} >/dev/null")
    started = time.monotonic()
    data, out = deploy(stack, tmp_path, "unit-changed")
    assert "# edited by hand" not in stack.sh(f"cat {UNIT}")
    assert invocation(stack) != before  # the unit changed, so vLLM restarted
    assert seconds_to_ready(stack) >= 19
    changed = [s["title"] for r in data["sections"] if r["section"] == "vllm" for s in r["steps"]
               if s["status"] == "changed"]
    assert changed == [UNIT, "vllm.service enabled and running"]
    print(f"deploy after a unit change: {time.monotonic() - started:.0f}s")


def test_deploy_after_vllm_was_stopped(stack: Stack, tmp_path):
    stack.sh("sudo systemctl stop vllm")
    started = time.monotonic()
    deploy(stack, tmp_path, "stopped")
    assert stack.sh("systemctl is-active vllm").strip() == "active"
    assert seconds_to_ready(stack) >= 19
    print(f"deploy after systemctl stop vllm: {time.monotonic() - started:.0f}s")


def test_fix_that_restarts_vllm_then_verify_at_once(stack: Stack):
    # B-15: vLLM serves another key than the app sends; the fix rewrites vllm.env and restarts vLLM.
    stack.sh("sudo sed -i 's/^VLLM_API_KEY=.*/VLLM_API_KEY=planted-other-key/' /app/vllm-server/vllm.env && "
             "sudo systemctl restart vllm")
    before = invocation(stack)
    got = stack.fix("B-15")
    assert got["fix"]["error"] == "" and invocation(stack) != before
    assert seconds_to_ready(stack) >= 19
    r = run_checks("verify", "--config", str(stack.config), "--json")
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    (host,) = json.loads(r.stdout)["hosts"]
    got = {row["check"]: row["status"] for row in host["rows"]}
    # The guide's rows and the Prometheus one as named; every other row (what the app needs, autostop) green.
    assert {k: got.get(k) for k in VERIFY_WANTED} == VERIFY_WANTED, r.stdout
    assert not [k for k, v in got.items() if k not in VERIFY_WANTED and v not in ("ok", "skipped")], r.stdout
