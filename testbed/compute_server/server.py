"""HTTP front of the simulator: Compute REST under /compute/v1, admin under /_admin.

Admin endpoints (JSON):
  GET  /_admin/faults             current faults
  POST /_admin/faults  (PATCH)    merge: given top-level keys replace current ones
  PUT  /_admin/faults             replace: unspecified keys go back to defaults
  GET  /_admin/state              every resource and operation, plus faults
  PUT  /_admin/state              {"projects": {...}} replaces all resources
  DELETE /_admin/state            forget all resources (faults stay)
  POST /_admin/disks              {"project","zone","name","sizeGb","type"?,"users"?} seeds a disk
  GET  /_admin/health             {"ok": true}

Only its owner may use it: every request but the health check needs `Authorization: Bearer <token>`
(401 in Google's error shape otherwise; the token is random per server, or the one its starter stored in a
0600 file), and a request body must be JSON (415 otherwise), so a web page cannot forge a form post.
"""

from __future__ import annotations

import hmac
import json
import secrets
import socket
import struct
import sys
import threading
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pydantic import ValidationError

from . import (  # noqa: F401, E501
    api_catalog,
    api_disks,
    api_firewalls,
    api_instances,
    api_lb,
    api_operations,
    api_projects,
    errors,
    routes,
    strict,
)
from .backend import Backend
from .faults import Faults
from .sim import Simulator
from .store import Store

# Called with (method, path, query, body) for every /compute/v1 request before it is handled:
# the contract tests record what the runbook sends here (and check it against compute.v1.json).
OBSERVERS: list[Callable[[str, str, dict, Any], None]] = []


def record_to(path: str) -> Callable[[str, str, dict, Any], None]:
    """An observer appending each request as one JSON line to *path* (for a server in another process)."""
    lock = threading.Lock()

    def observe(method: str, url_path: str, query: dict, body: Any) -> None:
        line = json.dumps({"method": method, "path": url_path, "query": query, "body": body})
        with lock, open(path, "a") as out:
            out.write(line + "\n")

    return observe


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sim: Simulator
    verbose: bool = False
    token: str = ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    server: _HTTPServer

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_GET

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            sys.stderr.write("compute-server: " + (format % args) + "\n")

    # -- plumbing ---------------------------------------------------------------------------

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its own timeout)
            self.close_connection = True

    def _reset(self) -> None:
        """Drop the connection with a TCP reset, no response."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        self.log_message('"%s" reset', self.requestline)

    def _refused(self, path: str, raw: bytes) -> errors.ApiError | None:
        """The auth gate: a bearer token (compared in constant time) and JSON bodies only."""
        if path == "/_admin/health":
            return None
        scheme, _, given = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.server.token.encode()):
            # Google's answer to a call without valid credentials (reason "required" / "authError").
            reason = "required" if not given else "authError"
            return errors.ApiError(401, reason, "Request is missing required authentication credential. "
                                   "Expected OAuth 2 access token, login cookie or other valid authentication "
                                   "credential.", location="Authorization", locationType="header")
        kind = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if raw.strip() and kind != "application/json":
            return errors.ApiError(415, "unsupportedMediaType", f"Unsupported content type {kind or 'none'!r}: "
                                   "request bodies must be application/json")
        return None

    def _handle(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        refused = self._refused(url.path, raw)
        if refused:
            self._send(refused.code, refused.body())
            return
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            self._send(400, errors.ApiError(400, "parseError", "Parse Error").body())
            return
        if url.path.startswith("/_admin/"):
            self._admin(url.path, body)
        elif url.path.startswith("/compute/v1/projects/"):
            self._compute(url.path, query, body)
        else:
            self._send(404, errors.ApiError(404, "notFound", f"The requested URL {url.path} was not found").body())

    def _compute(self, path: str, query: dict, body: dict | None) -> None:
        sim = self.server.sim
        for observe in list(OBSERVERS):
            observe(self.command, path, dict(query), body)
        forced = sim.take_fail_rule(self.command, path)
        if forced:
            self._send(forced, errors.injected(forced).body())
            return
        hit = sim.draw()
        if hit and hit[0] == "reset":
            self._reset()
            return
        if hit:
            self._send(hit[1], errors.injected(hit[1]).body())
            return
        try:
            found = routes.resolve(self.command, path)
            if found is None:
                raise errors.ApiError(404, "notFound", f"The requested URL {path} was not found")
            handler, params = found
            strict.check(self.command, path, query, body)  # Google's own description first, like Google
            req = routes.Request(self.command, path, params, query, body, dict(self.headers))
            request_id = query.get("requestId") if self.command != "GET" else None
            if request_id:
                with sim.store.lock:  # same requestId again (a retry): answer with the first operation
                    result = sim.ops.by_request_id(req.project, request_id) or handler(sim, req)
            else:
                result = handler(sim, req)
            self._send(200, result)
        except errors.ApiError as exc:
            self._send(exc.code, exc.body())
        except Exception:
            traceback.print_exc()
            self._send(500, errors.injected(500).body())

    def _admin(self, path: str, body: dict | None) -> None:
        sim, method, body = self.server.sim, self.command, body or {}
        try:
            if path == "/_admin/health":
                self._send(200, {"ok": True})
            elif path == "/_admin/faults" and method == "GET":
                self._send(200, sim.faults.model_dump())
            elif path == "/_admin/faults" and method in ("POST", "PATCH", "PUT"):
                self._send(200, sim.set_faults(body, replace=method == "PUT").model_dump())
            elif path == "/_admin/state" and method == "GET":
                self._send(200, sim.store.snapshot())
            elif path == "/_admin/state" and method == "PUT":
                sim.store.replace_projects(body.get("projects", {}))
                if "faults" in body:
                    sim.set_faults(body["faults"], replace=True)
                self._send(200, sim.store.snapshot())
            elif path == "/_admin/state" and method == "DELETE":
                sim.store.replace_projects({})
                self._send(200, sim.store.snapshot())
            elif path == "/_admin/disks" and method == "POST":
                disk = sim.seed_disk(
                    body["project"], body["zone"], body["name"], int(body["sizeGb"]),
                    body.get("type", "pd-ssd"), body.get("users"),
                )  # fmt: skip
                self._send(201, disk)
            else:
                self._send(404, {"error": f"no admin endpoint {method} {path}"})
        except errors.ApiError as exc:
            self._send(exc.code, exc.body())
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            self._send(400, {"error": str(exc)})


class ComputeServer:
    """A local Compute Engine REST endpoint; `start()` serves it from a background thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        state_path: str | None = None,
        faults: Faults | dict | None = None,
        backend: Backend | None = None,
        verbose: bool = False,
        token: str | None = None,
    ):
        self.sim = Simulator(Store(state_path), faults, backend)
        self.sim.data_plane.start()
        strict.load()  # read compute.v1.json now, not inside the first request
        self.httpd = _HTTPServer((host, port), _Handler)
        self.httpd.sim = self.sim
        self.httpd.verbose = verbose
        # The bearer token clients must send: given by the starter, else random (see `token`).
        self.token = token or secrets.token_urlsafe(32)
        self.httpd.token = self.token
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ComputeServer:
        self.sim.ops.resume_all()
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="compute-server", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.sim.ops.resume_all()
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.sim.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.sim.stop()
        if self._thread:
            self._thread.join(5)

    def __enter__(self) -> ComputeServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
