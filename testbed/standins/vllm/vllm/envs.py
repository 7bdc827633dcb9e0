"""Environment variables the double reads (the real ones it honours, and its own knobs)."""

from __future__ import annotations

import os

# Real vLLM: `--api-key` takes precedence; otherwise VLLM_API_KEY (empty means "no auth").
DEFAULT_SPEED = 60.0


def vllm_api_key() -> str | None:
    return os.environ.get("VLLM_API_KEY")


def allow_long_max_model_len() -> bool:
    return os.environ.get("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "0").strip().lower() in ("1", "true")


def double_speed() -> float:
    """VLLM_DOUBLE_SPEED: how many times faster than a real L4 start the double runs (default 60).

    1 sleeps as long as the guide's B-12 table (~3 min first start); the default makes a start
    take ~2-3 s; a large number (e.g. 10000) makes it near instant.
    """
    raw = os.environ.get("VLLM_DOUBLE_SPEED", "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_SPEED
    return value if value > 0 else DEFAULT_SPEED


def double_failures() -> set[str]:
    """VLLM_DOUBLE_FAIL: comma-separated failures to inject: sm, rope, oom, hang."""
    raw = os.environ.get("VLLM_DOUBLE_FAIL", "")
    return {part.strip().lower() for part in raw.split(",") if part.strip()}
