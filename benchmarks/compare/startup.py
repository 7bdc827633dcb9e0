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
    """`inv --list`, the tools' own floors, `import tasks` and `python -c pass` (the interpreter), round-robin."""
    commands = {
        "inv --list": [str(BIN / "inv"), "--list"],
        # The floors that are not ours: Invoke's and Fabric's own programs, which load no tasks for --version.
        "inv --version": [str(BIN / "inv"), "--version"],
        "fab --version": [str(BIN / "fab"), "--version"],
        "python -c 'import tasks'": [sys.executable, "-c", "import tasks"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, command in commands.items():
            times[name].append(_once(command))
    return times


def startup_hooks() -> list[str]:
    """The .pth files of this venv that run code at every interpreter start (site(3): lines starting with
    `import`), e.g. the import hook of a plain `pip install -e .`, which `make venv` avoids (editable_mode=compat).
    Every timed process pays for them, so the figures say which were there."""
    import site

    hooks = []
    for folder in site.getsitepackages():
        for pth in sorted(Path(folder).glob("*.pth")):
            if any(line.startswith(("import ", "import\t")) for line in pth.read_text().splitlines()):
                hooks.append(pth.name)
    return hooks
