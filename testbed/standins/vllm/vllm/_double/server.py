"""The stand-in's OpenAI-compatible HTTP server (standard library ThreadingHTTPServer).

Routes: GET /health (200, empty body), GET /version, GET /v1/models, POST /v1/chat/completions,
POST /v1/completions. With an API key (`--api-key` or VLLM_API_KEY) every path under /v1 needs
`Authorization: Bearer KEY` and otherwise gets 401 {"error": "Unauthorized"}, as vLLM's
AuthenticationMiddleware answers; /health and /version stay open. Response bodies follow vLLM's
protocol models (ModelCard with root/parent/max_model_len, ErrorResponse {"error": {...}}).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import math
import os
import signal
import socket
import threading
import time
import traceback
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vllm import __version__
from vllm._double import cli, metrics, settings, sim
from vllm._double.log import api_log

# ---------------------------------------------------------------- app state


class AppState:
    def __init__(self, cfg: sim.EngineConfig, loras: list[sim.LoadedLora], tokens: list[str], access_log: bool):
        self.cfg = cfg
        self.loras = {lora.name: lora for lora in loras}
        self.token_hashes = [hashlib.sha256(t.encode("utf-8")).digest() for t in tokens]
        self.access_log = access_log

    def verify_token(self, header: str | None) -> bool:
        if not header:
            return False
        scheme, _, param = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        digest = hashlib.sha256(param.encode("utf-8")).digest()
        match = False
        for token_hash in self.token_hashes:
            match |= hmac.compare_digest(digest, token_hash)
        return match

    def resolve(self, model: Any) -> tuple[str | None, str | None]:
        """(name the response reports, lora name or None); (None, None) when the model is unknown."""
        if model is None or model == "":
            return self.cfg.served_names[0], None
        if model in self.cfg.served_names:
            return model, None
        if model in self.loras:
            return model, model
        return None, None


def _model_permission() -> dict:
    return {
        "id": f"modelperm-{uuid.uuid4().hex}",
        "object": "model_permission",
        "created": int(time.time()),
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }


def _model_card(model_id: str, root: str, parent: str | None, max_model_len: int | None) -> dict:
    return {
        "id": model_id,
        "object": "model",
        "created": int(time.time()),
        "owned_by": "vllm",
        "root": root,
        "parent": parent,
        "max_model_len": max_model_len,
        "permission": [_model_permission()],
    }


def models_list(state: AppState) -> dict:
    cfg = state.cfg
    cards = [_model_card(name, cfg.model, None, cfg.max_model_len) for name in cfg.served_names]
    for lora in state.loras.values():
        cards.append(_model_card(lora.name, lora.path, lora.base_model_name or cfg.served_names[0], None))
    return {"object": "list", "data": cards}


def error_body(message: str, err_type: str, code: int, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": err_type, "param": param, "code": code}}


# ---------------------------------------------------------------- fake generation


def count_tokens(text: str) -> int:
    if not text:
        return 0
    return max(len(text.split()), math.ceil(len(text) / 4))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def reply_words(model_name: str, prompt: str) -> list[str]:
    """Deterministic answer: the model's name, then the start of the prompt echoed back."""
    echo = prompt.split()[:48] or ["Hello", "from", "the", "vLLM", "stand-in."]
    return [f"[{model_name}]", *echo]


def _limit(words: list[str], max_tokens: Any) -> tuple[list[str], str]:
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 0 <= max_tokens < len(words):
        return words[:max_tokens], "length"
    return words, "stop"


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str, err_type: str = "BadRequestError", param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.err_type, self.param = status, message, err_type, param


def _check_length(state: AppState, prompt_tokens: int, max_tokens: Any) -> None:
    max_len = state.cfg.max_model_len
    if prompt_tokens >= max_len:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"This model's maximum context length is {max_len} tokens. However, your request has "
            f"{prompt_tokens} input tokens. Please reduce the length of the input messages.",
        )
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > max_len - prompt_tokens:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum context "
            f"length is {max_len} tokens and your request has {prompt_tokens} input tokens "
            f"({max_tokens} > {max_len} - {prompt_tokens}).",
        )


def _resolve_or_404(state: AppState, body: dict) -> str:
    name, _ = state.resolve(body.get("model"))
    if name is None:
        raise RequestError(
            HTTPStatus.NOT_FOUND, f"The model `{body.get('model')}` does not exist.", "NotFoundError", "model"
        )
    return name


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "completion_tokens": completion_tokens,
        "prompt_tokens_details": None,
    }


