"""state.json: which hosts exist and which nspawn pid runs each, under one lock per state dir.

All host operations hold the lock, so two callers (a test run and a manual `sandbox up`) on the
same state dir never create the same host twice or race on known_hosts.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .paths import state_dir

Record = dict[str, Any]


@contextmanager
def locked() -> Iterator[None]:
    with open(state_dir() / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def machine_locked(what: str = "slots") -> Iterator[None]:
    """A lock for the whole machine: "slots" is held while picking a free host index, "proxy" while
    starting or stopping the one shared proxy. Other state dirs (parallel test workers, a user's
    sandbox) do the same."""
    path = Path(f"/run/lock/l4rb-sandbox-{what}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def load() -> dict[str, Record]:
    """Host records by name: index, pid (None when stopped), image key."""
    path = state_dir() / "state.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text()).get("hosts", {})


def save(hosts: dict[str, Record]) -> None:
    folder = state_dir()
    ordered = dict(sorted(hosts.items(), key=lambda item: item[1]["index"]))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".state.")
    with os.fdopen(fd, "w") as out:
        json.dump({"version": 1, "hosts": ordered}, out, indent=2)
        out.write("\n")
    os.replace(tmp, folder / "state.json")
