"""Running controller commands and printing progress, with failures turned into SandboxError."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import SandboxError


def say(message: str) -> None:
    """Progress line on stderr: long waits (image build, boot) must not look like a hang."""
    print(f"sandbox: {message}", file=sys.stderr, flush=True)


def run(
    argv: Sequence[str | Path],
    *,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = 300,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capture its output, and raise SandboxError (with stderr) when it fails."""
    args = [str(a) for a in argv]
    try:
        proc = subprocess.run(
            args,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise SandboxError(f"{args[0]} is not installed: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"`{' '.join(args)}` did not finish in {timeout}s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise SandboxError(f"`{' '.join(args)}` failed (exit {proc.returncode}): {detail}")
    return proc


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def tail(path: Path, lines: int = 30) -> str:
    """Last lines of a log file (colours stripped), for error messages that show what went wrong."""
    try:
        text = ANSI.sub("", path.read_text(errors="replace"))
    except OSError:
        return f"(no {path})"
    return "\n".join(text.splitlines()[-lines:])
