"""The simulated GPU side: one NVIDIA L4, a Hugging Face cache, and the phases of an engine start.

What a start prints, in order (vLLM 0.15 wording; first start of the guide's unit):

    APIServer   vLLM API server version 0.15.1+double
    APIServer   non-default args: {...}
    APIServer   Resolved architecture: ExaoneForCausalLM
    APIServer   Using max model len 8192
    APIServer   Chunked prefill is enabled with max_num_batched_tokens=2048.
    EngineCore  Initializing a V1 LLM engine (v0.15.1+double) with config: ...
    EngineCore  Starting to load model LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct...
    EngineCore  Using model weights format ['*.safetensors']
    EngineCore  Time spent downloading weights for MODEL: 57.8 seconds     (first start only)
    EngineCore  Loading safetensors checkpoint shards: ... 2/2
    EngineCore  Loading weights took 54.12 seconds
    EngineCore  Model loading took 4.49 GiB memory and 113.02 seconds
    EngineCore  torch.compile ... / Graph capturing finished ...           (only without --enforce-eager)
    EngineCore  Available KV cache memory: 13.18 GiB
    EngineCore  GPU KV cache size: 184,256 tokens
    EngineCore  init engine (profile, create kv cache, warmup model) took 61.20 seconds
    APIServer   Starting vLLM API server 0 on http://0.0.0.0:8001
    APIServer   INFO:     Application startup complete.

Durations printed are the simulated (L4-like) ones; the wall time is scaled so that the whole start
takes VLLM_DOUBLE_START_SECONDS (default 20 s, see settings.py). The phase wording and order come from
the journals of real starts (guide B-12 lists the phases: download, load, compile, warm-up).
Failures are injected with VLLM_DOUBLE_FAIL (sm, rope, oom, hang), or follow
from the arguments the way they would on the real card (memory arithmetic, LoRA settings, and B-10's
crash of every start without --enforce-eager on the L4's 58 SMs).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from vllm import __version__
from vllm._double import settings
from vllm._double.log import api_log, engine_log

GiB = 1024**3
MiB = 1024**2

# The card the guide deploys on (appendix A): NVIDIA L4, 23034 MiB, 58 SMs, compute capability 8.9.
GPU_NAME = "NVIDIA L4"
GPU_TOTAL_MIB = 23034
GPU_COUNT = 1
# Guide B-10: torch.compile's max_autotune_gemm mode wants a "big" GPU of at least 68 SMs; the L4's 58 make
# every start without --enforce-eager crash there (the guide's own failure, seen on every L4 it ran on).
INDUCTOR_MIN_SMS = 68

# B-11: the last EXAONE revision that still works with transformers 4.x.
PINNED_GOOD_REVISION = "e949c91dec92095908d34e6b560af77dd0c993f8"
# What `main` resolves to in the double: the transformers-v5 update that breaks the import.
BROKEN_MAIN_REVISION = hashlib.sha1(b"EXAONE-3.5 transformers v5 update").hexdigest()

# Rank of the LoRA adapters when their adapter_config.json is not on disk (the guide's are r=16).
DEFAULT_ADAPTER_RANK = 16

# Per-start memory overheads the profiler finds on an L4 (peak activations at 2048 batched tokens,
# non-torch allocations, CUDA graph pool). Approximate, chosen to reproduce the guide's numbers.
ACTIVATION_PEAK = int(1.20 * GiB)
NON_TORCH = int(0.24 * GiB)
CUDA_GRAPH_POOL = int(0.52 * GiB)
BLOCK_SIZE = 16
MAX_NUM_BATCHED_TOKENS = 2048


class StartupFailed(Exception):
    """The start failed; what it printed is already on stderr."""


@dataclass(frozen=True)
class ModelFacts:
    architecture: str
    params_b: float
    max_position: int
    layers: int
    kv_heads: int
    head_dim: int
    shards: int
    model_type: str = "llama"
    custom_code: bool = False

    def weight_bytes(self, dtype: str) -> int:
        per_param = 4 if dtype == "float32" else 2
        return int(self.params_b * 1e9 * per_param)

    def kv_bytes_per_token(self, kv_cache_dtype: str) -> int:
        per_elem = 1 if kv_cache_dtype.startswith("fp8") else 2
        return 2 * self.layers * self.kv_heads * self.head_dim * per_elem


KNOWN_MODELS: dict[str, ModelFacts] = {
    "LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct": ModelFacts(
        "ExaoneForCausalLM", 2.405, 32768, 30, 8, 80, 2, model_type="exaone", custom_code=True
    ),
    "LGAI-EXAONE/EXAONE-3.5-7.8B-Instruct": ModelFacts(
        "ExaoneForCausalLM", 7.818, 32768, 32, 8, 128, 4, model_type="exaone", custom_code=True
    ),
    "LGAI-EXAONE/EXAONE-3.5-32B-Instruct": ModelFacts(
        "ExaoneForCausalLM", 32.0, 32768, 64, 8, 128, 14, model_type="exaone", custom_code=True
    ),
}


def facts_for(model: str) -> ModelFacts:
    if model in KNOWN_MODELS:
        return KNOWN_MODELS[model]
    match = re.search(r"(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", model)
    params = float(match.group(1)) if match else 0.6
    layers = 28 if params < 4 else 32 if params < 14 else 48
    lowered = model.lower()
    arch, mtype = "LlamaForCausalLM", "llama"
    if "qwen3" in lowered:
        arch, mtype = "Qwen3ForCausalLM", "qwen3"
    elif "qwen" in lowered:
        arch, mtype = "Qwen2ForCausalLM", "qwen2"
    elif "exaone" in lowered:
        arch, mtype = "ExaoneForCausalLM", "exaone"
    shards = max(1, math.ceil(params * 2 / 5))
    return ModelFacts(arch, params, 32768 if params >= 1 else 40960, layers, 8, 128, shards, model_type=mtype)


# ---------------------------------------------------------------- paths, caches


def _pkg_dir() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _site_dir() -> str:
    return os.path.dirname(_pkg_dir())


def _stdlib_dir() -> str:
    return sysconfig.get_paths()["stdlib"]


def _bin_path() -> str:
    return os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else "vllm"


def hf_home() -> Path:
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "huggingface"


def hub_cache(download_dir: str | None) -> Path:
    if download_dir:
        return Path(download_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    return hf_home() / "hub"


def vllm_cache_root() -> Path:
    if os.environ.get("VLLM_CACHE_ROOT"):
        return Path(os.environ["VLLM_CACHE_ROOT"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(xdg).expanduser() / "vllm"


def is_local(path: str) -> bool:
    return path.startswith(("/", "./", "../", "~")) or os.path.isdir(path)


def resolve_commit(revision: str | None) -> str:
    if revision and re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision
    return BROKEN_MAIN_REVISION


def _repo_dir(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def snapshot_dir(cache: Path, repo_id: str, revision: str | None) -> Path:
    return _repo_dir(cache, repo_id) / "snapshots" / resolve_commit(revision)


def _shard_names(facts: ModelFacts) -> list[str]:
    if facts.shards == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{facts.shards:05d}.safetensors" for i in range(1, facts.shards + 1)]


def is_downloaded(cache: Path, repo_id: str, revision: str | None, facts: ModelFacts) -> bool:
    snap = snapshot_dir(cache, repo_id, revision)
    return all((snap / name).is_file() for name in ["config.json", *_shard_names(facts)])


def mark_downloaded(cache: Path, repo_id: str, revision: str | None, facts: ModelFacts) -> None:
    """Lay the repo out like huggingface_hub does (refs/, snapshots/COMMIT/), with stub files."""
    snap = snapshot_dir(cache, repo_id, revision)
    try:
        snap.mkdir(parents=True, exist_ok=True)
        if not revision or not re.fullmatch(r"[0-9a-f]{40}", revision):
            refs = _repo_dir(cache, repo_id) / "refs"
            refs.mkdir(parents=True, exist_ok=True)
            (refs / (revision or "main")).write_text(resolve_commit(revision))
        config = {"architectures": [facts.architecture], "model_type": facts.model_type,
                  "max_position_embeddings": facts.max_position, "torch_dtype": "bfloat16"}
        (snap / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for name in _shard_names(facts):
            (snap / name).write_text("stand-in weights written by the vLLM test double\n")
    except OSError:
        pass  # an unwritable cache just means every start downloads again


def mark_adapter(cache: Path, repo_id: str) -> None:
    snap = snapshot_dir(cache, repo_id, None)
    try:
        snap.mkdir(parents=True, exist_ok=True)
        refs = _repo_dir(cache, repo_id) / "refs"
        refs.mkdir(parents=True, exist_ok=True)
        (refs / "main").write_text(resolve_commit(None))
        cfg = snap / "adapter_config.json"
        if not cfg.exists():
            cfg.write_text(json.dumps({"peft_type": "LORA", "r": DEFAULT_ADAPTER_RANK}) + "\n")
        (snap / "adapter_model.safetensors").write_text("stand-in adapter written by the vLLM test double\n")
    except OSError:
        pass


def adapter_rank(path: str) -> int:
    cfg = Path(path).expanduser() / "adapter_config.json"
    try:
        return int(json.loads(cfg.read_text()).get("r", DEFAULT_ADAPTER_RANK))
    except (OSError, ValueError, TypeError, AttributeError):
        return DEFAULT_ADAPTER_RANK


# ---------------------------------------------------------------- tracebacks

# (file, line, function): where a real start's traceback passes. The stand-in ships no vLLM source,
# so, as Python does for any frame whose source file it cannot read, no code line follows a frame.
Frame = tuple[str, int, str]


def render_traceback(frames: list[Frame], final: str) -> str:
    lines = ["Traceback (most recent call last):"]
    lines += [f'  File "{file}", line {lineno}, in {func}' for file, lineno, func in frames]
    lines.append(final)
    return "\n".join(lines)


def _api_front() -> list[Frame]:
    V, S, L = _pkg_dir(), _site_dir(), _stdlib_dir()
    return [
        (_bin_path(), 10, "<module>"),
        (f"{V}/entrypoints/cli/main.py", 73, "main"),
        (f"{V}/entrypoints/cli/serve.py", 60, "cmd"),
        (f"{S}/uvloop/__init__.py", 96, "run"),
        (f"{L}/asyncio/runners.py", 190, "run"),
        (f"{L}/asyncio/runners.py", 118, "run"),
        ("uvloop/loop.pyx", 1518, "uvloop.loop.Loop.run_until_complete"),
        (f"{S}/uvloop/__init__.py", 48, "wrapper"),
        (f"{V}/entrypoints/openai/api_server.py", 1398, "run_server"),
    ]


def _api_to_engine_client() -> list[Frame]:
    V, L = _pkg_dir(), _stdlib_dir()
    return [
        *_api_front(),
        (f"{V}/entrypoints/openai/api_server.py", 1417, "run_server_worker"),
        (f"{L}/contextlib.py", 210, "__aenter__"),
        (f"{V}/entrypoints/openai/api_server.py", 172, "build_async_engine_client"),
        (f"{L}/contextlib.py", 210, "__aenter__"),
    ]


def _api_config_frames(config_class: str) -> list[Frame]:
    V, S = _pkg_dir(), _site_dir()
    frames = [
        *_api_to_engine_client(),
        (f"{V}/entrypoints/openai/api_server.py", 198, "build_async_engine_client_from_engine_args"),
    ]
    if config_class == "ModelConfig":
        frames += [
            (f"{V}/engine/arg_utils.py", 1350, "create_engine_config"),
            (f"{V}/engine/arg_utils.py", 1206, "create_model_config"),
        ]
    else:
        frames.append(
            (f"{V}/engine/arg_utils.py", 1391, "create_engine_config")
        )
    frames.append((f"{S}/pydantic/_internal/_dataclasses.py", 121, "__init__"))
    return frames


def fail_api(frames: list[Frame], final: str) -> StartupFailed:
    api_log.raw(render_traceback(frames, final))
    return StartupFailed(final)


def validation_error(config_class: str, field_name: str | None, message: str, err_type: str,
                     input_repr: str, input_type: str) -> StartupFailed:
    body = f"1 validation error for {config_class}\n"
    if field_name:
        body += f"{field_name}\n"
    body += (f"  {message} [type={err_type}, input_value={input_repr}, input_type={input_type}]\n"
             f"    For further information visit https://errors.pydantic.dev/2.12/v/{err_type}")
    return fail_api(_api_config_frames(config_class), f"pydantic_core._pydantic_core.ValidationError: {body}")


def _engine_head() -> list[Frame]:
    V = _pkg_dir()
    return [
        (f"{V}/v1/engine/core.py", 857, "run_engine_core"),
        (f"{V}/v1/engine/core.py", 637, "__init__"),
    ]


def _engine_profile_frames() -> list[Frame]:
    V, S = _pkg_dir(), _site_dir()
    return [
        *_engine_head(),
        (f"{V}/v1/engine/core.py", 109, "__init__"),
        (f"{V}/v1/engine/core.py", 221, "_initialize_kv_caches"),
        (f"{V}/v1/executor/abstract.py", 126, "determine_available_memory"),
        (f"{V}/v1/executor/uniproc_executor.py", 75, "collective_rpc"),
        (f"{V}/v1/serial_utils.py", 479, "run_method"),
        (f"{S}/torch/utils/_contextlib.py", 120, "decorate_context"),
        (f"{V}/v1/worker/gpu_worker.py", 324, "determine_available_memory"),
        (f"{V}/v1/worker/gpu_model_runner.py", 4231, "profile_run"),
        (f"{S}/torch/utils/_contextlib.py", 120, "decorate_context"),
        (f"{V}/v1/worker/gpu_model_runner.py", 3940, "_dummy_run"),
    ]


def fail_engine(engine_frames: list[Frame], final: str) -> StartupFailed:
    """EngineCore dies during init: its logged traceback, then the API server's RuntimeError."""
    V, L = _pkg_dir(), _stdlib_dir()
    engine_log.error("core.py:866", "EngineCore failed to start.\n" + render_traceback(engine_frames, final))
    api_frames = [
        *_api_to_engine_client(),
        (f"{V}/entrypoints/openai/api_server.py", 213, "build_async_engine_client_from_engine_args"),
        (f"{V}/v1/engine/async_llm.py", 222, "from_vllm_config"),
        (f"{V}/v1/engine/async_llm.py", 141, "__init__"),
        (f"{V}/v1/engine/core_client.py", 121, "make_async_mp_client"),
        (f"{V}/v1/engine/core_client.py", 808, "__init__"),
        (f"{V}/v1/engine/core_client.py", 469, "__init__"),
        (f"{L}/contextlib.py", 144, "__exit__"),
        (f"{V}/v1/engine/utils.py", 934, "launch_core_engines"),
        (f"{V}/v1/engine/utils.py", 993, "wait_for_engine_startup"),
    ]
    return fail_api(
        api_frames,
        "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
    )


