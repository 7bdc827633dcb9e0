#!/usr/bin/env python3
"""Build the vLLM double's wheel by hand and lay it out as a PEP 503 simple index.

Standard library only and offline: no setuptools, no build isolation, no network. The result
serves `pip install --index-url file://DEST/simple vllm` directly, or over HTTP with any static
file server rooted at DEST (e.g. `python3 -m http.server -d DEST`, index URL http://HOST:PORT/simple).

    python3 testbed/standins/vllm/build_index.py DEST      # prints DEST/simple

The wheel is reproducible: same sources, same bytes (fixed timestamps, sorted entries).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import sys
import zipfile
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "vllm"
DIST_NAME = "vllm"
REQUIRES_PYTHON = ">=3.10"
ENTRY_POINTS = "[console_scripts]\nvllm = vllm.entrypoints.cli.main:main\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def package_version() -> str:
    text = (PACKAGE / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if not match:
        raise RuntimeError(f"no __version__ in {PACKAGE / '__init__.py'}")
    return match.group(1)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return f"sha256={digest}"


def _sources() -> list[tuple[str, bytes]]:
    files = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        files.append((path.relative_to(HERE).as_posix(), path.read_bytes()))
    return files


def build_wheel(out_dir: Path) -> Path:
    """Write vllm-VERSION-py3-none-any.whl into out_dir and return its path."""
    version = package_version()
    dist_info = f"{DIST_NAME}-{version}.dist-info"
    metadata = (
        "Metadata-Version: 2.1\n"
        f"Name: {DIST_NAME}\n"
        f"Version: {version}\n"
        "Summary: Test double of vLLM's OpenAI-compatible server (vllm serve) for GPU-less test hosts\n"
        f"Requires-Python: {REQUIRES_PYTHON}\n"
    )
    wheel_meta = "Wheel-Version: 1.0\nGenerator: l4-runbook build_index\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    entries = [
        *_sources(),
        (f"{dist_info}/METADATA", metadata.encode()),
        (f"{dist_info}/WHEEL", wheel_meta.encode()),
        (f"{dist_info}/entry_points.txt", ENTRY_POINTS.encode()),
        (f"{dist_info}/top_level.txt", b"vllm\n"),
    ]
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in entries)
    record += f"{dist_info}/RECORD,,\n"
    entries.append((f"{dist_info}/RECORD", record.encode()))

    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"{DIST_NAME}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return wheel


def build_index(dest: Path) -> Path:
    """Lay out DEST/simple/index.html and DEST/simple/vllm/{index.html, wheel}; return DEST/simple."""
    dest = Path(dest)
    simple = dest / "simple"
    project = simple / DIST_NAME
    for old in project.glob("*.whl"):
        old.unlink()
    wheel = build_wheel(project)
    sha256 = hashlib.sha256(wheel.read_bytes()).hexdigest()
    requires = html.escape(REQUIRES_PYTHON, quote=True)
    (project / "index.html").write_text(
        "<!DOCTYPE html>\n<html>\n  <head><meta name=\"pypi:repository-version\" content=\"1.0\">"
        f"<title>Links for {DIST_NAME}</title></head>\n  <body>\n    <h1>Links for {DIST_NAME}</h1>\n"
        f'    <a href="{quote(wheel.name)}#sha256={sha256}" data-requires-python="{requires}">{wheel.name}</a><br/>\n'
        "  </body>\n</html>\n",
        encoding="utf-8",
    )
    (simple / "index.html").write_text(
        "<!DOCTYPE html>\n<html>\n  <head><meta name=\"pypi:repository-version\" content=\"1.0\">"
        "<title>Simple index</title></head>\n  <body>\n"
        f'    <a href="{DIST_NAME}/">{DIST_NAME}</a><br/>\n  </body>\n</html>\n',
        encoding="utf-8",
    )
    return simple


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print("usage: build_index.py DEST    (writes DEST/simple, prints its path)", file=sys.stderr)
        return 2
    print(build_index(Path(argv[0]).resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
