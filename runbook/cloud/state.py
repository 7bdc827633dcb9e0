"""`.l4-runbook/state.json`: the VMs `inv vm` made, so the host tasks know where to connect.

{"instances": [{"name", "zone", "address"}]}, written atomically: a half-written file
would send the host sections nowhere. Every read-modify-write holds the controller's lock on
`.l4-runbook/` (an flock), so runs at the same time never lose each other's records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..inventory import STATE_DIR


def path(root: Path) -> Path:
    return root / STATE_DIR / "state.json"


def instances(root: Path) -> list[dict]:
    """The recorded VMs; an unreadable file counts as none (it is rewritten on the next record)."""
    try:
        data = json.loads(path(root).read_text())
    except (OSError, ValueError):
        return []
    found = data.get("instances") if isinstance(data, dict) else None
    return [i for i in found or [] if isinstance(i, dict) and i.get("name")]


def find(root: Path, name: str) -> dict | None:
    return next((i for i in instances(root) if i["name"] == name), None)


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """The controller-side lock on `.l4-runbook/`: one writer at a time, across processes."""
    folder = root / STATE_DIR
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def record(root: Path, name: str, zone: str, address: str) -> None:
    """Remember where VM *name* is; replaces an earlier record of the same name."""
    with locked(root):
        kept = [i for i in instances(root) if i["name"] != name]
        _write(root, [*kept, {"name": name, "zone": zone, "address": address}])


def forget(root: Path, name: str) -> dict | None:
    """Drop VM *name* (stopped or deleted: its address is gone); returns the old record."""
    with locked(root):
        old = find(root, name)
        if old is not None:
            _write(root, [i for i in instances(root) if i["name"] != name])
        return old


def _write(root: Path, items: list[dict]) -> None:
    target = path(root)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".state.")
    with os.fdopen(fd, "w") as out:
        json.dump({"instances": items}, out, indent=2)
        out.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
