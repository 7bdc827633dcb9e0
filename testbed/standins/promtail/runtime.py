"""Running the shipper: sources feed entries through their handlers into one client per Loki URL.

A Source is what both config formats compile to: where entries come from (a journal with matches,
or a file glob) and a handler that turns one entry into deliveries (Loki URL, labels, line). The
HTTP server answers readiness and a few counters on the shipper's port.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sources
from client import Client

Delivery = tuple[str, dict[str, str], str]


@dataclass
class Source:
    name: str
    kind: str  # "journal" or "file"
    handle: Callable[[dict[str, str], str], list[Delivery]]
    matches: str = ""
    path: str = ""
    max_age_s: int = 7 * 3600
    glob: str = ""


def _server(listen: tuple[str, int], ready_paths: tuple[str, ...], clients: dict[str, Client], program: str):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            if self.path in ready_paths:
                body, kind = b"Ready\n" if program == "promtail" else b"Alloy is ready.\n", "text/plain"
            elif self.path == "/metrics":
                lines = []
                for name, attr in (("sent_entries_total", "sent"), ("dropped_entries_total", "dropped"),
                                   ("request_failures_total", "failures")):
                    metric = f"{program}_{name}"
                    lines += [f"# HELP {metric} {name.replace('_', ' ')}", f"# TYPE {metric} counter"]
                    lines += [f"{metric}{{host={json.dumps(u)}}} {getattr(c, attr)}" for u, c in clients.items()]
                body, kind = ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(listen, Handler)
    server.daemon_threads = True
    return server


def run(program: str, srcs: list[Source], urls: list[str], positions_file: str, listen: tuple[str, int],
        ready_paths: tuple[str, ...]) -> int:
    stop = threading.Event()
    clients = {url: Client(url) for url in urls}
    positions = sources.Positions(positions_file)

    def emitter(source: Source):
        def emit(labels: dict[str, str], ts: int, line: str) -> None:
            for url, out, text in source.handle(labels, line):
                clients.setdefault(url, Client(url)).add(out, ts, text)
        return emit

    threads = [threading.Thread(target=c.run, args=(stop,), daemon=True) for c in clients.values()]
    for source in srcs:
        if source.kind == "journal":
            target = sources.follow_journal
            args = (source.name, source.matches, source.path, source.max_age_s, positions, emitter(source), stop)
        else:
            target = sources.tail_files
            args = (source.glob, positions, emitter(source), stop)
        threads.append(threading.Thread(target=target, args=args, daemon=True))
    server = _server(listen, ready_paths, clients, program)
    threads.append(threading.Thread(target=server.serve_forever, daemon=True))
    for thread in threads:
        thread.start()
    sources.log("info", f"{program} stand-in started", sources=len(srcs), clients=",".join(urls),
                listen=f"{listen[0]}:{listen[1]}")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(10):
        positions.save()
    positions.save()
    server.shutdown()
    sources.log("info", "stopped")
    return 0
