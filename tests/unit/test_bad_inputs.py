"""Bad input, the way a careless user types it: every case exits 2 with one error line naming the field,
and no host is contacted (the inventory's one host is a TCP listener that counts connections)."""

import importlib.util
import os
import socket
import threading
from pathlib import Path

import pytest
from invoke import Program

REPO = Path(__file__).resolve().parents[2]
GOOD = {"VLLM_API_KEY": "good-vllm-key-0123", "OCR_API": "good-ocr-key-4567"}


def _tasks_namespace():
    spec = importlib.util.spec_from_file_location("l4rb_tasks", REPO / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ns


NS = _tasks_namespace()


class Listener:
    """A TCP port standing in for a host's sshd: any connection at all is counted."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()


@pytest.fixture(scope="module")
def host():
    listener = Listener()
    yield listener
    listener.sock.close()


def base(port: int) -> str:
    return f"""secrets_file = "secrets.env"
[inventory]
target = "hosts"
[[inventory.hosts]]
name = "h1"
address = "127.0.0.1"
port = {port}
[ssh]
known_hosts = "kh"
connect_timeout = 3
[monitoring.promtail]
loki_url = "http://loki.example.com:3100"
"""


# (case id, text appended to / replacing hosts.toml, field the one error line must name)
CONFIG_CASES = [
    ("port-bool", "[vllm]\nport = true\n", "vllm.port"),
    ("port-string", "[vllm]\nport = \"8001\"\n", "vllm.port"),
    ("port-float", "[vllm]\nport = 8001.0\n", "vllm.port"),
    ("port-range", "[ai_server]\nport = 70000\n", "ai_server.port"),
    ("user-newline", "[ai_server]\nuser = \"app\\nExecStartPre=/bin/sh -c id\"\n", "ai_server.user"),
    ("host-label-comment", "[monitoring.promtail.alloy]\n", None),  # placeholder, replaced below
    ("vllm-base-url", "[ai_server]\nvllm_base_url = \"http://x:8001/v1 --evil\"\n", "ai_server.vllm_base_url"),
    ("revision-words", "[vllm]\nrevision = \"main --api-key visible\"\n", "vllm.revision"),
    ("go-sha-empty", "[monitoring.dcgm.go]\nsha256 = \"\"\n", "monitoring.dcgm.go.sha256"),
    ("project-placeholder", None, "gcp.project_id"),
    ("adapters-empty", "[vllm]\nadapters = []\n", "vllm.adapters"),
    ("http-no-pin", "[monitoring.node_exporter]\nurl = \"http://mirror.internal/ne.tar.gz\"\n",
     "monitoring.node_exporter.url"),
    ("checksums-http", "[monitoring.node_exporter]\nchecksums_url = \"http://mirror.internal/sums.txt\"\n",
     "monitoring.node_exporter.checksums_url"),
    ("apt-trusted", "[monitoring.dcgm]\napt_repo = \"deb [trusted=yes] https://mirror.internal/cuda /\"\n",
     "monitoring.dcgm.apt_repo"),
    ("keyring-http", "[monitoring.dcgm]\ncuda_keyring_url = \"http://mirror.internal/cuda-keyring.deb\"\n",
     "monitoring.dcgm.cuda_keyring_url"),
    ("index-http", "[python]\nindex_url = \"http://pypi.internal/simple\"\n", "python.index_url"),
    ("gpu-util-bool", "[vllm]\ngpu_memory_utilization = true\n", "vllm.gpu_memory_utilization"),
    ("timeout-string", None, "ssh.connect_timeout"),
    ("model-space", "[vllm]\nmodel = \"org/model --trust-remote-code\"\n", "vllm.model"),
    ("package-option", "[ai_server]\npackages = [\"--index-url=http://evil/simple\"]\n", "ai_server.packages.0"),
    ("exporter-tag-words", "[monitoring.dcgm.exporter_tags]\n\"3\" = \"v1 --upload-pack=x\"\n",
     "monitoring.dcgm.exporter_tags.3"),
    ("app-env-newline", "[ai_server]\napp_env = \"prod\\nX=1\"\n", "ai_server.app_env"),
    ("priority-float", "[firewall]\npriority = 1.5\n", "firewall.priority"),
    ("enforce-eager-string", "[vllm]\nenforce_eager = \"yes\"\n", "vllm.enforce_eager"),
    ("unknown-key", "[vllm]\nprot = 8001\n", "vllm.prot"),
    ("git-http", "[monitoring.dcgm]\nexporter_git = \"http://mirror.internal/dcgm-exporter.git\"\n",
     "monitoring.dcgm.exporter_git"),
    ("health-path", "[ai_server]\nhealth_path = \"/health; reboot\"\n", "ai_server.health_path"),
]
CONFIG_CASES[5] = ("host-label-comment", "[monitoring.promtail]\nhost_label = \"web #1\"\n",
                   "monitoring.promtail.host_label")


def _config_text(case: str, extra: str | None, port: int) -> str:
    text = base(port)
    if case == "project-placeholder":
        return text.replace('target = "hosts"', 'target = "gcp"')
    if case == "timeout-string":
        return text.replace("connect_timeout = 3", 'connect_timeout = "3"')
    # Appending a table that base() already has would be a TOML error: merge into it instead.
    header, _, rest = extra.partition("\n")
    if header in text:
        return text.replace(header + "\n", extra, 1)
    return text + extra


def run_inv(argv: list[str], capsys) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as done:
        Program(namespace=NS, name="inv", binary="inv").run(["inv", *argv])
    captured = capsys.readouterr()
    errors = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    return done.value.code, errors


def check(code: int, lines: list[str], field: str, host: Listener) -> None:
    assert code == 2, lines
    assert len(lines) == 1, lines  # one line, naming the field
    assert lines[0].startswith("error: ") and field in lines[0], lines
    assert "Traceback" not in lines[0]
    assert host.accepted == 0  # no host was contacted


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key in ("VLLM_API_KEY", "OCR_API", "BACKEND_INTERNAL_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in GOOD.items():
        monkeypatch.setenv(key, value)
    return tmp_path


@pytest.mark.parametrize(("case", "extra", "field"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_setting(case, extra, field, project, host, capsys):
    (project / "hosts.toml").write_text(_config_text(case, extra, host.port))
    code, lines = run_inv(["vllm", "--config", "hosts.toml"], capsys)
    check(code, lines, field, host)


SECRET_CASES = [
    ("key-short", {"VLLM_API_KEY": "abc1234"}, None, "VLLM_API_KEY"),
    ("ocr-newline", {"OCR_API": "ocr-key\nINJECTED=1"}, None, "OCR_API"),
    ("token-newline", {"BACKEND_INTERNAL_TOKEN": "token-abc\nX=1"}, None, "BACKEND_INTERNAL_TOKEN"),
    ("token-expansion", {"BACKEND_INTERNAL_TOKEN": "tok-${HOME}-xyz"}, None, "BACKEND_INTERNAL_TOKEN"),
    ("key-blank", {"VLLM_API_KEY": "        "}, None, "VLLM_API_KEY"),
    ("file-unbalanced-quote", {}, "VLLM_API_KEY='abcdefgh12\n", "VLLM_API_KEY"),
    ("file-nul", {}, "OCR_API=abcd\0efghij\n", "OCR_API"),
    ("file-twice", {}, "OCR_API=abcdefgh12\nOCR_API=abcdefgh34\n", "OCR_API"),
    ("file-unknown-key", {}, "VLLM_APIKEY=abcdefgh12\n", "VLLM_APIKEY"),
]


@pytest.mark.parametrize(("case", "env", "file_text", "field"), SECRET_CASES, ids=[c[0] for c in SECRET_CASES])
def test_bad_secret(case, env, file_text, field, project, host, capsys, monkeypatch):
    (project / "hosts.toml").write_text(base(host.port))
    if file_text is not None:
        for key in GOOD:
            if key in file_text:
                monkeypatch.delenv(key)
        secrets_file = project / "secrets.env"
        secrets_file.write_text(file_text)
        secrets_file.chmod(0o600)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, lines = run_inv(["ai-server", "--config", "hosts.toml"], capsys)
    check(code, lines, field, host)
    for value in [*env.values(), file_text or ""]:
        assert value.strip() == "" or value not in "\n".join(lines)  # never the secret itself


def test_secrets_file_readable_by_others(project, host, capsys):
    (project / "hosts.toml").write_text(base(host.port))
    (project / "secrets.env").write_text("OCR_API=abcdefgh12\n")
    (project / "secrets.env").chmod(0o644)
    code, lines = run_inv(["vllm", "--config", "hosts.toml"], capsys)
    check(code, lines, "secrets file is readable by others", host)


FILE_CASES = [
    ("directory", lambda p: p.mkdir(), "must be a regular file"),
    ("not-utf8", lambda p: p.write_bytes(b"[vllm]\nmodel = \"\xff\xfe\"\n"), "not UTF-8"),
    ("too-big", lambda p: p.write_text("# " + "x" * (1 << 20) + "\n"), "larger than 1024 KiB"),
    ("device", lambda p: p.symlink_to("/dev/zero"), "must be a regular file"),
    ("missing", lambda p: None, "not found"),
]


@pytest.mark.parametrize(("case", "make", "message"), FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_config_file(case, make, message, project, host, capsys):
    make(project / "hosts.toml")
    code, lines = run_inv(["vllm", "--config", "hosts.toml"], capsys)
    check(code, lines, message, host)
    assert "hosts.toml" in lines[0]


FLAG_CASES = [
    (["vllm", "--wait", "abc"], "--wait"),
    (["vllm", "--wait", "-5"], "--wait"),
    (["deploy", "--wait", "1.5"], "--wait"),
    (["vllm", "--hosts", "nosuch"], "--hosts"),
    (["deploy", "--only", "vlm"], "--only"),
    (["deploy", "--from", "nowhere"], "--from"),
]


@pytest.mark.parametrize(("argv", "field"), FLAG_CASES, ids=["-".join(c[0]) for c in FLAG_CASES])
def test_bad_flag(argv, field, project, host, capsys):
    (project / "hosts.toml").write_text(base(host.port))
    code, lines = run_inv([*argv, "--config", "hosts.toml"], capsys)
    check(code, lines, field, host)


def test_the_table_has_at_least_30_rows():
    assert len(CONFIG_CASES) + len(SECRET_CASES) + 1 + len(FILE_CASES) + len(FLAG_CASES) >= 30


def test_a_bom_is_stripped_and_the_file_read(project, host):
    from runbook import config

    (project / "hosts.toml").write_bytes(b"\xef\xbb\xbf" + base(host.port).encode())
    settings, _ = config.load_settings(project / "hosts.toml")
    assert settings.inventory.hosts[0].port == host.port
    assert os.environ["VLLM_API_KEY"] == GOOD["VLLM_API_KEY"]
