"""Guide 7-5: node_exporter (system metrics on :9100).

The guide downloads the release tarball and copies the binary without checking it; here the
tarball's sha256 must match the release's sha256sums.txt (and a pinned digest, if set) before
anything is installed.
"""

from __future__ import annotations

from ..config import Config
from ..engine.steps import AptPackages, File, Service, Step
from .common import HostInfo
from .downloads import VerifiedDownload
from .metrics_wait import MetricsWait
from .mirrors import resolve
from .units import unit_text

UNIT = "node_exporter.service"
BINARY = "/usr/local/bin/node_exporter"


def steps(cfg: Config, host: HostInfo) -> list[Step]:
    n = cfg.settings.monitoring.node_exporter
    folder = f"node_exporter-{n.version}.linux-amd64"
    return [
        AptPackages(guide="7-5", title="curl and ca-certificates", names=("curl", "ca-certificates")),
        VerifiedDownload(guide="7-5", title=f"node_exporter {n.version} (sha256-verified)", name="node_exporter",
                         url=resolve(cfg, n.url, version=n.version),
                         checksums_url=resolve(cfg, n.checksums_url, version=n.version), sha256=n.sha256,
                         member=f"{folder}/node_exporter", dest=BINARY, notify=(UNIT,),
                         # Prometheus' version banner: "node_exporter, version 1.9.0 (branch: ...)"
                         version=n.version, version_command="--version",
                         version_pattern=r"^node_exporter, version (\S+)"),
        File(guide="7-5", title=f"/etc/systemd/system/{UNIT}", path=f"/etc/systemd/system/{UNIT}",
             content=unit_text("7-5", "Node Exporter", f"ExecStart={BINARY}"
                               + (f" --web.listen-address=:{n.port}" if n.port != 9100 else "")),
             notify=(UNIT,), validate="systemd-analyze verify {path}"),
        Service(guide="7-5", title=f"{UNIT} enabled and running", unit=UNIT),
        MetricsWait(guide="7-5", title=f"/metrics on :{n.port}", url=f"http://127.0.0.1:{n.port}/metrics",
                    unit=UNIT, timeout=60, series=("node_exporter_build_info",), refresh_on=(UNIT,)),
    ]
