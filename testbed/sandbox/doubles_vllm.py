"""Puts the vLLM double's package index into a host's root, at the path sandbox runs install from.

Real vLLM needs a GPU and gigabytes of wheels; the sandbox installs the small
stand-in of testbed/standins/vllm from a local index inside the host instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from ..settings import GUEST_ROOT
from .errors import SandboxError

BUILDER = Path(__file__).resolve().parents[1] / "standins" / "vllm" / "build_index.py"
GUEST_DIR = GUEST_ROOT.lstrip("/")  # the index at settings.INDEX_URL
# The stand-in's per-host settings (read by vllm/_double/settings.py in the host).
SETTINGS = "etc/l4rb-standins/vllm.env"
# Seconds from `vllm serve` to ready on new hosts; L4RB_VLLM_START_SECONDS at `inv sandbox.up` changes it
# (e.g. 3 for a quick demo). The default is the stand-in's own: at least 20 s, as on a real L4 the
# start is never instant (guide B-12).
START_ENV = "L4RB_VLLM_START_SECONDS"


def write_settings(root: Path) -> Path:
    """The stand-in's settings file in *root*: its start time, editable per host afterwards."""
    path = root / SETTINGS
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Settings of the vLLM stand-in on this sandbox host (KEY=VALUE; a unit drop-in's Environment= wins)."]
    start = os.environ.get(START_ENV, "").strip()
    if start:
        float(start)  # a typo must fail here, not leave every start at the default
        lines.append(f"VLLM_DOUBLE_START_SECONDS={start}")
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)
    return path


def install_vllm_index(root: Path) -> Path:
    """Build the double's index and copy it into *root*; returns the guest path of the index."""
    if not BUILDER.is_file():
        raise SandboxError(f"the vLLM double is missing at {BUILDER}; run from a checkout of the project")
    spec = importlib.util.spec_from_file_location("l4rb_vllm_build_index", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target = root / GUEST_DIR
    with tempfile.TemporaryDirectory() as tmp:
        index = module.build_index(Path(tmp))
        if (target / "simple").exists():
            shutil.rmtree(target / "simple")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copytree(index, target / "simple")
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    write_settings(root)
    return Path("/") / GUEST_DIR / "simple"
