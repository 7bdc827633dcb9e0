"""Puts the vLLM double's package index into a host's root, at the path sandbox runs install from.

Real vLLM needs a GPU and gigabytes of wheels; the sandbox installs the small
stand-in of testbed/standins/vllm from a local index inside the host instead.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from ..settings import GUEST_ROOT
from .errors import SandboxError

BUILDER = Path(__file__).resolve().parents[1] / "standins" / "vllm" / "build_index.py"
GUEST_DIR = GUEST_ROOT.lstrip("/")  # the index at settings.INDEX_URL


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
    return Path("/") / GUEST_DIR / "simple"
