"""Guide section 7 on a real sandbox host: dcgm, node-exporter and promtail through the real CLI.

The host gets the monitoring stand-ins (testbed.sandbox.doubles_monitoring) in its root; Loki is a
push receiver on this machine, on the host's link address, so the logs really leave the host. The
tests run in file order on one module-scoped host: a tampered download first (nothing may be
installed yet), then each task twice, the DCGM 3 -> 4 switch, and the log shipping checks.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from runbook.config import DcgmConfig, NodeExporterConfig, PromtailConfig
from testbed.sandbox.doubles_monitoring import install_monitoring_doubles
from testbed.sandbox.naming import controller_ip
from testbed.settings import mirror_url

from helpers import inv, report

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "testbed/standins/loki"))
import receiver  # noqa: E402

pytestmark = pytest.mark.integration

DCGM, NODE, PROMTAIL = DcgmConfig(), NodeExporterConfig(), PromtailConfig()
TAMPERED = "/opt/l4rb-tampered/node_exporter"


def mirrored(url: str) -> str:
    """The guide's URL as the sandbox's local copy, written out as a mirror URL in hosts.toml."""
    return json.dumps(mirror_url(url))


def write_config(tmp_path: Path, host, loki: str, dcgm_major: str = '"auto"', shipper: str = "alloy",
                 node_url: str = "", node_sums: str = "") -> str:
    lines = [
        'secrets_file = "none.env"',
        "[inventory]", 'target = "hosts"',
        "[[inventory.hosts]]", f'name = "{host.name}"', f'address = "{host.address}"',
        "[ssh]", f'user = "{host.ssh_user}"', f'key_file = "{host.ssh_key}"',
        f'known_hosts = "{host.known_hosts}"', "trust_on_first_use = false",
        "[monitoring.dcgm]",
        f"cuda_keyring_url = {mirrored(DCGM.cuda_keyring_url)}",
        f"exporter_git = {mirrored(DCGM.exporter_git)}",
        f"major = {dcgm_major}",
        "[monitoring.dcgm.go]", 'method = "apt"',
        "[monitoring.node_exporter]",
        f"url = {json.dumps(node_url) if node_url else mirrored(NODE.url)}",
        f"checksums_url = {json.dumps(node_sums) if node_sums else mirrored(NODE.checksums_url)}",
        "[monitoring.promtail]",
        f'log_shipper = "{shipper}"', f'loki_url = "{loki}"',
        f"url = {mirrored(PROMTAIL.url)}", f"checksums_url = {mirrored(PROMTAIL.checksums_url)}",
        "[monitoring.promtail.alloy]",
        f"url = {mirrored(PROMTAIL.alloy.url)}", f"checksums_url = {mirrored(PROMTAIL.alloy.checksums_url)}",
    ]
    path = tmp_path / "hosts.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run_twice(task: str, cfg: str, tmp_path: Path) -> tuple[dict, dict]:
    first = inv(task, "--config", cfg, "--report", str(tmp_path / f"{task}-1.json"))
    assert first.returncode == 0, first.stdout + first.stderr
    second = inv(task, "--config", cfg, "--report", str(tmp_path / f"{task}-2.json"))
    assert second.returncode == 0, second.stdout + second.stderr
    r1, r2 = (report(tmp_path / f"{task}-{n}.json")["sections"][0] for n in (1, 2))
    assert r2["changed"] == 0 and r2["commands"] == 1, second.stdout
    return r1, r2


def changed(path: Path) -> list[str]:
    return [s["title"] for s in report(path)["sections"][0]["steps"] if s["status"] == "changed"]


def promtool(url: str) -> subprocess.CompletedProcess:
    body = urllib.request.urlopen(url, timeout=10).read()
    return subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def host(sandbox_host):
    """The sandbox host with the section 7 stand-ins and its own Loki receiver running."""
    install_monitoring_doubles(sandbox_host.root)
    sandbox_host.ssh("sudo systemctl daemon-reload && sudo systemctl start loki-double.service")
    return sandbox_host


@pytest.fixture(scope="module")
def loki(host):
    """A Loki push receiver on this machine, on the host's link address: pushes really leave the host."""
    server = receiver.serve(f"{controller_ip(host.index)}:0")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def promtool_available():
    """Debian's prometheus package provides promtool; `make deps` installs it (testbed/system-packages.txt)."""
    if not shutil.which("promtool"):
        message = "promtool is missing: run `make deps` as root (Debian's prometheus package)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI must run every test: {message}", pytrace=False)
        pytest.skip(message)


