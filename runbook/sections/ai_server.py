"""Guide section 4: the FastAPI application server on port 8000.

Improvements on the guide: the log directory belongs to the service user
instead of being world-writable, .env is 0600 (it holds the API keys), and
the app's missing dependencies of B-14 are installed up front.
"""

from __future__ import annotations

from .. import envfile
from ..config import Config
from ..engine.steps import AptPackages, Command, Directory, File, PythonPackages, Service, Step, q
from ..engine.wait import HttpWait
from .app_source import GitSource, LocalSource
from .common import HostInfo, index_flags, uv_install_step
from .dropins import DropInsAside

UNIT = "ai-server.service"


def env_file(cfg: Config) -> str:
    """The .env of guide 4-3, with the real secrets (written 0600, shown masked)."""
    s, secret = cfg.settings, cfg.secrets
    pairs = [
        ("APP_ENV", s.ai_server.app_env),
        ("VLLM_BASE_URL", s.vllm_base_url),
        ("VLLM_API_KEY", secret.vllm_api_key.get_secret_value()),
        ("VLLM_MODEL", s.vllm.model),
        *((f"VLLM_LORA_ADAPTER_{a.name.upper().replace('-', '_').replace('.', '_')}", a.name)
          for a in s.vllm.adapters),
        ("BACKEND_CALLBACK_BASE_URL", s.ai_server.backend_callback_base_url),
        ("BACKEND_INTERNAL_TOKEN", secret.backend_internal_token.get_secret_value()),
        ("HTTP_TIMEOUT_SEC", str(s.ai_server.http_timeout_sec)),
        ("OCR_API", secret.ocr_api.get_secret_value()),
    ]
    return envfile.render(pairs, envfile.DOTENV,
                          "Managed by l4-runbook (guide 4-3). Edit hosts.toml / secrets, not this file.")


def unit_file(cfg: Config, user: str) -> str:
    """The unit of guide 4-4; User matches the directory owner."""
    a = cfg.settings.ai_server
    return f"""\
# Managed by l4-runbook (guide 4-4).
[Unit]
Description=AI Server (FastAPI)
After=network.target vllm.service
Wants=vllm.service

[Service]
Type=simple
User={user}
WorkingDirectory={a.dir}
Environment="PATH={a.dir}/.venv/bin:/usr/local/bin:/usr/bin:/bin"
ExecStart={a.dir}/.venv/bin/uvicorn {a.app} --host 0.0.0.0 --port {a.port}

Restart=always
RestartSec=5
TimeoutStartSec=60

[Install]
WantedBy=multi-user.target
"""


def managed_elsewhere(cfg: Config) -> tuple[str, ...]:
    """Names at the top of the app directory that are not the code: venv, .env, resources, logs inside it."""
    a = cfg.settings.ai_server
    names = [".venv", ".env", "resources"]
    for path in (a.log_dir,):
        if path.startswith(a.dir.rstrip("/") + "/"):
            names.append(path[len(a.dir.rstrip("/")) + 1:].split("/", 1)[0])
    return tuple(names)


def steps(cfg: Config, host: HostInfo) -> list[Step]:
    a = cfg.settings.ai_server
    user = a.user or host.login_user
    venv_python = f"{a.dir}/.venv/bin/python"
    as_user = f"runuser -u {q(user)} --"
    uv_index = index_flags(cfg)
    source: Step
    # Top-level names of the app directory that other steps (or the operator) own: never the code's.
    others = managed_elsewhere(cfg)
    if a.source.git:
        source = GitSource(guide="4-1", title="application code (git)", url=a.source.git, ref=a.source.ref,
                           dest=a.dir, owner=user, notify=(UNIT,), others=others)
    else:
        source = LocalSource(guide="4-1", title="application code", source=str(cfg.path(a.source.path)),
                             shown_as=a.source.path, dest=a.dir, owner=user, notify=(UNIT,), others=others)
    if a.install == "sync":
        deps: Step = Command(
            guide="4-2", title="uv sync from the app's pyproject", notify=(UNIT,),
            check=f"cd {q(a.dir)} && {as_user} uv sync --locked --check{uv_index}",
            run=f"cd {q(a.dir)} && {as_user} uv sync{uv_index}",
        )
    else:
        deps = PythonPackages(
            guide="4-2", title="app dependencies (incl. B-14)", python=venv_python, packages=tuple(a.packages),
            install=f"{as_user} uv pip install -q --python {q(venv_python)}{uv_index}", notify=(UNIT,),
            reinstall="--reinstall-package {name}",
        )
    return [
        AptPackages(guide="4-2", title="python3-venv and curl (B-13)", names=("python3-venv", "curl")),
        uv_install_step(cfg),
        Directory(guide="4-1", title=a.dir, path=a.dir, owner=user),
        Directory(guide="4-1", title=f"{a.dir}/resources", path=f"{a.dir}/resources", owner=user),
        Directory(guide="4-1", title=f"{a.dir}/resources/s3", path=f"{a.dir}/resources/s3", owner=user),
        Directory(guide="4-1", title=a.log_dir.rsplit("/", 1)[0] + " (B-18)",
                  path=a.log_dir.rsplit("/", 1)[0], owner=user),
        Directory(guide="4-1", title=f"{a.log_dir} (B-18)", path=a.log_dir, owner=user),
        source,
        # Marked complete once made: a run killed half-way is redone from scratch. The marker alone is not
        # trusted: the venv's interpreter must run and be the venv's own (its sys.prefix is the venv).
        Command(guide="4-2", title=f"venv {a.dir}/.venv",
                check=f"test -f {q(a.dir + '/.venv/.l4rb-complete')} && {q(venv_python)} -c "
                      + q(f"import sys; sys.exit(sys.prefix != {a.dir + '/.venv'!r})"),
                run=f"cd {q(a.dir)} && rm -rf .venv && {as_user} uv venv -q {q(a.dir + '/.venv')} && "
                    f"{as_user} touch .venv/.l4rb-complete",
                notify=(UNIT,)),
        deps,
        File(guide="4-3", title=f"{a.dir}/.env", path=f"{a.dir}/.env", content=env_file(cfg), owner=user,
             mode=0o600, secret=True, notify=(UNIT,)),
        DropInsAside(guide="4-4", title=f"no drop-in overrides {UNIT}", unit=UNIT, notify=(UNIT,),
                     keys=("ExecStart", "EnvironmentFile", "User", "WorkingDirectory"), variables=("PATH",)),
        File(guide="4-4", title=f"/etc/systemd/system/{UNIT}", path=f"/etc/systemd/system/{UNIT}",
             content=unit_file(cfg, user), notify=(UNIT,)),
        Service(guide="4-5", title=f"{UNIT} enabled and running", unit=UNIT),
        HttpWait(guide="4-6", title=f"/health on :{a.port}", url=f"http://127.0.0.1:{a.port}{a.health_path}",
                 unit=UNIT, timeout=a.health_timeout_sec),
    ]
