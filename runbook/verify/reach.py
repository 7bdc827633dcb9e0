"""Is a service reachable from here, the controller, as the guide's 5-2 tests it from outside?

Plain HTTP GETs with no proxy (a proxy would test its own reachability, not ours), a short
timeout, run in parallel and remembered per run, so verify and troubleshoot ask each port once.
"""

from __future__ import annotations

import socket
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    url: str
    code: int  # 0: no HTTP answer
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200

    def describe(self) -> str:
        return f"{self.url} answers {self.code}" if self.code else f"{self.url}: {self.error}"


def fetch(url: str, timeout: float = 5.0) -> Answer:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return Answer(url, response.status)
    except urllib.error.HTTPError as err:
        return Answer(url, err.code)
    except (TimeoutError, urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        text = "timed out (dropped on the way?)" if isinstance(reason, TimeoutError | socket.timeout) \
            else str(reason)
        return Answer(url, 0, text)


class Reach:
    """HTTP answers of one address, fetched once per (port, path)."""

    def __init__(self, address: str, timeout: float = 5.0):
        self.address = address
        self.timeout = timeout
        self._answers: dict[tuple[int, str], Answer] = {}
        self._lock = threading.Lock()

    def url(self, port: int, path: str) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{port}{path}"

    def prefetch(self, targets: list[tuple[int, str]]) -> None:
        todo = [t for t in dict.fromkeys(targets) if t not in self._answers]
        if todo:
            with ThreadPoolExecutor(max_workers=len(todo)) as pool:
                for target, answer in zip(todo, pool.map(lambda t: fetch(self.url(*t), self.timeout), todo),
                                          strict=True):
                    with self._lock:
                        self._answers[target] = answer

    def get(self, port: int, path: str = "/health") -> Answer:
        if (port, path) not in self._answers:
            self.prefetch([(port, path)])
        return self._answers[(port, path)]
