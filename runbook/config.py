"""hosts.toml and secrets: loaded and validated before anything touches a host.

Every guide variable (PROJECT_ID, ZONE, INSTANCE_NAME, VLLM_PORT, FASTAPI_PORT,
VLLM_API_KEY, ...) has exactly one home here. Unknown keys are errors, so a
typo never silently falls back to a default. Secrets come from the
environment or from a 0600 secrets file, never from hosts.toml.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from . import envfile, secrets
from .errors import ConfigError

DEFAULT_CONFIG = "hosts.toml"
# hosts.toml and the secrets file are small text files: anything bigger (or /dev/zero) is a mistake.
MAX_FILE_BYTES = 1 << 20
MIN_SECRET_LENGTH = 8
Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")]
AbsPath = Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*$")]
# Values written into unit files and env files: one line, no shell/unit specials.
Scalar = Annotated[str, Field(min_length=1, pattern=r"^[^\n\r\"'\\$`%;]+$")]
# Every field below that reaches a unit, an env file, YAML or a shell line has a pattern of its own.
UserName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
# A host name or an IPv4/IPv6 address (never starting with '-', so never an option).
HostAddress = Annotated[str, Field(pattern=r"^[A-Za-z0-9.:\[\]][A-Za-z0-9.:\[\]-]*$")]
HostName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
# A Hugging Face repo id (owner/name) or an absolute path on the host.
ModelRef = Annotated[str, Field(
    pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?|/[A-Za-z0-9._/-]+)$")]
# A git commit, tag or branch: one word, so `--revision X` can never add arguments.
GitRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")]
PackageName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9+.-]+$")]  # a Debian package
# A pip requirement: name, extras, version specifiers; no URLs, options or spaces.
_VERSION = r"[<>=!~]=?[A-Za-z0-9.*+!_-]+"
PipSpec = Annotated[str, Field(
    pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?(" + _VERSION + "(," + _VERSION + ")*)?$")]
# Package indexes are downloads without a checksum: https (or a local file:// mirror) only.
IndexUrl = Annotated[str, Field(pattern=r"^((https|file)://[^\s'\"`$\\]+)?$")]
Word = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]


class Strict(BaseModel):
    """Base for every table: unknown keys are an error, not a silent default; no type coercion
    (``port = true`` or ``port = "8001"`` is an error, not port 1 or 8001)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


PLACEHOLDER_PROJECT = "your-project-id"


# The access scopes `gcloud compute instances create` gives the default service account when --scopes is not
# given: its `default` alias (https://cloud.google.com/sdk/gcloud/reference/compute/instances/create, --scopes).
GCLOUD_DEFAULT_SCOPES = [f"https://www.googleapis.com/auth/{s}" for s in (
    "devstorage.read_only", "logging.write", "monitoring.write", "pubsub", "service.management.readonly",
    "servicecontrol", "trace.append")]
# G2 boot disks: pd-balanced, pd-ssd, hyperdisk-ml, hyperdisk-throughput; no pd-standard
# (https://cloud.google.com/compute/docs/accelerator-optimized-machines, G2 machine series).
G2_DISK_TYPES = ("pd-balanced", "pd-ssd", "hyperdisk-ml", "hyperdisk-throughput")
Zone = Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]-[a-z]$")]
MAX_REPLICAS = 32


class InstanceEntry(Strict):
    """One replica named by hand; without a zone it is spread over the region's L4 zones like a counted one."""

    name: Name
    zone: Zone | Literal[""] = ""


class LbConfig(Strict):
    """One endpoint for the replicas through Google's own load balancer (a passthrough Network Load Balancer:
    per-zone unmanaged instance groups, a regional HTTP health check, a regional backend service, a
    forwarding rule). The health check's defaults are Google's own (interval 5 s, timeout 5 s, 2 and 2)."""

    # None: with more than one replica; true/false: always/never.
    enabled: bool | None = None
    name: Name = "ai-server-lb"
    # external: a regional external passthrough Network Load Balancer (a public address);
    # internal: an internal passthrough Network Load Balancer (an address in the VPC only).
    scheme: Literal["external", "internal"] = "external"
    health_path: AbsPath = "/health"
    check_interval_sec: Annotated[int, Field(ge=1, le=300)] = 5
    timeout_sec: Annotated[int, Field(ge=1, le=300)] = 5
    healthy_threshold: Annotated[int, Field(ge=1, le=10)] = 2
    unhealthy_threshold: Annotated[int, Field(ge=1, le=10)] = 2

    @model_validator(mode="after")
    def _timeout_fits(self) -> LbConfig:
        if self.timeout_sec > self.check_interval_sec:  # Google refuses a timeout longer than the interval
            raise ValueError("timeout_sec must not be greater than check_interval_sec")
        return self


