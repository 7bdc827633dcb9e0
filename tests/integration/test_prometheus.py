"""A real Prometheus scrapes a deployed sandbox host with the config `inv monitoring-config` wrote.

Debian's `prometheus` package (installed here when missing, as root) runs on a loopback port with
the generated scrape config and file_sd targets; the test asks its HTTP API, as a person's
dashboard would: every target up, the six DCGM_FI_* series, vLLM's own `vllm:` series, the app's
/metrics, each with the `host` and `instance` labels. Then `inv verify`, pointed at that
Prometheus, shows the row that asks it about this host.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from test_troubleshoot_stack import Stack, run_checks, stack_for

from runbook.sections.dcgm import counter_names

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(sandbox_state_dir) -> Stack:
    return stack_for(sandbox_state_dir)


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    if not shutil.which("prometheus"):
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"],
                       capture_output=True, timeout=600, env={"DEBIAN_FRONTEND": "noninteractive",
                                                               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    found = shutil.which("prometheus")
    if not found:
        pytest.skip("prometheus is missing: apt-get install prometheus")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base: str, path: str, **params: str) -> dict:
    url = f"{base}/api/v1/{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def query(base: str, promql: str) -> list[dict]:
    return api(base, "query", query=promql)["result"]


@pytest.fixture(scope="module")
def prometheus(stack: Stack, prometheus_binary: str, tmp_path_factory) -> str:
    """Prometheus on a loopback port with what `inv monitoring-config` wrote for the stack's inventory."""
    work = tmp_path_factory.mktemp("prometheus")
    r = run_checks("monitoring-config", "--config", str(stack.config), "--out", str(work / "conf"),
                   "--scrape-interval", "2s")
    assert r.returncode == 0 and "SUCCESS" in r.stdout + r.stderr, r.stdout + r.stderr
    port = free_port()
    proc = subprocess.Popen([prometheus_binary, f"--config.file={work / 'conf' / 'prometheus-scrape.yml'}",
                             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(work / "prometheus.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_all_up(base: str, expected: int, timeout: float = 90) -> list[dict]:
    deadline = time.monotonic() + timeout
    targets: list[dict] = []
    while time.monotonic() < deadline:
        targets = api(base, "targets")["activeTargets"]
        if len(targets) == expected and all(t["health"] == "up" for t in targets):
            return targets
        time.sleep(1)
    raise AssertionError(f"targets not all up after {timeout}s: "
                         + json.dumps([(t["labels"], t["health"], t.get("lastError")) for t in targets]))


def test_real_prometheus_scrapes_every_target_of_the_host(stack: Stack, prometheus: str):
    # A request through the API, so vLLM's token counters have something to count.
    stack.sh("key=$(sudo sed -n 's/^VLLM_API_KEY=//p' /app/vllm-server/vllm.env); "
             "printf 'Authorization: Bearer %s\\n' \"$key\" | curl -sf -H @- -H 'content-type: application/json' "
             "-d '{\"model\": \"easycontract\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}' "
             "http://127.0.0.1:8001/v1/chat/completions >/dev/null")
    targets = wait_all_up(prometheus, expected=4)
    name = stack.host.name
    assert {t["labels"]["job"] for t in targets} == {"l4rb-node", "l4rb-dcgm", "l4rb-vllm", "l4rb-app"}
    assert {t["labels"]["instance"] for t in targets} == {f"{name}:{p}" for p in (9100, 9400, 8001, 8000)}
    assert all(t["labels"]["host"] == name for t in targets)

    up = query(prometheus, "up")
    assert len(up) == 4 and all(s["value"][1] == "1" for s in up), up
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the exporter's first collection (B-9) may still be on its way
        dcgm = {s["metric"]["__name__"] for s in query(prometheus, '{__name__=~"DCGM_FI_.*"}')}
        if len(dcgm) >= len(counter_names()):
            break
        time.sleep(1)
    assert dcgm == set(counter_names())
    vllm = query(prometheus, 'vllm:prompt_tokens_total{job="l4rb-vllm"}')
    assert vllm and vllm[0]["metric"]["host"] == name and float(vllm[0]["value"][1]) > 0, vllm
    assert query(prometheus, '{__name__=~"vllm:.+",__name__=~".*num_requests_running"}')
    assert query(prometheus, 'http_requests_total{job="l4rb-app"}') or \
        query(prometheus, '{__name__=~"http_request_duration.*",job="l4rb-app"}')
    assert query(prometheus, 'node_load1{job="l4rb-node"}')


def test_verify_asks_prometheus_about_this_host(stack: Stack, prometheus: str, tmp_path: Path):
    wait_all_up(prometheus, expected=4)
    config = tmp_path / "hosts.toml"
    config.write_text(stack.config.read_text().replace("[inventory]", f'[monitoring]\nprometheus_url = "{prometheus}"'
                                                                      "\n[inventory]", 1))
    r = run_checks("verify", "--config", str(config), "--json")
    data = json.loads(r.stdout)
    rows = {row["check"]: row for row in data["hosts"][0]["rows"]}
    assert rows["prometheus"]["status"] == "ok", rows["prometheus"]
    assert "4 of 4 targets up" in rows["prometheus"]["detail"]
    assert rows["log-shipper"]["status"] == "ok" and "alloy" in rows["log-shipper"]["detail"]
