"""The `vllm` console script (same entry point as the real package)."""

from __future__ import annotations

from vllm import __version__
from vllm.entrypoints.cli import serve
from vllm.utils.argparse_utils import FlexibleArgumentParser

EPILOG = (
    "For full list:            vllm [subcommand] --help=all\n"
    "For a section:            vllm [subcommand] --help=ModelConfig    (case-insensitive)\n"
)


def build_parser() -> FlexibleArgumentParser:
    parser = FlexibleArgumentParser(prog="vllm", description="vLLM CLI", epilog=EPILOG)
    parser.add_argument("-v", "--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(required=False, dest="subparser")
    serve.subparser_init(subparsers)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.subparser == "serve":
        serve.validate(args)
    if hasattr(args, "dispatch_function"):
        args.dispatch_function(args)
    else:
        parser.print_help()


if __name__ == "__main__":
    main()
