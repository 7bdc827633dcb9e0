"""Guide 7-1 .. 7-4: DCGM and dcgm-exporter (GPU metrics on :9400).

Differences from the guide: DCGM 4 where the CUDA repository offers it (``dcgm.major``; a host
keeps its major and is never downgraded; ``major = 3`` is the guide's way); the exporter tag follows
the DCGM actually installed (B-7) instead of a hard-coded 3.3.9-3.6.1; Go comes from a
checksum-verified release (or the distribution's package), not snap, which many hosts lack; and the
check waits until /metrics carries the six DCGM_FI_* series instead of sleeping 10 seconds (B-9).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config, DcgmConfig
from ..engine.steps import AptPackages, Command, Directory, File, Plan, RunState, Service, Step, q
from .common import HostInfo
from .dcgm_exporter_build import DcgmExporterBuild
from .dcgm_major import DcgmPackages
from .downloads import VerifiedDownload
from .metrics_wait import MetricsWait
from .mirrors import go_method, resolve
from .units import unit_text

DCGM_UNIT = "nvidia-dcgm.service"
UNIT = "dcgm-exporter.service"
COUNTERS = "/etc/dcgm-exporter/default-counters.csv"
CUDA_LIST = "/etc/apt/sources.list.d/cuda-l4rb.list"
GO_ROOT = "/usr/local/go"
APT_CHANGED = "apt:cuda"  # not a unit: tells the package step that apt's lists changed under it

# Guide 7-4, byte for byte: the six GPU metrics.
COUNTERS_CSV = """\
# Format,,
DCGM_FI_DEV_GPU_TEMP,      gauge, GPU temperature (in C).
DCGM_FI_DEV_GPU_UTIL,      gauge, GPU utilization (in %).
DCGM_FI_DEV_MEM_COPY_UTIL, gauge, Memory utilization (in %).
DCGM_FI_DEV_FB_FREE,       gauge, Framebuffer memory free (in MiB).
DCGM_FI_DEV_FB_USED,       gauge, Framebuffer memory used (in MiB).
DCGM_FI_DEV_POWER_USAGE,   gauge, Power draw (in W).
"""


def counter_names(csv: str = COUNTERS_CSV) -> tuple[str, ...]:
    return tuple(line.split(",", 1)[0].strip() for line in csv.splitlines()
                 if line.strip() and not line.startswith("#"))


def exporter_unit() -> str:
    """The unit of guide 7-4: it needs nvidia-dcgm (Requires=), as the guide says."""
    return unit_text(
        "7-4", "DCGM Exporter", f"ExecStart=/usr/local/bin/dcgm-exporter -f {COUNTERS}",
        after=DCGM_UNIT, requires=DCGM_UNIT,
    )


@dataclass(frozen=True, kw_only=True)
class CudaKeyring(Step):
    """Guide 7-1 / B-6: the CUDA apt repository, registered once by its keyring package."""

    url: str  # may contain {distribution}, filled in on the host like the guide does
    sha256: str = ""

    def probe(self) -> str:
        return "dpkg-query -W -f='${db:Status-Status}' cuda-keyring 2>/dev/null"

    def plan(self, fact: str, state: RunState) -> Plan:
        if fact.strip() == "installed":
            return Plan(False, "cuda-keyring is installed")
        return Plan(True, "register the CUDA apt repository (cuda-keyring; B-6)",
                    f"+ package cuda-keyring from {self.url}\n")

    def script(self, plan: Plan) -> str:
        return (
            "set -e\n"
            "distribution=$(. /etc/os-release; echo \"${ID}${VERSION_ID//./}\")\n"
            f"template={q(self.url)}\n"
            "url=${template//'{distribution}'/$distribution}\n"
            "work=$(mktemp -d /var/tmp/l4rb-download.XXXXXX)\ntrap 'rm -rf \"$work\"' EXIT\n"
            "curl -fsSL --retry 3 -o \"$work\"/cuda-keyring.deb \"$url\" "
            "|| { echo \"download failed: $url (guide 7-1: is there a CUDA repository for $distribution?)\" >&2; "
            "exit 1; }\n"
            + (f"got=$(sha256sum \"$work\"/cuda-keyring.deb | cut -d' ' -f1)\n[ \"$got\" = {q(self.sha256)} ] || "
               f"{{ echo \"checksum mismatch for $url: pinned {self.sha256}, the download is $got\" >&2; exit 1; }}\n"
               if self.sha256 else "")
            + "dpkg -i \"$work\"/cuda-keyring.deb\napt-get update -q\n"
        )

    def doc(self) -> dict[str, str]:
        return {"checks": "`dpkg-query -W cuda-keyring` is installed",
                "changes": "the CUDA apt repository (guide 7-1, B-6)",
                "runs": f"curl {self.url} (with {{distribution}} = $ID$VERSION_ID); dpkg -i; apt-get update"}


def cuda_repo_step(cfg: Config) -> Step:
    d = cfg.settings.monitoring.dcgm
    if d.apt_repo:  # a mirror or an offline repository, written as a source line
        return File(guide="7-1", title=f"{CUDA_LIST} (B-6)", path=CUDA_LIST, content=d.apt_repo + "\n",
                    notify=(APT_CHANGED,))
    return CudaKeyring(guide="7-1", title="CUDA apt repository (B-6)", url=resolve(cfg, d.cuda_keyring_url),
                       sha256=d.cuda_keyring_sha256, notify=(APT_CHANGED,))


def dcgm_packages(d: DcgmConfig) -> DcgmPackages:
    """Step 7-2: also what B-6 asks which packages would be installed."""
    return DcgmPackages(guide="7-2", title=f"DCGM (major: {d.major}; never downgraded; B-6)", major=str(d.major),
                        package_3=d.package, package_4=d.package_4, package_4_cuda=d.package_4_cuda,
                        notify=(DCGM_UNIT,), refresh_on=(APT_CHANGED,))


def go_steps(cfg: Config) -> tuple[list[Step], str]:
    """Guide 7-3's Go, and the PATH directories where the build finds it."""
    go = cfg.settings.monitoring.dcgm.go
    method = go_method(cfg)
    if method == "apt":
        return [AptPackages(guide="7-3", title=f"Go from the distribution ({go.apt_package})",
                            names=(go.apt_package,))], "/usr/lib/go/bin"
    if method == "snap":
        return [Command(guide="7-3", title="Go from snap (the guide's way)", check="snap list go",
                        run="snap install go --classic")], "/snap/bin"
    return [
        VerifiedDownload(guide="7-3", title=f"Go {go.version} in {GO_ROOT} (sha256-verified)", name="go",
                         url=resolve(cfg, go.url, version=go.version), sha256=go.sha256, member="go",
                         dest=GO_ROOT, install="tree", tree_marker="bin/go",
                         # "go version go1.24.4 linux/amd64"
                         version=go.version, version_command="bin/go version",
                         version_pattern=r"^go version go(\S+)"),
        Command(guide="7-3", title="go on the PATH (/usr/local/bin/go)",
                check=f"[ \"$(readlink /usr/local/bin/go)\" = {GO_ROOT}/bin/go ]",
                run=f"ln -sfn {GO_ROOT}/bin/go /usr/local/bin/go"),
    ], f"{GO_ROOT}/bin"


