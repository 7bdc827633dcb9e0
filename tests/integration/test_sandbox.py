"""The sandbox test bed itself: a real host we can ssh into, with packages and a fake L4.

The host tests run in file order on one module-scoped host and end by taking it down. The
nvidia-smi double's own tests at the top need no root: they run it on the controller.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from guide_source import guide_text

from testbed.sandbox import SandboxError, boot, down, poweroff, status, up
from testbed.sandbox.image import debian_mirror
from testbed.sandbox.ssh import ssh_argv

REPO = Path(__file__).resolve().parents[2]
NVIDIA_SMI = REPO / "testbed/standins/gpu/nvidia-smi"
# sha256 of the nvidia-smi block in the setup guide's appendix A (the text between the fences).
GUIDE_TABLE_SHA256 = "14dcd85799e26d7d0fa5ee61d78fee6b22e0341d4d210cc378b5c78a2ecbb84f"


def fake_smi(*args: str, gpu: dict | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "L4RB_FAKE_GPU": json.dumps(gpu)} if gpu else {**os.environ, "L4RB_FAKE_GPU": ""}
    return subprocess.run([str(NVIDIA_SMI), *args], capture_output=True, text=True, env=env, timeout=30)


def test_fake_nvidia_smi_table_has_the_guides_checksum():
    out = fake_smi().stdout
    assert hashlib.sha256(out.encode()).hexdigest() == GUIDE_TABLE_SHA256


def test_fake_nvidia_smi_table_is_the_guides():
    block = guide_text().split("## 부록 A", 1)[1].split("```\n", 2)[1]
    assert fake_smi().stdout == block


def test_fake_nvidia_smi_csv_and_xml():
    assert fake_smi("--query-gpu=name,memory.total,driver_version", "--format=csv").stdout == (
        "name, memory.total [MiB], driver_version\nNVIDIA L4, 23034 MiB, 580.126.09\n"
    )
    assert fake_smi("--query-gpu=name,memory.total", "--format=csv,noheader,nounits").stdout == "NVIDIA L4, 23034\n"
    root = ET.fromstring(fake_smi("-q", "-x").stdout)
    assert root.tag == "nvidia_smi_log"
    assert root.findtext("driver_version") == "580.126.09"
    assert root.findtext("cuda_version") == "13.0"
    assert root.findtext("gpu/product_name") == "NVIDIA L4"
    assert root.findtext("gpu/fb_memory_usage/total") == "23034 MiB"
    bad = fake_smi("--query-gpu=bogus", "--format=csv")
    assert bad.returncode != 0 and 'Field "bogus"' in bad.stderr


def test_fake_nvidia_smi_can_plant_another_gpu():
    t4 = {"name": "Tesla T4", "memory_total_mib": 15360}
    assert fake_smi("--query-gpu=name,memory.total", "--format=csv,noheader", gpu=t4).stdout == (
        "Tesla T4, 15360 MiB\n"
    )
    table = fake_smi(gpu=t4).stdout
    assert "Tesla T4" in table and "15360MiB" in table and "NVIDIA L4" not in table
    assert fake_smi(gpu={"count": 0}).returncode == 6
    assert fake_smi(gpu={"error": "driver"}).returncode == 9


def test_debian_mirror_from_apt_sources(tmp_path, monkeypatch):
    monkeypatch.delenv("L4RB_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb deb-src\nURIs: http://mirror.invalid/debian\nSuites: bookworm\n"
    )
    assert debian_mirror(tmp_path) == "http://mirror.invalid/debian"
    (tmp_path / "sources.list.d/debian.sources").unlink()
    (tmp_path / "sources.list").write_text("# x\ndeb [arch=amd64] http://other.invalid/debian bookworm main\n")
    assert debian_mirror(tmp_path) == "http://other.invalid/debian"


# --- on a real host -------------------------------------------------------------------------------


def test_ssh_with_pinned_host_key_and_passwordless_sudo(sandbox_host):
    argv = ssh_argv(sandbox_host, "true")
    assert "StrictHostKeyChecking=yes" in argv and f"UserKnownHostsFile={sandbox_host.known_hosts}" in argv
    pinned = [line for line in sandbox_host.known_hosts.read_text().splitlines()
              if line.startswith(f"{sandbox_host.address} ")]
    assert len(pinned) == 1
    assert sandbox_host.ssh_user == "ubuntu"
    assert sandbox_host.ssh("sudo -n true").returncode == 0
    assert sandbox_host.ssh("id -u; hostname").stdout.split() == ["1000", sandbox_host.name]


def test_systemd_is_running(sandbox_host):
    assert sandbox_host.ssh("systemctl is-system-running", check=False).stdout.strip() in ("running", "degraded")


def test_fake_gpu_inside(sandbox_host):
    out = sandbox_host.ssh("nvidia-smi --query-gpu=name,memory.total --format=csv,noheader").stdout
    assert out == "NVIDIA L4, 23034 MiB\n"
    assert hashlib.sha256(sandbox_host.ssh("nvidia-smi").stdout.encode()).hexdigest() == GUIDE_TABLE_SHA256
    assert "libcuda.so.1 (libc6,x86-64)" in sandbox_host.ssh("ldconfig -p").stdout
    cu_init = "python3 -c 'import ctypes; print(ctypes.CDLL(\"libcuda.so.1\").cuInit(0))'"
    assert sandbox_host.ssh(cu_init).stdout == "0\n"


def test_packages_through_the_proxy(sandbox_host):
    sandbox_host.ssh("python3 -m pip download --no-deps -d /tmp/dl six", timeout=180)
    assert sandbox_host.ssh("ls /tmp/dl").stdout.startswith("six-")
    sandbox_host.ssh("sudo apt-get update -qq", timeout=300)


def test_no_dns_fails_fast(sandbox_host):
    """Guests reach the outside only through the proxy; a name lookup must fail at once, not hang."""
    lookup = sandbox_host.ssh("start=$(date +%s); getent hosts example.invalid; echo $? $(( $(date +%s) - start ))",
                              check=False, timeout=60)
    code, seconds = lookup.stdout.split()
    assert code != "0" and int(seconds) <= 2


def test_up_again_reuses_the_host(sandbox_host):
    # Other modules of the same test run may keep hosts of their own running in this state dir.
    running = [h for h in status() if h.state == "running"]
    again = up(len(running))
    assert sorted(h.name for h in again) == sorted(h.name for h in running)
    assert {(h.action, h.state) for h in again} == {("reused", "running")}
    (mine,) = [h for h in again if h.name == sandbox_host.name]
    assert mine.address == sandbox_host.address


def test_poweroff_and_boot_keep_the_disk(sandbox_host):
    sandbox_host.ssh("echo kept > ~/marker && sync")
    stopped = poweroff(sandbox_host.name)
    assert stopped.state == "stopped"
    assert sandbox_host.ssh("true", check=False, timeout=30).returncode != 0
    booted = boot(sandbox_host.name)
    assert (booted.state, booted.action) == ("running", "booted")
    assert sandbox_host.ssh("cat ~/marker").stdout == "kept\n"


def test_down_removes_everything(sandbox_host):
    assert down([sandbox_host.name]) == [sandbox_host.name]
    assert not Path(f"/run/netns/{sandbox_host.name}").exists()
    assert not Path(f"/sys/class/net/l4rb-h{sandbox_host.index}").exists()
    assert sandbox_host.root is not None and not sandbox_host.root.parent.exists()
    assert sandbox_host.name not in [h.name for h in status()]
    assert f"{sandbox_host.address} " not in sandbox_host.known_hosts.read_text()
    with pytest.raises(SandboxError):
        boot(sandbox_host.name)
