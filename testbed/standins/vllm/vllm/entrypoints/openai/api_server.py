"""`python -m vllm.entrypoints.openai.api_server --model M ...`, the module form the docs still show."""

from vllm._double.cli import main_module as main

__all__ = ["main"]

if __name__ == "__main__":
    main()
