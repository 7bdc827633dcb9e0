"""Guide 7-6: ship the services' logs to Loki, with Grafana Alloy (the default) or Promtail (the guide's).

Promtail reached end of life on 2026-03-02 (Grafana's Promtail docs), so Alloy is installed by
default, with the same jobs and labels as the guide's promtail config; ``log_shipper = "promtail"``
still deploys the guide's agent, with a warning. The other shipper is stopped so logs are never
sent twice. Both are
sha256-verified downloads; the config is checked by the shipper itself before it replaces the old
one; the log directory exists first (B-18); and the run ends by asking Loki, from the host, whether
it can be reached at all (B-17).
"""

from __future__ import annotations

from ..config import Config
from ..engine.steps import AptPackages, Command, Directory, File, Service, Step, q
from ..engine.wait import HttpWait
from ..errors import ConfigError
from .common import HostInfo
from .downloads import VerifiedDownload
from .log_shipper_config import POSITIONS, Shipping, alloy_config, promtail_yaml
from .loki_check import LokiReachable
from .mirrors import loki_url, resolve
from .units import unit_text

PROMTAIL_UNIT = "promtail.service"
ALLOY_UNIT = "alloy.service"
PROMTAIL_EOL = "2026-03-02"


def eol_warning(settings) -> str:
    """One line for runs that deploy promtail; empty with Alloy."""
    if settings.monitoring.promtail.log_shipper != "promtail":
        return ""
    return (f"log_shipper = \"promtail\": Promtail is end of life since {PROMTAIL_EOL} (no fixes, no security "
            "updates); set monitoring.promtail.log_shipper = \"alloy\" (same jobs and labels)")


def host_label(cfg: Config, host_name: str = "") -> str:
    """The `host` label of every line shipped: host_label if set; else the guide's instance_name for its one
    VM, and each host's own name when there are several replicas (so Loki tells their lines apart)."""
    p, g = cfg.settings.monitoring.promtail, cfg.settings.gcp
    if p.host_label:
        return p.host_label
    return host_name if g.several and host_name else g.instance_name


def shipping(cfg: Config, host_name: str = "") -> Shipping:
    p, s = cfg.settings.monitoring.promtail, cfg.settings
    url = loki_url(cfg)
    if not url:
        raise ConfigError("monitoring.promtail.loki_url is not set: the Loki server's base URL, the guide's "
                          "<LOKI_URL> (e.g. http://loki.example.com:3100)")
    return Shipping(loki_url=url, host=host_label(cfg, host_name), units=tuple(p.journal_units),
                    file_job=p.file_job, log_glob=f"{s.ai_server.log_dir}/*.log", port=p.port)


def log_dir_steps(cfg: Config, host: HostInfo) -> list[Step]:
    """B-18: the directory the file job reads, owned as the ai-server section owns it (so they never fight)."""
    a = cfg.settings.ai_server
    owner = a.user or host.login_user
    parent = a.log_dir.rsplit("/", 1)[0]
    return [Directory(guide="7-6", title=f"{parent} (B-18)", path=parent, owner=owner),
            Directory(guide="7-6", title=f"{a.log_dir} (B-18)", path=a.log_dir, owner=owner)]


def stopped(unit: str, why: str) -> Command:
    return Command(guide="7-6", title=f"{unit} stopped and disabled ({why})",
                   check=f"! systemctl is-enabled -q {q(unit)} && ! systemctl is-active -q {q(unit)}",
                   run=f"systemctl disable --now {q(unit)}")


def promtail_steps(cfg: Config, ship: Shipping) -> list[Step]:
    p = cfg.settings.monitoring.promtail
    binary = "/usr/local/bin/promtail"
    return [
        VerifiedDownload(guide="7-6", title=f"promtail {p.version} (sha256-verified)", name="promtail",
                         url=resolve(cfg, p.url, version=p.version),
                         checksums_url=resolve(cfg, p.checksums_url, version=p.version), sha256=p.sha256,
                         member="promtail-linux-amd64", dest=binary, notify=(PROMTAIL_UNIT,),
                         # "promtail, version 3.4.2 (branch: ..., revision: ...)"
                         version=p.version, version_command="-version",
                         version_pattern=r"^promtail, version (\S+)"),
        Directory(guide="7-6", title="/etc/promtail", path="/etc/promtail"),
        Directory(guide="7-6", title=POSITIONS.rsplit("/", 1)[0], path=POSITIONS.rsplit("/", 1)[0]),
        File(guide="7-6", title="/etc/promtail/config.yml (matches per unit, B-19)", path="/etc/promtail/config.yml",
             content=promtail_yaml(ship), notify=(PROMTAIL_UNIT,),
             validate=f"{binary} -config.file={{path}} -check-syntax"),
        File(guide="7-6", title=f"/etc/systemd/system/{PROMTAIL_UNIT}", path=f"/etc/systemd/system/{PROMTAIL_UNIT}",
             content=unit_text("7-6", "Promtail", f"ExecStart={binary} -config.file=/etc/promtail/config.yml"),
             notify=(PROMTAIL_UNIT,), validate="systemd-analyze verify {path}"),
        stopped(ALLOY_UNIT, "log_shipper is promtail"),
        Service(guide="7-6", title=f"{PROMTAIL_UNIT} enabled and running", unit=PROMTAIL_UNIT),
        HttpWait(guide="7-6", title=f"promtail ready on :{ship.port}", url=f"http://127.0.0.1:{ship.port}/ready",
                 unit=PROMTAIL_UNIT, timeout=60, refresh_on=(PROMTAIL_UNIT,)),
    ]


