"""The controller-side HTTP proxy through which guests reach Debian's mirror and PyPI.

A tinyproxy of our own (config, pid file and log in <state>/proxy, not the system service) on
port 8888 on all addresses, allowing 127.0.0.1 and 10.231.0.0/16 and CONNECT to 443 and 80.
Guests use http://10.231.N.1:8888. There is one port, so there is one proxy per machine: if a
sandbox proxy started from another state dir already listens, it is reused, and the proxy is
stopped only when no sandbox network is left on the machine; starting and stopping hold a machine-wide
lock, so a worker removing its last host cannot stop the proxy another has just found running (a host's
network always exists before its boot asks for the proxy). tinyproxy runs in the foreground
(-d) with its log on stdout, because after dropping to its own user it could not open a log file
inside our root-only state dir.
"""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

from . import children, network, state
from .errors import SandboxError
from .naming import PROXY_PORT, SUBNET
from .paths import proxy_dir
from .shell import say, tail

CONFIG_NAME = "l4rb-tinyproxy.conf"


def config_text(pid_file: Path) -> str:
    user, group = _unprivileged_user()
    return "\n".join([
        "# l4-runbook sandbox proxy: guests reach package registries through the controller.",
        f"User {user}",
        f"Group {group}",
        f"Port {PROXY_PORT}",
        "Timeout 600",
        "LogLevel Info",
        f'PidFile "{pid_file}"',
        "MaxClients 100",
        "Allow 127.0.0.1",
        f"Allow {SUBNET}",
        "ConnectPort 443",
        "ConnectPort 80",
        "",
    ])


def ensure_running() -> int:
    """Start the proxy unless a sandbox proxy is already up; returns its pid."""
    with state.machine_locked("proxy"):
        return _ensure_running()


def _ensure_running() -> int:
    running = find_running()
    if running:
        return running[0]
    if _port_open():
        raise SandboxError(
            f"port {PROXY_PORT} is taken by something other than the sandbox proxy (the system "
            "tinyproxy service? stop it with `systemctl disable --now tinyproxy`)"
        )
    if not _which("tinyproxy"):
        raise SandboxError("tinyproxy is not installed: apt-get install tinyproxy")
    folder = proxy_dir()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / CONFIG_NAME
    pid_file = folder / "tinyproxy.pid"
    log = folder / "tinyproxy.log"
    config.write_text(config_text(pid_file))
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            ["tinyproxy", "-d", "-c", str(config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SandboxError(f"tinyproxy exited at start (exit {proc.returncode}):\n{tail(log)}")
        if _port_open():
            children.track(proc)
            say(f"proxy listening on port {PROXY_PORT} (pid {proc.pid}, log {log})")
            return proc.pid
        time.sleep(0.1)
    proc.kill()
    raise SandboxError(f"tinyproxy did not open port {PROXY_PORT} in 10s:\n{tail(log)}")


def stop_if_unused() -> None:
    """Stop the proxy once no sandbox network is left on this machine."""
    with state.machine_locked("proxy"):
        if network.existing_indices():
            return
        stop()


def stop() -> None:
    for pid in find_running():
        _terminate(pid)
    pid_file = proxy_dir() / "tinyproxy.pid"
    if pid_file.exists():
        pid_file.unlink()


def find_running() -> list[int]:
    """Pids of sandbox tinyproxies (recognised by our config file name), whichever state dir."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"tinyproxy") and any(a.endswith(CONFIG_NAME.encode()) for a in argv):
            pids.append(int(proc.name))
    return sorted(pids)


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        children.reap(pid)
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    children.reap(pid)


def _port_open() -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", PROXY_PORT)) == 0


def _unprivileged_user() -> tuple[str, str]:
    """tinyproxy refuses to keep running as root; use its packaged user, or nobody."""
    for user, group in (("tinyproxy", "tinyproxy"), ("nobody", "nogroup")):
        try:
            pwd.getpwnam(user)
            grp.getgrnam(group)
            return user, group
        except KeyError:
            continue
    return "nobody", "nobody"


def _which(program: str) -> bool:
    return any(Path(d, program).exists() for d in os.environ.get("PATH", "/usr/bin:/usr/sbin").split(":"))
