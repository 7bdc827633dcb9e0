"""Masking of secret values in everything we print, log or report.

Secrets are registered once, when the config is loaded; every output path
(console, JSON report, error messages, diffs) goes through :func:`mask`.
"""

from __future__ import annotations

import threading

MASK = "********"
_lock = threading.Lock()
_secrets: set[str] = set()


def register(*values: str | None) -> None:
    """Remember values that must never be shown (short ones too: a key is a key)."""
    with _lock:
        for value in values:
            if value:
                _secrets.add(value)


def mask(text: str) -> str:
    """Replace every registered secret in *text*; longest first so overlaps stay hidden."""
    if not text:
        return text
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        text = text.replace(value, MASK)
    return text


def clear() -> None:
    """Forget all secrets (tests only)."""
    with _lock:
        _secrets.clear()