class GcpConfig(Strict):
    """Guide sections 1, 2 and 8: where the VM lives."""

    project_id: Annotated[str, Field(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")] = "your-project-id"
    zone: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]-[a-z]$")] = "asia-northeast3-a"
    fallback_zones: list[Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]-[a-z]$")]] = []
    instance_name: Name = "ai-server-l4"
    machine_type: Name = "g2-standard-4"
    accelerator_type: Name = "nvidia-l4"
    accelerator_count: Annotated[int, Field(ge=1, le=8)] = 1
    image_project: Name = "ubuntu-os-accelerator-images"
    image_family: Name = "ubuntu-accelerator-2204-amd64-with-nvidia-580"
    boot_disk_gb: Annotated[int, Field(ge=10, le=65536)] = 200
    boot_disk_type: Literal["pd-ssd", "pd-balanced", "pd-standard", "hyperdisk-ml", "hyperdisk-throughput"] = "pd-ssd"
    network: Name = "default"
    tags: list[Name] = ["ai-server", "monitoring"]
    # Empty: Google's endpoint with Application Default Credentials.
    api_endpoint: Annotated[str, Field(pattern=r"^(https?://[^\s'\"`$\\]+)?$")] = ""
    # With api_endpoint: a 0600 file holding the bearer token that endpoint requires (empty: none sent).
    api_token_file: str = ""
    # New VMs store their SSH host keys as guest attributes, so the key is pinned from the API.
    guest_attributes: bool = True
    # Longest wait for one operation (create, start, stop, delete), in seconds.
    operation_timeout: Annotated[int, Field(ge=30, le=7200)] = 900
    # The VM's service account as the guide's gcloud create attaches it: "default" (the project's Compute Engine
    # default service account), an account's email, or "none" (no account, like --no-service-account).
    service_account: str = "default"
    scopes: list[str] = GCLOUD_DEFAULT_SCOPES
    # Several replicas: a count (named <name_prefix>-1 .. -N; the prefix defaults to instance_name), or a list
    # of names with optional zones. Neither: the one VM instance_name, as the guide makes it.
    replicas: Annotated[int, Field(ge=1, le=MAX_REPLICAS)] | None = None
    name_prefix: Annotated[str, Field(pattern=r"^([a-z]([-a-z0-9]{0,56}[a-z0-9])?)?$")] = ""
    instances: list[InstanceEntry] = []
    lb: LbConfig = LbConfig()

    @model_validator(mode="after")
    def _one_way_to_name_replicas(self) -> GcpConfig:
        if self.replicas is not None and self.instances:
            raise ValueError("replicas: give either replicas = N or [[gcp.instances]], not both")
        if self.name_prefix and self.replicas is None:
            raise ValueError("name_prefix: only used with replicas = N")
        names = [i.name for i in self.instances]
        if len(names) != len(set(names)):
            raise ValueError(f"instances: names must be unique, got {names}")
        if len(names) > MAX_REPLICAS:
            raise ValueError(f"instances: at most {MAX_REPLICAS}")
        if self.replicas is not None and len(self.replica_list()[-1][0]) > 63:
            raise ValueError("name_prefix: replica names (<prefix>-N) must fit in 63 characters")
        return self

    def replica_list(self) -> list[tuple[str, str]]:
        """(name, pinned zone or "") of every VM the settings describe, in order."""
        if self.instances:
            return [(i.name, i.zone) for i in self.instances]
        if self.replicas is not None:
            prefix = self.name_prefix or self.instance_name
            return [(f"{prefix}-{n}", "") for n in range(1, self.replicas + 1)]
        return [(self.instance_name, "")]

    @property
    def several(self) -> bool:
        """More than one replica: the fleet form (spread zones, a load balancer by default)."""
        return len(self.replica_list()) > 1

    @property
    def lb_wanted(self) -> bool:
        return self.several if self.lb.enabled is None else self.lb.enabled

    @model_validator(mode="after")
    def _g2_disk_type(self) -> GcpConfig:
        if self.machine_type.startswith("g2-") and self.boot_disk_type not in G2_DISK_TYPES:
            raise ValueError(
                f"boot_disk_type {self.boot_disk_type!r} cannot be used with {self.machine_type}: G2 machines support "
                f"{', '.join(G2_DISK_TYPES)} (Compute Engine, accelerator-optimized machines), so the create would "
                "fail. Use \"pd-balanced\" or \"pd-ssd\"."
            )
        return self


class FirewallRule(Strict):
    """One ingress rule of guide 1-1/1-2: TCP ports, from source ranges, to VMs with a tag."""

    enabled: bool = True
    name: Name
    # Empty (api rule): the services' own ports, [ai_server.port, vllm.port].
    ports: list[Port] = []
    target_tag: Name
    source_ranges: list[str]

    @field_validator("source_ranges")
    @classmethod
    def _cidrs(cls, ranges: list[str]) -> list[str]:
        import ipaddress

        if not ranges:
            raise ValueError("list at least one source range, e.g. \"203.0.113.7/32\"")
        for r in ranges:
            try:
                ipaddress.ip_network(r, strict=True)
            except ValueError as err:
                raise ValueError(f"{r!r} is not a network in CIDR form ({err})") from None
        return ranges


class ApiFirewallRule(FirewallRule):
    """Guide 1-1 (vLLM + FastAPI). World-open as in the guide, with a warning each run."""

    name: Name = "allow-ai-server-ports"
    target_tag: Name = "ai-server"
    source_ranges: list[str] = ["0.0.0.0/0"]


class MonitoringFirewallRule(FirewallRule):
    """Guide 1-2 (node_exporter, dcgm-exporter). Default: the default VPC's own subnets only."""

    name: Name = "allow-monitoring-ports"
    ports: list[Port] = [9100, 9400]
    target_tag: Name = "monitoring"
    source_ranges: list[str] = ["10.128.0.0/9"]


class FirewallConfig(Strict):
    """Guide section 1, with safer defaults than the guide: who may connect is always explicit."""

    priority: Annotated[int, Field(ge=0, le=65535)] = 1000
    api: ApiFirewallRule = ApiFirewallRule()
    monitoring: MonitoringFirewallRule = MonitoringFirewallRule()
    # The exporters tell anyone about the machine: 0.0.0.0/0 for them only when said here.
    allow_world_monitoring: bool = False


class HostEntry(Strict):
    """A host reached over SSH, listed by hand (any machine, not only GCP)."""

    name: HostName
    address: HostAddress
    user: UserName | None = None
    port: Port = 22


class InventoryConfig(Strict):
    """Which hosts the host sections (3-7) run on."""

    # sandbox: the running local test-bed hosts; gcp: the VM recorded by `inv vm`;
    # hosts: the [[inventory.hosts]] list below.
    target: Literal["sandbox", "gcp", "hosts"] = "sandbox"
    hosts: list[HostEntry] = []

    @model_validator(mode="after")
    def _hosts_listed(self) -> InventoryConfig:
        if self.target == "hosts" and not self.hosts:
            raise ValueError("target = 'hosts' needs at least one [[inventory.hosts]] entry")
        names = [h.name for h in self.hosts]
        if len(names) != len(set(names)):
            raise ValueError(f"host names must be unique, got {names}")
        return self


class SshConfig(Strict):
    """How we log in; host keys are pinned, never ignored."""

    user: UserName = "ubuntu"
    key_file: str = ""
    known_hosts: str = ".l4-runbook/known_hosts"
    # On first contact with an unknown host: record its key (and say so) or refuse. Unset: refuse for
    # hand-listed hosts (target "hosts": pin their keys in known_hosts first), trust for the others.
    trust_on_first_use: bool = True
    connect_timeout: Annotated[int, Field(ge=1, le=300)] = 15


class PythonConfig(Strict):
    """Where hosts get Python packages: PyPI by default, a mirror if set."""

    index_url: IndexUrl = ""
    extra_index_url: IndexUrl = ""
    uv_spec: PipSpec = "uv"


class LoraAdapter(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    path: ModelRef


class VllmConfig(Strict):
    """Guide section 3."""

    dir: AbsPath = "/app/vllm-server"
    host: HostAddress = "0.0.0.0"
    port: Port = 8001
    model: ModelRef = "LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct"
    # B-11: the model repo moved to Transformers v5; pin the last compatible commit.
    revision: GitRef = "e949c91dec92095908d34e6b560af77dd0c993f8"
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.85
    max_model_len: Annotated[int, Field(ge=256, le=131072)] = 8192
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = "bfloat16"
    max_lora_rank: Literal[8, 16, 32, 64, 128, 256, 320, 512] = 16
    enforce_eager: bool = True  # B-10
    adapters: list[LoraAdapter] = [
        LoraAdapter(name="easycontract", path="temdy/exaone-3.5-2.4b-easycontract-qlora-v1.1"),
        LoraAdapter(name="checklist", path="imyj1013/exaone-qlora-checklist-adapter"),
    ]
    package: PipSpec = "vllm"
    index_url: IndexUrl = ""
    ld_library_path: AbsPath = "/usr/lib/x86_64-linux-gnu"  # B-2

    @field_validator("adapters")
    @classmethod
    def _unique_adapters(cls, adapters: list[LoraAdapter]) -> list[LoraAdapter]:
        if not adapters:
            # The unit always runs vLLM with --enable-lora (guide 3-4): without modules it serves none.
            raise ValueError("list at least one LoRA adapter: vLLM runs with --enable-lora (guide 3-4)")
        names = [a.name for a in adapters]
        if len(names) != len(set(names)):
            raise ValueError(f"adapter names must be unique, got {names}")
        return adapters


class AppSource(Strict):
    """Where the FastAPI application comes from: a local directory or git."""

    path: str = ""
    git: Annotated[str, Field(pattern=r"^((https|file|ssh)://[^\s'\"`$\\]+|git@[A-Za-z0-9.-]+:[^\s'\"`$\\]+)?$")] = ""
    ref: GitRef = "main"

    @model_validator(mode="after")
    def _one_source(self) -> AppSource:
        if bool(self.path) == bool(self.git):
            raise ValueError("set exactly one of path or git")
        return self


class AiServerConfig(Strict):
    """Guide section 4."""

    dir: AbsPath = "/app/ai-server"
    port: Port = 8000
    # Empty: the login user of the host, as the guide's $(whoami).
    user: Annotated[str, Field(pattern=r"^([a-z_][a-z0-9_-]{0,31})?$")] = ""
    app: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] = "app.main:app"
    source: AppSource = AppSource(path="tests/fixtures/ai_app")
    # "packages": uv pip install the list below; "sync": uv sync from the app's pyproject.
    install: Literal["packages", "sync"] = "packages"
    packages: list[PipSpec] = [
        "fastapi",
        "uvicorn",
        "httpx",
        "python-dotenv",
        "prometheus-fastapi-instrumentator",  # B-14
        "python-json-logger",  # B-14
    ]
    log_dir: AbsPath = "/var/log/dojangkok/production"  # B-18
    app_env: Word = "production"
    vllm_base_url: Annotated[str, Field(pattern=r"^(https?://[^\s'\"`$\\#{}]+)?$")] = ""  # empty: localhost
    backend_callback_base_url: Annotated[str, Field(pattern=r"^https?://[^\s'\"`$\\#{}]+$")] = (
        "https://your-backend.example.com/api"
    )
    http_timeout_sec: Annotated[int, Field(ge=1, le=3600)] = 30
    health_path: Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*$")] = "/health"
    health_timeout_sec: Annotated[int, Field(ge=1, le=3600)] = 120

    @field_validator("backend_callback_base_url")
    @classmethod
    def _no_v1(cls, url: str) -> str:
        # Guide 4-3: with /v1 the callbacks go to /api/v1/internal/... and get 401.
        if re.search(r"/v1/?$", url):
            raise ValueError("must not end with /v1 (guide 4-3: callbacks would get 401); use .../api")
        return url

    @field_validator("vllm_base_url")
    @classmethod
    def _with_v1(cls, url: str) -> str:
        if url and not url.rstrip("/").endswith("/v1"):
            raise ValueError("must end with /v1 (guide 4-3), e.g. http://localhost:8001/v1")
        return url


Url = Annotated[str, Field(pattern=r"^(https?|file)://[^\s'\"`$\\]+$")]
# A list of checksums proves nothing if it can be changed on the way: https or a local mirror only.
ChecksumsUrl = Annotated[str, Field(pattern=r"^(https|file)://[^\s'\"`$\\]+$")]
GitUrl = Annotated[str, Field(pattern=r"^(https|file|ssh)://[^\s'\"`$\\]+$")]
Sha256 = Annotated[str, Field(pattern=r"^([0-9a-f]{64})?$")]
UnitName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]


