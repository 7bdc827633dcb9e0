"""Guide section 3: vLLM with EXAONE and two LoRA adapters on port 8001.

Safer than the guide in two places: the API key is not passed as
``--api-key`` (``ps`` would show it to every user); vLLM reads VLLM_API_KEY
from its environment, which comes from the 0600 ``vllm.env``. And the other
values use SERVE_* names, not the guide's VLLM_HOST/VLLM_PORT/...: every VLLM_*
variable belongs to vLLM (its environment-variable docs,
https://docs.vllm.ai/en/stable/configuration/env_vars/, warn that VLLM_PORT is
its internal communication port, not the API server's, and a value like
Kubernetes' ``tcp://...`` aborts the start). VLLM_API_KEY stays: vLLM reads it on purpose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import envfile
from ..config import Config
from ..engine.steps import AptPackages, Command, Directory, File, Plan, PythonPackages, RunState, Service, Step, q
from ..engine.wait import HttpWait
from ..errors import ConfigError
from ..facts.http import authed_get
from .common import HostInfo
from .dropins import DropInsAside

UNIT = "vllm.service"
# vLLM's own variables that the guide's vllm.env set for --host/--port: VLLM_PORT is vLLM's internal
# communication port, not the API server's (vLLM's environment-variable docs); troubleshoot C-2 flags them.
RESERVED_NAMES = ("VLLM_PORT", "VLLM_HOST", "VLLM_HOST_IP")

# What a first start goes through (guide B-12), as vLLM logs it.
PHASES = (
    (r"(?i)download|Fetching \d+ files", "downloading the model"),
    (r"Starting to load model", "loading weights"),
    (r"Loading weights took|Model loading took", "weights loaded"),
    (r"torch\.compile|Compiling a graph|Dynamo bytecode", "compiling"),
    (r"(?i)graph captur|KV cache|init engine", "warming up"),
    (r"Starting vLLM API server|Application startup complete", "ready"),
)
# Journal text of failures the guide knows, with what to do.
FAILURES = (
    (r"Not enough SMs to use max_autotune_gemm",
     "torch.compile crashed on the L4 (guide B-10): set vllm.enforce_eager = true; see inv troubleshoot --only B-10"),
    (r"cannot import name 'RopeParameters'",
     "the model revision needs Transformers v5 (guide B-11): pin vllm.revision; see inv troubleshoot --only B-11"),
    (r"libcuda\.so[^\n]*(not found|cannot open)",
     "libcuda.so not found (guide B-2): check vllm.ld_library_path; see inv troubleshoot --only B-2"),
    (r"(?i)out of memory|No available memory for the cache blocks",
     "GPU memory (guide B-4): lower vllm.max_model_len or gpu_memory_utilization; inv troubleshoot --only B-4"),
    (r"(?i)invalid json|error: argument --lora-modules",
     "--lora-modules could not be parsed (guide B-3); see inv troubleshoot --only B-3"),
)


def env_pairs(cfg: Config) -> list[tuple[str, str]]:
    """The variables of vllm.env, in file order, under SERVE_* names.

    The guide's VLLM_HOST/VLLM_PORT/... are vLLM's own namespace (VLLM_PORT is its internal
    communication port); only VLLM_API_KEY, which vLLM reads on purpose, keeps its name."""
    v = cfg.settings.vllm
    return [
        ("SERVE_MODEL", v.model),
        ("SERVE_HOST", v.host),
        ("SERVE_PORT", str(v.port)),
        ("VLLM_API_KEY", cfg.secrets.vllm_api_key.get_secret_value()),
        ("SERVE_GPU_MEMORY_UTILIZATION", str(v.gpu_memory_utilization)),
        ("SERVE_MAX_MODEL_LEN", str(v.max_model_len)),
        ("SERVE_DTYPE", v.dtype),
        ("SERVE_MAX_LORA_RANK", str(v.max_lora_rank)),
    ]


def env_file(cfg: Config) -> str:
    """vllm.env of guide 3-3: scalars only (LoRA modules live in the unit, B-3).

    The whole file is rewritten, so a host with the guide's names converges to these in one run
    (the diff shows the renames)."""
    return envfile.render(env_pairs(cfg), envfile.SYSTEMD,
                          "Managed by l4-runbook (guide 3-3). Scalars only; LoRA modules are in vllm.service (B-3).")


def env_keys(cfg: Config) -> tuple[str, ...]:
    """The variables vllm.env sets (a drop-in setting one of them overrides the runbook)."""
    return tuple(name for name, _ in env_pairs(cfg))


def lora_arguments(cfg: Config) -> list[str]:
    """One JSON object per adapter, each its own ExecStart word (B-3); checked by parsing it back."""
    args = []
    for adapter in cfg.settings.vllm.adapters:
        text = json.dumps({"name": adapter.name, "path": adapter.path}, separators=(",", ":"))
        if json.loads(text) != {"name": adapter.name, "path": adapter.path} or "'" in text:
            raise ConfigError(f"vllm.adapters: {adapter.name!r} does not make a valid --lora-modules JSON word")
        args.append(f"'{text}'")
    return args


def unit_file(cfg: Config) -> str:
    """The unit of guide 3-4, without --api-key on the command line."""
    v = cfg.settings.vllm
    options = [
        "--host ${SERVE_HOST}",
        "--port ${SERVE_PORT}",
        "--gpu-memory-utilization ${SERVE_GPU_MEMORY_UTILIZATION}",
        "--max-model-len ${SERVE_MAX_MODEL_LEN}",
        "--dtype ${SERVE_DTYPE}",
        "--trust-remote-code",
        "--enable-lora",
        *(["--enforce-eager"] if v.enforce_eager else []),  # B-10
        f'--revision "{v.revision}"',  # B-11; one word whatever it holds
    ]
    if v.adapters:
        options.append("--lora-modules \\\n      " + " \\\n      ".join(lora_arguments(cfg)))
    options.append("--max-lora-rank ${SERVE_MAX_LORA_RANK}")
    exec_start = f"{v.dir}/venv/bin/vllm serve ${{SERVE_MODEL}} \\\n    " + " \\\n    ".join(options)
    return f"""\
