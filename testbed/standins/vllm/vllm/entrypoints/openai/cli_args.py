"""Command line arguments of vLLM's OpenAI-compatible server (`vllm serve`), as in vLLM 0.15.

LoRAParserAction is the real one, so `--lora-modules` accepts `name=path` or a JSON object with
name, path and optional base_model_name, and fails with the real texts:
`Invalid JSON format for --lora-modules: ITEM` / `Invalid fields for --lora-modules: ITEM - ...`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass

from vllm.engine.arg_utils import add_engine_args, optional_type


@dataclass
class LoRAModulePath:
    name: str
    path: str
    base_model_name: str | None = None


class LoRAParserAction(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[str] | None,
        option_string: str | None = None,
    ):
        if values is None:
            values = []
        if isinstance(values, str):
            raise TypeError("Expected values to be a list")

        lora_list: list[LoRAModulePath] = []
        for item in values:
            if item in [None, ""]:  # Skip if item is None or empty string
                continue
            if "=" in item and "," not in item:  # Old format: name=path
                name, path = item.split("=")
                lora_list.append(LoRAModulePath(name, path))
            else:  # Assume JSON format
                try:
                    lora_dict = json.loads(item)
                    lora = LoRAModulePath(**lora_dict)
                    lora_list.append(lora)
                except json.JSONDecodeError:
                    parser.error(f"Invalid JSON format for --lora-modules: {item}")
                except TypeError as e:
                    parser.error(f"Invalid fields for --lora-modules: {item} - {str(e)}")
        setattr(namespace, self.dest, lora_list)


def _add_frontend_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(title="Frontend", description="Arguments for the OpenAI-compatible frontend server.")
    g.add_argument("--host", type=optional_type(str), default=None, help="Host name.")
    g.add_argument("--port", type=int, default=8000, help="Port number.")
    g.add_argument("--uds", type=optional_type(str), default=None)
    g.add_argument(
        "--uvicorn-log-level",
        type=str,
        choices=sorted(["debug", "info", "warning", "error", "critical", "trace"]),
        default="info",
    )
    g.add_argument("--disable-uvicorn-access-log", action=argparse.BooleanOptionalAction, default=False)
    g.add_argument("--allow-credentials", action=argparse.BooleanOptionalAction, default=False)
    g.add_argument("--allowed-origins", type=json.loads, default=["*"])
    g.add_argument("--allowed-methods", type=json.loads, default=["*"])
    g.add_argument("--allowed-headers", type=json.loads, default=["*"])
    g.add_argument(
        "--api-key",
        type=optional_type(str),
        nargs="+",
        default=None,
        help="If provided, the server will require one of these keys to be presented in the header.",
    )
    g.add_argument(
        "--lora-modules",
        type=optional_type(str),
        nargs="+",
        action=LoRAParserAction,
        default=None,
        help="LoRA modules configurations in either 'name=path' format or JSON format or JSON list format.",
    )
    g.add_argument("--chat-template", type=optional_type(str), default=None)
    g.add_argument("--response-role", type=str, default="assistant")
    g.add_argument("--ssl-keyfile", type=optional_type(str), default=None)
    g.add_argument("--ssl-certfile", type=optional_type(str), default=None)
    g.add_argument("--root-path", type=optional_type(str), default=None)
    g.add_argument("--middleware", type=str, action="append", default=[])
    g.add_argument("--enable-request-id-headers", action=argparse.BooleanOptionalAction, default=False)
    g.add_argument("--enable-auto-tool-choice", action=argparse.BooleanOptionalAction, default=False)
    g.add_argument("--tool-call-parser", type=optional_type(str), default=None)
    g.add_argument("--max-log-len", type=optional_type(int), default=None)
    g.add_argument("--disable-fastapi-docs", action=argparse.BooleanOptionalAction, default=False)
    g.add_argument("--enable-prompt-tokens-details", action=argparse.BooleanOptionalAction, default=False)
    g.add_argument("--enable-force-include-usage", action=argparse.BooleanOptionalAction, default=False)
    g.add_argument("--enable-log-outputs", action=argparse.BooleanOptionalAction, default=False)


def make_arg_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument(
        "model_tag",
        type=str,
        nargs="?",
        help="The model tag to serve (optional if specified in config)",
    )
    parser.add_argument("--headless", action="store_true", default=False)
    parser.add_argument("--api-server-count", "-asc", type=int, default=None)
    _add_frontend_args(parser)
    add_engine_args(parser)
    return parser


def validate_parsed_serve_args(args: argparse.Namespace) -> None:
    """Quick checks for model serve args that raise prior to loading."""
    if hasattr(args, "subparser") and args.subparser != "serve":
        return
    if args.enable_auto_tool_choice and not args.tool_call_parser:
        raise TypeError("Error: --enable-auto-tool-choice requires --tool-call-parser")
    if args.enable_log_outputs and not args.enable_log_requests:
        raise TypeError("Error: --enable-log-outputs requires --enable-log-requests")
