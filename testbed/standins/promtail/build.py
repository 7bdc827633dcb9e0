#!/usr/bin/env python3
"""Package the Promtail/Alloy stand-in like the upstream release zips, with their SHA256SUMS.

    python3 testbed/standins/promtail/build.py OUT 3.4.2 1.12.0

OUT/promtail/v3.4.2/promtail-linux-amd64.zip  holding promtail-linux-amd64 (mode 0755)
OUT/promtail/v3.4.2/SHA256SUMS
OUT/alloy/v1.12.0/alloy-linux-amd64.zip       holding alloy-linux-amd64 (mode 0755)
OUT/alloy/v1.12.0/SHA256SUMS

The "binary" is a Python zip application (a shebang line, then a zip of this directory's modules and
the Loki wire/selector modules); it picks its role from its own file name (promtail or alloy).
"""

from __future__ import annotations

import hashlib
import io
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LOKI = HERE.parent / "loki"
MODULES = [*sorted(p for p in HERE.glob("*.py") if p.name != "build.py"), LOKI / "wire.py", LOKI / "selector.py"]
STAMP = (2024, 1, 1, 0, 0, 0)


def _zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name, STAMP)
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def application(version: str = "0.0.0") -> bytes:
    """The stand-in as one executable file; ``--version`` reports *version*, like the real release."""
    info = f"VERSION = {version!r}\n".encode()
    return b"#!/usr/bin/env python3\n" + _zip([*((p.name, p.read_bytes(), 0o644) for p in MODULES),
                                                ("release_info.py", info, 0o644)])


def release(out: Path, product: str, version: str, member: str) -> Path:
    folder = out / product / f"v{version}"
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"{member}.zip"
    archive.write_bytes(_zip([(member, application(version), 0o755)]))
    other = hashlib.sha256(f"{member} for darwin is not in the test bed".encode()).hexdigest()
    (folder / "SHA256SUMS").write_text(
        f"{hashlib.sha256(archive.read_bytes()).hexdigest()}  {archive.name}\n"
        f"{other}  {member.replace('linux', 'darwin')}.zip\n")
    return archive


def build(out: Path, promtail_version: str, alloy_version: str) -> list[Path]:
    return [release(out, "promtail", promtail_version, "promtail-linux-amd64"),
            release(out, "alloy", alloy_version, "alloy-linux-amd64")]


if __name__ == "__main__":
    for path in build(Path(sys.argv[1]), sys.argv[2], sys.argv[3]):
        print(path)