# ---------------------------------------------------------------- configuration


@dataclass
class EngineConfig:
    model: str
    served_names: list[str]
    revision: str | None
    facts: ModelFacts
    dtype: str
    max_model_len: int
    gpu_memory_utilization: float
    enforce_eager: bool
    trust_remote_code: bool
    enable_lora: bool
    max_lora_rank: int
    max_loras: int
    tensor_parallel_size: int
    kv_cache_dtype: str
    download_dir: str | None
    lora_modules: list = field(default_factory=list)
    failures: set[str] = field(default_factory=set)
    local_model: bool = False

    @property
    def torch_dtype(self) -> str:
        return {"auto": "bfloat16", "half": "float16", "float": "float32"}.get(self.dtype, self.dtype)


class Pacer:
    """Sleeps nominal L4 seconds times a scale, so a whole start takes VLLM_DOUBLE_START_SECONDS.

    The log prints the nominal (L4-like, guide B-12) durations; the wall time is scaled. The scale
    is set once the arguments are known (first start or cached, eager or compiled).
    """

    def __init__(self) -> None:
        self.scale = 0.0
        self.started = time.monotonic()
        self.rng = random.Random(os.getpid())

    def plan(self, nominal_total: float) -> None:
        self.scale = settings.start_seconds() / nominal_total if nominal_total > 0 else 0.0

    def nominal(self, seconds: float) -> float:
        return seconds * self.rng.uniform(0.92, 1.08)

    def spend(self, seconds: float) -> float:
        time.sleep(seconds * self.scale)
        return seconds

    def until_ready_time(self) -> None:
        """Never ready sooner than the configured start time (the jitter above may run short)."""
        left = settings.start_seconds() - (time.monotonic() - self.started)
        if left > 0:
            time.sleep(left)


