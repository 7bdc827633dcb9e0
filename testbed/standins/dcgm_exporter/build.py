#!/usr/bin/env python3
"""Build the dcgm-exporter stand-in's git repository: one tagged commit per DCGM major version.

    python3 testbed/standins/dcgm_exporter/build.py DEST.git 3=3.3.9-3.6.1 4=4.2.3-4.1.3

Each tag's tree is template/ plus hack/VERSION (upstream's DCGM/exporter versions, from the tag) and
cmd/dcgm-exporter/libdcgm.go naming the libdcgm.so.N that tag loads. The last tag is also `main`,
like upstream where main is the newest major. Commits have fixed authors and dates, so the same
tags give the same commit ids.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "template"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "test bed", "GIT_AUTHOR_EMAIL": "test-bed@localhost",
    "GIT_COMMITTER_NAME": "test bed", "GIT_COMMITTER_EMAIL": "test-bed@localhost",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def build(dest: Path, tags: dict[str, str]) -> Path:
    """A bare repository at *dest* with the given {major: tag}; returns dest."""
    if dest.exists():
        shutil.rmtree(dest)
    with tempfile.TemporaryDirectory() as work_dir:
        work = Path(work_dir) / "dcgm-exporter"
        shutil.copytree(TEMPLATE, work)
        _git("init", "-q", "-b", "main", cwd=work)
        for major, tag in sorted(tags.items(), key=lambda kv: int(kv[0])):
            dcgm_version, _, exporter_version = tag.partition("-")
            (work / "hack").mkdir(exist_ok=True)
            (work / "hack/VERSION").write_text(f"NEW_DCGM_VERSION={dcgm_version}\n"
                                               f"NEW_EXPORTER_VERSION={exporter_version}\n")
            (work / "cmd/dcgm-exporter/libdcgm.go").write_text(
                "package main\n\n"
                f"// libdcgmName is the DCGM library this tag is built for (DCGM {major}.x).\n"
                f"const libdcgmName = \"libdcgm.so.{major}\"\n"
            )
            _git("add", "-A", cwd=work)
            _git("commit", "-q", "-m", f"dcgm-exporter {tag} (DCGM {major})", cwd=work)
            _git("tag", tag, cwd=work)
        _git("clone", "-q", "--bare", str(work), str(dest), cwd=work.parent)
    return dest


if __name__ == "__main__":
    pairs = dict(arg.split("=", 1) for arg in sys.argv[2:])
    print(build(Path(sys.argv[1]), pairs))
