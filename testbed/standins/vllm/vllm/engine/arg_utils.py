"""Engine arguments of `vllm serve` (vLLM 0.15 names, types, choices and defaults).

Only the arguments a deployment like ours plausibly passes are registered; anything else is
rejected by argparse ("unrecognized arguments"), which is what real vLLM does with typos.
Type conversion helpers are the real ones, so error texts match.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

# ModelConfig.model default in recent vLLM.
DEFAULT_MODEL = "Qwen/Qwen3-0.6B"

MODEL_DTYPES = ["auto", "half", "float16", "bfloat16", "float", "float32"]
CACHE_DTYPES = ["auto", "bfloat16", "fp8", "fp8_ds_mla", "fp8_e4m3", "fp8_e5m2", "fp8_inc"]
MAX_LORA_RANKS = [1, 8, 16, 32, 64, 128, 256, 320, 512]
BLOCK_SIZES = [1, 8, 16, 32, 64, 128, 256]


def parse_type(return_type: Callable[[str], T]) -> Callable[[str], T]:
    def _parse_type(val: str) -> T:
        try:
            return return_type(val)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"Value {val} cannot be converted to {return_type}.") from e

    return _parse_type


def optional_type(return_type: Callable[[str], T]) -> Callable[[str], T | None]:
    def _optional_type(val: str) -> T | None:
        if val == "" or val == "None":
            return None
        return parse_type(return_type)(val)

    return _optional_type


def human_readable_int(value: str) -> int:
    """Parse human-readable integers like '1k', '2M', etc.

    Including decimal values with decimal multipliers: '1k' -> 1,000, '1K' -> 1,024,
    '25.6k' -> 25,600.
    """
    value = value.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgGtT])", value)
    if match:
        decimal_multiplier = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
        binary_multiplier = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
        number, suffix = match.groups()
        if suffix in decimal_multiplier:
            return int(float(number) * decimal_multiplier[suffix])
        try:
            return int(number) * binary_multiplier[suffix]
        except ValueError as e:
            raise argparse.ArgumentTypeError(
                "Decimals are not allowed "
                f"with binary suffixes like {suffix}. Did you mean to use "
                f"{number}{suffix.lower()} instead?"
            ) from e
    return int(value)


def _bool(group: Any, *flags: str, default: bool | None = False, help: str = "") -> None:
    group.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, help=help)


def add_engine_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    model = parser.add_argument_group(title="ModelConfig")
    model.add_argument("--model", type=str, default=DEFAULT_MODEL, help="Name or path of the model.")
    model.add_argument("--tokenizer", type=optional_type(str), default=None)
    model.add_argument("--tokenizer-mode", type=str, default="auto")
    _bool(model, "--trust-remote-code", help="Trust remote code (e.g., from HuggingFace).")
    model.add_argument("--dtype", type=str, choices=sorted(MODEL_DTYPES), default="auto")
    model.add_argument("--seed", type=optional_type(int), default=None)
    model.add_argument("--revision", type=optional_type(str), default=None)
    model.add_argument("--code-revision", type=optional_type(str), default=None)
    model.add_argument("--tokenizer-revision", type=optional_type(str), default=None)
    model.add_argument("--max-model-len", type=optional_type(human_readable_int), default=None)
    model.add_argument("--quantization", "-q", type=optional_type(str), default=None)
    _bool(model, "--enforce-eager", help="Whether to always use eager-mode PyTorch.")
    model.add_argument("--max-logprobs", type=int, default=20)
    _bool(model, "--disable-sliding-window")
    _bool(model, "--skip-tokenizer-init")
    model.add_argument("--served-model-name", type=optional_type(str), nargs="+", default=None)
    model.add_argument("--hf-token", type=str, nargs="?", const=True, default=None)
    model.add_argument("--generation-config", type=str, default="auto")

    load = parser.add_argument_group(title="LoadConfig")
    load.add_argument("--load-format", type=str, default="auto")
    load.add_argument("--download-dir", type=optional_type(str), default=None)

    parallel = parser.add_argument_group(title="ParallelConfig")
    parallel.add_argument("--pipeline-parallel-size", "-pp", type=int, default=1)
    parallel.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    parallel.add_argument("--data-parallel-size", "-dp", type=int, default=1)
    parallel.add_argument("--distributed-executor-backend", type=optional_type(str), default=None)
    _bool(parallel, "--disable-custom-all-reduce")

    cache = parser.add_argument_group(title="CacheConfig")
    cache.add_argument(
        "--block-size", type=optional_type(int), choices=[*BLOCK_SIZES, None], default=None
    )
    cache.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    cache.add_argument("--swap-space", type=float, default=4)
    cache.add_argument("--kv-cache-dtype", type=str, choices=sorted(CACHE_DTYPES), default="auto")
    _bool(cache, "--enable-prefix-caching", default=None)
    cache.add_argument("--cpu-offload-gb", type=float, default=0)

    lora = parser.add_argument_group(title="LoRAConfig")
    lora.add_argument(
        "--enable-lora", action=argparse.BooleanOptionalAction, help="If True, enable handling of LoRA adapters."
    )
    lora.add_argument("--max-loras", type=int, default=1)
    lora.add_argument("--max-lora-rank", type=int, choices=MAX_LORA_RANKS, default=16)
    lora.add_argument("--lora-dtype", type=optional_type(str), default="auto")
    lora.add_argument("--max-cpu-loras", type=optional_type(int), default=None)
    _bool(lora, "--fully-sharded-loras")
    lora.add_argument("--default-mm-loras", type=optional_type(json.loads), default=None)

    scheduler = parser.add_argument_group(title="SchedulerConfig")
    scheduler.add_argument("--max-num-batched-tokens", type=optional_type(human_readable_int), default=None)
    scheduler.add_argument("--max-num-seqs", type=optional_type(int), default=None)
    _bool(scheduler, "--enable-chunked-prefill", default=None)
    _bool(scheduler, "--async-scheduling", default=None)

    vllm_group = parser.add_argument_group(title="VllmConfig")
    vllm_group.add_argument("--compilation-config", "-O", type=str, default=None)

    parser.add_argument("--disable-log-stats", action="store_true", help="Disable logging statistics.")
    parser.add_argument(
        "--enable-log-requests", action=argparse.BooleanOptionalAction, default=False, help="Enable logging requests."
    )
    parser.add_argument(
        "--disable-log-requests",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="[DEPRECATED] Disable logging requests.",
    )
    return parser
