"""Cached builds (images, the monitoring kit): which to keep when a new one is built.

A build never deletes the builds of other versions outright: several checkouts, or parallel test
workers of one checkout, may use different versions at the same time, and deleting one would make the
others rebuild it (or fail in the middle of copying it). Each use sets the build directory's mtime; a
new build drops only those nobody has used for KEEP_UNUSED_S.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

KEEP_UNUSED_S = 7 * 24 * 3600


def used(build: Path) -> Path:
    """Mark *build* as used now (its mtime); returns it."""
    try:
        os.utime(build)
    except OSError:
        pass  # a read-only cache is still usable; it is just never pruned for age
    return build


def prune_unused(folder: Path, keep: str, max_age: float = KEEP_UNUSED_S) -> list[str]:
    """Remove builds in *folder* (not *keep*, not hidden work dirs) unused for *max_age* seconds."""
    removed = []
    cutoff = time.time() - max_age
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.name.startswith(".") and entry.name != keep and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed
