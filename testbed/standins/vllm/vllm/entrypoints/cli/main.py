"""Where the `vllm` console script points (the distribution's entry point `vllm.entrypoints.cli.main:main`)."""

from vllm._double.cli import main

__all__ = ["main"]
