"""Appendix B items of vLLM, the app and outside access, planted one after another on the deployed host.

Each test plants the guide's symptom the way it happens (a unit edited by hand, vLLM's own crash
texts from the double, an empty key, a deleted directory, a VM without its tag), proves that a
diagnosis of all 19 items finds exactly that one with evidence, and that --fix clears it (or prints
what a person has to do) and leaves the host healthy again.
"""

from __future__ import annotations

import json

import pytest
from google.cloud import compute_v1
from test_troubleshoot_stack import NAME, PROJECT, ZONE, Stack, evidence, stack_for

from runbook import gcp

from helpers import inv

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(sandbox_state_dir) -> Stack:
    return stack_for(sandbox_state_dir)

DROPIN = "/etc/systemd/system/vllm.service.d"
UNIT = "/etc/systemd/system/vllm.service"


def vllm_dropin(stack: Stack, *lines: str) -> None:
    """Environment for the vLLM double (its failure switches), then a restart."""
    body = "\\n".join(["[Service]", *lines])
    stack.sh(f"sudo mkdir -p {DROPIN} && printf '{body}\\n' | sudo tee {DROPIN}/plant.conf >/dev/null && "
             "sudo systemctl daemon-reload && sudo systemctl restart vllm")


def no_dropin(stack: Stack, restart: bool = False) -> None:
    stack.sh(f"sudo rm -rf {DROPIN} && sudo systemctl daemon-reload" + (" && sudo systemctl restart vllm" if restart
                                                                        else ""))


def crashed(stack: Stack) -> None:
    """Wait until the double has crashed (the unit then waits 10 s before it starts it again)."""
    stack.sh("for i in $(seq 60); do s=$(systemctl show -p SubState,NRestarts vllm | tr '\\n' ' '); "
             "case \"$s\" in *auto-restart*|*failed*|*NRestarts=[1-9]*) exit 0;; esac; sleep 0.5; done; exit 1")


# The guide's mistake: the adapters passed through the EnvironmentFile instead of ExecStart.
LORA_FROM_ENV = r"""
import re
path = "/etc/systemd/system/vllm.service"
text = open(path).read()
text = re.sub(r"--lora-modules \\\n(\s+'.*?' \\\n)+", "--lora-modules ${VLLM_LORA_MODULES} \\\n", text)
open(path, "w").write(text)
"""


def test_b3_lora_modules_from_the_env_file(stack: Stack):
    stack.host.ssh("sudo python3 -", input=LORA_FROM_ENV, timeout=60)
    assert "--lora-modules ${VLLM_LORA_MODULES}" in stack.sh(f"cat {UNIT}")
    modules = '{"name":"easycontract","path":"a"} {"name":"checklist","path":"b"}'
    stack.sh(f"echo 'VLLM_LORA_MODULES={modules}' | sudo tee -a /app/vllm-server/vllm.env >/dev/null && "
             "sudo systemctl daemon-reload && sudo systemctl restart vllm")
    crashed(stack)
    got = stack.detect("B-3")
    text = evidence(got)
    assert "${VLLM_LORA_MODULES}" in text and "environment variable" in text
    assert "Invalid JSON format for --lora-modules" in text
    stack.fix("B-3")
    assert "VLLM_LORA_MODULES" not in stack.sh("sudo cat /app/vllm-server/vllm.env")


def test_b10_torch_compile_crash_without_enforce_eager(stack: Stack):
    # No failure switch: on the double's L4 (58 SMs) every start without --enforce-eager crashes, as in B-10.
    stack.sh(f"sudo sed -i '/--enforce-eager/d' {UNIT} && sudo systemctl daemon-reload && sudo systemctl restart vllm")
    try:
        crashed(stack)
        got = stack.detect("B-10")
        assert "Not enough SMs to use max_autotune_gemm" in evidence(got)
        assert "ExecStart has no --enforce-eager" in got["evidence"]
        fixed = stack.fix("B-10")
        assert {s["guide"] for s in fixed["fix"]["steps"] if s["status"] == "changed"} == {"3-4", "3-5"}
        assert "--enforce-eager" in stack.sh(f"cat {UNIT}")
    finally:
        no_dropin(stack)


