"""Start-up alone: `inv --list` and `import tasks`, whole processes, and what the import tree says.

The same interpreter and checkout as the deploy runs; no host is involved. `python -X importtime`
gives the import's own account (microseconds, cumulative) of where the time goes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from .config import REPO

BIN = Path(sys.executable).parent


def _once(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def importtime(module: str = "tasks") -> dict[str, float]:
    """Seconds per top-level package imported by `import module`, from -X importtime's cumulative column."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=REPO, check=True,
                         capture_output=True, text=True).stderr
    tops: dict[str, float] = {}
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip().isdigit() and name.startswith(" ") and not name.startswith("  "):
            tops[name.strip()] = int(cumulative) / 1e6
    return tops


def measure(runs: int) -> dict[str, list[float]]:
    """`inv --list`, `python -c "import tasks"` and `python -c pass` (the interpreter alone), round-robin."""
    commands = {
        "inv --list": [str(BIN / "inv"), "--list"],
        "python -c 'import tasks'": [sys.executable, "-c", "import tasks"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(_once(command))
    return times
