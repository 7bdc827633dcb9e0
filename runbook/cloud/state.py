"""`.l4-runbook/state.json`: the VMs `inv vm` made, so the host tasks know where to connect.

{"instances": [{"name", "zone", "address"}]}, written atomically: a half-written file
would send the host sections nowhere.
"""

from __future__ import annotations

import json
import os
import tempfile
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


def record(root: Path, name: str, zone: str, address: str) -> None:
    """Remember where VM *name* is; replaces an earlier record of the same name."""
    kept = [i for i in instances(root) if i["name"] != name]
    _write(root, [*kept, {"name": name, "zone": zone, "address": address}])


def forget(root: Path, name: str) -> dict | None:
    """Drop VM *name* (stopped or deleted: its address is gone); returns the old record."""
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