def _http_needs_pin(table):
    """A plain-http download is accepted only with its sha256 pinned: anyone on the way could change it."""
    if table.url.startswith("http://") and not table.sha256:
        raise ValueError("url: http:// needs a pinned sha256 (or use https://)")
    return table


class GoConfig(Strict):
    """Guide 7-3: Go for building dcgm-exporter. The guide's snap is not available everywhere."""

    # tarball: the checksum-verified release below; apt: the distribution's golang-go (Ubuntu 22.04's
    # and Debian 12's are too old for current dcgm-exporter tags); snap: the guide's way.
    method: Literal["tarball", "apt", "snap"] = "tarball"
    version: Annotated[str, Field(pattern=r"^\d+\.\d+(\.\d+)?$")] = "1.24.4"
    url: Url = "https://go.dev/dl/go{version}.linux-amd64.tar.gz"
    sha256: Sha256 = "77e5da33bb72aeaef1ba4418b6fe511bc4d041873cbf82e5aa6318740df98717"
    apt_package: PackageName = "golang-go"
    # GOPROXY for the build's module downloads (a mirror or an offline proxy); empty: Go's default.
    proxy: Annotated[str, Field(pattern=r"^[A-Za-z0-9:/._,|@-]*$")] = ""

    @model_validator(mode="after")
    def _pinned(self) -> GoConfig:
        if self.method == "tarball" and not self.sha256:
            raise ValueError("sha256: required with method = \"tarball\" (the Go release's digest from go.dev/dl)")
        if self.url.startswith("http://") and not self.sha256:
            raise ValueError("url: http:// needs a pinned sha256 (or use https://)")
        return self