PACER = Pacer()

# Nominal L4 durations of each phase (seconds), the ones run_engine spends below.
CONFIG_FETCH, ENGINE_INIT, DOWNLOAD_RATE = 1.5, 3.0, 85e6
LOAD_2_4B, LOAD_TAIL = 55.0, 1.2
DYNAMO, COMPILE, COMPILE_CACHED, GRAPHS = 7.5, 38.0, 6.0, 10.0
PROFILE, WARMUP = 2.5, 0.8


def nominal_start(args) -> float:
    """How long this start takes on an L4 (guide B-12), before any scaling."""
    facts = facts_for(args.model)
    weights = facts.weight_bytes({"auto": "bfloat16", "half": "float16", "float": "float32"}.get(args.dtype,
                                                                                               args.dtype))
    total = CONFIG_FETCH + ENGINE_INIT + LOAD_2_4B * facts.params_b / 2.4 + LOAD_TAIL + PROFILE + WARMUP
    if not is_local(args.model) and not is_downloaded(hub_cache(args.download_dir), args.model, args.revision, facts):
        total += weights / DOWNLOAD_RATE
    if not args.enforce_eager:
        total += DYNAMO + COMPILE + GRAPHS
    return total


def build_config(args) -> EngineConfig:
    """What `create_engine_config` resolves, with the checks that fail before the engine starts."""
    failures = settings.failures()
    model = args.model
    facts = facts_for(model)
    local_model = is_local(model)
    pacer = PACER
    pacer.plan(nominal_start(args))

    # Fetching config.json (and, with trust_remote_code, the model's configuration code).
    pacer.spend(CONFIG_FETCH)
    if "rope" in failures and not local_model and args.revision != PINNED_GOOD_REVISION:
        commit = resolve_commit(args.revision)
        modules = hf_home() / "modules" / "transformers_modules" / Path(*model.split("/")) / commit
        api_log.raw(
            f"A new version of the following files was downloaded from https://huggingface.co/{model}:\n"
            "- configuration_exaone.py\n"
            ". Make sure to double-check they do not contain any added malicious code. To avoid downloading "
            "new versions of the code file, you can pin a revision."
        )
        V, S = _pkg_dir(), _site_dir()
        frames = [
            *_api_config_frames("ModelConfig"),
            (f"{V}/config/model.py", 458, "__post_init__"),
            (f"{V}/transformers_utils/config.py", 623, "get_config"),
            (f"{V}/transformers_utils/config.py", 159, "parse"),
            (f"{S}/transformers/models/auto/configuration_auto.py", 1346, "from_pretrained"),
            (f"{S}/transformers/dynamic_module_utils.py", 604, "get_class_from_dynamic_module"),
            (f"{S}/transformers/dynamic_module_utils.py", 309, "get_class_in_module"),
            ("<frozen importlib._bootstrap_external>", 940, "exec_module"),
            ("<frozen importlib._bootstrap>", 241, "_call_with_frames_removed"),
            (f"{modules}/configuration_exaone.py", 20, "<module>"),
        ]
        raise fail_api(
            frames,
            "ImportError: cannot import name 'RopeParameters' from 'transformers.modeling_rope_utils' "
            f"({S}/transformers/modeling_rope_utils.py)",
        )

    derived = facts.max_position
    max_model_len = args.max_model_len if args.max_model_len is not None else derived
    if args.max_model_len is not None and args.max_model_len > derived and not settings.allow_long_max_model_len():
        message = (
            f"Value error, User-specified max_model_len ({args.max_model_len}) is greater than the derived "
            f"max_model_len (max_position_embeddings={float(derived)} or model_max_length=None in model's "
            "config.json). To allow overriding this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1. "
            "VLLM_ALLOW_LONG_MAX_MODEL_LEN must be used with extreme caution. If the model uses relative "
            "position encoding (RoPE), positions exceeding derived_max_model_len lead to nan. If the model "
            "uses absolute position encoding, positions exceeding derived_max_model_len will cause a CUDA "
            "array out-of-bounds error."
        )
        raise validation_error("ModelConfig", None, message, "value_error",
                               f"ArgsKwargs((), {{'model': '{model}', ...}})", "ArgsKwargs")
    if max_model_len < 1:
        raise validation_error("ModelConfig", "max_model_len", "Input should be greater than or equal to 1",
                               "greater_than_equal", str(max_model_len), "int")
    api_log.info("model.py:541", f"Resolved architecture: {facts.architecture}")
    api_log.info("model.py:1561", f"Using max model len {max_model_len}")

    util = args.gpu_memory_utilization
    if util > 1:
        raise validation_error("CacheConfig", "gpu_memory_utilization", "Input should be less than or equal to 1",
                               "less_than_equal", repr(util), "float")
    if util <= 0:
        raise validation_error("CacheConfig", "gpu_memory_utilization", "Input should be greater than 0",
                               "greater_than", repr(util), "float")
    if args.max_loras < 1:
        raise validation_error("LoRAConfig", "max_loras", "Input should be greater than or equal to 1",
                               "greater_than_equal", str(args.max_loras), "int")
    api_log.info("scheduler.py:231",
                 f"Chunked prefill is enabled with max_num_batched_tokens={MAX_NUM_BATCHED_TOKENS}.")
    if args.enforce_eager:
        api_log.warning("vllm.py:1012", "Enforce eager set, overriding optimization level to -O0")

    served = [n for n in (args.served_model_name or []) if n] or [model]
    return EngineConfig(
        model=model,
        served_names=served,
        revision=args.revision,
        facts=facts,
        dtype=args.dtype,
        max_model_len=max_model_len,
        gpu_memory_utilization=util,
        enforce_eager=bool(args.enforce_eager),
        trust_remote_code=bool(args.trust_remote_code),
        enable_lora=bool(args.enable_lora),
        max_lora_rank=args.max_lora_rank,
        max_loras=args.max_loras,
        tensor_parallel_size=args.tensor_parallel_size,
        kv_cache_dtype=args.kv_cache_dtype,
        download_dir=args.download_dir,
        lora_modules=list(args.lora_modules or []),
        failures=failures,
        local_model=local_model,
    )


