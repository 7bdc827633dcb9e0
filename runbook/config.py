"""hosts.toml and secrets: loaded and validated before anything touches a host.

Every guide variable (PROJECT_ID, ZONE, INSTANCE_NAME, VLLM_PORT, FASTAPI_PORT,
VLLM_API_KEY, ...) has exactly one home here. Unknown keys are errors, so a
typo never silently falls back to a default. Secrets come from the
environment or from a 0600 secrets file, never from hosts.toml.
"""

from __future__ import annotations

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

from . import secrets
from .errors import ConfigError

DEFAULT_CONFIG = "hosts.toml"
Port = Annotated[int, Field(ge=1, le=65535)]
Name = Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")]
AbsPath = Annotated[str, Field(pattern=r"^/[A-Za-z0-9._/-]*$")]
# Values written into unit files and env files: one line, no shell/unit specials.
Scalar = Annotated[str, Field(min_length=1, pattern=r"^[^\n\r\"'\\$`%;]+$")]


class Strict(BaseModel):
    """Base for every table: unknown keys are an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class GcpConfig(Strict):
    """Guide sections 1, 2 and 8: where the VM lives."""

    project_id: Annotated[str, Field(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")] = "your-project-id"
    zone: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]-[a-z]$")] = "asia-northeast3-a"
    fallback_zones: list[str] = []
    instance_name: Name = "ai-server-l4"
    machine_type: str = "g2-standard-4"
    accelerator_type: str = "nvidia-l4"
    accelerator_count: Annotated[int, Field(ge=1, le=8)] = 1
    image_project: str = "ubuntu-os-accelerator-images"
    image_family: str = "ubuntu-accelerator-2204-amd64-with-nvidia-580"
    boot_disk_gb: Annotated[int, Field(ge=10, le=65536)] = 200
    boot_disk_type: Literal["pd-ssd", "pd-balanced", "pd-standard"] = "pd-ssd"
    network: str = "default"
    tags: list[Name] = ["ai-server", "monitoring"]
    # Empty: Google's endpoint with Application Default Credentials.
    api_endpoint: str = ""


class HostEntry(Strict):
    """A host reached over SSH, listed by hand (any machine, not only GCP)."""

    name: str
    address: str
    user: str | None = None
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

    user: str = "ubuntu"
    key_file: str = ""
    known_hosts: str = ".l4-runbook/known_hosts"
    # On first contact with an unknown host: record its key (and say so) or refuse.
    trust_on_first_use: bool = True
    connect_timeout: Annotated[int, Field(ge=1, le=300)] = 15


class PythonConfig(Strict):
    """Where hosts get Python packages: PyPI by default, a mirror if set."""

    index_url: str = ""
    extra_index_url: str = ""
    uv_spec: str = "uv"


class LoraAdapter(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    path: Scalar


class VllmConfig(Strict):
    """Guide section 3."""

    dir: AbsPath = "/app/vllm-server"
    host: Scalar = "0.0.0.0"
    port: Port = 8001
    model: Scalar = "LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct"
    # B-11: the model repo moved to Transformers v5; pin the last compatible commit.
    revision: Scalar = "e949c91dec92095908d34e6b560af77dd0c993f8"
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.85
    max_model_len: Annotated[int, Field(ge=256, le=131072)] = 8192
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] = "bfloat16"
    max_lora_rank: Literal[8, 16, 32, 64, 128, 256, 320, 512] = 16
    enforce_eager: bool = True  # B-10
    adapters: list[LoraAdapter] = [
        LoraAdapter(name="easycontract", path="temdy/exaone-3.5-2.4b-easycontract-qlora-v1.1"),
        LoraAdapter(name="checklist", path="imyj1013/exaone-qlora-checklist-adapter"),
    ]
    package: Scalar = "vllm"
    index_url: str = ""
    ld_library_path: AbsPath = "/usr/lib/x86_64-linux-gnu"  # B-2

    @field_validator("adapters")
    @classmethod
    def _unique_adapters(cls, adapters: list[LoraAdapter]) -> list[LoraAdapter]:
        names = [a.name for a in adapters]
        if len(names) != len(set(names)):
            raise ValueError(f"adapter names must be unique, got {names}")
        return adapters


class AppSource(Strict):
    """Where the FastAPI application comes from: a local directory or git."""

    path: str = ""
    git: str = ""
    ref: str = "main"

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
    user: str = ""
    app: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")] = "app.main:app"
    source: AppSource = AppSource(path="tests/fixtures/ai_app")
    # "packages": uv pip install the list below; "sync": uv sync from the app's pyproject.
    install: Literal["packages", "sync"] = "packages"
    packages: list[Scalar] = [
        "fastapi",
        "uvicorn",
        "httpx",
        "python-dotenv",
        "prometheus-fastapi-instrumentator",  # B-14
        "python-json-logger",  # B-14
    ]
    log_dir: AbsPath = "/var/log/dojangkok/production"  # B-18
    app_env: Scalar = "production"
    vllm_base_url: str = ""  # empty: http://localhost:<vllm.port>/v1
    backend_callback_base_url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")] = (
        "https://your-backend.example.com/api"
    )
    http_timeout_sec: Annotated[int, Field(ge=1, le=3600)] = 30
    health_path: str = "/health"
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


class Settings(Strict):
    """The whole hosts.toml."""

    gcp: GcpConfig = GcpConfig()
    inventory: InventoryConfig = InventoryConfig()
    ssh: SshConfig = SshConfig()
    python: PythonConfig = PythonConfig()
    vllm: VllmConfig = VllmConfig()
    ai_server: AiServerConfig = AiServerConfig()
    secrets_file: str = "secrets.env"

    @model_validator(mode="after")
    def _ports_distinct(self) -> Settings:
        if self.vllm.port == self.ai_server.port:
            raise ValueError(f"vllm.port and ai_server.port are both {self.vllm.port}")
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

    @field_validator("vllm_api_key", "ocr_api")
    @classmethod
    def _not_empty(cls, value: SecretStr) -> SecretStr:
        # B-15: an empty key becomes "Authorization: Bearer " and httpx refuses it.
        raw = value.get_secret_value()
        if not raw.strip():
            raise ValueError("must not be empty (guide B-15: an empty key breaks every vLLM call)")
        if any(c in raw for c in "\n\r\0"):
            raise ValueError("must be a single line")
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


def _format_errors(source: str, err: ValidationError) -> str:
    lines = [f"{source}: {err.error_count()} invalid setting(s):"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        shown = "" if isinstance(got, dict | list) or e["type"] == "missing" else f" (got {got!r})"
        lines.append(f"  - {loc}: {msg}{shown}")
    return "\n".join(lines)


def parse_settings(data: dict, source: str = DEFAULT_CONFIG) -> Settings:
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_errors(source, err)) from None


def read_secrets_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; refuses a file that others can read."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path}: secrets file is readable by others (mode {mode:04o}); run: chmod 600 {path}"
        )
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        key, value = line.split("=", 1)
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


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
        lines = [f"secrets ({'environment or ' + str(file_path)}): invalid or missing:"]
        for e in err.errors():
            field = str(e["loc"][0])
            msg = "is not set" if e["type"] == "missing" else e["msg"].removeprefix("Value error, ")
            lines.append(f"  - {SECRET_ENV.get(field, field)}: {msg}")
        raise ConfigError("\n".join(lines)) from None
    secrets.register(*(getattr(result, f).get_secret_value() for f in SECRET_ENV))
    return result


def load(path: str | Path = DEFAULT_CONFIG, environ: dict[str, str] | None = None) -> Config:
    """Read hosts.toml and the secrets; raise ConfigError with every problem at once."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found (copy the example hosts.toml from the repository root)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    settings = parse_settings(data, str(path))
    root = path.resolve().parent
    return Config(settings=settings, secrets=load_secrets(settings, root, environ), root=root)
