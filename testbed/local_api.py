"""The sandbox's Compute API: our local Compute server, with sandbox hosts as its VMs.

With `inventory.target = "sandbox"` and no `gcp.api_endpoint`, the cloud tasks talk to this
server, so `fab deploy` creates the VM through the same API calls as on Google Cloud and the
VM is a real sandbox host. It runs in the background (started if not running) with its state
in the sandbox state dir, and its URL is recorded there; `stop()` ends it (sandbox.down).
It creates and deletes hosts as root, so only its owner may call it: a random bearer token, kept 0600 in the
(0700) state dir, is required on every call (`token()`; the runbook sends it as its credentials).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

PORT = 8780
BACKEND = "testbed.sandbox_backend:factory"
START_TIMEOUT = 30.0


def _dir() -> Path:
    from .sandbox.paths import state_dir

    return state_dir()


def info_path() -> Path:
    """{"pid", "url", "state"} of the running server."""
    return _dir() / "compute-api.json"


def state_path() -> Path:
    return _dir() / "compute.json"


def token_path() -> Path:
    return _dir() / "compute-api.token"


def token() -> str:
    """The bearer token of the running server (only its owner can read the file)."""
    return token_path().read_text().strip()


def _new_token() -> None:
    """A fresh random token, 0600 from its first byte."""
    path = token_path()
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")


def _healthy(url: str, timeout: float = 2.0) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    try:
        with opener.open(f"{url}/_admin/health", timeout=timeout) as resp:
            return resp.status == 200
    except OSError:
        return False


def _info() -> dict:
    try:
        return json.loads(info_path().read_text())
    except (OSError, ValueError):
        return {}


def _ours(pid: int) -> bool:
    """The pid still runs our server (not a recycled pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"testbed.compute_server" in cmdline and str(state_path()).encode() in cmdline


def running() -> str | None:
    """The URL of the running server, or None."""
    info = _info()
    if info.get("pid") and _ours(info["pid"]) and _healthy(info.get("url", "")):
        return info["url"]
    return None


def _port() -> int:
    """8780 if free, else any free port (another sandbox state dir may run its own server)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", PORT))
            return PORT
        except OSError:
            return 0


@contextlib.contextmanager
def _port_locked():
    """Held from choosing the port until the server listens on it: two state dirs starting servers at
    once (parallel test workers) would otherwise both find 8780 free, and one server would fail to bind."""
    path = Path("/run/lock/l4rb-compute-api-port.lock") if os.geteuid() == 0 else _dir() / "compute-api-port.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_running() -> str:
    """Start the server unless it runs; return its URL."""
    folder = _dir()
    with open(folder / "compute-api.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        url = running()
        if url and token_path().exists():
            return url
        if url:  # started before servers had tokens: restart it with one (its state file stays)
            stop()
        _new_token()
        log = folder / "compute-api.log"
        package_root = Path(__file__).resolve().parents[1]  # the folder that holds testbed/
        env = {**os.environ, "L4RB_SANDBOX_DIR": str(folder),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(package_root), os.environ.get("PYTHONPATH")]))}
        with _port_locked(), open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "testbed.compute_server", "--port", str(_port()),
                 "--state", str(state_path()), "--backend", BACKEND, "--token-file", str(token_path())],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=package_root,
                start_new_session=True,
            )
            url = _wait_for_url(proc, log)
        info_path().write_text(json.dumps({"pid": proc.pid, "url": url, "state": str(state_path())}) + "\n")
        return url


def _wait_for_url(proc: subprocess.Popen, log: Path) -> str:
    from runbook.errors import RunbookError

    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        first = log.read_text().split("\n", 1)[0].strip() if log.exists() else ""
        if first.startswith("http://") and _healthy(first):
            return first
        if proc.poll() is not None:
            raise RunbookError(f"the local Compute API exited at start ({proc.returncode}); see {log}")
        time.sleep(0.1)
    proc.terminate()
    raise RunbookError(f"the local Compute API did not answer within {START_TIMEOUT:g}s; see {log}")


def stop(forget: bool = False) -> bool:
    """End the server if it runs; *forget* also drops its state (its VMs' hosts are gone)."""
    info = _info()
    pid = info.get("pid")
    stopped = False
    if pid and _ours(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _ours(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        stopped = True
    info_path().unlink(missing_ok=True)
    if forget:
        state_path().unlink(missing_ok=True)
        (_dir() / "compute-vms.json").unlink(missing_ok=True)
    return stopped