def steps(cfg: Config, host: HostInfo) -> list[Step]:
    d = cfg.settings.monitoring.dcgm
    go, go_path = go_steps(cfg)
    return [
        AptPackages(guide="7-1", title="curl and ca-certificates", names=("curl", "ca-certificates")),
        cuda_repo_step(cfg),
        dcgm_packages(d),
        Service(guide="7-2", title=f"{DCGM_UNIT} enabled and running", unit=DCGM_UNIT),
        AptPackages(guide="7-3", title="git, make and build-essential (B-8)", names=("git", "make", "build-essential")),
        *go,
        DcgmExporterBuild(guide="7-4", title="dcgm-exporter built for the installed DCGM (B-7)",
                          git=resolve(cfg, d.exporter_git), tags=dict(d.exporter_tags), package=d.package,
                          go_path=go_path, go_proxy=d.go.proxy, notify=(UNIT,), refresh_on=(DCGM_UNIT,)),
        Directory(guide="7-4", title="/etc/dcgm-exporter", path="/etc/dcgm-exporter"),
        File(guide="7-4", title=COUNTERS + " (6 metrics)", path=COUNTERS, content=COUNTERS_CSV, notify=(UNIT,)),
        File(guide="7-4", title=f"/etc/systemd/system/{UNIT}", path=f"/etc/systemd/system/{UNIT}",
             content=exporter_unit(), notify=(UNIT,), validate="systemd-analyze verify {path}"),
        Service(guide="7-4", title=f"{UNIT} enabled and running", unit=UNIT),
        MetricsWait(guide="7-4", title=f"/metrics on :{d.port} shows the DCGM_FI_* series (B-9)",
                    url=f"http://127.0.0.1:{d.port}/metrics", unit=UNIT, timeout=d.metrics_timeout_sec,
                    # Restarting nvidia-dcgm restarts the exporter too (Requires=): look again then.
                    series=counter_names(), refresh_on=(UNIT, DCGM_UNIT),
                    failures=((r"libdcgm\.so\.\d+ library was not found",
                               "dcgm-exporter was built for another DCGM major version (guide B-7); "
                               "see inv troubleshoot --only B-7"),)),
    ]
