"""Test double of vLLM: `vllm serve` with the real argument surface, fake GPU, OpenAI-compatible API.

Only the standard library is used. See README.md beside this package for the knobs
(VLLM_DOUBLE_SPEED, VLLM_DOUBLE_FAIL) and the log lines it prints.
"""

__version__ = "0.15.1+double"
