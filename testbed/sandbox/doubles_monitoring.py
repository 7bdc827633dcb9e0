"""The monitoring stand-ins (guide section 7) put into a host's root: what GitHub and NVIDIA serve.

Sandbox hosts reach only Debian's mirror and PyPI, so section 7's downloads come from a copy under
/opt/l4rb-sandbox/monitoring (testbed.settings maps the guide's URLs onto it):

  cuda/                 cuda-keyring .deb registering a local apt repository with DCGM 3 and 4 packages
  dcgm-exporter.git     a git repository with one tag per DCGM major; `make binary` builds a Go exporter
  node_exporter/vX/     Debian's real node_exporter as the release tarball + sha256sums.txt
  promtail/vX/, alloy/vX/  the Promtail/Alloy stand-in as the release zips + SHA256SUMS
  loki/                 a Loki push receiver, run by loki-double.service on :3100

The kit is built once per source version on the controller (gcc, dpkg-deb, git, apt-get download)
and cached next to the image cache (kits of other versions are kept until unused for a week: see
cache.py); installing copies it into a root, before boot or while running.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

from runbook.config import DcgmConfig, NodeExporterConfig, PromtailConfig

from ..settings import MIRROR_URL
from . import cache
from .errors import SandboxError
from .paths import image_cache
from .shell import say

DOUBLES = Path(__file__).resolve().parents[1] / "standins"
PARTS = ("dcgm", "dcgm_exporter", "node_exporter", "promtail", "loki")
GUEST_DIR = MIRROR_URL.removeprefix("file://")
LOKI_UNIT = "loki-double.service"
LOKI_UNIT_TEXT = f"""\
[Unit]
Description=Loki push receiver (test bed)
After=network.target

[Service]
ExecStart=/usr/bin/python3 {GUEST_DIR}/loki/receiver.py --listen 0.0.0.0:3100 --store /var/lib/loki-double/entries.jsonl
StateDirectory=loki-double
Restart=always

[Install]
WantedBy=multi-user.target
"""


def _versions() -> dict[str, object]:
    return {"node_exporter": NodeExporterConfig().version, "promtail": PromtailConfig().version,
            "alloy": PromtailConfig().alloy.version, "exporter_tags": DcgmConfig().exporter_tags}


def _digest() -> str:
    h = hashlib.sha256(repr(sorted(_versions().items())).encode())
    h.update(Path(__file__).read_bytes())
    for part in PARTS:
        for path in sorted((DOUBLES / part).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(DOUBLES)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def _builder(part: str):
    spec = importlib.util.spec_from_file_location(f"l4rb_double_{part}", DOUBLES / part / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(out: Path) -> None:
    v = _versions()
    _builder("dcgm").build(out / "cuda", f"{GUEST_DIR}/cuda")
    _builder("dcgm_exporter").build(out / "dcgm-exporter.git", dict(v["exporter_tags"]))
    _builder("node_exporter").build(out / "node_exporter", v["node_exporter"])
    _builder("promtail").build(out, v["promtail"], v["alloy"])
    (out / "loki").mkdir()
    for name in ("receiver.py", "wire.py", "selector.py"):
        shutil.copyfile(DOUBLES / "loki" / name, out / "loki" / name)


def monitoring_kit() -> Path:
    """The built kit's directory, building it first when this version was never built."""
    if not (DOUBLES / "dcgm" / "build.py").is_file():
        raise SandboxError(f"the monitoring doubles are missing at {DOUBLES}; run from a checkout of the project")
    base = image_cache().parent / "monitoring-kit"
    final = base / _digest()
    if final.is_dir():
        return cache.used(final)
    base.mkdir(parents=True, exist_ok=True)
    with open(base / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if final.is_dir():
            return cache.used(final)
        work = base / f".build-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        say("building the monitoring doubles (DCGM repo, dcgm-exporter git, node_exporter, promtail, Loki)")
        try:
            _build(work)
        except Exception as err:
            shutil.rmtree(work, ignore_errors=True)
            raise SandboxError(f"could not build the monitoring doubles: {err}") from err
        # Kits of other versions stay: another checkout or test worker may be using one right now.
        cache.prune_unused(base, keep=final.name)
        os.rename(work, final)
    return cache.used(final)


def install_monitoring_doubles(root: Path) -> None:
    """Copy the kit into *root* and enable the Loki receiver there (start it yourself on a running host)."""
    kit = monitoring_kit()
    target = root / GUEST_DIR.lstrip("/")
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(kit, target, symlinks=True)
    unit = root / "etc/systemd/system" / LOKI_UNIT
    unit.write_text(LOKI_UNIT_TEXT)
    wants = root / "etc/systemd/system/multi-user.target.wants" / LOKI_UNIT
    wants.parent.mkdir(parents=True, exist_ok=True)
    if not wants.is_symlink():
        os.symlink(f"/etc/systemd/system/{LOKI_UNIT}", wants)
