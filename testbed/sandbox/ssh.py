"""ssh to sandbox hosts with our key and known_hosts only, strict host key checking always on."""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import SandboxError
from .model import SandboxHost
from .shell import say, tail

READY_STATES = ("running", "degraded")


def ssh_argv(host: SandboxHost, command: str | Sequence[str], *, connect_timeout: int = 5) -> list[str]:
    """The ssh command line; the user's ~/.ssh/config is ignored so nothing redirects or relaxes it."""
    remote = command if isinstance(command, str) else shlex.join(command)
    return [
        "ssh", "-F", "/dev/null",
        "-i", str(host.ssh_key),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={host.known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes",
        "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "LogLevel=ERROR",
        f"{host.ssh_user}@{host.address}",
        "--", remote,
    ]


def run_ssh(
    host: SandboxHost, command: str | Sequence[str], *, check: bool = True, timeout: float = 300,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    argv = ssh_argv(host, command)
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"{host.name}: `{argv[-1]}` did not finish in {timeout}s") from exc
    if check and proc.returncode != 0:
        raise SandboxError(
            f"{host.name}: `{argv[-1]}` failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()}"
        )
    return proc


def wait_ready(host: SandboxHost, alive: Callable[[], bool], console: Path, timeout: float = 180) -> str:
    """Wait until sshd answers and systemd says running/degraded; returns that state.

    Fails early when the container exits, and always shows the console tail, which is where a
    failed boot explains itself.
    """
    started = time.monotonic()
    deadline = started + timeout
    next_report = started + 15
    last_error = ""
    while time.monotonic() < deadline:
        if not alive():
            raise SandboxError(
                f"{host.name}: the container exited during boot. Console ({console}):\n{tail(console)}"
            )
        try:
            proc = run_ssh(host, "systemctl is-system-running --wait", check=False,
                           timeout=max(5.0, deadline - time.monotonic()))
        except SandboxError as exc:
            last_error = str(exc)
            continue
        state = proc.stdout.strip()
        if state in READY_STATES:
            return state
        if "Host key verification failed" in proc.stderr or "IDENTIFICATION HAS CHANGED" in proc.stderr:
            raise SandboxError(f"{host.name}: host key does not match our known_hosts ({host.known_hosts}): "
                               f"{proc.stderr.strip()}. Recreate the host: down, then up.")
        if proc.returncode != 255 and state:  # systemd answered, but not with a usable state
            raise SandboxError(f"{host.name}: systemd reports '{state}'. Console ({console}):\n{tail(console)}")
        last_error = proc.stderr.strip()
        if time.monotonic() >= next_report:
            next_report += 15
            say(f"  {host.name}: still booting ({time.monotonic() - started:.0f}s)")
        time.sleep(0.5)
    raise SandboxError(
        f"{host.name}: not ready after {timeout:.0f}s (last ssh error: {last_error or 'none'}).\n"
        f"Console ({console}):\n{tail(console)}\n"
        "Tear it down with `python -m testbed.sandbox down` and try again."
    )
