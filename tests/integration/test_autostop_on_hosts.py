"""Idle auto-stop end to end on a sandbox VM made through the local Compute API.

`inv vm` boots the VM, a deploy of only what autostop reads (vLLM, the app) and autostop itself
(idle 20s, checked every 5s) follows. While requests come through the app the VM keeps running past the
idle limit; once they stop, the guest powers itself off within one period after the limit, and the local
Compute server shows the instance TERMINATED with its disk kept. `inv vm` starts it again, and the clock
starts afresh on the new boot; `inv autostop --off` removes it all.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from runbook import gcp
from runbook.cloud import state
from testbed import local_api, sandbox

from helpers import REPO, SECRET, inv, report, wait_for

pytestmark = pytest.mark.integration

IDLE, PERIOD = 20, 5
INSTANCE = "idle-vm"
HOSTS_TOML = f"""
[gcp]
project_id = "autostop-project"
instance_name = "{INSTANCE}"

[inventory]
target = "sandbox"

[ai_server.source]
path = "{REPO / 'tests/fixtures/ai_app'}"

[autostop]
idle = "{IDLE}s"
period = "{PERIOD}s"
"""
FAST_VLLM = {"L4RB_VLLM_START_SECONDS": "3"}  # the stand-in's start, not the subject here


@pytest.fixture
def project(sandbox_state_dir: Path, tmp_path: Path):
    (tmp_path / "hosts.toml").write_text(HOSTS_TOML)
    yield tmp_path
    local_api.stop(forget=True)


def instance_status() -> str:
    api = gcp.clients(local_api.running(), gcp.bearer(local_api.token()))
    return api.instances.get(project="autostop-project", zone="asia-northeast3-a", instance=INSTANCE).status


def agent_state(host) -> dict:
    """The state file the script keeps, read from the host's disk (there also while it is stopped)."""
    path = Path(host.root) / "var/lib/l4rb-autostop/state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def get(url: str, body: dict | None = None) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {SECRET}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as response:
        return response.status




def test_idle_vm_stops_and_a_busy_one_does_not(project: Path):
    config = str(project / "hosts.toml")
    r = inv("vm", "--config", config, env_extra=FAST_VLLM)
    assert r.returncode == 0, r.stdout + r.stderr
    (vm,) = state.instances(project)
    (host,) = [h for h in sandbox.status() if h.address == vm["address"]]

    r = inv("deploy", "--config", config, "--only", "vllm,ai-server,autostop", "--report", str(project / "d.json"),
            env_extra=FAST_VLLM)
    assert r.returncode == 0, r.stdout + r.stderr
    again = inv("autostop", "--config", config, "--report", str(project / "again.json"))
    assert again.returncode == 0, again.stdout + again.stderr
    assert report(project / "again.json")["sections"][0]["changed"] == 0
    # --idle overrides hosts.toml for one run; --dry-run shows that change and makes none.
    dry = inv("autostop", "--config", config, "--idle", "1m", "--dry-run", "--output", "json")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    steps = [json.loads(line) for line in dry.stdout.splitlines() if line.startswith("{")]
    (unit_step,) = [o for o in steps if o.get("title", "").endswith(".service")]
    assert unit_step["status"] == "changed" and "+ExecStart=/usr/bin/python3 /usr/local/sbin/l4rb-autostop " \
        "--idle 60 --period 5 " in unit_step["diff"], unit_step
    assert "--idle 20 --period 5 " in (host.root / "etc/systemd/system/l4rb-autostop.service").read_text()
    bad = inv("autostop", "--config", config, "--idle", "soon")
    assert bad.returncode == 2 and "--idle 'soon'" in bad.stdout + bad.stderr

    # vLLM's own counter: a finished completion is seen by the next check (after the first, which sets the clock).
    assert wait_for(lambda: agent_state(host), bool, 3 * PERIOD), "no check ran after the install"
    app, vllm = f"http://{vm['address']}:8000", f"http://{vm['address']}:8001"
    assert get(f"{vllm}/v1/chat/completions", {"model": "LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct",
                                                "messages": [{"role": "user", "content": "hi"}]}) == 200
    seen = wait_for(lambda: agent_state(host), lambda s: "vLLM finished" in s.get("why", ""), 3 * PERIOD)
    assert "vLLM finished 1 request(s)" in seen.get("why", ""), seen

    # Busy: a request through the app every few seconds, for longer than the idle limit and a period.
    busy_until = time.monotonic() + IDLE + 2 * PERIOD
    while time.monotonic() < busy_until:
        assert get(f"{app}/vllm/models") == 200
        assert instance_status() == "RUNNING"
        last_request = time.monotonic()
        time.sleep(PERIOD - 1)
    assert agent_state(host)["verdict"] in ("busy", "idle") and instance_status() == "RUNNING"

    # verify shows the state and the idle time so far.
    v = inv("verify", "--config", config, "--output", "json")
    (row,) = [json.loads(line) for line in v.stdout.splitlines() if '"autostop"' in line]
    assert row["status"] == "ok" and f"of {IDLE}s, checked every {PERIOD}s" in row["detail"], row

    # Idle: nothing more. The check after the last request restarted the clock; the first check at least IDLE
    # later, so within one period after the limit, powers off; the server shows it once the guest is down.
    status = wait_for(instance_status, lambda s: s == "TERMINATED", IDLE + 3 * PERIOD + 30, every=1)
    waited = time.monotonic() - last_request
    assert status == "TERMINATED", agent_state(host)
    final = agent_state(host)
    assert final["verdict"] == "stop" and IDLE <= final["checked"] - final["idle_since"] < IDLE + PERIOD + 1, final
    assert IDLE <= waited <= IDLE + 2 * PERIOD + 15, (waited, final)
    assert host.root.is_dir() and [h.state for h in sandbox.status() if h.name == host.name] == ["stopped"]

    # `inv vm` starts it again; the clock starts afresh on the new boot instead of stopping it at once.
    r = inv("vm", "--config", config)
    assert r.returncode == 0, r.stdout + r.stderr
    assert instance_status() == "RUNNING"
    fresh = wait_for(lambda: agent_state(host), lambda s: s.get("checked", 0) > final["checked"], 3 * PERIOD)
    assert fresh["verdict"] == "reset" and fresh["idle_since"] == fresh["checked"], fresh

    off = inv("autostop", "--config", config, "--off", "--report", str(project / "off.json"))
    assert off.returncode == 0, off.stdout + off.stderr
    assert report(project / "off.json")["sections"][0]["changed"] == 2
    installed = ("usr/local/sbin/l4rb-autostop", "etc/systemd/system/l4rb-autostop.timer",
                 "etc/systemd/system/l4rb-autostop.service", "var/lib/l4rb-autostop")
    left = [p for p in installed if (host.root / p).exists()]
    assert left == []
