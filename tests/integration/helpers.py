"""What the integration tests share: the real CLI as a subprocess, ssh to a sandbox host, secrets to look for."""

import json
import os
import subprocess
import sys
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


def assert_no_secret(text: str) -> None:
    for value in (SECRET, OCR, TOKEN):
        assert value not in text
