"""The stand-in's command line: `vllm serve MODEL [options]`, written for this project.

Only behaviour is taken from vLLM, from its documentation, never its code. Sources:

- `vllm serve` CLI reference (https://docs.vllm.ai/en/latest/cli/serve.html) and the engine
  arguments page (https://docs.vllm.ai/en/latest/configuration/engine_args.html): the option
  names, value types, choices and defaults registered below; the model as a positional argument
  with `--model` still accepted; `--max-model-len` and `--max-num-batched-tokens` taking
  human-readable sizes ("1k" = 1000, "1K" = 1024, "25.6k" = 25600; decimals only with the
  decimal letters); option names written with `_` instead of `-` being accepted.
- OpenAI-compatible server page (https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html):
  `--api-key` (one or more keys) and VLLM_API_KEY, `--served-model-name`.
- LoRA page (https://docs.vllm.ai/en/latest/features/lora.html): `--lora-modules` takes one word per
  adapter, either `name=path` or a JSON object with `name`, `path` and optional `base_model_name`.
- What a bad argument looks like is what vLLM's argparse-based CLI prints (it is visible in any
  journal of a failed start, and guide B-3 quotes it): `usage: ...` then `vllm serve: error: ...`,
  exit code 2; `vllm: error: unrecognized arguments: ...` for unknown options; a broken
  `--lora-modules` word gives `Invalid JSON format for --lora-modules: WORD`, a JSON object with
  other keys `Invalid fields for --lora-modules: WORD - <why>`.

argparse (the standard library) does the parsing; the tables and checks around it are ours.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

from vllm import __version__

USAGE = "vllm serve [model_tag] [options]"
# The model `vllm serve` loads when none is named (engine arguments page, ModelConfig.model).
DEFAULT_MODEL = "Qwen/Qwen3-0.6B"

DTYPES = ("auto", "bfloat16", "float", "float16", "float32", "half")
KV_CACHE_DTYPES = ("auto", "bfloat16", "fp8", "fp8_ds_mla", "fp8_e4m3", "fp8_e5m2", "fp8_inc")
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
BLOCK_SIZES = (1, 8, 16, 32, 64, 128, 256)
UVICORN_LEVELS = ("critical", "debug", "error", "info", "trace", "warning")


@dataclass(frozen=True)
class Adapter:
    """One `--lora-modules` entry."""

    name: str
    path: str
    base_model_name: str | None = None


class BadAdapter(ValueError):
    """A `--lora-modules` word vLLM would refuse; the message is the CLI's error line."""


_ADAPTER_KEYS = ("name", "path", "base_model_name")


def adapter_from_word(word: str) -> Adapter:
    """`name=path` (a word with `=` and no comma) or a JSON object, as the LoRA page describes."""
    if "=" in word and "," not in word:
        name, _, path = word.partition("=")
        if "=" in path:  # vLLM splits on every `=` and refuses more than one
            raise BadAdapter(f"Invalid fields for --lora-modules: {word} - too many values to unpack (expected 2)")
        return Adapter(name, path)
    try:
        value = json.loads(word)
    except ValueError:
        raise BadAdapter(f"Invalid JSON format for --lora-modules: {word}") from None
    if not isinstance(value, dict):
        raise BadAdapter(f"Invalid fields for --lora-modules: {word} - LoRAModulePath() argument after ** must "
                         f"be a mapping, not {type(value).__name__}")
    unknown = [key for key in value if key not in _ADAPTER_KEYS]
    if unknown:
        raise BadAdapter(f"Invalid fields for --lora-modules: {word} - LoRAModulePath.__init__() got an unexpected "
                         f"keyword argument '{unknown[0]}'")
    absent = [key for key in _ADAPTER_KEYS[:2] if key not in value]
    if absent:
        names = " and ".join(f"'{key}'" for key in absent)
        plural = "s" if len(absent) > 1 else ""
        raise BadAdapter(f"Invalid fields for --lora-modules: {word} - LoRAModulePath.__init__() missing "
                         f"{len(absent)} required positional argument{plural}: {names}")
    return Adapter(value["name"], value["path"], value.get("base_model_name"))