class DcgmConfig(Strict):
    """Guide 7-1, 7-2, 7-4: DCGM from the CUDA repository and dcgm-exporter built from source."""

    # {distribution} becomes ubuntu2204 / debian12 ... on the host, as in the guide.
    cuda_keyring_url: Url = (
        "https://developer.download.nvidia.com/compute/cuda/repos/{distribution}/x86_64/cuda-keyring_1.1-1_all.deb"
    )
    cuda_keyring_sha256: Sha256 = ""  # checked when set
    # A complete apt source line used INSTEAD of the keyring package (a mirror, an offline repo).
    apt_repo: Annotated[str, Field(pattern=r"^(deb\s[^\n'\"`$\\]+)?$")] = ""
    # "auto": DCGM 4 when the CUDA repository offers it (else 3); a host keeps the major it has, and
    # is never downgraded. 3 or 4: that major (a host with a newer one is refused, not downgraded).
    major: Literal["auto", 3, 4] = "auto"
    package: PackageName = "datacenter-gpu-manager"  # DCGM 3, the guide's package
    # DCGM 4 (NVIDIA's DCGM install docs): the core package, plus the CUDA-specific one for the
    # driver's CUDA major ({cuda}, from nvidia-smi) when the repository has it.
    package_4: PackageName = "datacenter-gpu-manager-4-core"
    package_4_cuda: Scalar = "datacenter-gpu-manager-4-cuda{cuda}"
    exporter_git: GitUrl = "https://github.com/NVIDIA/dcgm-exporter.git"
    # DCGM major version (from libdcgm.so.N on the host) -> the dcgm-exporter tag built for it (B-7).
    exporter_tags: dict[str, GitRef] = {"3": "3.3.9-3.6.1", "4": "4.5.3-4.8.2"}
    # The Go each tag's go.mod asks for (checked against monitoring.dcgm.go before a build is tried).
    exporter_go: dict[str, Annotated[str, Field(pattern=r"^\d+\.\d+(\.\d+)?$")]] = {"3": "1.21", "4": "1.24"}
    port: Port = 9400
    metrics_timeout_sec: Annotated[int, Field(ge=5, le=3600)] = 90  # B-9: the first scrape takes ~10 s
    go: GoConfig = GoConfig()

    @field_validator("apt_repo")
    @classmethod
    def _verified_repo(cls, line: str) -> str:
        # apt's sources.list(5) options that switch off signature checks.
        if re.search(r"(?i)\b(trusted|allow-insecure|allow-weak|allow-downgrade-to-insecure)\s*=", line):
            raise ValueError("must not switch off apt's signature checks (trusted=yes, allow-insecure=...); "
                             "use signed-by=/path/to/key.gpg")
        return line

    @model_validator(mode="after")
    def _pinned(self) -> DcgmConfig:
        if self.cuda_keyring_url.startswith("http://") and not self.cuda_keyring_sha256:
            raise ValueError("cuda_keyring_url: http:// needs cuda_keyring_sha256 (or use https://)")
        return self

    @field_validator("exporter_tags")
    @classmethod
    def _majors(cls, tags: dict[str, str]) -> dict[str, str]:
        bad = [k for k in tags if not k.isdigit()]
        if bad or not tags:
            raise ValueError(f"keys must be DCGM major versions like \"3\", got {bad or 'none'}")
        return tags

    @model_validator(mode="after")
    def _go_new_enough(self) -> DcgmConfig:
        """A tarball Go older than a tag's go.mod would only fail at the end of a long build: refuse it now."""
        if self.go.method != "tarball":
            return self

        def parts(v: str) -> tuple[int, ...]:
            return tuple(int(x) for x in v.split("."))

        old = {m: need for m, need in self.exporter_go.items() if m in self.exporter_tags
               and parts(self.go.version)[:2] < parts(need)[:2]}
        if old:
            raise ValueError(f"go.version {self.go.version} is older than the Go that dcgm-exporter needs: "
                             + ", ".join(f"{self.exporter_tags[m]} (DCGM {m}) needs {need}" for m, need in old.items()))
        return self


