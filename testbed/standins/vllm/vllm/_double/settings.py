"""What the stand-in reads from its environment: vLLM's own variables and the stand-in's knobs.

The knobs (how long a start takes, which failure to act out) come, first found wins, from
1. the process environment (a unit drop-in: `Environment=VLLM_DOUBLE_START_SECONDS=5`),
2. the host's settings file SETTINGS_FILE (`KEY=VALUE` lines; the sandbox writes it into each
   host's root, so one host can start quickly for a demo while the others keep the default),
3. the defaults below.
"""

from __future__ import annotations

import os
from pathlib import Path

# VLLM_DOUBLE_SETTINGS names another file (tests do); the sandbox writes the default path.
SETTINGS_FILE = Path(os.environ.get("VLLM_DOUBLE_SETTINGS", "/etc/l4rb-standins/vllm.env"))

# Time from process start to /health answering 200. A real L4 takes 1-6 minutes (guide B-12);
# 20 s keeps the same order of events (a deploy or fix always finds vLLM still starting) at a
# cost tests can pay.
DEFAULT_START_SECONDS = 20.0


def _knob(name: str) -> str | None:
    if name in os.environ:
        return os.environ[name]
    try:
        lines = SETTINGS_FILE.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, eq, value = line.strip().partition("=")
        if eq and key.strip() == name:
            return value.strip().strip('"')
    return None


def vllm_api_key() -> str | None:
    """VLLM_API_KEY: the key when `--api-key` is not given; empty means no key (OpenAI-compatible server docs)."""
    return os.environ.get("VLLM_API_KEY")


def allow_long_max_model_len() -> bool:
    """VLLM_ALLOW_LONG_MAX_MODEL_LEN (vLLM's environment variables page): lets --max-model-len exceed the model's."""
    return os.environ.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "0").strip().lower() in ("1", "true")


def start_seconds() -> float:
    """VLLM_DOUBLE_START_SECONDS: seconds from start to ready (default 20; 0 for the fastest start)."""
    raw = _knob("VLLM_DOUBLE_START_SECONDS")
    try:
        value = float(raw) if raw is not None else DEFAULT_START_SECONDS
    except ValueError:
        return DEFAULT_START_SECONDS
    return max(0.0, value)


def failures() -> set[str]:
    """VLLM_DOUBLE_FAIL: comma-separated failures to act out: sm, rope, oom, hang."""
    raw = _knob("VLLM_DOUBLE_FAIL") or ""
    return {part.strip().lower() for part in raw.split(",") if part.strip()}


# NVIDIA L4: 58 streaming multiprocessors (NVIDIA's L4 datasheet: 7,424 CUDA cores, 128 per Ada SM).
L4_SMS = 58


def gpu_sms() -> int:
    """VLLM_DOUBLE_GPU_SMS: the simulated card's SM count (default the L4's 58). A start without
    --enforce-eager compiles only on a card of 68 or more (guide B-10); tests of the compile path set more."""
    raw = _knob("VLLM_DOUBLE_GPU_SMS")
    try:
        return int(raw) if raw is not None else L4_SMS
    except ValueError:
        return L4_SMS
