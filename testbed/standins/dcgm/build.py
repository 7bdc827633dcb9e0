#!/usr/bin/env python3
"""Build the DCGM stand-in apt repository and the cuda-keyring package that registers it.

    python3 testbed/standins/dcgm/build.py OUT /opt/l4rb-sandbox/monitoring/cuda

OUT/cuda-keyring_1.1-1_all.deb   adds "deb [trusted=yes] file:<GUEST_DIR>/repo ./" (guide 7-1)
OUT/repo/                        a flat apt repository (Packages, Release) with
  datacenter-gpu-manager         1:3.3.9    libdcgm.so.3, nv-hostengine, dcgmi, nvidia-dcgm.service
  datacenter-gpu-manager-4-core  1:4.2.3-1  the same with libdcgm.so.4; conflicts with the 3.x package
  datacenter-gpu-manager-4-cuda12           depends on -4-core (NVIDIA's documented DCGM 4 install)

Needs gcc and dpkg-deb (every Debian has dpkg-deb). The repository is unsigned, which is what
[trusted=yes] in the keyring's source line is for: it exists only inside test hosts.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LIBDIR = "usr/lib/x86_64-linux-gnu"
EPOCH = "1704067200"  # 2024-01-01: reproducible package contents

PACKAGES = (
    # name, version, major, full DCGM version, extra control fields
    ("datacenter-gpu-manager", "1:3.3.9", "3", "3.3.9", {}),
    ("datacenter-gpu-manager-4-core", "1:4.2.3-1", "4", "4.2.3",
     {"Conflicts": "datacenter-gpu-manager", "Replaces": "datacenter-gpu-manager"}),
)


def _control(fields: dict[str, str]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in fields.items())


def _deb(root: Path, out_dir: Path) -> Path:
    control = (root / "DEBIAN/control").read_text()
    fields = dict(line.split(": ", 1) for line in control.splitlines() if ": " in line)
    version = fields["Version"].split(":", 1)[-1]
    out = out_dir / f"{fields['Package']}_{version}_{fields['Architecture']}.deb"
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH}
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)],
                   check=True, capture_output=True, env=env)
    return out


def _script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def dcgm_package(work: Path, out_dir: Path, name: str, version: str, major: str, full: str,
                 extra: dict[str, str]) -> Path:
    root = work / name
    lib = root / LIBDIR / f"libdcgm.so.{full}"
    lib.parent.mkdir(parents=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", f"-Wl,-soname,libdcgm.so.{major}",
                    f"-DDCGM_VERSION=\"{full}\"", "-o", str(lib), str(HERE / "libdcgm.c")],
                   check=True, capture_output=True)
    os.symlink(lib.name, lib.parent / f"libdcgm.so.{major}")
    os.symlink(f"libdcgm.so.{major}", lib.parent / "libdcgm.so")
    for tool in ("nv-hostengine", "dcgmi"):
        text = (HERE / tool).read_text().replace("@VERSION@", full).replace("@MAJOR@", major)
        _script(root / "usr/bin" / tool, text)
    unit = root / "lib/systemd/system/nvidia-dcgm.service"
    unit.parent.mkdir(parents=True)
    shutil.copyfile(HERE / "nvidia-dcgm.service", unit)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(_control({
        "Package": name, "Version": version, "Architecture": "amd64",
        "Maintainer": "test bed <test-bed@localhost>", "Section": "utils", "Priority": "optional", **extra,
        "Description": f"NVIDIA Data Center GPU Manager {full} (test-bed stand-in)",
    }))
    for hook in ("postinst", "postrm"):
        _script(root / "DEBIAN" / hook, "#!/bin/sh\nset -e\nldconfig\n"
                "if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi\n")
    return _deb(root, out_dir)


def meta_package(work: Path, out_dir: Path, name: str, version: str, depends: str, description: str) -> Path:
    root = work / name
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(_control({
        "Package": name, "Version": version, "Architecture": "amd64",
        "Maintainer": "test bed <test-bed@localhost>", "Depends": depends, "Description": description}))
    return _deb(root, out_dir)


def keyring_package(work: Path, out_dir: Path, guest_dir: str) -> Path:
    root = work / "cuda-keyring"
    keyring = root / "usr/share/keyrings/cuda-archive-keyring.gpg"
    keyring.parent.mkdir(parents=True)
    keyring.write_text("test-bed placeholder: the sandbox repository is trusted=yes, not signed\n")
    source = root / "etc/apt/sources.list.d/cuda-sandbox-x86_64.list"
    source.parent.mkdir(parents=True)
    source.write_text(f"deb [trusted=yes] file:{guest_dir}/repo ./\n")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(_control({
        "Package": "cuda-keyring", "Version": "1.1-1", "Architecture": "all",
        "Maintainer": "test bed <test-bed@localhost>",
        "Description": "CUDA repository keyring (test-bed stand-in for the sandbox's local DCGM repository)"}))
    (root / "DEBIAN/conffiles").write_text("/etc/apt/sources.list.d/cuda-sandbox-x86_64.list\n")
    return _deb(root, out_dir)


def index(repo: Path) -> None:
    """Packages (+ .gz) and a Release listing their hashes, for a flat `./` repository."""
    entries = []
    for deb in sorted(repo.glob("*.deb")):
        control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True,
                                 text=True).stdout.rstrip("\n")
        data = deb.read_bytes()
        entries.append(f"{control}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                       f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n")
    packages = "\n".join(entries).encode()
    (repo / "Packages").write_bytes(packages)
    (repo / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    lines = ["Origin: l4rb-sandbox", "Label: CUDA stand-in", "Suite: ./", "Architectures: amd64 all",
             "Date: " + time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(int(EPOCH))), "SHA256:"]
    for name in ("Packages", "Packages.gz"):
        data = (repo / name).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {name}")
    (repo / "Release").write_text("\n".join(lines) + "\n")


def build(out: Path, guest_dir: str) -> Path:
    """OUT with the keyring .deb and repo/; *guest_dir* is where OUT will be inside the host."""
    if out.exists():
        shutil.rmtree(out)
    repo = out / "repo"
    repo.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, version, major, full, extra in PACKAGES:
            dcgm_package(work, repo, name, version, major, full, extra)
        meta_package(work, repo, "datacenter-gpu-manager-4-cuda12", "1:4.2.3-1",
                     "datacenter-gpu-manager-4-core (= 1:4.2.3-1)", "NVIDIA DCGM 4 for CUDA 12 (test-bed stand-in)")
        keyring_package(work, out, guest_dir)
    index(repo)
    return out


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), sys.argv[2]))
