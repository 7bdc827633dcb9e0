"""FlexibleArgumentParser as in vLLM: accepts `--max_model_len` as well as `--max-model-len`."""

from __future__ import annotations

import argparse
import re
import sys

_KEY = re.compile(r"(?<=--)[^\.]*")


class FlexibleArgumentParser(argparse.ArgumentParser):
    """ArgumentParser that allows both underscore and dash in names."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        if args is None:
            args = sys.argv[1:]
        args = list(args)

        # `vllm serve --model X ...` is accepted (with a warning) and moved to the front.
        if args and args[0] == "serve":
            idx = next(
                (i for i, a in enumerate(args) if a == "--model" or a.startswith("--model=")),
                None,
            )
            if idx is not None:
                from vllm.logger import api_log

                api_log.warning(
                    "argparse_utils.py:259",
                    "With `vllm serve`, you should provide the model as a positional argument or in a "
                    "config file instead of via the `--model` option. "
                    "The `--model` option will be removed in v0.13.",
                )
                if args[idx] == "--model" and idx + 1 < len(args):
                    model_tag, rest = args[idx + 1], idx + 2
                else:
                    model_tag, rest = args[idx].removeprefix("--model="), idx + 1
                args = ["serve", model_tag, *args[1:idx], *args[rest:]]

        processed: list[str] = []
        for arg in args:
            if arg.startswith("--"):
                if "=" in arg:
                    key, value = arg.split("=", 1)
                    processed.append(f"{_KEY.sub(lambda m: m.group(0).replace('_', '-'), key, 1)}={value}")
                else:
                    processed.append(_KEY.sub(lambda m: m.group(0).replace("_", "-"), arg, 1))
            else:
                processed.append(arg)
        return super().parse_args(processed, namespace)
