"""Stand-in for the `vllm` distribution on test hosts without a GPU (this project's own code).

`vllm serve` parses the documented options, walks through a start's phases (guide B-12) in a
configurable time, and serves the OpenAI-compatible API. See README.md beside this package.
"""

__version__ = "0.15.1+double"
