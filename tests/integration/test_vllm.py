"""Guide section 3 on a real sandbox host: vLLM (the double) as a systemd service behind its API key."""

import json
import re
import urllib.error
import urllib.request

import pytest

from helpers import SECRET, assert_no_secret, inv, report, ssh

pytestmark = pytest.mark.integration


def write_config(tmp_path, host, adapters=None, **vllm) -> str:
    adapters = adapters or [("easycontract", "temdy/exaone-3.5-2.4b-easycontract-qlora-v1.1"),
                            ("checklist", "imyj1013/exaone-qlora-checklist-adapter")]
    lines = [
        'secrets_file = "none.env"',
        "[inventory]", 'target = "hosts"',
        "[[inventory.hosts]]", f'name = "{host.name}"', f'address = "{host.address}"',
        "[ssh]", f'user = "{host.ssh_user}"', f'key_file = "{host.ssh_key}"',
        f'known_hosts = "{host.known_hosts}"', "trust_on_first_use = false",
        "[vllm]", 'index_url = "file:///opt/l4rb-sandbox/simple"',
        *(f"{k} = {json.dumps(v)}" for k, v in vllm.items()),
        "[monitoring.promtail]", 'loki_url = "http://127.0.0.1:3100"',
    ]
    for name, path in adapters:
        lines += ["[[vllm.adapters]]", f'name = "{name}"', f'path = "{path}"']
    cfg = tmp_path / "hosts.toml"
    cfg.write_text("\n".join(lines) + "\n")
    return str(cfg)


def models(host, key: str | None):
    request = urllib.request.Request(f"http://{host.address}:8001/v1/models")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, None


def test_vllm_converges_is_idempotent_and_guards_its_key(tmp_path, sandbox_host):
    cfg = write_config(tmp_path, sandbox_host)
    dry = inv("vllm", "--config", cfg, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "+ExecStart=/app/vllm-server/venv/bin/vllm serve ${SERVE_MODEL}" in dry.stdout
    assert "'{\"name\":\"checklist\",\"path\":\"imyj1013/exaone-qlora-checklist-adapter\"}'" in dry.stdout

    ssh(sandbox_host, "nohup sh -c 'while :; do ps -eo args >> /tmp/ps-vllm.log; sleep 0.05; done' "
                      ">/dev/null 2>&1 & echo $! > /tmp/ps-vllm.pid")
    first = inv("vllm", "--config", cfg, "--report", str(tmp_path / "r1.json"))
    ssh(sandbox_host, "kill $(cat /tmp/ps-vllm.pid)")
    assert first.returncode == 0, first.stdout + first.stderr
    second = inv("vllm", "--config", cfg, "--report", str(tmp_path / "r2.json"))
    assert second.returncode == 0, second.stdout + second.stderr
    r2 = report(tmp_path / "r2.json")["sections"][0]
    assert r2["changed"] == 0 and r2["commands"] == 1

    status, body = models(sandbox_host, SECRET)
    assert status == 200
    cards = {m["id"]: m for m in body["data"]}
    assert set(cards) == {"LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct", "easycontract", "checklist"}
    assert cards["checklist"]["parent"] == "LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct"
    assert models(sandbox_host, None)[0] == 401
    assert models(sandbox_host, "wrong-key")[0] == 401

    # The key: in no argv on the host, not in our output, only in a 0600 root file.
    assert_no_secret(ssh(sandbox_host, "sudo cat /tmp/ps-vllm.log"))
    assert_no_secret(ssh(sandbox_host, "tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value vllm)/cmdline"))
    for text in (first.stdout, first.stderr, second.stdout):
        assert_no_secret(text)
    assert ssh(sandbox_host, "stat -c '%U %a' /app/vllm-server/vllm.env").strip() == "root 600"
    # The journal first: the grep below names the key on its own command line, which sudo logs.
    assert_no_secret(ssh(sandbox_host, "sudo journalctl --no-pager -o cat"))
    world_readable = ssh(sandbox_host, f"sudo grep -rl {SECRET} /app /etc /tmp /var/log /home /run 2>/dev/null | "
                                       "xargs -r stat -c '%a %n' | awk '$1 ~ /[4-7]$/'")
    assert world_readable.strip() == ""
    # The first start takes the stand-in's default 20 s: the 3-6 wait shows which B-12 phase vLLM is in.
    # On a pipe a long wait prints "<step>: <phase> — <elapsed> of up to <limit>" (runbook.engine.output).
    phases = re.findall(r"^\[\S+\] 3-6 .*\): ([a-z ]+) — [0-9hms]+ of up to ", first.stdout, re.M)
    assert phases and set(phases) <= {"downloading the model", "loading weights", "weights loaded", "warming up"}, \
        first.stdout

    # One adapter changed in hosts.toml: the unit changes and vLLM restarts exactly once.
    before = ssh(sandbox_host, "systemctl show -p InvocationID --value vllm").strip()
    restarts = ssh(sandbox_host, "journalctl -u vllm -o cat | grep -c 'Started vllm.service\\|Started vLLM'").strip()
    kept = ("easycontract", "temdy/exaone-3.5-2.4b-easycontract-qlora-v1.1")
    cfg = write_config(tmp_path, sandbox_host, adapters=[kept,
                                                         ("summary", "org/summary-adapter")])
    dry = inv("vllm", "--config", cfg, "--dry-run")
    assert "-      '{\"name\":\"checklist\"" in dry.stdout and "+      '{\"name\":\"summary\"" in dry.stdout
    third = inv("vllm", "--config", cfg, "--report", str(tmp_path / "r3.json"))
    assert third.returncode == 0, third.stdout + third.stderr
    changed = [s["title"] for s in report(tmp_path / "r3.json")["sections"][0]["steps"] if s["status"] == "changed"]
    assert changed == ["/etc/systemd/system/vllm.service", "vllm.service enabled and running"]
    assert ssh(sandbox_host, "systemctl show -p InvocationID --value vllm").strip() != before
    after = ssh(sandbox_host, "journalctl -u vllm -o cat | grep -c 'Started vllm.service\\|Started vLLM'").strip()
    assert int(after) == int(restarts) + 1
    status, body = models(sandbox_host, SECRET)
    assert {m["id"] for m in body["data"]} == {"LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct", "easycontract", "summary"}
    assert report(tmp_path / "r3.json")["failed"] is False


def test_b10_crash_is_reported_with_its_fix(tmp_path, sandbox_host):
    """Without --enforce-eager the double crashes like guide B-10 (no switch: the L4's 58 SMs are too few for
    torch.compile's max_autotune_gemm); the run names the cause and stops."""
    cfg = write_config(tmp_path, sandbox_host, enforce_eager=False)
    r = inv("vllm", "--config", cfg)
    assert r.returncode == 1
    assert "B-10" in r.stdout and "Not enough SMs" in r.stdout
    cfg = write_config(tmp_path, sandbox_host, enforce_eager=True)
    r = inv("vllm", "--config", cfg)
    assert r.returncode == 0, r.stdout + r.stderr
