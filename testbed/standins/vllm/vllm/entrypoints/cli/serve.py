"""The `serve` subcommand."""

from __future__ import annotations

import argparse
import sys

from vllm.entrypoints.openai.cli_args import make_arg_parser, validate_parsed_serve_args

SERVE_DESCRIPTION = (
    "Launch a local OpenAI-compatible API server to serve LLM completions via HTTP. "
    "(Test double: no GPU is used; see the package README for its knobs.)"
)


def cmd(args: argparse.Namespace) -> None:
    # If model is specified in CLI (as positional arg), it takes precedence
    if getattr(args, "model_tag", None) is not None:
        args.model = args.model_tag

    from vllm.entrypoints.openai.api_server import run_server

    sys.exit(run_server(args))


def validate(args: argparse.Namespace) -> None:
    validate_parsed_serve_args(args)


def subparser_init(subparsers) -> argparse.ArgumentParser:
    serve_parser = subparsers.add_parser(
        "serve",
        help="Launch a local OpenAI-compatible API server to serve LLM completions via HTTP.",
        description=SERVE_DESCRIPTION,
        usage="vllm serve [model_tag] [options]",
    )
    make_arg_parser(serve_parser)
    serve_parser.set_defaults(dispatch_function=cmd)
    return serve_parser
