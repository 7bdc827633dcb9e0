"""Masking of secret values in everything we print, log or report.

Secrets are registered once, when the config is loaded; every output path
(console, JSON report, error messages, diffs) goes through :func:`mask`.
A value is only known if it is this run's: files that hold secrets (the env
files) are therefore also masked by key name, on both sides of a diff, so a
rotated-out key still on a host never prints (:func:`env_file_diff`).
"""

from __future__ import annotations

import difflib
import os
import re
import threading
from pathlib import Path

from . import envfile

MASK = "********"
# Shorter values are not secrets (config refuses them) and masking them would garble all output.
MIN_MASKED = 8
_lock = threading.Lock()
_secrets: set[str] = set()


def _written_forms(value: str) -> set[str]:
    """The value as it appears inside each env file (escaped for its reader), so those are masked too."""
    forms = {value}
    for reader in envfile.READERS:
        try:
            quoted = envfile.quote(value, reader)
        except envfile.Unrepresentable:
            continue
        forms.add(quoted[1:-1] if quoted[:1] in "'\"" and len(quoted) > 1 else quoted)
    return forms


def register(*values: str | None) -> None:
    """Remember values that must never be shown (and the escaped forms the env files hold)."""
    with _lock:
        for value in values:
            if value and len(value) >= MIN_MASKED:
                _secrets.update(_written_forms(value))


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


# Keys whose values are secrets in any env file, whoever wrote them.
SECRET_KEY = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|OCR_API)")
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def _view(text: str, other: dict[str, str] | None, shown_comments: set[str]) -> list[str]:
    """*text* with every secret-looking value replaced; *other*: the old values, to say "value differs"."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            out.append(line)
        elif stripped.startswith(("#", ";")):
            out.append(mask(line) if line in shown_comments else "# (a comment, hidden)")
        elif (found := _ASSIGNMENT.match(line)) is None:
            out.append("(a line that is not KEY=VALUE, hidden)")
        elif SECRET_KEY.search(found.group(1)):
            key, value = found.group(1), found.group(2)
            differs = other is not None and key in other and other[key] != value
            out.append(f"{key}={MASK}" + (" (value differs)" if differs else ""))
        else:
            out.append(mask(line))
    return [line + "\n" for line in out]


def _values(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in map(_ASSIGNMENT.match, text.splitlines()) if m}


def env_file_diff(path: str, current: str | None, wanted: str) -> str:
    """A unified diff of an env file that shows no secret value on either side, whatever its origin."""
    comments = {line for line in wanted.splitlines() if line.strip().startswith(("#", ";"))}
    old = [] if current is None else _view(current, None, comments)
    new = _view(wanted, None if current is None else _values(current), comments)
    lines = difflib.unified_diff(old, new, fromfile="/dev/null" if current is None else path, tofile=path)
    return mask("".join(line if line.endswith("\n") else line + "\n" for line in lines))


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (reports hold host details): 0600 from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)
        out.write(text)
