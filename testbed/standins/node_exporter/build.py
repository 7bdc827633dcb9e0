#!/usr/bin/env python3
"""Repackage Debian's real node_exporter as the upstream release tarball, with its checksum list.

    python3 testbed/standins/node_exporter/build.py OUT 1.9.0 [path/to/prometheus-node-exporter.deb]

OUT/v1.9.0/node_exporter-1.9.0.linux-amd64.tar.gz   node_exporter-1.9.0.linux-amd64/{node_exporter,
                                                   LICENSE, NOTICE}, laid out like upstream's
OUT/v1.9.0/sha256sums.txt                          "<sha256>  <file>" lines, like upstream's (with
                                                   another platform's line too, as the real list has)

The binary is Debian's build (bookworm: 1.5.0). The real release's binary reports its own version
(`node_exporter --version`: "node_exporter, version 1.9.0 (...)"), and the runbook checks that, so
the version string that Go's linker stored in the binary (the -X value of Prometheus' version
package: plain bytes in the read-only data) is overwritten in place with the release's version.
Only a version of the same length can be written that way; any other is refused. Without a .deb
argument the package is fetched with `apt-get download` from this machine's apt sources.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MTIME = 1704067200


def debian_binary(deb: Path | None, work: Path) -> bytes:
    if deb is None:
        subprocess.run(["apt-get", "download", "-q", "prometheus-node-exporter"], cwd=work, check=True,
                       capture_output=True)
        deb = next(work.glob("prometheus-node-exporter_*.deb"))
    tree = work / "tree"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True, capture_output=True)
    return (tree / "usr/bin/prometheus-node-exporter").read_bytes()


def with_version(binary: bytes, version: str) -> bytes:
    """*binary* reporting *version*: the one stored version string (not the "1.5.0-1+b6" revision) replaced."""
    found = re.search(rb"version (\d+\.\d+\.\d+)", subprocess_version(binary))
    if not found:
        raise ValueError("the Debian binary prints no version")
    old = found.group(1)
    if len(old) != len(version.encode()):
        raise ValueError(f"cannot make a {old.decode()} binary report {version}: the lengths differ")
    hits = [m.start() for m in re.finditer(re.escape(old) + rb"(?![-+.\w])", binary)]
    if len(hits) != 1:
        raise ValueError(f"expected one stored version string {old!r}, found {len(hits)}")
    data = bytearray(binary)
    data[hits[0]:hits[0] + len(old)] = version.encode()
    return bytes(data)


def subprocess_version(binary: bytes) -> bytes:
    """What the binary itself says to --version (run from a temp copy)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "node_exporter"
        path.write_bytes(binary)
        path.chmod(0o755)
        return subprocess.run([str(path), "--version"], capture_output=True, check=True).stdout


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.uname, info.gname = len(data), mode, MTIME, "root", "root"
    tar.addfile(info, io.BytesIO(data))


def build(out: Path, version: str, deb: Path | None = None) -> Path:
    """OUT/v<version>/ with the tarball and sha256sums.txt; returns that directory."""
    folder = f"node_exporter-{version}.linux-amd64"
    release = out / f"v{version}"
    release.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        binary = with_version(debian_binary(deb, Path(tmp)), version)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        dir_info = tarfile.TarInfo(folder)
        dir_info.type, dir_info.mode, dir_info.mtime = tarfile.DIRTYPE, 0o755, MTIME
        tar.addfile(dir_info)
        _add(tar, f"{folder}/LICENSE", b"Apache License 2.0 (see the node_exporter project)\n", 0o644)
        _add(tar, f"{folder}/NOTICE", b"node_exporter, repackaged from Debian for the test bed\n", 0o644)
        _add(tar, f"{folder}/node_exporter", binary, 0o755)
    data = bytearray(buf.getvalue())
    data[4:8] = b"\0\0\0\0"  # gzip header time: same bytes every build
    tarball = release / f"{folder}.tar.gz"
    tarball.write_bytes(bytes(data))
    other = hashlib.sha256(b"darwin build not included in the test bed").hexdigest()
    (release / "sha256sums.txt").write_text(
        f"{other}  node_exporter-{version}.darwin-amd64.tar.gz\n"
        f"{hashlib.sha256(data).hexdigest()}  {tarball.name}\n")
    return release


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]) if len(sys.argv) > 3 else None))
