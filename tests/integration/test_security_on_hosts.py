"""Security guarantees on a real sandbox host: systemd reads back exactly what the env-file writer wrote,
a rotated-out key on the host never prints, and a second run is refused while one holds the host."""

import stat
import subprocess
from pathlib import Path

import pytest

from runbook import envfile
from runbook.errors import RunbookError
from runbook.transport import SshTransport

from helpers import SECRET, inv, report

pytestmark = pytest.mark.integration

# Everything that breaks an unquoted EnvironmentFile= line, ${X} included (systemd does not expand it).
VALUES = ["abc#def", "it's", 'say "hi"', "back\\slash\\n", "dollar$HOME", "brace${X}", "  spaced value  ",
          "'leading", "semi;colon", "#leading-hash", "tab\there", "ünïcödé", "end\\"]


def sh(host, command: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", str(host.ssh_key), "-o", f"UserKnownHostsFile={host.known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"{host.ssh_user}@{host.address}", command],
        input=stdin.encode(), capture_output=True, timeout=120,
    )


def write_config(tmp_path: Path, host) -> str:
    lines = [
        'secrets_file = "none.env"',
        "[inventory]", 'target = "hosts"',
        "[[inventory.hosts]]", f'name = "{host.name}"', f'address = "{host.address}"',
        "[ssh]", f'user = "{host.ssh_user}"', f'key_file = "{host.ssh_key}"', f'known_hosts = "{host.known_hosts}"',
        "[vllm]", 'index_url = "file:///opt/l4rb-sandbox/simple"',
        "[monitoring.promtail]", 'loki_url = "http://127.0.0.1:3100"',
    ]
    path = tmp_path / "hosts.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_systemd_reads_back_exactly_what_we_wrote(sandbox_host):
    pairs = [(f"V{i}", value) for i, value in enumerate(VALUES)]
    text = envfile.render(pairs, envfile.SYSTEMD, "written by the test")
    assert sh(sandbox_host, "sudo tee /root/roundtrip.env >/dev/null", text).returncode == 0
    for key, value in pairs:
        # systemd itself parses the file for a transient service; printenv prints the value it got.
        r = sh(sandbox_host, "sudo systemd-run --quiet --wait --pipe -p EnvironmentFile=/root/roundtrip.env "
                             f"/usr/bin/printenv {key}")
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode() == value + "\n", (key, value, r.stdout)


def test_a_rotated_out_key_on_the_host_never_prints(tmp_path, sandbox_host):
    old = "old-live-key-0f0f0f0f"
    sh(sandbox_host, "sudo install -d /app/vllm-server && sudo install -m 600 /dev/stdin /app/vllm-server/vllm.env",
       f"VLLM_MODEL=x\nVLLM_API_KEY={old}\n# previous: {old}\n")
    out_report = tmp_path / "r.json"
    r = inv("vllm", "--dry-run", "--config", write_config(tmp_path, sandbox_host), "--report", str(out_report))
    text = r.stdout + r.stderr
    assert r.returncode == 0, text
    assert old not in text and old not in out_report.read_text() and SECRET not in text
    assert "+VLLM_API_KEY=******** (value differs)" in text and "-VLLM_API_KEY=********" in text
    assert stat.S_IMODE(out_report.stat().st_mode) == 0o600
    assert report(out_report)["sections"][0]["section"] == "vllm"
    sh(sandbox_host, "sudo rm -rf /app/vllm-server")


def test_a_second_run_is_refused_naming_the_first(tmp_path, sandbox_host):
    def transport() -> SshTransport:
        return SshTransport(sandbox_host.name, sandbox_host.address, sandbox_host.ssh_user,
                            key_file=str(sandbox_host.ssh_key), known_hosts=Path(sandbox_host.known_hosts))

    first = transport()
    first.lock_run()
    try:
        second = transport()
        with pytest.raises(RunbookError, match=r"another run is using this host \(l4-runbook run by .* pid \d+"):
            second.lock_run()
        second.close()
        r = inv("vllm", "--dry-run", "--config", write_config(tmp_path, sandbox_host))
        assert r.returncode == 2 and "another run is using this host" in r.stdout, r.stdout + r.stderr
        assert "gather facts" not in r.stdout  # refused before reading anything
    finally:
        first._conn.client.get_transport().close()  # the session dies, as when a run is killed
    third = transport()
    third.lock_run(wait=30)  # released by the dead session, without any cleanup of ours
    third.close()