class NodeExporterConfig(Strict):
    """Guide 7-5: the release tarball, verified against the release's sha256sums.txt."""

    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "1.9.0"
    url: Url = ("https://github.com/prometheus/node_exporter/releases/download/v{version}/"
                "node_exporter-{version}.linux-amd64.tar.gz")
    checksums_url: ChecksumsUrl = "https://github.com/prometheus/node_exporter/releases/download/v{version}/sha256sums.txt"
    sha256: Sha256 = ""  # pin the tarball's digest as well (checked in addition to the list)
    port: Port = 9100

    @model_validator(mode="after")
    def _pinned(self):
        return _http_needs_pin(self)


class AlloyConfig(Strict):
    """Grafana Alloy, promtail's successor (log_shipper = "alloy", the default): the release zip checked
    against the release's checksums, or Grafana's apt repository with its signing key pinned by sha256."""

    method: Literal["zip", "apt"] = "zip"
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "1.12.0"
    url: Url = "https://github.com/grafana/alloy/releases/download/v{version}/alloy-linux-amd64.zip"
    checksums_url: ChecksumsUrl = "https://github.com/grafana/alloy/releases/download/v{version}/SHA256SUMS"
    sha256: Sha256 = ""
    # method = "apt" (Grafana's install docs): the key, its pinned digest, and the source (a mirror works too).
    apt_key_url: Url = "https://apt.grafana.com/gpg.key"
    apt_key_sha256: Sha256 = ""  # required with method = "apt"
    apt_source: Annotated[str, Field(pattern=r"^(https?|file)://[^\s'\"`$\\]+( [^\n'\"`$\\]+)+$")] = (
        "https://apt.grafana.com stable main")
    apt_package: Scalar = "alloy"
    port: Port = 12345

    @model_validator(mode="after")
    def _pinned(self):
        return _http_needs_pin(self)

    @model_validator(mode="after")
    def _key_pinned(self) -> AlloyConfig:
        if self.method == "apt" and not self.apt_key_sha256:
            raise ValueError("method = \"apt\" needs apt_key_sha256: the sha256 of the key at apt_key_url, "
                             "checked before apt trusts it")
        return self