GRAFANA_KEYRING = "/etc/apt/keyrings/grafana.gpg"
GRAFANA_LIST = "/etc/apt/sources.list.d/grafana.list"


def alloy_apt_steps(cfg: Config) -> list[Step]:
    """Grafana's apt repository: the signing key only after its sha256 matches the pinned one."""
    a = cfg.settings.monitoring.promtail.alloy
    key_url = resolve(cfg, a.apt_key_url)
    pin, pin_file = q(a.apt_key_sha256), GRAFANA_KEYRING + ".sha256"
    return [
        AptPackages(guide="7-6", title="gpg (to store Grafana's key)", names=("gpg",)),
        Command(guide="7-6", title=f"Grafana's apt key in {GRAFANA_KEYRING} (sha256-pinned)",
                check=f"[ -s {GRAFANA_KEYRING} ] && [ \"$(cat {pin_file})\" = {pin} ]",
                run="\n".join([
                    "set -e", "work=$(mktemp -d)", "trap 'rm -rf \"$work\"' EXIT",
                    f"curl -fsSL --retry 3 -o \"$work/key\" {q(key_url)}",
                    "got=$(sha256sum \"$work/key\" | cut -d' ' -f1)",
                    f"[ \"$got\" = {pin} ] || {{ echo \"checksum mismatch for {key_url}: pinned "
                    f"{a.apt_key_sha256}, the download is $got\" >&2; exit 1; }}",
                    "install -d -m 0755 /etc/apt/keyrings",
                    f"gpg --batch --yes --dearmor -o {GRAFANA_KEYRING} \"$work/key\"",
                    f"chmod 0644 {GRAFANA_KEYRING}", f"echo {pin} > {pin_file}"])),
        File(guide="7-6", title=GRAFANA_LIST, path=GRAFANA_LIST,
             content=f"deb [signed-by={GRAFANA_KEYRING}] {resolve(cfg, a.apt_source.split()[0])} "
                     f"{' '.join(a.apt_source.split()[1:])}\n"),
        AptPackages(guide="7-6", title=f"{a.apt_package} from Grafana's repository", names=(a.apt_package,),
                    notify=(ALLOY_UNIT,)),
    ]


def alloy_steps(cfg: Config, ship: Shipping) -> list[Step]:
    a = cfg.settings.monitoring.promtail.alloy
    binary = "/usr/bin/alloy" if a.method == "apt" else "/usr/local/bin/alloy"
    config = "/etc/alloy/config.alloy"
    listen = f"127.0.0.1:{a.port}"
    install = alloy_apt_steps(cfg) if a.method == "apt" else [
        VerifiedDownload(guide="7-6", title=f"alloy {a.version} (sha256-verified)", name="alloy",
                         url=resolve(cfg, a.url, version=a.version),
                         checksums_url=resolve(cfg, a.checksums_url, version=a.version), sha256=a.sha256,
                         member="alloy-linux-amd64", dest=binary, notify=(ALLOY_UNIT,),
                         # "alloy, version v1.10.2 (branch: ..., revision: ...)"
                         version=a.version, version_command="--version",
                         version_pattern=r"^alloy, version (\S+)")]
    return [
        *install,
        Directory(guide="7-6", title="/etc/alloy", path="/etc/alloy"),
        Directory(guide="7-6", title="/var/lib/alloy", path="/var/lib/alloy"),
        File(guide="7-6", title=f"{config} (same labels as promtail's)", path=config, content=alloy_config(ship),
             notify=(ALLOY_UNIT,), validate=f"{binary} fmt {{path}} >/dev/null && {binary} validate {{path}}"),
        File(guide="7-6", title=f"/etc/systemd/system/{ALLOY_UNIT}", path=f"/etc/systemd/system/{ALLOY_UNIT}",
             content=unit_text("7-6", "Grafana Alloy (log shipping to Loki)",
                               f"ExecStart={binary} run --server.http.listen-addr={listen} "
                               f"--storage.path=/var/lib/alloy/data {config}"),
             notify=(ALLOY_UNIT,), validate="systemd-analyze verify {path}"),
        stopped(PROMTAIL_UNIT, "log_shipper is alloy"),
        Service(guide="7-6", title=f"{ALLOY_UNIT} enabled and running", unit=ALLOY_UNIT),
        HttpWait(guide="7-6", title=f"alloy ready on {listen}", url=f"http://{listen}/-/ready", unit=ALLOY_UNIT,
                 timeout=60, refresh_on=(ALLOY_UNIT,)),
    ]


def steps(cfg: Config, host: HostInfo) -> list[Step]:
    """With Alloy, everything that can fail (download, validated config, unit, Loki reachable) is done
    before promtail is stopped and Alloy started: a host that runs promtail keeps shipping until then."""
    p = cfg.settings.monitoring.promtail
    ship = shipping(cfg, host.name)
    unit = PROMTAIL_UNIT if p.log_shipper == "promtail" else ALLOY_UNIT
    loki = LokiReachable(guide="7-6", title=f"Loki reachable from the host (B-17): {ship.loki_url}",
                         url=ship.loki_url, unit=unit)
    if p.log_shipper == "promtail":
        shipper = [*promtail_steps(cfg, ship), loki]
    else:
        shipper = alloy_steps(cfg, ship)
        cut = next(i for i, s in enumerate(shipper) if isinstance(s, Command) and PROMTAIL_UNIT in s.title)
        shipper.insert(cut, loki)
    return [
        AptPackages(guide="7-6", title="unzip and curl", names=("unzip", "curl", "ca-certificates")),
        *log_dir_steps(cfg, host),
        *shipper,
    ]
