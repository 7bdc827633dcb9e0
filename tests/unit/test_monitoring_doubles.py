"""The section 7 stand-ins on this machine: Loki's wire format, the receiver, the shipper, the packages."""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOUBLES = REPO / "testbed" / "standins"
sys.path[:0] = [str(DOUBLES / "loki"), str(DOUBLES / "promtail")]
import alloy_syntax  # noqa: E402
import receiver  # noqa: E402
import selector  # noqa: E402
import wire  # noqa: E402
import yamlmini  # noqa: E402


def builder(part: str):
    spec = importlib.util.spec_from_file_location(f"build_{part}", DOUBLES / part / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_snappy_reads_copies_and_writes_literals():
    # "abc" as a literal, then a 6-byte copy at offset 3 (tag 1: length-4 in bits 2-4).
    assert wire.snappy_decompress(bytes([9, 2 << 2]) + b"abc" + bytes([1 | (2 << 2), 3])) == b"abcabcabc"
    for size in (0, 1, 59, 60, 255, 256, 70000):
        data = os.urandom(size)
        assert wire.snappy_decompress(wire.snappy_compress(data)) == data
    with pytest.raises(ValueError):
        wire.snappy_decompress(bytes([5, 1 | (0 << 2), 9]))  # a copy before any output


def test_push_request_round_trip_and_label_strings():
    streams = [({"job": "ai-server", "service": "ai-server", "note": 'say "hi"\n'}, [(1_700_000_000_123_456_789, "x")]),
               ({"job": "vllm"}, [(5, "é"), (6, "")])]
    assert wire.decode_push(wire.encode_push(streams)) == streams
    assert wire.parse_labels('{a="1", b="x\\"y"}') == {"a": "1", "b": 'x"y'}
    body = json.dumps({"streams": [{"stream": {"job": "j"}, "values": [["17", "line"]]}]}).encode()
    assert wire.decode_json_push(body) == [({"job": "j"}, [(17, "line")])]


def test_selectors():
    test = selector.compile_selector('{unit="ai-server.service", service!="vllm", job=~"ai-.*"} |= "boot"')
    assert test({"unit": "ai-server.service", "job": "ai-server"}, "booting")
    assert not test({"unit": "ai-server.service", "job": "ai-server", "service": "vllm"}, "booting")
    assert not test({"unit": "ai-server.service", "job": "ai-server"}, "ready")
    with pytest.raises(selector.SelectorError):
        selector.parse("{}")


def test_yaml_subset():
    doc = yamlmini.loads("a:\n  - x: 1\n    y: ['p', \"q\"]\n  - 2\nb: 'it''s' # c\nc:\n- k\n")
    assert doc == {"a": [{"x": 1, "y": ["p", "q"]}, 2], "b": "it's", "c": ["k"]}
    assert doc.lines == {"a": 1, "b": 5, "c": 6}
    with pytest.raises(yamlmini.YamlError, match="line 3"):
        yamlmini.loads("positions:\n  filename: /tmp/p\n/\nclients: []\n")  # the guide's stray '/'


def test_alloy_syntax_errors_name_line_and_column():
    root = alloy_syntax.parse('a.b "x" {\n  k = [c.d.e, "s", 1]\n  m = { q = true, }\n  blk { }\n}\n')
    (block,) = root.blocks
    assert (block.name, block.label) == ("a.b", "x")
    assert block.attrs["k"][0] == [alloy_syntax.Ref("c.d.e"), "s", 1] and block.attrs["m"][0] == {"q": True}
    with pytest.raises(alloy_syntax.AlloySyntaxError, match=r"f\.alloy:2:7"):
        alloy_syntax.parse('a "x" {\n  k = = 1\n}\n', "f.alloy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_receiver_accepts_json_and_snappy_protobuf_and_answers_queries():
    server = receiver.serve(f"127.0.0.1:{_free_port()}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        proto = wire.snappy_compress(wire.encode_push([({"job": "vllm", "service": "vllm"}, [(2, "from proto")])]))
        req = urllib.request.Request(f"{base}/loki/api/v1/push", proto, {"Content-Type": "application/x-protobuf"})
        assert urllib.request.urlopen(req, timeout=5).status == 204
        body = json.dumps({"streams": [{"stream": {"job": "ai"}, "values": [["1", "from json"]]}]}).encode()
        req = urllib.request.Request(f"{base}/loki/api/v1/push", body, {"Content-Type": "application/json"})
        assert urllib.request.urlopen(req, timeout=5).status == 204
        bad = urllib.request.Request(f"{base}/loki/api/v1/push", b"junk", {"Content-Type": "application/x-protobuf"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(bad, timeout=5)
        assert err.value.code == 400
        query = urllib.parse.quote('{service="vllm"}')
        result = json.load(urllib.request.urlopen(f"{base}/loki/api/v1/query_range?query={query}", timeout=5))
        assert result["data"]["result"] == [{"stream": {"job": "vllm", "service": "vllm"},
                                             "values": [["2", "from proto"]]}]
        values = json.load(urllib.request.urlopen(f"{base}/loki/api/v1/label/job/values", timeout=5))["data"]
        assert values == ["ai", "vllm"]
    finally:
        server.shutdown()


def test_promtail_stand_in_tails_files_into_the_receiver(tmp_path):
    """The whole path on this machine: a file job, relabeling, protobuf+snappy push, query."""
    server = receiver.serve(f"127.0.0.1:{_free_port()}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "logs").mkdir()
    http_port = _free_port()
    (tmp_path / "config.yml").write_text(f"""\
server:
  http_listen_port: {http_port}
positions:
  filename: {tmp_path}/positions.yaml
clients:
  - url: http://127.0.0.1:{server.server_address[1]}/loki/api/v1/push
scrape_configs:
  - job_name: app
    static_configs:
      - targets: [localhost]
        labels:
          job: app
          host: h1
          __path__: {tmp_path}/logs/*.log
    pipeline_stages:
      - match:
          selector: '{{job="app"}}'
          stages:
            - static_labels:
                service: app
""")
    app = builder("promtail").application()
    (tmp_path / "promtail").write_bytes(app)
    (tmp_path / "promtail").chmod(0o755)
    check = subprocess.run([str(tmp_path / "promtail"), f"-config.file={tmp_path}/config.yml", "-check-syntax"],
                           capture_output=True, text=True)
    assert check.returncode == 0 and "Valid config file" in check.stdout
    proc = subprocess.Popen([str(tmp_path / "promtail"), f"-config.file={tmp_path}/config.yml"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        (tmp_path / "logs/a.log").write_text("first line\nsecond line\n")
        written = time.monotonic()
        deadline = time.monotonic() + 15
        result = []
        query = urllib.parse.quote('{service="app"}')
        while time.monotonic() < deadline and len(result) < 1:
            time.sleep(0.3)
            url = f"http://127.0.0.1:{server.server_address[1]}/loki/api/v1/query_range?query={query}"
            result = json.load(urllib.request.urlopen(url, timeout=5))["data"]["result"]
        # Like Promtail's client (batchwait 1s): the batch leaves once its first line has waited a second.
        assert time.monotonic() - written >= 1.0
        assert result and result[0]["stream"] == {"job": "app", "host": "h1", "service": "app",
                                                  "filename": f"{tmp_path}/logs/a.log"}
        assert sorted(v[1] for v in result[0]["values"]) == ["first line", "second line"]
        ready = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/ready", timeout=5)
        assert ready.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.shutdown()
    assert f"{tmp_path}/logs/a.log" in (tmp_path / "positions.yaml").read_text()


def test_promtail_stand_in_refuses_unknown_fields(tmp_path):
    (tmp_path / "promtail").write_bytes(builder("promtail").application())
    (tmp_path / "promtail").chmod(0o755)
    (tmp_path / "c.yml").write_text("clients:\n  - url: http://x\nscrape_configs:\n  - job_name: a\n"
                                    "    journal:\n      matchs: _SYSTEMD_UNIT=a.service\n")
    r = subprocess.run([str(tmp_path / "promtail"), f"-config.file={tmp_path}/c.yml", "-check-syntax"],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "line 6: field matchs not found in type scrapeconfig.JournalTargetConfig" in r.stderr


@pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("dpkg-deb")), reason="needs gcc and dpkg-deb")
def test_dcgm_packages_install_libdcgm_by_major(tmp_path):
    out = builder("dcgm").build(tmp_path / "cuda", "/opt/x/cuda")
    packages = (out / "repo/Packages").read_text()
    assert "Package: datacenter-gpu-manager\nVersion: 1:3.3.9" in packages
    assert "Conflicts: datacenter-gpu-manager" in packages and "Package: datacenter-gpu-manager-4-cuda12" in packages
    for deb, lib in (("datacenter-gpu-manager_3.3.9_amd64.deb", "libdcgm.so.3"),
                     ("datacenter-gpu-manager-4-core_4.2.3-1_amd64.deb", "libdcgm.so.4")):
        listing = subprocess.run(["dpkg-deb", "-c", str(out / "repo" / deb)], capture_output=True, text=True).stdout
        assert f"/usr/lib/x86_64-linux-gnu/{lib} -> " in listing and "nvidia-dcgm.service" in listing
    keyring = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(out / "cuda-keyring_1.1-1_all.deb")],
                             capture_output=True).stdout
    assert b"deb [trusted=yes] file:/opt/x/cuda/repo ./" in keyring


@pytest.mark.skipif(not shutil.which("git"), reason="needs git")
def test_dcgm_exporter_repository_has_a_tag_per_major(tmp_path):
    repo = builder("dcgm_exporter").build(tmp_path / "x.git", {"3": "3.3.9-3.6.1", "4": "4.2.3-4.1.3"})
    tags = subprocess.run(["git", "-C", str(repo), "tag"], capture_output=True, text=True).stdout.split()
    assert tags == ["3.3.9-3.6.1", "4.2.3-4.1.3"]
    for tag, lib in (("3.3.9-3.6.1", "libdcgm.so.3"), ("4.2.3-4.1.3", "libdcgm.so.4")):
        source = subprocess.run(["git", "-C", str(repo), "show", f"{tag}:cmd/dcgm-exporter/libdcgm.go"],
                                capture_output=True, text=True).stdout
        assert f'"{lib}"' in source
    makefile = subprocess.run(["git", "-C", str(repo), "show", "main:Makefile"], capture_output=True, text=True).stdout
    assert "binary:" in makefile and "cd cmd/dcgm-exporter" in makefile