# Managed by l4-runbook (guide 3-4). The API key comes from vllm.env (VLLM_API_KEY), not the command line.
[Unit]
Description=vLLM Server (EXAONE 2.4B + LoRA)
After=network.target

[Service]
Type=simple
User=root
WorkingDirectory={v.dir}
EnvironmentFile={v.dir}/vllm.env
Environment="PATH={v.dir}/venv/bin:/usr/local/bin:/usr/bin:/bin"
Environment="LD_LIBRARY_PATH={v.ld_library_path}"
Environment="HF_HOME={v.dir}/.cache/huggingface"
Environment="TRANSFORMERS_CACHE={v.dir}/.cache/huggingface"

ExecStart={exec_start}

Restart=always
RestartSec=10
TimeoutStartSec=600
LimitNOFILE=65536
LimitNPROC=65536

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True, kw_only=True)
class ModelsListed(Step):
    """Guide 3-7: /v1/models lists the base model and every adapter.

    The key is the one vLLM enforces: systemd loads the unit's env files (runbook.facts.http.authed_get)
    and the key goes to curl's stdin, so no command line ever carries it.
    """

    env_path: str
    url: str
    expected: tuple[str, ...]

    def probe(self) -> str:
        return authed_get("vllm:models", self.url, UNIT).shell

    def plan(self, fact: str, state: RunState) -> Plan:
        try:
            listed = [m["id"] for m in json.loads(fact)["data"]]
        except (ValueError, KeyError, TypeError):
            return Plan(False, "no model list", error=f"{self.url} did not return a model list: {fact[:300]!r}")
        missing = [m for m in self.expected if m not in listed]
        if missing:
            return Plan(False, f"missing {missing}", error=f"{self.url} lists {listed}; missing {missing}")
        return Plan(False, f"{len(listed)} models: {', '.join(listed)}")

    def script(self, plan: Plan) -> str:
        return self.probe()

    def doc(self) -> dict[str, str]:
        return {"checks": f"`GET {self.url}` (with the key) lists {', '.join(self.expected)}",
                "changes": "nothing (a check)", "runs": "curl with the key on stdin"}