def chat_completion(state: AppState, body: dict) -> tuple[dict | list[dict], bool]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            "[{'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required', 'input': None}]"
            if messages is None
            else "[{'type': 'list_type', 'loc': ('body', 'messages'), 'msg': 'Input should be a valid list'}]",
        )
    name = _resolve_or_404(state, body)
    prompt = "\n".join(_content_text(m.get("content")) for m in messages)
    last_user = next(
        (_content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), prompt
    )
    prompt_tokens = count_tokens(prompt) + 4 * len(messages)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    _check_length(state, prompt_tokens, max_tokens)
    words, finish = _limit(reply_words(name, last_user), max_tokens)
    text = " ".join(words)
    created = int(time.time())
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    usage = _usage(prompt_tokens, len(words))
    if body.get("stream"):
        chunks: list[dict] = []

        def chunk(delta: dict, finish_reason: str | None = None) -> dict:
            return {
                "id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }

        chunks.append(chunk({"role": "assistant", "content": ""}))
        for i, word in enumerate(words):
            chunks.append(chunk({"content": word if i == 0 else " " + word}))
        chunks.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({"id": cid, "object": "chat.completion.chunk", "created": created, "model": name,
                           "choices": [], "usage": usage})
        return chunks, True
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": name,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": text,
                    "refusal": None,
                    "annotations": None,
                    "audio": None,
                    "function_call": None,
                    "tool_calls": [],
                    "reasoning_content": None,
                },
                "logprobs": None,
                "finish_reason": finish,
                "stop_reason": None,
                "token_ids": None,
            }
        ],
        "service_tier": None,
        "system_fingerprint": None,
        "usage": usage,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
        "kv_transfer_params": None,
    }, False


def completion(state: AppState, body: dict) -> tuple[dict | list[dict], bool]:
    raw = body.get("prompt")
    if raw is None:
        raise RequestError(
            HTTPStatus.BAD_REQUEST,
            "[{'type': 'missing', 'loc': ('body', 'prompt'), 'msg': 'Field required', 'input': None}]",
        )
    if isinstance(raw, str):
        prompts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(p, int) for p in raw):
        prompts = [" ".join(str(p) for p in raw)]
    elif isinstance(raw, list) and all(isinstance(p, str) for p in raw):
        prompts = list(raw)
    elif isinstance(raw, list) and all(isinstance(p, list) for p in raw):
        prompts = [" ".join(str(t) for t in p) for p in raw]
    else:
        raise RequestError(HTTPStatus.BAD_REQUEST, "prompt must be a string, array of strings, or token ids")
    name = _resolve_or_404(state, body)
    max_tokens = body.get("max_tokens", 16)
    created = int(time.time())
    cid = f"cmpl-{uuid.uuid4().hex}"
    choices, prompt_total, completion_total = [], 0, 0
    for i, prompt in enumerate(prompts):
        prompt_tokens = count_tokens(prompt)
        _check_length(state, prompt_tokens, max_tokens)
        words, finish = _limit(reply_words(name, prompt), max_tokens)
        choices.append({"index": i, "text": " " + " ".join(words), "logprobs": None, "finish_reason": finish,
                        "stop_reason": None, "prompt_logprobs": None})
        prompt_total += prompt_tokens
        completion_total += len(words)
    usage = _usage(prompt_total, completion_total)
    if body.get("stream"):
        chunks = [
            {"id": cid, "object": "text_completion", "created": created, "model": name, "choices": [c]}
            for c in choices
        ]
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({"id": cid, "object": "text_completion", "created": created, "model": name,
                           "choices": [], "usage": usage})
        return chunks, True
    return {
        "id": cid, "object": "text_completion", "created": created, "model": name, "choices": choices,
        "service_tier": None, "system_fingerprint": None, "usage": usage, "kv_transfer_params": None,
    }, False


# ---------------------------------------------------------------- HTTP

ROUTES: dict[str, set[str]] = {
    "/health": {"GET"},
    "/version": {"GET"},
    "/v1/models": {"GET"},
    "/v1/chat/completions": {"POST"},
    "/v1/completions": {"POST"},
    "/metrics": {"GET"},  # open like /health: vLLM's API key guards /v1 only
}