class PromtailConfig(Strict):
    """Guide 7-6: ship journal and file logs to Loki (B-17, B-18, B-19)."""

    # alloy: Grafana Alloy with the guide's jobs and labels (the default); promtail: the guide's agent,
    # end of life since 2026-03-02 (deploys still, with a warning).
    log_shipper: Literal["promtail", "alloy"] = "alloy"
    version: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+$")] = "3.4.2"
    url: Url = "https://github.com/grafana/loki/releases/download/v{version}/promtail-linux-amd64.zip"
    checksums_url: ChecksumsUrl = "https://github.com/grafana/loki/releases/download/v{version}/SHA256SUMS"
    sha256: Sha256 = ""
    # The guide's <LOKI_URL>, e.g. http://loki.example.com:3100 (no /loki/api/v1/push). Empty is only
    # allowed with the sandbox target, whose hosts run a Loki receiver of their own.
    loki_url: Annotated[str, Field(pattern=r"^(https?://[^\s'\"`$\\#{}]+)?$")] = ""
    # The `host` label; empty: gcp.instance_name (the guide's ai-server-l4), or with several replicas each
    # host's own name, so Loki tells their lines apart. Written quoted in the YAML.
    host_label: Annotated[str, Field(pattern=r"^([A-Za-z0-9][A-Za-z0-9._-]{0,62})?$")] = ""
    journal_units: list[UnitName] = ["ai-server", "vllm"]  # one journal job per unit (B-19)
    file_job: UnitName = "dojangkok-ai"  # the job for <ai_server.log_dir>/*.log (B-18)
    port: Port = 9080
    alloy: AlloyConfig = AlloyConfig()

    @model_validator(mode="after")
    def _pinned(self):
        return _http_needs_pin(self)

    @field_validator("loki_url")
    @classmethod
    def _no_push_path(cls, url: str) -> str:
        if "/loki/api" in url:
            raise ValueError("give the Loki base URL (e.g. http://loki.example.com:3100); /loki/api/v1/push is added")
        return url.rstrip("/")

    @field_validator("journal_units")
    @classmethod
    def _unique_units(cls, units: list[str]) -> list[str]:
        if len(units) != len(set(units)):
            raise ValueError(f"units must be unique, got {units}")
        return units


class MonitoringConfig(Strict):
    """Guide section 7. Every URL, repository and remote can point at a mirror (air-gapped sites)."""

    dcgm: DcgmConfig = DcgmConfig()
    node_exporter: NodeExporterConfig = NodeExporterConfig()
    promtail: PromtailConfig = PromtailConfig()
    # A Prometheus that scrapes these hosts (inv monitoring-config writes its targets); when set,
    # inv verify asks it whether this host's targets are up.
    prometheus_url: Annotated[str, Field(pattern=r"^(https?://[^\s'\"`$\\#{}]+)?$")] = ""
    prometheus_job_prefix: UnitName = "l4rb"  # scrape jobs are <prefix>-node, -dcgm, -vllm, -app


_SPAN = re.compile(r"(\d+)([smhd])")
_SPAN_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
Span = Annotated[str, Field(pattern=r"^(\d+[smhd])+$")]


def span_seconds(text: str) -> int:
    """'1h30m' -> 5400: whole units of s, m, h, d written together (hosts.toml and `inv autostop --idle`)."""
    if not re.fullmatch(r"(\d+[smhd])+", text):
        raise ValueError(f"{text!r} is not a time span like 30m, 90s or 1h30m")
    return sum(int(n) * _SPAN_SECONDS[unit] for n, unit in _SPAN.findall(text))


class AutostopConfig(Strict):
    """Idle auto-stop: power the VM off after a stretch with no requests (vLLM's and the app's own counters).

    idle = "" leaves the hosts as they are (deploy does not touch autostop); "off" removes it; a span such
    as "30m" installs it. The timer checks every ``period``; seconds are allowed for tests.
    """

    idle: Annotated[str, Field(pattern=r"^((\d+[smhd])+|off)?$")] = ""
    period: Span = "1m"

    @property
    def enabled(self) -> bool:
        return bool(self.idle) and self.idle != "off"

    @property
    def idle_seconds(self) -> int:
        return span_seconds(self.idle) if self.enabled else 0

    @property
    def period_seconds(self) -> int:
        return span_seconds(self.period)

    @model_validator(mode="after")
    def _sane(self) -> AutostopConfig:
        if self.period_seconds < 1:
            raise ValueError("period: must be at least 1s")
        if self.enabled and self.idle_seconds < self.period_seconds:
            raise ValueError(f"idle: {self.idle} is shorter than the check period {self.period}")
        return self


