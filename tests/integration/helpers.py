"""What the integration tests share: the real CLI as a subprocess, ssh to a sandbox host, secrets to look for."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SECRET = "vllm-key-0123456789abcdef"
OCR = "ocr-key-fedcba9876543210"
TOKEN = "backend-token-55aa55aa55"


def inv(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "VLLM_API_KEY": SECRET, "OCR_API": OCR, "BACKEND_INTERNAL_TOKEN": TOKEN,
           **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), *args], capture_output=True,
                          text=True, env=env, timeout=900)


def ssh(host, command: str) -> str:
    r = subprocess.run(
        ["ssh", "-i", str(host.ssh_key), "-o", f"UserKnownHostsFile={host.known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", f"{host.ssh_user}@{host.address}", command],
        capture_output=True, text=True, timeout=120,
    )
    return r.stdout


def report(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_no_secret(text: str, values: tuple[str, ...] = (SECRET, OCR, TOKEN)) -> None:
    """None of *values* (by default the secrets the tests hand to the CLI) shows in *text*."""
    for value in values:
        assert value not in text


def wait_for(what, until, timeout: float, every: float = 0.5):
    """*what()* again every *every* seconds until *until(value)* holds; after *timeout*, one last reading."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if until(value):
            return value
        time.sleep(every)
    return what()