def test_b11_ropeparameters_without_the_pinned_revision(stack: Stack):
    stack.sh(f"sudo sed -i '/--revision/d' {UNIT}")
    vllm_dropin(stack, "Environment=VLLM_DOUBLE_FAIL=rope")
    try:
        crashed(stack)
        got = stack.detect("B-11")
        text = evidence(got)
        assert "cannot import name 'RopeParameters' from 'transformers.modeling_rope_utils'" in text
        assert "ExecStart has no --revision" in text
        stack.fix("B-11")
        # The unit quotes the revision (one word whatever it holds); systemd hands vLLM the bare value.
        assert "--revision \"e949c91dec92095908d34e6b560af77dd0c993f8\"" in stack.sh(f"cat {UNIT}")
    finally:
        no_dropin(stack)


def test_b4_out_of_memory(stack: Stack):
    # Values on the host that do not fit the L4 (vLLM's own KV-cache arithmetic fails): repaired from hosts.toml.
    stack.sh("sudo sed -i -e 's/^SERVE_MAX_MODEL_LEN=.*/SERVE_MAX_MODEL_LEN=32768/' "
             "-e 's/^SERVE_GPU_MEMORY_UTILIZATION=.*/SERVE_GPU_MEMORY_UTILIZATION=0.3/' /app/vllm-server/vllm.env "
             "&& sudo systemctl restart vllm")
    crashed(stack)
    got = stack.detect("B-4")
    assert "max seq len (32768)" in evidence(got) and "the host differs in" in evidence(got)
    stack.fix("B-4")
    # The same crash with hosts.toml's own values: only a person can choose smaller ones.
    vllm_dropin(stack, "Environment=VLLM_DOUBLE_FAIL=oom")
    try:
        crashed(stack)
        got = stack.fix("B-4", cleared=False)
        assert "CUDA out of memory" in evidence(got)
        assert any("max_model_len = 4096" in line for line in got["fix"]["manual"])
        assert not got["fix"]["applied"] and got["final"] == "found"
    finally:
        no_dropin(stack, restart=True)
    stack.healthy()


def test_b12_slow_first_start_then_a_hang(stack: Stack):
    # A first start of 80 s (four times the default), logging its phases, so normal. It must outlast two
    # troubleshoot runs (all 19 items, then --fix) on a busy machine: at 40 s, a loaded CI host once saw it end
    # before the fix looked, so the fix found a served vLLM and nothing to do.
    stack.sh("sudo rm -rf /app/vllm-server/.cache/huggingface")
    vllm_dropin(stack, "Environment=VLLM_DOUBLE_START_SECONDS=80")
    try:
        got = stack.detect("B-12")
        assert got["summary"].startswith("slow start in progress, not a hang"), got
        fixed = stack.fix("B-12")
        assert fixed["fix"]["steps"][-1]["guide"] == "3-6"
        # A start that stops logging after loading the weights: a hang, not B-12's normal slowness.
        vllm_dropin(stack, "Environment=VLLM_DOUBLE_FAIL=hang")
        # The start takes 20 s: wait for this start to load its weights, then for the stall to show.
        stack.sh("for i in $(seq 120); do journalctl _SYSTEMD_INVOCATION_ID=$(systemctl show -p InvocationID "
                 "--value vllm) -o cat | grep -q 'Model loading took' && break; sleep 0.5; done; sleep 4")
        got = stack.detect("B-12", env={"L4RB_VLLM_STALL_S": "2"})
        assert got["summary"].startswith("hung: no log line for") and "weights loaded" in got["summary"]
        manual = stack.fix("B-12", env={"L4RB_VLLM_STALL_S": "2"}, cleared=False)["fix"]["manual"]
        assert any("systemctl restart vllm" in line for line in manual)
    finally:
        no_dropin(stack, restart=True)
    stack.healthy()


def test_b2_libcuda_outside_the_library_path(stack: Stack, tmp_path):
    lib = "/usr/local/nvidia/lib64"
    stack.sh(f"sudo mkdir -p {lib} && sudo sh -c 'mv /usr/lib/x86_64-linux-gnu/libcuda.so* {lib}/' && sudo ldconfig")
    try:
        got = stack.detect("B-2")
        assert "cannot open shared object file" in evidence(got) and f"libcuda.so.1 is in {lib}" in got["evidence"]
        manual = stack.fix("B-2", cleared=False)["fix"]["manual"]
        assert f'set vllm.ld_library_path = "{lib}" in hosts.toml' in manual[0]
        # With that setting the fix rewrites the unit and clears it.
        config = tmp_path / "hosts.toml"
        config.write_text(stack.config.read_text().replace("[vllm]\n", f'[vllm]\nld_library_path = "{lib}"\n'))
        stack.fix("B-2", config=config)
        assert f'LD_LIBRARY_PATH={lib}"' in stack.sh(f"cat {UNIT}")
    finally:
        stack.sh(f"sudo sh -c 'mv {lib}/libcuda.so* /usr/lib/x86_64-linux-gnu/' ; sudo ldconfig")
    r = inv("vllm", "--config", str(stack.config))  # back to hosts.toml's library path
    assert r.returncode == 0, r.stdout[-3000:]
    assert stack.troubleshoot("--only", "B-2")[0] == 0