_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_BINARY = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def size(text: str) -> int:
    """A token count such as 8192, 8k (8000) or 8K (8192); "1.5K" is refused (binary needs whole numbers)."""
    text = text.strip()
    letter = text[-1:] if text[-1:] in (*_DECIMAL, *_BINARY) else ""
    number = text[: len(text) - len(letter)]
    if not letter:
        return int(number)
    if letter in _DECIMAL:
        return int(float(number) * _DECIMAL[letter])
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}': a binary suffix ({letter}) needs a whole number; "
                                         f"did you mean {number}{letter.lower()}?")
    return int(number) * _BINARY[letter]


def maybe(kind):
    """Values that may be given as "None" (or empty) to mean unset, as vLLM's optional options allow."""
    def convert(text: str):
        return None if text in ("", "None") else kind(text)
    convert.__name__ = getattr(kind, "__name__", "value")
    return convert


# name -> (type or "flag", default, extra argparse keywords). Flags get --X/--no-X.
SERVE_OPTIONS: dict[str, tuple] = {
    # frontend: the OpenAI-compatible server
    "host": (maybe(str), None, {}),
    "port": (int, 8000, {}),
    "uds": (maybe(str), None, {}),
    "uvicorn-log-level": (str, "info", {"choices": UVICORN_LEVELS}),
    "disable-uvicorn-access-log": ("flag", False, {}),
    "allow-credentials": ("flag", False, {}),
    "allowed-origins": (json.loads, ["*"], {}),
    "allowed-methods": (json.loads, ["*"], {}),
    "allowed-headers": (json.loads, ["*"], {}),
    "api-key": (maybe(str), None, {"nargs": "+"}),
    "lora-modules": (maybe(str), None, {"nargs": "+"}),
    "chat-template": (maybe(str), None, {}),
    "response-role": (str, "assistant", {}),
    "ssl-keyfile": (maybe(str), None, {}),
    "ssl-certfile": (maybe(str), None, {}),
    "root-path": (maybe(str), None, {}),
    "middleware": (str, [], {"action": "append"}),
    "enable-request-id-headers": ("flag", False, {}),
    "enable-auto-tool-choice": ("flag", False, {}),
    "tool-call-parser": (maybe(str), None, {}),
    "max-log-len": (maybe(int), None, {}),
    "disable-fastapi-docs": ("flag", False, {}),
    "headless": ("flag", False, {}),
    "api-server-count": (int, None, {"aliases": ("-asc",)}),
    # model
    "model": (str, DEFAULT_MODEL, {}),
    "tokenizer": (maybe(str), None, {}),
    "tokenizer-mode": (str, "auto", {}),
    "trust-remote-code": ("flag", False, {}),
    "dtype": (str, "auto", {"choices": DTYPES}),
    "seed": (maybe(int), None, {}),
    "revision": (maybe(str), None, {}),
    "code-revision": (maybe(str), None, {}),
    "tokenizer-revision": (maybe(str), None, {}),
    "max-model-len": (maybe(size), None, {}),
    "quantization": (maybe(str), None, {"aliases": ("-q",)}),
    "enforce-eager": ("flag", False, {}),
    "max-logprobs": (int, 20, {}),
    "served-model-name": (maybe(str), None, {"nargs": "+"}),
    "hf-token": (str, None, {"nargs": "?", "const": True}),
    "generation-config": (str, "auto", {}),
    # loading and parallelism
    "load-format": (str, "auto", {}),
    "download-dir": (maybe(str), None, {}),
    "pipeline-parallel-size": (int, 1, {"aliases": ("-pp",)}),
    "tensor-parallel-size": (int, 1, {"aliases": ("-tp",)}),
    "data-parallel-size": (int, 1, {"aliases": ("-dp",)}),
    # KV cache
    "block-size": (maybe(int), None, {"choices": (*BLOCK_SIZES, None)}),
    "gpu-memory-utilization": (float, 0.9, {}),
    "swap-space": (float, 4, {}),
    "kv-cache-dtype": (str, "auto", {"choices": KV_CACHE_DTYPES}),
    "enable-prefix-caching": ("flag", None, {}),
    "cpu-offload-gb": (float, 0, {}),
    # LoRA
    "enable-lora": ("flag", None, {}),
    "max-loras": (int, 1, {}),
    "max-lora-rank": (int, 16, {"choices": LORA_RANKS}),
    "lora-dtype": (maybe(str), "auto", {}),
    "max-cpu-loras": (maybe(int), None, {}),
    # scheduler and the rest
    "max-num-batched-tokens": (maybe(size), None, {}),
    "max-num-seqs": (maybe(int), None, {}),
    "enable-chunked-prefill": ("flag", None, {}),
    "compilation-config": (str, None, {"aliases": ("-O",)}),
    "disable-log-stats": ("flag", False, {}),
    "enable-log-requests": ("flag", False, {}),
    "disable-log-requests": ("flag", True, {}),
}


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_tag", nargs="?", default=None, help="the model to serve")
    for name, (kind, default, extra) in SERVE_OPTIONS.items():
        extra = dict(extra)
        names = [f"--{name}", *extra.pop("aliases", ())]
        if kind == "flag":
            parser.add_argument(*names, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(*names, type=kind, default=default, **extra)


def dashes(argv: list[str]) -> list[str]:
    """`--max_model_len=8k` -> `--max-model-len=8k`: option names may use `_` for `-`; values stay as given."""
    out = []
    for word in argv:
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            word = "--" + name.replace("_", "-") + eq + value
        out.append(word)
    return out


def top_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """`vllm` with its `serve` subcommand; returns (vllm, vllm serve)."""
    top = argparse.ArgumentParser(prog="vllm", description="vLLM command line (stand-in without a GPU)")
    top.add_argument("-v", "--version", action="version", version=__version__)
    commands = top.add_subparsers(dest="command")
    serve = commands.add_parser("serve", usage=USAGE, help="start the OpenAI-compatible server",
                                description="Start the OpenAI-compatible HTTP server (stand-in: no GPU is used).")
    _add_options(serve)
    return top, serve


def finish(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Checks done once the words are parsed: adapters, option pairs; the positional model wins over --model."""
    try:
        args.lora_modules = [adapter_from_word(w) for w in args.lora_modules or [] if w]
    except BadAdapter as err:
        parser.error(str(err))
    if args.enable_auto_tool_choice and not args.tool_call_parser:
        raise SystemExit("Error: --enable-auto-tool-choice requires --tool-call-parser")
    if args.model_tag:
        args.model = args.model_tag
    return args


def defaults() -> dict:
    """Every serve option at its default (the "non-default args" log line leaves these out)."""
    _, serve = top_parser()
    return vars(serve.parse_args([]))


def main(argv: list[str] | None = None) -> None:
    """The `vllm` console script."""
    top, serve = top_parser()
    args = top.parse_args(dashes(sys.argv[1:] if argv is None else argv))
    if args.command != "serve":
        top.print_help()
        return
    from vllm._double.server import serve as run

    sys.exit(run(finish(args, serve)))


def main_module(argv: list[str] | None = None) -> None:
    """`python -m vllm.entrypoints.openai.api_server --model M ...`: the older way to start the server."""
    parser = argparse.ArgumentParser(prog="api_server.py", description="vLLM OpenAI-compatible server (stand-in)")
    _add_options(parser)
    args = finish(parser.parse_args(dashes(sys.argv[1:] if argv is None else argv)), parser)
    from vllm._double.server import serve as run

    sys.exit(run(args))