# ---------------------------------------------------------------- the engine start


def _fmt_elapsed(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _engine_config_line(cfg: EngineConfig) -> str:
    mode = "NONE" if cfg.enforce_eager else "VLLM_COMPILE"
    graphs = "NONE" if cfg.enforce_eager else "FULL_AND_PIECEWISE"
    return (
        f"Initializing a V1 LLM engine (v{__version__}) with config: model='{cfg.model}', "
        f"speculative_config=None, tokenizer='{cfg.model}', skip_tokenizer_init=False, tokenizer_mode=auto, "
        f"revision={cfg.revision}, tokenizer_revision=None, trust_remote_code={cfg.trust_remote_code}, "
        f"dtype=torch.{cfg.torch_dtype}, max_seq_len={cfg.max_model_len}, download_dir={cfg.download_dir!r}, "
        f"load_format=auto, tensor_parallel_size={cfg.tensor_parallel_size}, pipeline_parallel_size=1, "
        f"data_parallel_size=1, disable_custom_all_reduce=False, quantization=None, "
        f"enforce_eager={cfg.enforce_eager}, kv_cache_dtype={cfg.kv_cache_dtype}, device_config=cuda, "
        f"structured_outputs_config=StructuredOutputsConfig(backend='auto', disable_fallback=False, "
        f"disable_any_whitespace=False, disable_additional_properties=False, reasoning_parser=''), "
        f"observability_config=ObservabilityConfig(show_hidden_metrics_for_version=None, "
        f"otlp_traces_endpoint=None, collect_detailed_traces=None), seed=0, "
        f"served_model_name={cfg.served_names[0]}, enable_prefix_caching=True, enable_chunked_prefill=True, "
        f"pooler_config=None, compilation_config={{'level': None, 'mode': <CompilationMode.{mode}: "
        f"{0 if cfg.enforce_eager else 3}>, 'backend': 'inductor', 'cudagraph_mode': <CUDAGraphMode.{graphs}: "
        f"{0 if cfg.enforce_eager else '(2, 1)'}>, 'max_cudagraph_capture_size': "
        f"{0 if cfg.enforce_eager else 512}}}"
    )


def _torch_warning(text: str) -> str:
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now)) + f".{int((now % 1) * 1e6):06d}"
    return f"W{stamp} {os.getpid()} {_site_dir()}/torch/_inductor/utils.py:1613] [0/0] {text}"


