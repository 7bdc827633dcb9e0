"""Current components: Prometheus targets, the current-components rows and items, the Alloy cut-over order."""

import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from runbook import prometheus_targets
from runbook.config import parse_settings
from runbook.engine.steps import Command
from runbook.engine.wait import HttpWait
from runbook.facts import HostFacts
from runbook.sections import HOST_SECTIONS, vllm
from runbook.sections.common import HostInfo
from runbook.sections.log_shipper_config import JOURNAL_MAX_AGE, POSITIONS, Shipping, alloy_config
from runbook.sections.loki_check import LokiReachable
from runbook.verify import current_rows, rows
from runbook.verify.reach import Reach
from troubleshoot import current_items
from troubleshoot.cloud_facts import CloudFacts
from troubleshoot.context import Evidence
from troubleshoot.registry import REGISTRY, ordered

ordered()
ALLOY = parse_settings({"inventory": {"target": "hosts", "hosts": [{"name": "h", "address": "10.0.0.2"}]},
                        "monitoring": {"promtail": {"loki_url": "http://loki.example.com:3100"}}})
PROMTAIL = parse_settings({"monitoring": {"promtail": {"log_shipper": "promtail"}}})
HOSTS = [prometheus_targets.Host("ai-server-l4", "10.231.7.2"), prometheus_targets.Host("ai-2", "10.231.8.2")]


def unit(active="active", enabled="enabled") -> str:
    return f"LoadState=loaded\nActiveState={active}\nSubState=running\nUnitFileState={enabled}\nNOW=1\n"


def ev(settings, **raw) -> Evidence:
    return Evidence(settings, "h", HostFacts({k.replace("__", ":"): v for k, v in raw.items()}),
                    CloudFacts(settings, Path(".")))