def loki_url(server) -> str:
    return f"http://{server.server_address[0]}:{server.server_address[1]}"


def test_tampered_tarball_is_refused_and_nothing_is_installed(tmp_path, host, loki):
    release = f"{TAMPERED}/v{NODE.version}"
    tarball = f"node_exporter-{NODE.version}.linux-amd64.tar.gz"
    host.ssh(f"sudo mkdir -p {release} && sudo cp /opt/l4rb-sandbox/monitoring/node_exporter/v{NODE.version}/* "
             f"{release}/ && printf 'x' | sudo tee -a {release}/{tarball} >/dev/null")
    cfg = write_config(tmp_path, host, loki_url(loki), node_url=f"file://{release}/{tarball}",
                       node_sums=f"file://{release}/sha256sums.txt")
    r = inv("node-exporter", "--config", cfg)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"checksum mismatch for {tarball}" in r.stdout and "Nothing was installed" in r.stdout
    leftovers = host.ssh("ls /usr/local/bin/node_exporter /etc/systemd/system/node_exporter.service "
                         "/var/lib/l4-runbook/downloads/node_exporter /var/tmp/l4rb-download.* 2>/dev/null; "
                         "systemctl is-active node_exporter", check=False).stdout
    assert leftovers.strip() == "inactive"


def test_node_exporter_twice_and_promtool(tmp_path, host, loki, promtool_available):
    cfg = write_config(tmp_path, host, loki_url(loki))
    r1, _ = run_twice("node-exporter", cfg, tmp_path)
    assert r1["changed"] >= 3
    check = promtool(f"http://{host.address}:9100/metrics")
    # The real node_exporter's own names trip a few lint rules (exit 3); the exposition must parse.
    assert check.returncode in (0, 3) and b"error while linting" not in check.stderr, check.stderr
    assert b"node_exporter_build_info" in urllib.request.urlopen(f"http://{host.address}:9100/metrics").read()


