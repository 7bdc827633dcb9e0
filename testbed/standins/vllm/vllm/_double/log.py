"""Log lines in the shape vLLM 0.15 writes them.

vLLM prefixes every line of a process with `(APIServer pid=N) ` or `(EngineCore_DP0 pid=N) `,
and its own log records look like `INFO 02-04 12:30:01 [gpu_model_runner.py:3562] message`.
Everything goes to stderr, line by line and flushed, so journald gets each line as it happens.
The double runs API server and engine core in one process, so both carry the same pid.
"""

from __future__ import annotations

import os
import sys
import threading
import time

_lock = threading.Lock()


def write(text: str) -> None:
    with _lock:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):
            pass


class ProcessLog:
    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def prefix(self) -> str:
        return f"({self.name} pid={os.getpid()}) "

    def log(self, level: str, where: str, msg: str) -> None:
        head = f"{self.prefix}{level} {time.strftime('%m-%d %H:%M:%S')} [{where}] "
        write("".join(head + line + "\n" for line in msg.split("\n")))

    def info(self, where: str, msg: str) -> None:
        self.log("INFO", where, msg)

    def warning(self, where: str, msg: str) -> None:
        self.log("WARNING", where, msg)

    def error(self, where: str, msg: str) -> None:
        self.log("ERROR", where, msg)

    def raw(self, text: str) -> None:
        """Lines printed by other code in the process (tqdm, torch, uvicorn, tracebacks)."""
        write("".join(self.prefix + line + "\n" for line in text.rstrip("\n").split("\n")))


api_log = ProcessLog("APIServer")
engine_log = ProcessLog("EngineCore_DP0")
