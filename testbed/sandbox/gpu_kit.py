"""Installs the fake-L4 kit (testbed/standins/gpu) into a host's root: the GPU the guide expects.

nvidia-smi goes to /usr/bin; libcuda is compiled on the controller (gcc) from libcuda.c and laid
out like the driver package does it: libcuda.so.<driver> with libcuda.so.1 and libcuda.so links in
/usr/lib/x86_64-linux-gnu, then the guest's ldconfig cache is refreshed so `ldconfig -p` lists it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .errors import SandboxError
from .paths import image_cache
from .shell import run

KIT = Path(__file__).resolve().parents[1] / "standins" / "gpu"
DRIVER_VERSION = "580.126.09"
LIBDIR = "usr/lib/x86_64-linux-gnu"


def install_gpu_kit(root: Path) -> None:
    if not (KIT / "nvidia-smi").is_file():
        raise SandboxError(f"the fake GPU kit is missing at {KIT}; run from a checkout of the project")
    smi = root / "usr/bin/nvidia-smi"
    shutil.copyfile(KIT / "nvidia-smi", smi)
    smi.chmod(0o755)
    libdir = root / LIBDIR
    real = libdir / f"libcuda.so.{DRIVER_VERSION}"
    shutil.copyfile(compiled_libcuda(), real)
    real.chmod(0o644)
    for link, target in (("libcuda.so.1", real.name), ("libcuda.so", "libcuda.so.1")):
        path = libdir / link
        if path.is_symlink() or path.exists():
            path.unlink()
        os.symlink(target, path)
    run(["chroot", root, "/sbin/ldconfig"])


def compiled_libcuda() -> Path:
    """Build libcuda once per source version, next to the image cache."""
    source = KIT / "libcuda.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    out = image_cache().parent / "gpu-kit" / digest / "libcuda.so.1"
    if out.exists():
        return out
    if not shutil.which("gcc"):
        raise SandboxError("gcc is needed to build the fake libcuda: apt-get install gcc")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so")
    os.close(fd)
    try:
        run(["gcc", "-shared", "-fPIC", "-O2", "-Wl,-soname,libcuda.so.1", "-o", tmp, source])
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out