def test_targets_have_host_and_instance_labels_for_every_job():
    got = prometheus_targets.targets(ALLOY, HOSTS)
    assert sorted(got) == ["l4rb-app", "l4rb-dcgm", "l4rb-node", "l4rb-vllm"]
    assert got["l4rb-vllm"][0] == {"targets": ["10.231.7.2:8001"],
                                   "labels": {"host": "ai-server-l4", "instance": "ai-server-l4:8001"}}
    assert [g["targets"] for g in got["l4rb-dcgm"]] == [["10.231.7.2:9400"], ["10.231.8.2:9400"]]
    with pytest.raises(ValueError):
        prometheus_targets.scrape_config(ALLOY, "/x", interval="fast")


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed (apt-get install prometheus)")
def test_scrape_config_passes_promtool(tmp_path):
    written = prometheus_targets.write(ALLOY, HOSTS, tmp_path, "/etc/prometheus/l4rb")
    r = subprocess.run(["promtool", "check", "config", str(written[-1])], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '"/etc/prometheus/l4rb/l4rb-node.json"' in written[-1].read_text()
    broken = tmp_path / "broken.yml"
    broken.write_text(written[-1].read_text().replace("scrape_interval: 15s", "scrape_interval: soon"))
    assert subprocess.run(["promtool", "check", "config", str(broken)], capture_output=True).returncode != 0


def test_log_shipper_row_warns_on_promtail():
    status, detail = current_rows._judge_current_shipper(rows.Facts(PROMTAIL, HostFacts({}), None))
    assert status == rows.WARN and "2026-03-02" in detail
    both = {"unit:promtail.service": unit(), "unit:alloy.service": unit()}
    assert current_rows._judge_current_shipper(rows.Facts(ALLOY, HostFacts(both), None))[0] == rows.WARN
    alone = {"unit:promtail.service": unit("inactive", "disabled"), "unit:alloy.service": unit()}
    assert current_rows._judge_current_shipper(rows.Facts(ALLOY, HostFacts(alone), None))[0] == rows.OK


class _Targets(http.server.BaseHTTPRequestHandler):
    body = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def test_prometheus_row_reads_the_targets_api():
    targets = [{"scrapeUrl": "http://10.0.0.2:9100/metrics", "health": "up", "labels": {"job": "l4rb-node"}},
               {"scrapeUrl": "http://10.0.0.2:9400/metrics", "health": "down", "lastError": "connection refused",
                "labels": {"job": "l4rb-dcgm"}},
               {"scrapeUrl": "http://10.0.0.9:9100/metrics", "health": "down", "labels": {"job": "l4rb-node"}}]
    _Targets.body = json.dumps({"status": "success", "data": {"activeTargets": targets}}).encode()
    server = http.server.HTTPServer(("127.0.0.1", 0), _Targets)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        s = parse_settings({"monitoring": {"prometheus_url": url}})
        status, detail = current_rows._judge_prometheus(rows.Facts(s, HostFacts({}), Reach("10.0.0.2")))
        assert status == rows.FAIL and "1 of 2 targets up" in detail and "connection refused" in detail
        assert current_rows._judge_prometheus(rows.Facts(s, HostFacts({}), Reach("10.0.0.7")))[0] == rows.FAIL
    finally:
        server.shutdown()
    assert current_rows._judge_prometheus(rows.Facts(ALLOY, HostFacts({}), Reach("10.0.0.2")))[0] == rows.SKIP


def test_c1_finds_a_running_promtail_and_the_fix_cuts_over_after_alloy_is_green():
    running = {"unit__promtail.service": unit(), "unit__alloy.service": "LoadState=not-found\n"}
    got = REGISTRY["C-1"].detect(ev(ALLOY, **running))
    assert got.verdict == "found" and got.data["kind"] == "migrate"
    assert REGISTRY["C-1"].detect(ev(PROMTAIL, **running)).data["kind"] == "config"
    gone = {"unit__promtail.service": unit("inactive", "disabled"), "unit__alloy.service": unit()}
    assert REGISTRY["C-1"].detect(ev(ALLOY, **gone)).verdict == "ok"

    from runbook.config import Config
    cfg = Config.model_construct(settings=parse_settings({"monitoring": {"promtail": {
        "loki_url": "http://loki:3100"}}}), secrets=None, root=Path("."))
    steps = current_items.migration_steps(HOST_SECTIONS["promtail"].build(cfg, HostInfo("h", "ubuntu")))
    titles = [s.title for s in steps]
    cut = next(i for i, s in enumerate(steps) if s.title.startswith("cut-over"))
    config = next(i for i, t in enumerate(titles) if t.startswith("/etc/alloy/config.alloy"))
    loki = next(i for i, s in enumerate(steps) if isinstance(s, LokiReachable))
    assert config < loki < cut < next(i for i, s in enumerate(steps) if isinstance(s, HttpWait))
    assert "alloy validate" in steps[config].validate
    assert not any(isinstance(s, Command) and s.title.startswith("promtail.service stopped") for s in steps)


def test_alloy_config_takes_promtails_offsets_and_reads_the_journal_a_minute_back():
    text = alloy_config(Shipping("http://loki:3100", "h", ("ai-server",), "app", "/var/log/app/*.log"))
    assert f'legacy_positions_file = "{POSITIONS}"' in text and f'max_age       = "{JOURNAL_MAX_AGE}"' in text


def envfiles(values: dict[str, str], lines: str = "") -> str:
    """What the fact layer's env-file probe prints: the files, where each variable is set, systemd's values."""
    return ("file=/app/vllm-server/vllm.env\n" + lines + "rc=0\nerror=\n@@L4RB-ENV\n"
            + "".join(f"{k}={v}\0" for k, v in values.items()))


def test_c2_names_the_file_and_line_of_vllm_port():
    raw = {"unit__vllm.service": unit(),
           "envfiles__vllm.service": envfiles({"VLLM_PORT": "8001"}, "line=VLLM_PORT /app/vllm-server/vllm.env:4\n"),
           "procenv__vllm.service": "VLLM_PORT=8001\0HOME=/root\0"}
    got = REGISTRY["C-2"].detect(ev(ALLOY, **raw))
    assert got.verdict == "found" and "file: /app/vllm-server/vllm.env:4: VLLM_PORT=8001" in got.evidence
    assert "process: VLLM_PORT=8001" in got.evidence
    dropin = {"unit__vllm.service": unit() + "FragmentPath=/etc/systemd/system/vllm.service\n"
              "DropInPaths=/etc/systemd/system/vllm.service.d/host.conf\n"
              "@@L4RB-UNIT-BUS Environment {\"type\":\"as\",\"data\":[\"VLLM_HOST=0.0.0.0\"]}\n"
              "@@L4RB-UNIT-FILE /etc/systemd/system/vllm.service.d/host.conf\n"
              "[Service]\nEnvironment=VLLM_HOST=0.0.0.0\n",
              "envfiles__vllm.service": envfiles({"SERVE_PORT": "8001"})}
    got = REGISTRY["C-2"].detect(ev(ALLOY, **dropin))
    assert got.verdict == "found" and "VLLM_HOST" in got.summary
    assert "environment: /etc/systemd/system/vllm.service.d/host.conf:2: Environment=VLLM_HOST=0.0.0.0" in got.evidence
    clean = {"unit__vllm.service": unit(), "envfiles__vllm.service": envfiles({"SERVE_PORT": "8001"})}
    assert REGISTRY["C-2"].detect(ev(ALLOY, **clean)).verdict == "ok"


def test_vllm_env_and_unit_use_no_vllm_reserved_names():
    from runbook.config import Config, Secrets
    cfg = Config(settings=ALLOY, secrets=Secrets(vllm_api_key="k" * 12, ocr_api="o" * 12), root=Path("."))
    env, unit_text = vllm.env_file(cfg), vllm.unit_file(cfg)
    assert "SERVE_PORT=8001" in env and "VLLM_API_KEY=" in env
    for text in (env, unit_text):
        assert "VLLM_PORT" not in text and "VLLM_HOST" not in text and "${VLLM_" not in text


def test_alloy_from_grafanas_apt_repository_needs_a_pinned_key():
    from runbook.errors import ConfigError
    with pytest.raises(ConfigError, match="apt_key_sha256"):
        parse_settings({"monitoring": {"promtail": {"alloy": {"method": "apt"}}}})
    from runbook.config import Config
    pin = "a" * 64
    settings = parse_settings({"monitoring": {"promtail": {"loki_url": "http://loki:3100", "alloy": {
        "method": "apt", "apt_key_sha256": pin}}}})
    steps = HOST_SECTIONS["promtail"].build(Config.model_construct(settings=settings, secrets=None, root=Path(".")),
                                            HostInfo("h", "ubuntu"))
    key = next(s for s in steps if s.title.startswith("Grafana's apt key"))
    assert f"[ \"$got\" = {pin} ]" in key.run and key.run.index("sha256sum") < key.run.index("gpg --batch")
    source = next(s for s in steps if s.title == "/etc/apt/sources.list.d/grafana.list")
    assert source.content == "deb [signed-by=/etc/apt/keyrings/grafana.gpg] https://apt.grafana.com stable main\n"
    unit = next(s for s in steps if s.title == "/etc/systemd/system/alloy.service")
    assert "ExecStart=/usr/bin/alloy run" in unit.content


def test_b4_reads_the_serve_names_and_the_guides():
    from troubleshoot.vllm_items import _numbers
    for name in ("SERVE", "VLLM"):
        raw = {"unit__vllm.service": unit(), "envfiles__vllm.service": envfiles(
            {f"{name}_MAX_MODEL_LEN": "4096", f"{name}_GPU_MEMORY_UTILIZATION": "0.8"})}
        host, _ = _numbers(ev(ALLOY, **raw))
        assert host == {"max_model_len": "4096", "gpu_memory_utilization": "0.8"}
