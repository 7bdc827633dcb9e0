"""Booting and stopping a host's root with systemd-nspawn, detached from the caller.

    systemd-nspawn -D ROOT -b --register=no --network-namespace-path=/run/netns/NAME --machine NAME

runs in a session of its own (setsid), stdin from /dev/null, console copied to console.log, so the
host outlives the process that started it; its pid goes into state.json.

Flags, and why:
- --register=no: no systemd-machined needed (nor wanted: hosts are ours, not machinectl's).
- --console=read-only: a pty for the guest console whose output we log; nothing reads stdin.
- --capability=CAP_NET_ADMIN: root in the guest may manage its own network (addresses, routes,
  iptables), as on a VM; the netns is the host's alone, so this reaches nothing else.
- --resolv-conf=off: keep the guest's resolv.conf (guest.py). nspawn would copy the controller's
  nameserver in, which the guest cannot reach, and every lookup would hang for 20s.
- --keep-unit where systemd is not PID 1 (containers, CI sandboxes, WSL): without it nspawn asks
  systemd over D-Bus for a scope unit and fails with "Failed to open system bus". Then nspawn
  stays in its own cgroup, so cgroups.py first gives each host a cgroup of its own. Where systemd
  runs the machine, nspawn gets its scope the normal way and nothing else is needed.
- Nothing for the cgroup layout: nspawn hands the guest the host's layout, and bookworm's systemd
  boots under both the unified and the hybrid (v1 + name=systemd + unified) layouts.
- --private-users stays off (the default): the guest's uid 1000 is the controller's uid 1000 on
  disk, so files written into the root before boot (authorized_keys) have the right owner.
Known difference from a VM: /sys/class/net inside the guest lists the controller's interfaces (nspawn
brings /sys over from the controller's network namespace); `ip`, /proc/net and everything netlink
show the guest's own eth0. `ip netns exec` around nspawn would fix the view but hides the cgroup
mounts nspawn needs.
Stopping sends SIGTERM to nspawn, which passes SIGRTMIN+3 to the guest's systemd: a clean
poweroff, as `systemctl poweroff` in the guest would do; SIGKILL follows after a deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from . import cgroups, children
from .errors import SandboxError

LAUNCH = 'for g in $L4RB_CGROUPS; do echo $$ > "$g/cgroup.procs" || exit 125; done; exec "$@"'


def systemd_is_init() -> bool:
    return Path("/run/systemd/system").is_dir() and Path("/run/dbus/system_bus_socket").exists()


def command(name: str, root: Path, netns: Path) -> list[str]:
    argv = [
        "systemd-nspawn", "-D", str(root), "-b", "--register=no",
        f"--network-namespace-path={netns}", "--machine", name, "--console=read-only",
        "--resolv-conf=off", "--capability=CAP_NET_ADMIN",
    ]
    if not systemd_is_init():
        argv.append("--keep-unit")
    return argv


def start(name: str, root: Path, netns: Path, console: Path) -> int:
    if not shutil.which("systemd-nspawn"):
        raise SandboxError("systemd-nspawn is not installed: apt-get install systemd-container")
    groups = [] if systemd_is_init() else cgroups.create(name)
    env = dict(os.environ, L4RB_CGROUPS=" ".join(str(g) for g in groups))
    with open(console, "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} boot {name} ---\n".encode())
        out.flush()
        proc = subprocess.Popen(
            ["sh", "-c", LAUNCH, "l4rb-launch", *command(name, root, netns)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, env=env,
        )
    children.track(proc)
    return proc.pid


def alive(pid: int | None, name: str) -> bool:
    """True if pid is a live nspawn for this host (not a zombie, not a reused pid)."""
    if not pid:
        return False
    children.reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    # Right after start() the pid is still the sh launcher, whose argv carries the nspawn command.
    return b"--machine" in argv and name.encode() in argv and any(a.endswith(b"systemd-nspawn") for a in argv)


def stop(pid: int | None, name: str, timeout: float = 60) -> None:
    """Clean poweroff of the guest (SIGTERM -> SIGRTMIN+3 to its init); SIGKILL after timeout."""
    if alive(pid, name):
        assert pid is not None
        _signal(pid, signal.SIGTERM)
        if not _wait_exit(pid, name, timeout):
            _signal(pid, signal.SIGKILL)
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            if not _wait_exit(pid, name, 15):
                raise SandboxError(f"{name}: systemd-nspawn (pid {pid}) survives SIGKILL; check `ps -p {pid}`")
    cleanup(name)


def cleanup(name: str) -> None:
    """Leftovers of an exited container: its cgroups, and the propagation dir nspawn cannot remove
    when /run is not a tmpfs."""
    cgroups.remove(name)
    shutil.rmtree(f"/run/systemd/nspawn/propagate/{name}", ignore_errors=True)


def _wait_exit(pid: int, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid, name):
            return True
        time.sleep(0.2)
    return False


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