def run_engine(cfg: EngineConfig) -> None:
    """EngineCore start: load (download on first start), compile, profile, KV cache, graphs."""
    pacer = PACER
    V, S = _pkg_dir(), _site_dir()
    t_engine = 0.0

    engine_log.info("core.py:96", _engine_config_line(cfg))
    t_engine += pacer.spend(ENGINE_INIT)
    if cfg.tensor_parallel_size > GPU_COUNT:
        raise fail_engine(
            [*_engine_head(),
             (f"{V}/v1/engine/core.py", 93, "__init__"),
             (f"{V}/v1/executor/abstract.py", 101, "__init__"),
             (f"{V}/v1/executor/multiproc_executor.py", 104, "_init_executor")],
            f"AssertionError: please set tensor_parallel_size ({cfg.tensor_parallel_size}) to less than max "
            f"local gpu count ({GPU_COUNT})",
        )
    engine_log.info(
        "parallel_state.py:1325",
        "rank 0 in world size 1 is assigned as DP rank 0, PP rank 0, PCP rank 0, TP rank 0, EP rank 0",
    )
    engine_log.info("gpu_model_runner.py:3562", f"Starting to load model {cfg.model}...")
    engine_log.info(
        "cuda.py:351",
        "Using FLASH_ATTN attention backend out of potential backends: "
        "('FLASH_ATTN', 'FLASHINFER', 'TRITON_ATTN', 'FLEX_ATTENTION')",
    )
    if cfg.enable_lora:
        engine_log.info("punica_selector.py:20", "Using PunicaWrapperGPU.")

    facts = cfg.facts
    weights = facts.weight_bytes(cfg.torch_dtype)
    load_start = 0.0
    cache = hub_cache(cfg.download_dir)
    if not cfg.local_model:
        engine_log.info("weight_utils.py:527", "Using model weights format ['*.safetensors']")
        if not is_downloaded(cache, cfg.model, cfg.revision, facts):
            # ~85 MB/s from the Hub to a GCP VM: 5 GB in about a minute (guide B-12).
            spent = pacer.spend(pacer.nominal(weights / DOWNLOAD_RATE))
            load_start += spent
            mark_downloaded(cache, cfg.model, cfg.revision, facts)
            engine_log.info(
                "weight_utils.py:487", f"Time spent downloading weights for {cfg.model}: {spent:.6f} seconds"
            )

    if weights + NON_TORCH > GPU_TOTAL_MIB * MiB:
        raise fail_engine(
            [*_engine_head(),
             (f"{V}/v1/worker/gpu_model_runner.py", 3600, "load_model")],
            _cuda_oom(2 * GiB, free=int(0.4 * GiB), in_use=GPU_TOTAL_MIB * MiB - int(1.2 * GiB)),
        )

    shard_time = pacer.nominal(LOAD_2_4B * facts.params_b / 2.4) / facts.shards
    loaded = 0.0
    engine_log.raw(
        f"Loading safetensors checkpoint shards:   0% Completed | 0/{facts.shards} [00:00<?, ?it/s]"
    )
    for i in range(1, facts.shards + 1):
        loaded += pacer.spend(shard_time)
        pct = int(100 * i / facts.shards)
        remaining = shard_time * (facts.shards - i)
        engine_log.raw(
            f"Loading safetensors checkpoint shards: {pct:3d}% Completed | {i}/{facts.shards} "
            f"[{_fmt_elapsed(loaded)}<{_fmt_elapsed(remaining)}, {shard_time:.2f}s/it]"
        )
    engine_log.raw("")
    engine_log.info("default_loader.py:291", f"Loading weights took {loaded:.2f} seconds")
    load_total = load_start + loaded + pacer.spend(LOAD_TAIL)
    engine_log.info(
        "gpu_model_runner.py:3659",
        f"Model loading took {weights / GiB:.2f} GiB memory and {load_total:.6f} seconds",
    )

    if "hang" in cfg.failures:
        # B-12's "no answer after 5 minutes": the engine never gets past this point.
        while True:
            time.sleep(3600)

    compile_total = 0.0
    if not cfg.enforce_eager:
        key = hashlib.sha256(
            f"{cfg.model}|{cfg.revision}|{cfg.torch_dtype}|{cfg.enable_lora}|{__version__}".encode()
        ).hexdigest()[:10]
        cache_dir = vllm_cache_root() / "torch_compile_cache" / key / "rank_0_0" / "backbone"
        engine_log.info("backends.py:643", f"Using cache directory: {cache_dir} for vLLM's torch.compile")
        dynamo = pacer.spend(pacer.nominal(DYNAMO))
        engine_log.info("backends.py:703", f"Dynamo bytecode transform time: {dynamo:.2f} s")
        compile_total += dynamo
        if "sm" in cfg.failures or settings.gpu_sms() < INDUCTOR_MIN_SMS:
            # Guide B-10: the L4's 58 SMs are below inductor's max_autotune_gemm threshold (68).
            engine_log.raw(_torch_warning("Not enough SMs to use max_autotune_gemm mode"))
            pacer.spend(6.0)
            raise fail_engine(
                [*_engine_profile_frames(),
                 (f"{V}/compilation/decorators.py", 439, "__call__"),
                 (f"{S}/torch/_dynamo/eval_frame.py", 845, "compile_wrapper")],
                "torch._inductor.exc.InductorError: RuntimeError: Not enough SMs to use max_autotune_gemm mode\n"
                "\n"
                "Set TORCHDYNAMO_VERBOSE=1 for the internal stack trace (please do this especially if you're "
                'reporting a bug to PyTorch). For even more developer context, set TORCH_LOGS="+dynamo"',
            )
        marker = cache_dir / "double-compiled"
        rng = f"(1, {MAX_NUM_BATCHED_TOKENS})"
        if marker.is_file():
            took = pacer.spend(pacer.nominal(COMPILE_CACHED))
            engine_log.info(
                "backends.py:218",
                f"Directly load the compiled graph(s) for compile range {rng} from the cache, took {took:.3f} s",
            )
        else:
            engine_log.info("backends.py:261", f"Cache the graph of compile range {rng} for later use")
            took = pacer.spend(pacer.nominal(COMPILE))
            engine_log.info("backends.py:278", f"Compiling a graph for compile range {rng} takes {took:.2f} s")
            try:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text("compiled by the vLLM test double\n")
            except OSError:
                pass
        compile_total += took
        engine_log.info("monitor.py:34", f"torch.compile takes {compile_total:.2f} s in total")

    # Profiling run, then the KV cache that is left (the arithmetic behind guide B-4).
    profile = pacer.spend(PROFILE)
    if "oom" in cfg.failures:
        raise fail_engine(
            [*_engine_profile_frames(),
             (f"{S}/torch/nn/modules/module.py", 1775, "_wrapped_call_impl"),
             (f"{S}/torch/nn/modules/module.py", 1786, "_call_impl"),
             (f"{V}/model_executor/layers/activation.py", 123, "forward_native")],
            _cuda_oom(int(1.95 * GiB), free=int(1.12 * GiB), in_use=int(20.91 * GiB)),
        )
    budget = int(cfg.gpu_memory_utilization * GPU_TOTAL_MIB * MiB)
    used = weights + ACTIVATION_PEAK + NON_TORCH + (0 if cfg.enforce_eager else CUDA_GRAPH_POOL)
    available = budget - used
    engine_log.info("gpu_worker.py:375", f"Available KV cache memory: {available / GiB:.2f} GiB")
    per_token = facts.kv_bytes_per_token(cfg.kv_cache_dtype)
    kv_frames = [
        *_engine_head(),
        (f"{V}/v1/engine/core.py", 109, "__init__"),
        (f"{V}/v1/engine/core.py", 235, "_initialize_kv_caches"),
        (f"{V}/v1/core/kv_cache_utils.py", 1264, "get_kv_cache_configs"),
        (f"{V}/v1/core/kv_cache_utils.py", 701, "check_enough_kv_cache_memory"),
    ]
    if available <= 0:
        raise fail_engine(
            kv_frames,
            "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` "
            "when initializing the engine. See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ "
            "for more details.",
        )
    blocks = available // (per_token * BLOCK_SIZE)
    tokens = blocks * BLOCK_SIZE
    needed = math.ceil(cfg.max_model_len / BLOCK_SIZE) * BLOCK_SIZE * per_token
    if needed > available:
        estimate = (f"Based on the available memory, the estimated maximum model length is {tokens}. "
                    if tokens > 0 else "")
        raise fail_engine(
            kv_frames,
            f"ValueError: To serve at least one request with the models's max seq len ({cfg.max_model_len}), "
            f"({needed / GiB:.2f} GiB KV cache is needed, which is larger than the available KV cache memory "
            f"({available / GiB:.2f} GiB). {estimate}Try increasing `gpu_memory_utilization` or decreasing "
            "`max_model_len` when initializing the engine. See "
            "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.",
        )
    engine_log.info("kv_cache_utils.py:1291", f"GPU KV cache size: {tokens:,} tokens")
    engine_log.info(
        "kv_cache_utils.py:1296",
        f"Maximum concurrency for {cfg.max_model_len:,} tokens per request: {tokens / cfg.max_model_len:.2f}x",
    )
    graphs = 0.0
    if cfg.enforce_eager:
        engine_log.warning(
            "gpu_model_runner.py:4506",
            "Skipping CUDA graph capture. To turn on CUDA graph capture, ensure `cudagraph_mode` was not "
            "manually set to `NONE`",
        )
    else:
        for label, count, share in (("mixed prefill-decode, PIECEWISE", 67, 0.65), ("decode, FULL", 35, 0.35)):
            spent = pacer.spend(pacer.nominal(GRAPHS * share))
            engine_log.raw(
                f"Capturing CUDA graphs ({label}): 100%|██████████| {count}/{count} "
                f"[{_fmt_elapsed(spent)}<00:00, {count / spent:5.2f}it/s]"
            )
            graphs += spent
        engine_log.info(
            "gpu_model_runner.py:4587",
            f"Graph capturing finished in {round(graphs):.0f} secs, took {CUDA_GRAPH_POOL / GiB:.2f} GiB",
        )
    t_engine += profile + compile_total + graphs + pacer.spend(WARMUP)
    engine_log.info("core.py:259", f"init engine (profile, create kv cache, warmup model) took {t_engine:.2f} seconds")


