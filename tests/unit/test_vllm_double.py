"""The vLLM double (testbed/standins/vllm), exercised the way the test bed uses it.

Its wheel is built into a local PEP 503 index, installed offline with pip into a fresh venv, and
`vllm serve` runs as a real process talking real HTTP. No mocks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOUBLE = ROOT / "testbed" / "standins" / "vllm"

MODEL = "LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct"
GOOD_REVISION = "e949c91dec92095908d34e6b560af77dd0c993f8"
EASYCONTRACT = ("easycontract", "temdy/exaone-3.5-2.4b-easycontract-qlora-v1.1")
CHECKLIST = ("checklist", "imyj1013/exaone-qlora-checklist-adapter")
API_KEY = "unit-test-vllm-key"


def _lora_json(name: str, path: str) -> str:
    return json.dumps({"name": name, "path": path}, separators=(",", ":"))


def guide_args(port: int, *, enforce_eager: bool = True, revision: str | None = GOOD_REVISION) -> list[str]:
    """The guide's ExecStart (section 3-4), with the env file's values filled in."""
    args = [
        "serve",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--gpu-memory-utilization",
        "0.85",
        "--max-model-len",
        "8192",
        "--dtype",
        "bfloat16",
        "--trust-remote-code",
        "--enable-lora",
    ]
    if enforce_eager:
        args.append("--enforce-eager")
    if revision:
        args += ["--revision", revision]
    args += ["--lora-modules", _lora_json(*EASYCONTRACT), _lora_json(*CHECKLIST), "--max-lora-rank", "16"]
    return args


def _load_build_index():
    spec = importlib.util.spec_from_file_location("vllm_double_build_index", DOUBLE / "build_index.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_bin(tmp_path_factory) -> Path:
    """`vllm` console script from a fresh venv, installed offline from the double's local index."""
    base = tmp_path_factory.mktemp("vllm-double")
    simple = _load_build_index().build_index(base / "index")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    env = {
        **os.environ,
        "PIP_CONFIG_FILE": os.devnull,  # no extra indexes or proxies from the machine's pip.conf
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--index-url",
            simple.as_uri(),
            "--no-deps",
            "vllm",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return venv / "bin" / "vllm"


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "HF_"))}
    return {
        **clean,
        "HF_HOME": str(tmp_path / "hf"),
        "VLLM_CACHE_ROOT": str(tmp_path / "vllm-cache"),
        "VLLM_DOUBLE_START_SECONDS": "0",
    }