class Handler(BaseHTTPRequestHandler):
    server_version = "uvicorn"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    state: AppState  # set on the subclass made per server

    def version_string(self) -> str:
        return "uvicorn"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _access_log(self, status: int) -> None:
        if self.state.access_log:
            host, port = self.client_address[:2]
            phrase = HTTPStatus(status).phrase
            api_log.raw(f'INFO:     {host}:{port} - "{self.command} {self.path} HTTP/1.1" {status} {phrase}')

    def _send(self, status: int, body: bytes, content_type: str | None = "application/json") -> None:
        self.send_response(status)
        if content_type:
            self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._access_log(status)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode("utf-8"))

    def _sse(self, chunks: list[dict]) -> None:
        data = "".join(f"data: {json.dumps(c, ensure_ascii=False)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        self._send(200, data.encode("utf-8"), "text/event-stream; charset=utf-8")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self._read_body() if self.command in ("POST", "PUT", "PATCH") else b""
        # AuthenticationMiddleware: before routing, for every path under /v1.
        if self.state.token_hashes and self.command != "OPTIONS" and path.startswith("/v1"):
            if not self.state.verify_token(self.headers.get("Authorization")):
                self._json(401, {"error": "Unauthorized"})
                return
        methods = ROUTES.get(path)
        if methods is None:
            self._json(404, {"detail": "Not Found"})
            return
        if self.command not in methods:
            self._json(405, {"detail": "Method Not Allowed"})
            return
        try:
            if path == "/health":
                self._send(200, b"", None)
            elif path == "/version":
                self._json(200, {"version": __version__})
            elif path == "/v1/models":
                self._json(200, models_list(self.state))
            elif path == "/metrics":
                self._send(200, metrics.RECORDER.render(self.state.cfg.served_names[0]).encode(), metrics.CONTENT_TYPE)
            else:
                try:
                    payload = json.loads(body.decode("utf-8") or "null")
                except (UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise RequestError(HTTPStatus.BAD_REQUEST, f"JSON decode error: {e}") from e
                if not isinstance(payload, dict):
                    raise RequestError(HTTPStatus.BAD_REQUEST, "Input should be a valid dictionary or object")
                handler = chat_completion if path == "/v1/chat/completions" else completion
                started = time.monotonic()
                result, stream = handler(self.state, payload)
                metrics.record(result, stream, time.monotonic() - started)
                if stream:
                    self._sse(result)  # type: ignore[arg-type]
                else:
                    self._json(200, result)
        except RequestError as e:
            self._json(int(e.status), error_body(e.message, e.err_type, int(e.status), e.param))
        except Exception as e:  # a bug in the double must still answer, as vLLM's handlers do
            api_log.raw(traceback.format_exc())
            self._json(500, error_body(str(e), "InternalServerError", 500))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def do_HEAD(self) -> None:
        self._handle()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def _make_server(host: str | None, port: int) -> Server:
    family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
    Server.address_family = family
    server = Server((host or "", port), Handler, bind_and_activate=False)
    server.server_bind()  # like vLLM: the port is taken before the engine starts, served later
    return server


# ---------------------------------------------------------------- serve


def _non_default_args(args: argparse.Namespace) -> dict:
    usual = cli.defaults()
    return {key: value for key, value in vars(args).items()
            if key != "command" and key in usual and usual[key] != value}


class _Stop(Exception):
    pass


def serve(args: argparse.Namespace) -> int:
    """`vllm serve`: config, bind, engine start, adapters, then serve until SIGTERM/SIGINT; the exit code.

    The port is bound early but accepts connections only once everything is loaded: until then a
    client gets "connection refused", as from vLLM, whose HTTP server starts after the engine
    (OpenAI-compatible server docs; guide B-12: no answer on :8001 during a start).
    """
    server: Server | None = None

    def on_signal(signum, frame):
        if server is not None and serving.is_set():
            threading.Thread(target=server.shutdown, daemon=True).start()
        else:
            raise _Stop()

    serving = threading.Event()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    try:
        api_log.info("api_server.py:1351", f"vLLM API server version {__version__}")
        api_log.info("utils.py:253", f"non-default args: {_non_default_args(args)}")
        cfg = sim.build_config(args)

        host = args.host
        server = _make_server(host, args.port)
        shown_host = f"[{host}]" if host and ":" in host else (host or "0.0.0.0")
        listen_address = f"http://{shown_host}:{args.port}"

        sim.run_engine(cfg)
        api_log.info("api_server.py:1014", "Supported tasks: ['generate']")
        loras = sim.load_static_loras(cfg)
        tokens = [key for key in (args.api_key or [settings.vllm_api_key()]) if key]
        Handler.state = AppState(cfg, loras, tokens, access_log=not args.disable_uvicorn_access_log)
        sim.PACER.until_ready_time()

        api_log.info("api_server.py:1346", f"Starting vLLM API server 0 on {listen_address}")
        api_log.info("launcher.py:38", "Available routes are:")
        for route, methods in ROUTES.items():
            api_log.info("launcher.py:46", f"Route: {route}, Methods: {', '.join(sorted(methods))}")
        server.server_activate()
        api_log.raw(f"INFO:     Started server process [{os.getpid()}]")
        api_log.raw("INFO:     Waiting for application startup.")
        api_log.raw("INFO:     Application startup complete.")
        serving.set()
        server.serve_forever(poll_interval=0.2)
        api_log.raw("INFO:     Shutting down")
        api_log.raw("INFO:     Waiting for application shutdown.")
        api_log.raw("INFO:     Application shutdown complete.")
        api_log.raw(f"INFO:     Finished server process [{os.getpid()}]")
        return 0
    except _Stop:
        return 0
    except sim.StartupFailed:
        return 1
    except Exception:
        api_log.raw(traceback.format_exc())
        return 1
    finally:
        if server is not None:
            server.server_close()