class Settings(Strict):
    """The whole hosts.toml."""

    gcp: GcpConfig = GcpConfig()
    firewall: FirewallConfig = FirewallConfig()
    inventory: InventoryConfig = InventoryConfig()
    ssh: SshConfig = SshConfig()
    python: PythonConfig = PythonConfig()
    vllm: VllmConfig = VllmConfig()
    ai_server: AiServerConfig = AiServerConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    autostop: AutostopConfig = AutostopConfig()
    secrets_file: str = "secrets.env"

    @model_validator(mode="before")
    @classmethod
    def _tofu_default(cls, data):
        """ssh.trust_on_first_use unset: refused for hand-listed hosts, whose keys the user can pin first."""
        if isinstance(data, dict):
            inventory = data.get("inventory")
            target = inventory.get("target", "sandbox") if isinstance(inventory, dict) else "sandbox"
            ssh = data.get("ssh", {})
            if isinstance(ssh, dict) and "trust_on_first_use" not in ssh:
                data = {**data, "ssh": {**ssh, "trust_on_first_use": target != "hosts"}}
        return data

    @model_validator(mode="after")
    def _ports_distinct(self) -> Settings:
        if self.vllm.port == self.ai_server.port:
            raise ValueError(f"vllm.port and ai_server.port are both {self.vllm.port}")
        return self

    @model_validator(mode="after")
    def _complete_for_target(self) -> Settings:
        """What only some targets need, checked at load rather than half-way through a deploy."""
        target = self.inventory.target
        if target == "gcp" and self.gcp.project_id == PLACEHOLDER_PROJECT:
            raise ValueError(f"gcp.project_id: still the placeholder {PLACEHOLDER_PROJECT!r}; "
                             "set your Google Cloud project id")
        if target != "sandbox" and not self.monitoring.promtail.loki_url:
            raise ValueError(f"monitoring.promtail.loki_url: required with target {target!r} "
                             "(the guide's <LOKI_URL>, e.g. http://loki.example.com:3100)")
        return self

    @property
    def vllm_base_url(self) -> str:
        return self.ai_server.vllm_base_url or f"http://localhost:{self.vllm.port}/v1"


class Secrets(BaseModel):
    """The values that never go into hosts.toml, a command line or the output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vllm_api_key: SecretStr
    backend_internal_token: SecretStr = SecretStr("")
    ocr_api: SecretStr

    @field_validator("vllm_api_key", "ocr_api", "backend_internal_token")
    @classmethod
    def _usable(cls, value: SecretStr, info) -> SecretStr:
        raw = value.get_secret_value()
        if info.field_name == "backend_internal_token" and raw == "":
            return value  # optional
        if not raw.strip():
            # B-15: an empty key becomes "Authorization: Bearer " and httpx refuses it.
            raise ValueError("must not be empty (guide B-15: an empty key breaks every vLLM call)")
        # Both env files' readers (systemd for vllm.env, python-dotenv for .env) must read it back exactly.
        for reader in envfile.READERS:
            why = envfile.problem(raw, reader)
            if why:
                raise ValueError(f"{why}; it cannot be written to the {reader} env file")
        if len(raw) < MIN_SECRET_LENGTH:
            raise ValueError(f"is shorter than {MIN_SECRET_LENGTH} characters")
        return value


SECRET_ENV = {
    "vllm_api_key": "VLLM_API_KEY",
    "backend_internal_token": "BACKEND_INTERNAL_TOKEN",
    "ocr_api": "OCR_API",
}


class Config(BaseModel):
    """Settings plus secrets plus where they came from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    settings: Settings
    secrets: Secrets
    root: Path

    def path(self, relative: str) -> Path:
        """A path from hosts.toml, relative to the file's directory."""
        p = Path(relative)
        return p if p.is_absolute() else self.root / p


_FIELD_IN_MESSAGE = re.compile(r"^([a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*): ")


def _error_line(e: dict) -> str:
    """One line naming the field: its location, plus the field a table-level check names first."""
    loc = ".".join(str(p) for p in e["loc"])
    msg = e["msg"].removeprefix("Value error, ")
    named = _FIELD_IN_MESSAGE.match(msg)
    if named:
        loc, msg = ".".join(filter(None, [loc, named.group(1)])), msg[named.end():]
    got = e.get("input")
    shown = "" if isinstance(got, dict | list) or e["type"] == "missing" else f" (got {got!r})"
    return f"{loc or '(top level)'}: {msg}{shown}"


def _format_errors(source: str, err: ValidationError) -> str:
    errors = err.errors()
    if len(errors) == 1:
        return f"{source}: {_error_line(errors[0])}"
    return "\n".join([f"{source}: {len(errors)} invalid setting(s):", *(f"  - {_error_line(e)}" for e in errors)])


def parse_settings(data: dict, source: str = DEFAULT_CONFIG) -> Settings:
    try:
        settings = Settings.model_validate(data)
        if settings.inventory.target == "sandbox":  # the test bed supplies its hosts' index, mirrors, Loki
            from .testbed_link import load

            settings = Settings.model_validate(load("settings").overlay(settings.model_dump()))
        return settings
    except ValidationError as err:
        raise ConfigError(_format_errors(source, err)) from None