def run(vllm_bin: Path, args: list[str], env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([str(vllm_bin), *args], env=env, capture_output=True, text=True, timeout=timeout)


def http(method: str, url: str, body: dict | None = None, key: str | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class Served:
    """A `vllm serve` process; waits for /health, stops with SIGTERM like systemd does."""

    def __init__(self, vllm_bin: Path, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self.port = int(args[args.index("--port") + 1])
        self.base = f"http://127.0.0.1:{self.port}"
        self._out = log.open("w")
        self.proc = subprocess.Popen([str(vllm_bin), *args], env=env, stdout=self._out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text()

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"vllm exited with {self.proc.returncode}:\n{self.text()}")
            try:
                if http("GET", f"{self.base}/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"vllm not healthy after {timeout}s:\n{self.text()}")

    def wait_for_line(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not logged:\n{self.text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        finally:
            self._out.close()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


def assert_in_order(text: str, *needles: str) -> None:
    pos = 0
    for needle in needles:
        found = text.find(needle, pos)
        assert found >= 0, f"{needle!r} not found after position {pos}:\n{text}"
        pos = found + len(needle)


# ---------------------------------------------------------------- packaging


def test_index_is_pep503_with_a_console_script_wheel(tmp_path):
    build = _load_build_index()
    simple = build.build_index(tmp_path / "idx")
    assert simple == tmp_path / "idx" / "simple"
    assert 'href="vllm/"' in (simple / "index.html").read_text()
    wheels = list((simple / "vllm").glob("*.whl"))
    assert [w.name for w in wheels] == [f"vllm-{build.package_version()}-py3-none-any.whl"]
    page = (simple / "vllm" / "index.html").read_text()
    sha = re.search(r"#sha256=([0-9a-f]{64})", page).group(1)
    assert sha == hashlib.sha256(wheels[0].read_bytes()).hexdigest()
    with zipfile.ZipFile(wheels[0]) as zf:
        names = zf.namelist()
        dist_info = f"vllm-{build.package_version()}.dist-info"
        assert "vllm/entrypoints/cli/main.py" in names
        assert "vllm = vllm.entrypoints.cli.main:main" in zf.read(f"{dist_info}/entry_points.txt").decode()
        assert f"Version: {build.package_version()}" in zf.read(f"{dist_info}/METADATA").decode()
        assert not [n for n in names if "__pycache__" in n or n.startswith("tests/")]
    assert re.fullmatch(r"0\.15\.1\+double", build.package_version())
    # Same sources, same bytes: the index can be rebuilt without changing its hash.
    again = build.build_index(tmp_path / "idx2")
    assert (again / "vllm" / wheels[0].name).read_bytes() == wheels[0].read_bytes()


def test_version_flag(vllm_bin, env):
    result = run(vllm_bin, ["--version"], env)
    assert result.returncode == 0
    assert result.stdout.strip() == "0.15.1+double"


# ---------------------------------------------------------------- the guide's unit


def test_guide_command_serves_base_model_and_adapters(vllm_bin, env, tmp_path):
    env = {**env, "VLLM_API_KEY": API_KEY}
    port = free_port()
    with Served(vllm_bin, guide_args(port), env, tmp_path / "first.log") as srv:
        srv.wait_healthy()
        status, body = http("GET", f"{srv.base}/health")
        assert (status, body) == (200, b"")
        status, body = http("GET", f"{srv.base}/version")
        assert status == 200 and json.loads(body) == {"version": "0.15.1+double"}

        # Every /v1 route needs the key; the answer is vLLM's AuthenticationMiddleware's.
        for method, path, payload in (
            ("GET", "/v1/models", None),
            ("POST", "/v1/chat/completions", {"model": "easycontract", "messages": []}),
        ):
            assert http(method, srv.base + path, payload) == (401, b'{"error": "Unauthorized"}')
            assert http(method, srv.base + path, payload, key="wrong")[0] == 401

        status, body = http("GET", f"{srv.base}/v1/models", key=API_KEY)
        assert status == 200
        listing = json.loads(body)
        assert listing["object"] == "list"
        cards = {card["id"]: card for card in listing["data"]}
        assert list(cards) == [MODEL, "easycontract", "checklist"]
        assert cards[MODEL]["root"] == MODEL and cards[MODEL]["parent"] is None
        assert cards[MODEL]["max_model_len"] == 8192 and cards[MODEL]["owned_by"] == "vllm"
        for name, path in (EASYCONTRACT, CHECKLIST):
            assert cards[name]["root"] == path
            assert cards[name]["parent"] == MODEL
            assert cards[name]["object"] == "model"

        status, body = http(
            "POST",
            f"{srv.base}/v1/chat/completions",
            {
                "model": "easycontract",
                "messages": [{"role": "user", "content": "계약서 제3조를 쉽게 설명해 주세요"}],
                "max_tokens": 64,
            },
            key=API_KEY,
        )
        assert status == 200, body
        chat = json.loads(body)
        assert chat["object"] == "chat.completion" and chat["model"] == "easycontract"
        answer = chat["choices"][0]
        assert answer["message"]["role"] == "assistant" and answer["finish_reason"] == "stop"
        assert "[easycontract]" in answer["message"]["content"] and "제3조를" in answer["message"]["content"]
        assert chat["usage"]["total_tokens"] == chat["usage"]["prompt_tokens"] + chat["usage"]["completion_tokens"]

        status, body = http(
            "POST",
            f"{srv.base}/v1/completions",
            {"model": MODEL, "prompt": "Hello there", "max_tokens": 2},
            key=API_KEY,
        )
        assert status == 200
        done = json.loads(body)
        assert done["object"] == "text_completion" and done["choices"][0]["finish_reason"] == "length"

        status, body = http(
            "POST",
            f"{srv.base}/v1/chat/completions",
            {"model": "no-such-adapter", "messages": [{"role": "user", "content": "hi"}]},
            key=API_KEY,
        )
        assert status == 404
        assert json.loads(body) == {
            "error": {
                "message": "The model `no-such-adapter` does not exist.",
                "type": "NotFoundError",
                "param": "model",
                "code": 404,
            }
        }

        assert srv.stop() == 0
    first = srv.text()
    assert_in_order(
        first,
        "vLLM API server version 0.15.1+double",
        "Resolved architecture: ExaoneForCausalLM",
        "Using max model len 8192",
        f"Starting to load model {MODEL}...",
        f"Time spent downloading weights for {MODEL}: ",
        "Loading weights took ",
        "Model loading took ",
        "Skipping CUDA graph capture.",  # --enforce-eager: no torch.compile, no graphs
        "init engine (profile, create kv cache, warmup model) took ",
        "Loaded new LoRA adapter: name 'easycontract'",
        "Loaded new LoRA adapter: name 'checklist'",
        f"Starting vLLM API server 0 on http://127.0.0.1:{port}",
        "INFO:     Application startup complete.",
        "INFO:     Finished server process",
    )
    assert "torch.compile" not in first
    assert re.search(
        r"^\(EngineCore_DP0 pid=\d+\) INFO \d\d-\d\d \d\d:\d\d:\d\d \[[\w.]+:\d+\] Loading weights took "
        r"[\d.]+ seconds$",
        first,
        re.MULTILINE,
    )
    # The weights are now in HF_HOME's hub cache, like huggingface_hub leaves them.
    snapshot = Path(env["HF_HOME"]) / "hub" / "models--LGAI-EXAONE--EXAONE-3.5-2.4B-Instruct" / "snapshots"
    assert (snapshot / GOOD_REVISION / "config.json").is_file()

    # Second start: same cache, so no download phase.
    with Served(vllm_bin, guide_args(port), env, tmp_path / "second.log") as srv:
        srv.wait_healthy()
        assert srv.stop() == 0
    second = srv.text()
    assert "Time spent downloading weights" not in second
    assert_in_order(second, "Loading weights took ", "Application startup complete.")


def test_api_key_flag_wins_over_env_and_no_key_means_open(vllm_bin, env, tmp_path):
    port = free_port()
    args = ["serve", MODEL, "--host", "127.0.0.1", "--port", str(port), "--enforce-eager", "--api-key", "flag-key"]
    with Served(vllm_bin, args, {**env, "VLLM_API_KEY": "env-key"}, tmp_path / "flag.log") as srv:
        srv.wait_healthy()
        assert http("GET", f"{srv.base}/v1/models", key="flag-key")[0] == 200
        assert http("GET", f"{srv.base}/v1/models", key="env-key")[0] == 401
        srv.stop()
    args = ["serve", MODEL, "--host", "127.0.0.1", "--port", str(port), "--enforce-eager"]
    with Served(vllm_bin, args, {**env, "VLLM_API_KEY": ""}, tmp_path / "open.log") as srv:
        srv.wait_healthy()
        status, body = http("GET", f"{srv.base}/v1/models")
        assert status == 200 and [c["id"] for c in json.loads(body)["data"]] == [MODEL]
        srv.stop()


# ---------------------------------------------------------------- argument errors (B-3 and argparse)


def test_invalid_lora_json_fails_with_vllms_error(vllm_bin, env):
    broken = '{"name":"easycontract","path":"temdy/exaone-3.5-2.4b-easycontract-qlora-v1.1"'
    result = run(vllm_bin, ["serve", MODEL, "--enable-lora", "--lora-modules", broken], env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "usage: vllm serve [model_tag] [options]",
        f"vllm serve: error: Invalid JSON format for --lora-modules: {broken}",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--lora-modules", '{"name":"a","pth":"b"}'],
            re.escape(
                'vllm serve: error: Invalid fields for --lora-modules: {"name":"a","pth":"b"} - '
                "LoRAModulePath.__init__() got an unexpected keyword argument 'pth'"
            ),
        ),
        (
            ["--max-lora-rank", "17"],
            r"vllm serve: error: argument --max-lora-rank: invalid choice: '?17'? \(choose from",
        ),
        (["--dtype", "fp16"], r"vllm serve: error: argument --dtype: invalid choice: 'fp16'"),
        (
            ["--gpu-memory-utilization", "high"],
            r"vllm serve: error: argument --gpu-memory-utilization: invalid float value: 'high'",
        ),
        (["--port", "eighty"], r"vllm serve: error: argument --port: invalid int value: 'eighty'"),
        (["--no-such-flag"], r"vllm: error: unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_arguments_exit_2_like_argparse(vllm_bin, env, args, message):
    result = run(vllm_bin, ["serve", MODEL, *args], env)
    assert result.returncode == 2
    assert re.search(message, result.stderr), result.stderr


def test_underscore_spelling_and_lora_name_equals_path_are_accepted(vllm_bin, env, tmp_path):
    port = free_port()
    args = [
        "serve",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--enforce_eager",
        "--enable-lora",
        "--max_model_len",
        "4k",
        "--lora-modules",
        f"{EASYCONTRACT[0]}={EASYCONTRACT[1]}",
    ]
    with Served(vllm_bin, args, env, tmp_path / "flex.log") as srv:
        srv.wait_healthy()
        cards = json.loads(http("GET", f"{srv.base}/v1/models")[1])["data"]
        assert [(c["id"], c["max_model_len"]) for c in cards] == [(MODEL, 4000), ("easycontract", None)]
        srv.stop()


def test_gpu_memory_utilization_must_be_in_0_1(vllm_bin, env):
    result = run(vllm_bin, ["serve", MODEL, "--gpu-memory-utilization", "1.5"], env)
    assert result.returncode == 1
    assert "ValidationError: 1 validation error for CacheConfig" in result.stderr
    assert "Input should be less than or equal to 1 [type=less_than_equal, input_value=1.5" in result.stderr
    result = run(vllm_bin, ["serve", MODEL, "--gpu-memory-utilization", "0"], env)
    assert result.returncode == 1 and "Input should be greater than 0" in result.stderr


def test_lora_modules_without_enable_lora_fail_at_adapter_load(vllm_bin, env):
    result = run(
        vllm_bin,
        ["serve", MODEL, "--port", str(free_port()), "--enforce-eager", "--lora-modules", _lora_json(*EASYCONTRACT)],
        env,
    )
    assert result.returncode == 1
    assert_in_order(
        result.stderr,
        "Model loading took ",
        "Invocation of add_lora method failed",
        "RuntimeError: LoRA is not enabled. Use --enable-lora to enable LoRA.",
        "ValueError: Call to add_lora method failed: LoRA is not enabled. Use --enable-lora to enable LoRA.",
    )
    assert "Starting vLLM API server" not in result.stderr


# ---------------------------------------------------------------- injected failures (B-10, B-11, B-4, B-12)


def test_sm_failure_needs_enforce_eager(vllm_bin, env, tmp_path):
    env = {**env, "VLLM_DOUBLE_FAIL": "sm"}
    port = free_port()
    result = run(vllm_bin, guide_args(port, enforce_eager=False), env)
    assert result.returncode == 1
    assert_in_order(
        result.stderr,
        "Model loading took ",
        "Dynamo bytecode transform time",
        "Not enough SMs to use max_autotune_gemm mode",
        "EngineCore failed to start.",
        "RuntimeError: Engine core initialization failed. See root cause above.",
    )
    with Served(vllm_bin, guide_args(port, enforce_eager=True), env, tmp_path / "eager.log") as srv:
        srv.wait_healthy()
        assert srv.stop() == 0
    assert "Not enough SMs" not in srv.text()


def test_on_an_l4_every_start_without_enforce_eager_crashes(vllm_bin, env):
    """Guide B-10 follows from the arguments, as on the real card: no switch needed to crash."""
    result = run(vllm_bin, guide_args(free_port(), enforce_eager=False), env)
    assert result.returncode == 1
    assert_in_order(result.stderr, "Dynamo bytecode transform time", "Not enough SMs to use max_autotune_gemm mode",
                    "EngineCore failed to start.")


def test_compile_path_without_failure_logs_compile_and_graphs(vllm_bin, env, tmp_path):
    env = {**env, "VLLM_DOUBLE_GPU_SMS": "132"}  # a card big enough for max_autotune_gemm (an H100 has 132)
    port = free_port()
    with Served(vllm_bin, guide_args(port, enforce_eager=False), env, tmp_path / "compile.log") as srv:
        srv.wait_healthy()
        assert srv.stop() == 0
    assert_in_order(
        srv.text(),
        "Model loading took ",
        "Compiling a graph for compile range (1, 2048) takes ",
        "torch.compile takes ",
        "Available KV cache memory: ",
        "Graph capturing finished in ",
        "Application startup complete.",
    )
    with Served(vllm_bin, guide_args(port, enforce_eager=False), env, tmp_path / "compile2.log") as srv:
        srv.wait_healthy()
        srv.stop()
    assert "Directly load the compiled graph(s) for compile range (1, 2048) from the cache" in srv.text()


def test_rope_failure_needs_the_pinned_revision(vllm_bin, env, tmp_path):
    env = {**env, "VLLM_DOUBLE_FAIL": "rope"}
    port = free_port()
    result = run(vllm_bin, guide_args(port, revision=None), env)
    assert result.returncode == 1
    last = result.stderr.rstrip().splitlines()[-1]
    assert re.fullmatch(
        r"\(APIServer pid=\d+\) ImportError: cannot import name 'RopeParameters' from "
        r"'transformers\.modeling_rope_utils' \(.+/transformers/modeling_rope_utils\.py\)",
        last,
    )
    assert "configuration_exaone.py" in result.stderr and "Loading weights" not in result.stderr
    with Served(vllm_bin, guide_args(port), env, tmp_path / "pinned.log") as srv:
        srv.wait_healthy()
        assert srv.stop() == 0


def test_oom_from_memory_arithmetic_and_forced(vllm_bin, env):
    port = str(free_port())
    tight = run(
        vllm_bin,
        [
            "serve",
            MODEL,
            "--port",
            port,
            "--enforce-eager",
            "--gpu-memory-utilization",
            "0.3",
            "--max-model-len",
            "32768",
        ],
        env,
    )
    assert tight.returncode == 1
    assert re.search(
        r"ValueError: To serve at least one request with the models's max seq len \(32768\), \([\d.]+ GiB KV "
        r"cache is needed, which is larger than the available KV cache memory \([\d.]+ GiB\)",
        tight.stderr,
    )
    assert "RuntimeError: Engine core initialization failed. See root cause above." in tight.stderr
    none_left = run(
        vllm_bin, ["serve", MODEL, "--port", port, "--enforce-eager", "--gpu-memory-utilization", "0.2"], env
    )
    assert none_left.returncode == 1
    assert "ValueError: No available memory for the cache blocks." in none_left.stderr
    forced = run(vllm_bin, ["serve", MODEL, "--port", port, "--enforce-eager"], {**env, "VLLM_DOUBLE_FAIL": "oom"})
    assert forced.returncode == 1
    assert "torch.OutOfMemoryError: CUDA out of memory." in forced.stderr


def test_hang_stops_after_loading_without_serving(vllm_bin, env, tmp_path):
    port = free_port()
    args = guide_args(port)
    with Served(vllm_bin, args, {**env, "VLLM_DOUBLE_FAIL": "hang"}, tmp_path / "hang.log") as srv:
        srv.wait_for_line("Model loading took ")
        time.sleep(0.5)
        assert srv.proc.poll() is None
        with pytest.raises(OSError):
            http("GET", f"{srv.base}/health")
        assert srv.stop() == 0
    assert "Starting vLLM API server" not in srv.text()


# ---------------------------------------------------------------- start time (guide B-12)


def test_start_takes_the_hosts_configured_time_and_refuses_until_ready(vllm_bin, env, tmp_path):
    """The settings file sets the start time; before it is over the port refuses, as vLLM's does while loading."""
    settings = tmp_path / "standins.env"
    settings.write_text("# a host's settings\nVLLM_DOUBLE_START_SECONDS=4\n")
    env = {k: v for k, v in env.items() if k != "VLLM_DOUBLE_START_SECONDS"}
    env["VLLM_DOUBLE_SETTINGS"] = str(settings)
    port = free_port()
    started = time.monotonic()
    with Served(vllm_bin, guide_args(port), env, tmp_path / "timed.log") as srv:
        srv.wait_for_line("Starting to load model")
        assert time.monotonic() - started < 4
        with pytest.raises(OSError):  # connection refused: not a 200, not an empty model list
            http("GET", f"{srv.base}/health")
        with pytest.raises(OSError):
            http("GET", f"{srv.base}/v1/models")
        srv.wait_healthy(timeout=30)
        took = time.monotonic() - started
        assert srv.stop() == 0
    assert 4 <= took < 12, took
    assert_in_order(srv.text(), "Time spent downloading weights", "Loading weights took ", "init engine",
                    "Application startup complete.")
    # A drop-in's Environment= wins over the file.
    with Served(vllm_bin, guide_args(port), {**env, "VLLM_DOUBLE_START_SECONDS": "0"}, tmp_path / "fast.log") as srv:
        quick = time.monotonic()
        srv.wait_healthy(timeout=30)
        assert time.monotonic() - quick < 3
        srv.stop()


def test_default_start_time_is_twenty_seconds(vllm_bin, env, tmp_path):
    env = {k: v for k, v in env.items() if k != "VLLM_DOUBLE_START_SECONDS"}
    env["VLLM_DOUBLE_SETTINGS"] = str(tmp_path / "absent.env")
    python = vllm_bin.parent / "python"
    probe = "from vllm._double import settings; print(settings.start_seconds())"
    result = subprocess.run([str(python), "-c", probe], env=env, capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "20.0", result.stderr
    (tmp_path / "typo.env").write_text("VLLM_DOUBLE_START_SECONDS=soon\n")
    env["VLLM_DOUBLE_SETTINGS"] = str(tmp_path / "typo.env")
    result = subprocess.run([str(python), "-c", probe], env=env, capture_output=True, text=True, timeout=30)
    assert result.stdout.strip() == "20.0", result.stderr
