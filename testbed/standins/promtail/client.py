"""Pushing batches to Loki like Promtail's client: protobuf + snappy, retried with backoff.

Entries are grouped by label set; a batch goes out once its first entry is BATCH_WAIT_S old (or it is
full), so no line reaches Loki sooner than that after it was read. A failed push is logged the way
Promtail logs it (``error sending batch, will retry`` with ``context deadline exceeded`` on a
timeout, which is what guide B-17 shows) and retried with exponential backoff; after the last
retry the batch is dropped with ``final error sending batch``.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import urllib.error
import urllib.request

import wire
from sources import log

TIMEOUT_S = 10
MAX_RETRIES = 10
# Promtail's `clients[].batchwait` and Alloy's `loki.write` endpoint `batch_wait` both default to 1s
# (Promtail configuration docs, https://grafana.com/docs/loki/latest/send-data/promtail/configuration/#clients;
# Alloy's loki.write reference): a batch is sent when its oldest entry has waited that long.
BATCH_WAIT_S = 1.0


class Client:
    def __init__(self, url: str) -> None:
        self.url = url
        self.queue: queue.Queue = queue.Queue()
        self.sent = 0
        self.dropped = 0
        self.failures = 0

    def add(self, labels: dict[str, str], ts: int, line: str) -> None:
        self.queue.put((labels, ts, line))

    def _batch(self, wait: float) -> list:
        """Entries of one batch: it opens with the first entry and closes *wait* seconds later (or full)."""
        try:
            items = [self.queue.get(timeout=0.5)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + wait
        while len(items) < 1000:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                items.append(self.queue.get(timeout=left))
            except queue.Empty:
                break
        return items

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/x-protobuf", "User-Agent": "promtail/double"})
        # Like Promtail: no proxy from the environment for the push.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=TIMEOUT_S) as response:
            response.read()

    @staticmethod
    def _why(err: Exception, url: str) -> tuple[int, str]:
        if isinstance(err, urllib.error.HTTPError):
            return err.code, f"server returned HTTP status {err.code} {err.reason}"
        reason = getattr(err, "reason", err)
        if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
            return -1, f"Post \"{url}\": context deadline exceeded"
        host = url.split("//", 1)[-1].split("/", 1)[0]
        return -1, f"Post \"{url}\": dial tcp {host}: {reason}"

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set() or not self.queue.empty():
            items = self._batch(BATCH_WAIT_S)
            if not items:
                continue
            streams: dict[str, tuple[dict, list]] = {}
            for labels, ts, line in items:
                streams.setdefault(wire.format_labels(labels), (labels, []))[1].append((ts, line))
            body = wire.snappy_compress(wire.encode_push(list(streams.values())))
            backoff = 0.5
            for attempt in range(MAX_RETRIES + 1):
                try:
                    self._post(body)
                    self.sent += len(items)
                    break
                except (urllib.error.URLError, OSError) as err:
                    self.failures += 1
                    status, why = self._why(err, self.url)
                    if 400 <= status < 500 and status != 429:
                        log("error", "final error sending batch", component="client", status=status, error=why)
                        self.dropped += len(items)
                        break
                    if attempt == MAX_RETRIES or stop.is_set():
                        log("error", "final error sending batch", component="client", status=status, error=why)
                        self.dropped += len(items)
                        break
                    log("warn", "error sending batch, will retry", component="client", status=status, error=why)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 30)