def test_b13_python3_venv_missing(stack: Stack):
    stack.sh("sudo DEBIAN_FRONTEND=noninteractive apt-get remove -y -q python3-venv 'python3.*-venv' >/dev/null")
    got = stack.detect("B-13")
    assert "ensurepip" in evidence(got) and "python3-venv: not-installed" in evidence(got)
    stack.fix("B-13")
    stack.sh("python3 -m venv /tmp/venv-check && rm -rf /tmp/venv-check")


def test_b14_module_missing_from_the_app_venv(stack: Stack):
    stack.sh("sudo uv pip uninstall -q --python /app/ai-server/.venv/bin/python python-json-logger && "
             "sudo systemctl restart ai-server")
    got = stack.detect("B-14")
    assert "pythonjsonlogger" in got["summary"] and "to (re)install: python-json-logger" in got["evidence"]
    stack.fix("B-14")
    stack.healthy("http://127.0.0.1:8000/health")


def test_b15_empty_vllm_api_key(stack: Stack):
    stack.healthy()  # vLLM answers (an earlier test may have just restarted it)
    stack.sh("sudo sed -i 's/^VLLM_API_KEY=.*/VLLM_API_KEY=/' /app/ai-server/.env && sudo systemctl restart ai-server")
    stack.healthy("http://127.0.0.1:8000/health")
    assert "Bearer" in stack.sh("curl -s http://127.0.0.1:8000/vllm/models")  # the app's httpx error
    got = stack.detect("B-15")
    assert "VLLM_API_KEY is empty" in got["summary"]
    assert "header value b'Bearer '" in evidence(got)
    # Without a key on this side the fix can only say what to do.
    manual = stack.fix("B-15", env={"VLLM_API_KEY": ""}, cleared=False)["fix"]["manual"]
    assert any("non-empty VLLM_API_KEY" in line for line in manual)
    assert any("inv vllm && inv ai-server" in line for line in manual)
    # With it, both env files get the same key and the app calls vLLM again.
    stack.fix("B-15")
    assert json.loads(stack.sh("curl -s http://127.0.0.1:8000/vllm/models"))["ok"] is True


def test_b18_log_directory_missing(stack: Stack):
    stack.sh("sudo rm -rf /var/log/dojangkok/production && sudo systemctl restart ai-server")
    stack.healthy("http://127.0.0.1:8000/health")
    got = stack.detect("B-18")
    assert "does not exist" in got["summary"] and "cannot open log file" in evidence(got)
    stack.fix("B-18")
    stack.healthy("http://127.0.0.1:8000/health")
    assert "app.log" in stack.sh("ls /var/log/dojangkok/production")


def set_tags(stack: Stack, items: list[str]) -> None:
    api = gcp.clients(stack.server.url, gcp.bearer(stack.server.token))
    vm = api.instances.get(project=PROJECT, zone=ZONE, instance=NAME)
    api.wait(api.instances.set_tags(project=PROJECT, zone=ZONE, instance=NAME, tags_resource=compute_v1.Tags(
        items=items, fingerprint=vm.tags.fingerprint)), timeout=30)


def test_b5_vm_without_the_ai_server_tag(stack: Stack):
    set_tags(stack, ["monitoring"])
    got = stack.detect("B-5")
    assert "allow(s) tcp:8000 only to VMs tagged ai-server" in got["summary"]
    assert f"{NAME} has tags: monitoring" in got["summary"]
    assert any("from this machine: http://" in line and "answers 200" in line for line in got["evidence"])
    fixed = stack.fix("B-5")
    assert any(s["title"] == "network tags for the firewall rules" and s["status"] == "changed"
               for s in fixed["fix"]["steps"])
    # The rule itself gone: the fix makes it again (the firewall section's steps).
    api = gcp.clients(stack.server.url, gcp.bearer(stack.server.token))
    api.wait(api.firewalls.delete(project=PROJECT, firewall="allow-ai-server-ports"), timeout=30)
    got = stack.detect("B-5")
    assert "no enabled ingress rule on network default allows tcp:8000" in got["summary"]
    stack.fix("B-5")
    assert api.firewalls.get(project=PROJECT, firewall="allow-ai-server-ports").target_tags == ["ai-server"]