def _cuda_oom(tried: int, free: int, in_use: int) -> str:
    total = 22.05
    allocated = in_use - int(0.28 * GiB)
    return (
        f"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {tried / GiB:.2f} GiB. GPU 0 has a total "
        f"capacity of {total:.2f} GiB of which {free / GiB:.2f} GiB is free. Including non-PyTorch memory, this "
        f"process has {in_use / GiB:.2f} GiB memory in use. Of the allocated memory {allocated / GiB:.2f} GiB is "
        "allocated by PyTorch, and 291.17 MiB is reserved by PyTorch but unallocated. If reserved but unallocated "
        "memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  "
        "See documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
    )


# ---------------------------------------------------------------- static LoRA adapters


@dataclass
class LoadedLora:
    name: str
    path: str
    base_model_name: str | None


def load_static_loras(cfg: EngineConfig) -> list[LoadedLora]:
    """`init_static_loras`: each --lora-modules entry goes through the engine's add_lora."""
    V = _pkg_dir()
    loaded: list[LoadedLora] = []
    cache = hub_cache(None)
    for lora in cfg.lora_modules:
        error: str | None = None
        if not cfg.enable_lora:
            error = "LoRA is not enabled. Use --enable-lora to enable LoRA."
            engine_frames = [
                (f"{V}/v1/engine/core.py", 1037, "_handle_client_request"),
                (f"{V}/v1/engine/core.py", 531, "add_lora"),
                (f"{V}/v1/executor/abstract.py", 148, "add_lora"),
                (f"{V}/v1/executor/uniproc_executor.py", 75, "collective_rpc"),
                (f"{V}/v1/serial_utils.py", 479, "run_method"),
                (f"{V}/v1/worker/gpu_worker.py", 611, "add_lora"),
                (f"{V}/v1/worker/lora_model_runner_mixin.py", 243, "add_lora"),
                (f"{V}/v1/worker/lora_model_runner_mixin.py", 226, "_ensure_lora_enabled"),
            ]
            engine_log.error("core.py:1044", "Invocation of add_lora method failed\n"
                             + render_traceback(engine_frames, f"RuntimeError: {error}"))
        elif is_local(lora.path) and not os.path.isdir(os.path.expanduser(lora.path)):
            error = f"Loading lora {lora.name} failed: No adapter found for {lora.path}"
        else:
            rank = adapter_rank(lora.path) if is_local(lora.path) else DEFAULT_ADAPTER_RANK
            if rank > cfg.max_lora_rank:
                error = f"LoRA rank {rank} is greater than max_lora_rank {cfg.max_lora_rank}."
        if error is not None:
            frames = [
                *_api_front(),
                (f"{V}/entrypoints/openai/api_server.py", 1428, "run_server_worker"),
                (f"{V}/entrypoints/openai/api_server.py", 1102, "init_app_state"),
                (f"{V}/entrypoints/openai/models/serving.py", 125, "init_static_loras"),
            ]
            raise fail_api(frames, f"ValueError: Call to add_lora method failed: {error}")
        if not is_local(lora.path):
            mark_adapter(cache, lora.path)
        api_log.info(
            "serving.py:213", f"Loaded new LoRA adapter: name '{lora.name}', path '{lora.path}'"
        )
        loaded.append(LoadedLora(lora.name, lora.path, lora.base_model_name))
    return loaded