def read_text_file(path: Path, what: str) -> str:
    """A small regular UTF-8 file's text (a leading BOM dropped); a clear error for anything else."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what}: {err.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path}: the {what} must be a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: the {what} is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what}: {err.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: the {what} is larger than {MAX_FILE_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: the {what} is not UTF-8 text (byte {err.start})") from None
    return text.removeprefix("\ufeff")


_SECRET_LINE = re.compile(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s?(.*)$")


def _secret_value(raw: str) -> str | None:
    """A secrets-file value: 'literal' or "literal" (quotes removed, nothing inside them processed),
    or bare (taken as written, quotes inside kept). None: an opening quote that is never closed."""
    raw = raw.rstrip(" \t")
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        if len(raw) < 2 or not raw.endswith(quote) or quote in raw[1:-1]:
            return None
        return raw[1:-1]
    return raw


def read_secrets_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; refuses a file that others can read, and any line it cannot read exactly."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path}: secrets file is readable by others (mode {mode:04o}); run: chmod 600 {path}"
        )
    values: dict[str, str] = {}
    for number, line in enumerate(read_text_file(path, "secrets file").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        found = _SECRET_LINE.match(stripped)
        if not found:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        key, value = found.group(1), _secret_value(found.group(2))
        if value is None:  # never print the value: name the key and the line only
            raise ConfigError(f"{path}:{number}: {key}: unbalanced quote (write 'value', \"value\" or value)")
        if key in values:
            raise ConfigError(f"{path}:{number}: {key}: set twice")
        values[key] = value
    return values


def read_token_file(root: Path, name: str) -> str:
    """A bearer token from a file only its owner can read (gcp.api_token_file)."""
    path = Path(name) if Path(name).is_absolute() else root / name
    text = read_text_file(path, "token file")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(f"{path}: token file is readable by others (mode {mode:04o}); run: chmod 600 {path}")
    token = text.strip()
    if not token or any(c.isspace() for c in token):
        raise ConfigError(f"{path}: expected one token on one line")
    return token


def load_secrets(settings: Settings, root: Path, environ: dict[str, str] | None = None) -> Secrets:
    """Environment first, then the 0600 secrets file; all problems in one message."""
    environ = os.environ if environ is None else environ
    file_path = Path(settings.secrets_file)
    file_path = file_path if file_path.is_absolute() else root / file_path
    from_file = read_secrets_file(file_path) if file_path.exists() else {}
    unknown = sorted(set(from_file) - set(SECRET_ENV.values()))
    if unknown:
        raise ConfigError(f"{file_path}: unknown keys {unknown}; expected {sorted(SECRET_ENV.values())}")
    raw = {}
    for field, env in SECRET_ENV.items():
        if env in environ:
            raw[field] = environ[env]
        elif env in from_file:
            raw[field] = from_file[env]
    try:
        result = Secrets.model_validate(raw)
    except ValidationError as err:
        problems = [f"{SECRET_ENV.get(str(e['loc'][0]), e['loc'][0])}: "
                    + ("is not set" if e["type"] == "missing" else e["msg"].removeprefix("Value error, "))
                    for e in err.errors()]
        where = f"environment or {file_path}"
        if len(problems) == 1:
            raise ConfigError(f"secrets ({where}): {problems[0]}") from None
        raise ConfigError("\n".join([f"secrets ({where}): invalid or missing:",
                                      *(f"  - {p}" for p in problems)])) from None
    secrets.register(*(getattr(result, f).get_secret_value() for f in SECRET_ENV))
    return result


def load_settings(path: str | Path = DEFAULT_CONFIG) -> tuple[Settings, Path]:
    """hosts.toml validated (no secrets), and the directory its relative paths start from."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise ConfigError(f"{path}: not found (copy the example hosts.toml from the repository root)")
    text = read_text_file(path, "config file")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_settings(data, str(path)), path.resolve().parent


def load(path: str | Path = DEFAULT_CONFIG, environ: dict[str, str] | None = None) -> Config:
    """Read hosts.toml and the secrets; raise ConfigError with every problem at once."""
    settings, root = load_settings(path)
    return Config(settings=settings, secrets=load_secrets(settings, root, environ), root=root)


# Address space that is not on the internet (RFC 6890 special-purpose ranges).
_NOT_PUBLIC = {
    4: [ipaddress.ip_network(n) for n in ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
                                          "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16",
                                          "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4")],
    6: [ipaddress.ip_network(n) for n in ("::/3", "4000::/2", "8000::/1")],  # public: 2000::/3
}
# More public addresses than this is as good as the whole internet (a /8, 16.7 million IPv4 addresses).
WORLD_PREFIX = {4: 8, 6: 8}


def public_addresses(ranges: list[str] | tuple[str, ...]) -> dict[int, int]:
    """How many public (internet) addresses of each IP version *ranges* cover together (overlaps once)."""
    counted = {}
    for version in (4, 6):
        nets = list(ipaddress.collapse_addresses(
            n for n in (ipaddress.ip_network(r, strict=False) for r in ranges) if n.version == version))
        total = 0
        for net in nets:
            covered = net.num_addresses
            for private in _NOT_PUBLIC[version]:
                if net.subnet_of(private):
                    covered = 0
                    break
                if private.subnet_of(net):
                    covered -= private.num_addresses
            total += covered
        counted[version] = total
    return counted


def world_open(ranges: list[str] | tuple[str, ...]) -> bool:
    """True when *ranges* open a port to more than a /8 of the internet: as good as 0.0.0.0/0."""
    counted = public_addresses(ranges)
    bits = {4: 32, 6: 128}
    return any(counted[v] > 2 ** (bits[v] - WORLD_PREFIX[v]) for v in (4, 6))
