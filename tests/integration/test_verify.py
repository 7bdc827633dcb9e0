"""`inv verify` on the deployed host: all green, then exactly the row of a stopped service goes red."""

from __future__ import annotations

import json

import pytest
from test_troubleshoot_stack import Stack, run_checks, stack_for

pytestmark = pytest.mark.integration
ROWS = ["gpu", "vllm-health", "vllm-models", "app-health", "external", "node-exporter", "dcgm-exporter", "promtail",
        "app-env", "app-port", "vllm-port", "app-resources", "api-key", "log-shipper", "prometheus", "autostop"]


@pytest.fixture(scope="module")
def stack(sandbox_state_dir) -> Stack:
    return stack_for(sandbox_state_dir)


def verify(stack: Stack, *args: str):
    r = run_checks("verify", "--config", str(stack.config), "--json", *args)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, json.loads(r.stdout), r.stderr


def test_all_green_on_a_deployed_host(stack: Stack, tmp_path):
    rc, data, log = verify(stack, "--report", str(tmp_path / "verify.json"))
    assert rc == 0, log
    (host,) = data["hosts"]
    assert [row["check"] for row in host["rows"]] == ROWS
    # No monitoring.prometheus_url in the stack's hosts.toml: that row is skipped (test_prometheus sets one).
    want = {**dict.fromkeys(ROWS, "ok"), "prometheus": "skipped", "autostop": "skipped"}  # autostop: off by default
    assert {row["check"]: row["status"] for row in host["rows"]} == want, log
    details = {row["check"]: row["detail"] for row in host["rows"]}
    assert details["gpu"].startswith("NVIDIA L4, 23034 MiB")
    assert "easycontract" in details["vllm-models"] and "checklist" in details["vllm-models"]
    assert details["dcgm-exporter"] == ":9400/metrics: all 6 GPU series"
    assert f"http://{stack.host.address}:8001/health answers 200" in details["external"]
    assert json.loads((tmp_path / "verify.json").read_text()) == data
    table = run_checks("verify", "--config", str(stack.config))
    assert table.returncode == 0 and "Every checklist row is green." in table.stdout


def test_a_stopped_service_is_named(stack: Stack):
    stack.sh("sudo systemctl stop node_exporter")
    try:
        rc, data, log = verify(stack)
        assert rc == 1
        assert data["failed"] == [{"host": stack.host.name, "check": "node-exporter",
                                   "detail": ":9100/metrics: no answer"}]
        table = run_checks("verify", "--config", str(stack.config))
        assert table.returncode == 1
        assert f"FAILED: {stack.host.name}: node_exporter :9100/metrics" in table.stdout
    finally:
        stack.sh("sudo systemctl start node_exporter")


def test_a_gpu_that_is_not_an_l4_is_red(stack: Stack):
    gpu = '{"name": "Tesla T4", "memory_total_mib": 15360}'
    stack.sh(f"echo '{gpu}' | sudo tee /etc/l4rb-fake-gpu.json >/dev/null")
    try:
        rc, data, log = verify(stack)
        assert rc == 1
        (failed,) = data["failed"]
        assert failed["check"] == "gpu" and failed["detail"].startswith("not an L4: found Tesla T4, 15360 MiB")
    finally:
        stack.sh("sudo rm -f /etc/l4rb-fake-gpu.json")
