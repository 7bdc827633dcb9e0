#!/usr/bin/env python3
"""A Loki push receiver for the test bed: the push API in, a small query API out.

Accepts ``POST /loki/api/v1/push`` like Loki does: protobuf + snappy (what Promtail and Alloy
send) or JSON (optionally gzip). Stores every entry with its labels (in memory, and appended as
JSON lines to --store if given). Answers ``GET /ready``, ``GET /loki/api/v1/labels``,
``GET /loki/api/v1/label/<name>/values`` and ``GET /loki/api/v1/query_range?query={...}`` with
Loki's response shapes (stream selector plus line filters). Standard library only.

    python3 receiver.py --listen 0.0.0.0:3100 [--store /var/lib/loki-double/entries.jsonl]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import selector  # noqa: E402
import wire  # noqa: E402


class Store:
    """Entries as (labels, ts ns, line); thread-safe; optionally mirrored to a JSON-lines file."""

    def __init__(self, path: str = "") -> None:
        self.entries: list[tuple[dict[str, str], int, str]] = []
        self.lock = threading.Lock()
        self.path = path
        self.seen: set[tuple[str, int, str]] = set()
        self.duplicates = 0
        if path and os.path.exists(path):
            with open(path) as fh:
                for line in fh:
                    e = json.loads(line)
                    self.entries.append((e["labels"], int(e["ts"]), e["line"]))
                    self.seen.add((wire.format_labels(e["labels"]), int(e["ts"]), e["line"]))

    def add(self, streams: list[tuple[dict[str, str], list[tuple[int, str]]]]) -> int:
        """Store a push. Like Loki ("Timestamp ordering" in its docs), a line that exactly matches one the
        stream has (same timestamp, same text) is an exact duplicate and ignored; ``duplicates`` counts them."""
        rows = []
        with self.lock:
            for labels, entries in streams:
                stream = wire.format_labels(labels)
                for ts, line in entries:
                    if (stream, ts, line) in self.seen:
                        self.duplicates += 1
                        continue
                    self.seen.add((stream, ts, line))
                    rows.append((labels, ts, line))
            self.entries.extend(rows)
            if self.path:
                with open(self.path, "a") as fh:
                    for labels, ts, line in rows:
                        fh.write(json.dumps({"labels": labels, "ts": str(ts), "line": line}) + "\n")
        return len(rows)

    def query(self, query: str, limit: int = 1000) -> list[dict]:
        test = selector.compile_selector(query)
        streams: dict[str, dict] = {}
        with self.lock:
            rows = [r for r in self.entries if test(r[0], r[2])]
        for labels, ts, line in sorted(rows, key=lambda r: -r[1])[:limit]:
            key = wire.format_labels(labels)
            streams.setdefault(key, {"stream": labels, "values": []})["values"].append([str(ts), line])
        return list(streams.values())


def validate(streams: list[tuple[dict[str, str], list[tuple[int, str]]]]) -> str:
    """Loki's own refusals that matter here: a stream needs labels, label names must be valid."""
    for labels, _ in streams:
        if not labels:
            return "error at least one label pair is required per stream"
        for name in labels:
            if name.startswith("__"):
                return f"error parsing labels: invalid label name {name!r} (reserved)"
    return ""


def make_handler(store: Store):
    class Handler(BaseHTTPRequestHandler):
        server_version = "loki-double"

        def log_message(self, fmt: str, *args) -> None:
            sys.stderr.write("level=debug msg=%r\n" % (fmt % args))

        def _send(self, code: int, body: object = b"", content_type: str = "application/json") -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type if data else "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            if url.path not in ("/loki/api/v1/push", "/api/prom/push"):
                return self._send(404, b"404 page not found\n", "text/plain")
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = (self.headers.get("Content-Type") or "application/x-protobuf").split(";")[0].strip()
            try:
                if kind == "application/json":
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    streams = wire.decode_json_push(body)
                else:
                    streams = wire.decode_push(wire.snappy_decompress(body))
            except (ValueError, KeyError, TypeError) as err:
                return self._send(400, f"loghttp.ParsePushRequest: {err}\n".encode(), "text/plain")
            problem = validate(streams)
            if problem:
                return self._send(400, (problem + "\n").encode(), "text/plain")
            count = store.add(streams)
            sys.stderr.write(f"level=info msg=\"push\" streams={len(streams)} entries={count}\n")
            return self._send(204)

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            args = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if url.path == "/ready":
                return self._send(200, b"ready\n", "text/plain")
            if url.path == "/loki/api/v1/labels":
                with store.lock:
                    names = sorted({k for labels, _, _ in store.entries for k in labels})
                return self._send(200, {"status": "success", "data": names})
            if url.path.startswith("/loki/api/v1/label/") and url.path.endswith("/values"):
                name = url.path[len("/loki/api/v1/label/"):-len("/values")]
                with store.lock:
                    values = sorted({labels[name] for labels, _, _ in store.entries if name in labels})
                return self._send(200, {"status": "success", "data": values})
            if url.path in ("/loki/api/v1/query_range", "/loki/api/v1/query"):
                try:
                    result = store.query(args.get("query", ""), int(args.get("limit", 1000)))
                except (selector.SelectorError, ValueError) as err:
                    return self._send(400, f"{err}\n".encode(), "text/plain")
                return self._send(200, {"status": "success",
                                        "data": {"resultType": "streams", "result": result, "stats": {}}})
            return self._send(404, b"404 page not found\n", "text/plain")

    return Handler


def serve(listen: str, store_path: str = "") -> ThreadingHTTPServer:
    """The server, not yet serving; its entries are in server.store (tests read them directly)."""
    host, _, port = listen.rpartition(":")
    store = Store(store_path)
    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), make_handler(store))
    server.daemon_threads = True
    server.store = store
    return server


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Loki push receiver (test double)")
    parser.add_argument("--listen", default="0.0.0.0:3100")
    parser.add_argument("--store", default="")
    args = parser.parse_args(argv)
    server = serve(args.listen, args.store)
    sys.stderr.write(f"level=info ts={time.time():.3f} msg=\"Loki push receiver listening\" addr={args.listen}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