def steps(cfg: Config, host: HostInfo) -> list[Step]:
    v = cfg.settings.vllm
    user = host.login_user
    venv = f"{v.dir}/venv"
    index = f" --index-url {q(v.index_url)}" if v.index_url else ""
    py = cfg.settings.python
    pip_index = f" --index-url {q(py.index_url)}" if py.index_url else ""
    return [
        AptPackages(guide="3-2", title="python3-venv and curl (B-13)", names=("python3-venv", "curl")),
        Directory(guide="3-1", title=v.dir, path=v.dir, owner=user),
        # Marked complete only after pip's own upgrade: a run killed half-way is redone from scratch. The
        # marker is only a short cut when the venv's pip really runs from it.
        Command(guide="3-2", title=f"venv {venv}",
                check=f"test -f {q(venv + '/.l4rb-complete')} && {q(venv + '/bin/python')} -m pip --version",
                run=f"rm -rf {q(venv)} && runuser -u {q(user)} -- python3 -m venv {q(venv)} && "
                    f"runuser -u {q(user)} -- {q(venv + '/bin/pip')} install -q --upgrade pip{pip_index} && "
                    f"runuser -u {q(user)} -- touch {q(venv + '/.l4rb-complete')}",
                notify=(UNIT,)),
        # The package is checked by its installed files (RECORD), not by the venv's marker: deleted files
        # mean a reinstall (pip --force-reinstall --no-deps).
        PythonPackages(guide="3-2", title=f"{v.package} in the venv", python=f"{venv}/bin/python",
                       packages=(v.package,), notify=(UNIT,),
                       install=f"runuser -u {q(user)} -- {q(venv + '/bin/pip')} install -q{index}"),
        File(guide="3-3", title=f"{v.dir}/vllm.env", path=f"{v.dir}/vllm.env", content=env_file(cfg),
             mode=0o600, secret=True, notify=(UNIT,)),
        DropInsAside(guide="3-4", title=f"no drop-in overrides {UNIT}", unit=UNIT, notify=(UNIT,),
                     keys=("ExecStart", "EnvironmentFile", "User", "WorkingDirectory"),
                     variables=("PATH", "LD_LIBRARY_PATH", "HF_HOME", "TRANSFORMERS_CACHE", *env_keys(cfg),
                                *RESERVED_NAMES)),
        File(guide="3-4", title=f"/etc/systemd/system/{UNIT}", path=f"/etc/systemd/system/{UNIT}",
             content=unit_file(cfg), notify=(UNIT,), validate="systemd-analyze verify {path}"),
        Service(guide="3-5", title=f"{UNIT} enabled and running", unit=UNIT),
    ]


def ready_steps(cfg: Config, host: HostInfo) -> list[Step]:
    """3-6/3-7: wait for the first start (minutes on a real L4: B-12), then check the models."""
    v = cfg.settings.vllm
    expected = (v.model, *(a.name for a in v.adapters))
    return [
        HttpWait(guide="3-6", title=f"/health on :{v.port} (first start: download, load, compile)",
                 url=f"http://127.0.0.1:{v.port}/health", unit=UNIT, timeout=900, phases=PHASES,
                 failures=FAILURES, refresh_on=(UNIT,)),
        ModelsListed(guide="3-7", title="/v1/models lists the base model and every adapter",
                     env_path=f"{v.dir}/vllm.env", url=f"http://127.0.0.1:{v.port}/v1/models",
                     expected=expected, refresh_on=(UNIT,)),
    ]