def test_dcgm_twice_then_dcgm4_builds_the_matching_tag(tmp_path, host, loki, promtool_available):
    cfg = write_config(tmp_path, host, loki_url(loki), dcgm_major="3")  # the guide's DCGM 3
    dry = inv("dcgm", "--config", cfg, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert host.ssh("test -e /usr/local/bin/dcgm-exporter && echo yes || echo no").stdout.strip() == "no"

    run_twice("dcgm", cfg, tmp_path)
    tag3, tag4 = DCGM.exporter_tags["3"], DCGM.exporter_tags["4"]
    assert f"tag={tag3} dcgm=3 " in host.ssh("cat /var/lib/l4-runbook/dcgm-exporter.build").stdout
    check = promtool(f"http://{host.address}:9400/metrics")
    assert check.returncode == 0, check.stderr
    body = urllib.request.urlopen(f"http://{host.address}:9400/metrics", timeout=10).read().decode()
    series = sorted({line.split("{")[0] for line in body.splitlines() if line.startswith("DCGM_FI_")})
    assert series == sorted(["DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL",
                             "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE"])
    assert "nvidia-dcgm.service" in host.ssh("systemctl show -p Requires --value dcgm-exporter").stdout.split()

    # auto on a DCGM 3 host keeps DCGM 3: nothing changes.
    auto = inv("dcgm", "--config", write_config(tmp_path, host, loki_url(loki)), "--report", str(tmp_path / "a.json"))
    assert auto.returncode == 0 and report(tmp_path / "a.json")["sections"][0]["changed"] == 0, auto.stdout

    # major = 4 replaces DCGM 3: the next run notices libdcgm.so.4 and builds the 4.x tag (B-7).
    cfg4 = write_config(tmp_path, host, loki_url(loki), dcgm_major="4")
    switch = inv("dcgm", "--config", cfg4, "--report", str(tmp_path / "switch.json"))
    assert switch.returncode == 0, switch.stdout + switch.stderr
    assert "dcgm-exporter built for the installed DCGM (B-7)" in changed(tmp_path / "switch.json")
    assert f"{tag3} -> {tag4}" in switch.stdout
    assert f"tag={tag4} dcgm=4 " in host.ssh("cat /var/lib/l4-runbook/dcgm-exporter.build").stdout
    assert f"Version={tag4}" in host.ssh("journalctl -u dcgm-exporter -o cat -n 20").stdout
    assert promtool(f"http://{host.address}:9400/metrics").returncode == 0
    packages = host.ssh("dpkg-query -W -f='${Package} ${db:Status-Status}\\n' 'datacenter-gpu-manager*'").stdout
    assert "datacenter-gpu-manager-4-core installed" in packages
    assert "datacenter-gpu-manager installed" not in packages

    # A DCGM 4 host stays on 4: auto keeps it, and an explicit 3 is refused, never a downgrade.
    again = inv("dcgm", "--config", write_config(tmp_path, host, loki_url(loki)),
                "--report", str(tmp_path / "again.json"))
    assert again.returncode == 0 and report(tmp_path / "again.json")["sections"][0]["changed"] == 0, again.stdout
    down = inv("dcgm", "--config", write_config(tmp_path, host, loki_url(loki), dcgm_major="3"))
    assert down.returncode == 1 and "never downgrades DCGM" in down.stdout, down.stdout
    assert "datacenter-gpu-manager-4-core installed" in host.ssh(
        "dpkg-query -W -f='${Package} ${db:Status-Status}\\n' 'datacenter-gpu-manager*'").stdout


def entries_with(server, marker: str, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with server.store.lock:
            found = [labels for labels, _, line in server.store.entries if marker in line]
        if found:
            return found
        time.sleep(0.3)
    return []


def emit(host, unit: str, marker: str) -> None:
    """One journal line from a service named *unit* (a transient unit, gone after it exits)."""
    host.ssh(f"sudo systemd-run --quiet --wait --collect --unit={unit} sh -c 'echo {marker}'")


def test_promtail_ships_each_units_lines_with_its_own_labels(tmp_path, host, loki):
    cfg = write_config(tmp_path, host, loki_url(loki), shipper="promtail")
    first = inv("promtail", "--config", cfg)
    assert first.returncode == 0 and "end of life since 2026-03-02" in first.stdout, first.stdout
    run_twice("promtail", cfg, tmp_path)
    emit(host, "ai-server", "MARK-AI-PROMTAIL")
    emit(host, "vllm", "MARK-VLLM-PROMTAIL")
    emit(host, "backup", "MARK-OTHER-PROMTAIL")  # no job matches this unit (B-19): it must not be shipped
    host.ssh("echo MARK-FILE-PROMTAIL | sudo tee -a /var/log/dojangkok/production/app.log >/dev/null")

    ai = entries_with(loki, "MARK-AI-PROMTAIL")
    assert ai and all(labels == {"job": "ai-server", "host": "ai-server-l4", "unit": "ai-server.service",
                                 "service": "ai-server"} for labels in ai), ai
    vllm = entries_with(loki, "MARK-VLLM-PROMTAIL")
    assert vllm and all(labels["service"] == "vllm" and labels["job"] == "vllm" for labels in vllm), vllm
    files = entries_with(loki, "MARK-FILE-PROMTAIL")
    assert files and files[0] == {"job": "dojangkok-ai", "host": "ai-server-l4",
                                  "filename": "/var/log/dojangkok/production/app.log"}
    assert entries_with(loki, "MARK-OTHER-PROMTAIL", timeout=3) == []


def test_alloy_ships_with_the_same_labels(tmp_path, host, loki):
    cfg = write_config(tmp_path, host, loki_url(loki), shipper="alloy")
    r1, _ = run_twice("promtail", cfg, tmp_path)
    assert "promtail.service stopped and disabled (log_shipper is alloy)" in changed(tmp_path / "promtail-1.json")
    assert host.ssh("systemctl is-active promtail alloy", check=False).stdout.split() == ["inactive", "active"]
    emit(host, "ai-server", "MARK-AI-ALLOY")
    ai = entries_with(loki, "MARK-AI-ALLOY")
    assert ai and all(labels == {"job": "ai-server", "host": "ai-server-l4", "unit": "ai-server.service",
                                 "service": "ai-server"} for labels in ai), ai


def test_unreachable_loki_is_explained_with_b17(tmp_path, host, loki):
    with socket.socket() as s:  # a port on the host's link where nothing listens
        s.bind((controller_ip(host.index), 0))
        closed = s.getsockname()[1]
    cfg = write_config(tmp_path, host, f"http://{controller_ip(host.index)}:{closed}")
    r = inv("promtail", "--config", cfg)
    assert r.returncode == 1
    assert "is not reachable from this host" in r.stdout and "Guide B-17" in r.stdout
    assert "inv troubleshoot --only B-17" in r.stdout
