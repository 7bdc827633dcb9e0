"""The security guarantees of README's "Security" section, one test (or more) each, against real readers:
python-dotenv parses the .env we write, the real google-cloud-compute client talks to the local server,
real flock and real processes for the locks."""

import json
import multiprocessing
import os
import stat
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import google.auth.exceptions
import pytest
from dotenv import dotenv_values
from google.api_core import exceptions as gexc
from pydantic import SecretStr

from runbook import config, envfile, gcp, secrets
from runbook.cloud import firewall, state
from runbook.engine.results import SectionResult, StepResult, write_report
from runbook.engine.steps import File, RunState
from runbook.errors import ConfigError, RunbookError
from runbook.sections import ai_server, vllm
from runbook.transport import LocalTransport
from testbed.compute_server import ComputeServer

from compute_api import FAST, POLICY

REPO = Path(__file__).resolve().parents[2]
# Each breaks an unquoted env file in its own way (comment, quote, escape, expansion, spaces).
HARD = ["abc#def-ghi", "it's-a-key-1", 'say "hi" 12', "back\\slash\\n-1", "dollar$HOME-1", "  spaced key  ",
        "'leading-quote", "semi;colon-key", "tab\tinside-key", "ünïcödé-kéy-1", "per%cent-key-1"]


def cfg_with(vllm_key: str, token: str = "", ocr: str = "ocr-key-123456") -> config.Config:
    settings = config.parse_settings({})
    return config.Config(settings=settings, root=REPO,
                         secrets=config.Secrets(vllm_api_key=SecretStr(vllm_key), ocr_api=SecretStr(ocr),
                                                backend_internal_token=SecretStr(token)))


# -- 1. a rotated-out secret never prints, reports are 0600 ---------------------------------------


def test_old_key_on_the_host_is_masked_on_both_sides_and_in_the_report(tmp_path):
    secrets.clear()
    secrets.register("new-key-0123456789")
    wanted = vllm.env_file(cfg_with("new-key-0123456789"))
    on_host = wanted.replace("new-key-0123456789", "old-live-key-42") + "# rotated: old-live-key-42\n"
    step = File(guide="3-3", title="vllm.env", path="/app/vllm-server/vllm.env", content=wanted, mode=0o600,
                secret=True)
    plan = step.plan("regular file|root|root|600\n" + on_host, RunState())
    assert plan.changed and "old-live-key-42" not in plan.diff and "new-key-0123456789" not in plan.diff
    assert "-VLLM_API_KEY=********\n" in plan.diff and "+VLLM_API_KEY=******** (value differs)\n" in plan.diff
    report = tmp_path / "r.json"
    report.write_text("{}")
    report.chmod(0o644)  # an older report others could read: rewritten 0600
    write_report(report, [SectionResult("h", "vllm", [StepResult("h", "vllm", "3-3", "vllm.env", "changed",
                                                                 diff=plan.diff)])])
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert "old-live-key-42" not in report.read_text() and "value differs" in report.read_text()
    secrets.clear()


def test_escaped_forms_of_a_secret_are_masked_too():
    secrets.clear()
    secrets.register('pa$$"word-123')
    written = vllm.env_file(cfg_with('pa$$"word-123'))
    assert 'pa$$"word-123' not in written  # it is escaped in the file...
    assert secrets.MASK in secrets.mask(written) and "word-123" not in secrets.mask(written)  # ...and masked
    secrets.clear()


# -- 2. the local Compute API: owner only, JSON only ----------------------------------------------


def _call(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_compute_api_refuses_callers_without_the_token_and_non_json_bodies():
    with ComputeServer(faults=FAST) as server:
        faults = f"{server.url}/_admin/faults"
        status, body = _call(faults)
        assert status == 401 and body["error"]["status"] == "UNAUTHENTICATED"
        assert body["error"]["errors"][0]["reason"] == "required"
        status, body = _call(faults, headers={"Authorization": "Bearer wrong"})
        assert status == 401 and body["error"]["errors"][0]["reason"] == "authError"
        # A page in a local browser can only send "simple" bodies such as text/plain: refused.
        status, body = _call(faults, "POST", b'{"error_rate": 1}', {"Authorization": f"Bearer {server.token}",
                                                                     "Content-Type": "text/plain"})
        assert status == 415 and server.sim.faults.error_rate != 1
        assert _call(f"{server.url}/_admin/health")[0] == 200  # liveness only, no data
        anonymous = gcp.clients(server.url, policy=POLICY)
        with pytest.raises((gexc.Unauthorized, google.auth.exceptions.GoogleAuthError)):
            anonymous.regions.get(project="demo-project", region="asia-northeast3")
        owner = gcp.clients(server.url, gcp.bearer(server.token), policy=POLICY)
        assert owner.regions.get(project="demo-project", region="asia-northeast3").name == "asia-northeast3"


def test_sandbox_api_token_is_private_and_required(tmp_path, monkeypatch):
    from testbed import local_api

    monkeypatch.setenv("L4RB_SANDBOX_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(local_api, "PORT", 0)
    url = local_api.ensure_running()
    try:
        token_file = local_api.token_path()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and len(local_api.token()) >= 32
        assert _call(f"{url}/_admin/state", "DELETE")[0] == 401
        assert _call(f"{url}/_admin/state", headers={"Authorization": f"Bearer {local_api.token()}"})[0] == 200
    finally:
        local_api.stop(forget=True)


# -- 3. env files quoted for their reader (python-dotenv here; systemd in the integration tests) --


@pytest.mark.parametrize("value", HARD)
def test_dotenv_reads_back_exactly_what_we_wrote(value, tmp_path):
    cfg = cfg_with(value, token=value + "-t", ocr=value + "-o")
    path = tmp_path / ".env"
    path.write_text(ai_server.env_file(cfg))
    read = dotenv_values(path)  # the app's reader, with its default ${VAR} expansion
    assert read["VLLM_API_KEY"] == value
    assert read["BACKEND_INTERNAL_TOKEN"] == value + "-t" and read["OCR_API"] == value + "-o"
    assert read["VLLM_MODEL"] == cfg.settings.vllm.model  # nothing after a secret is swallowed


@pytest.mark.parametrize("value", ["tok-${HOME}-xyz", "a\nINJECTED=1 key", "nul\0-in-key", "shrt-7c"])
def test_secrets_no_reader_can_take_are_refused(value):
    with pytest.raises(ConfigError) as err:
        config.load_secrets(config.parse_settings({}), Path("/nonexistent"),
                            {"VLLM_API_KEY": "good-key-1234", "OCR_API": "good-ocr-1234",
                             "BACKEND_INTERNAL_TOKEN": value})
    assert "BACKEND_INTERNAL_TOKEN" in str(err.value) and value not in str(err.value)


def test_writer_refuses_what_a_reader_would_change():
    with pytest.raises(envfile.Unrepresentable, match="always expands"):
        envfile.render([("K", "x${HOME}")], envfile.DOTENV)
    assert envfile.render([("K", "x${HOME}")], envfile.SYSTEMD) == 'K="x\\${HOME}"\n'
    with pytest.raises(envfile.Unrepresentable, match="line break"):
        envfile.render([("K", "a\nB=1")], envfile.SYSTEMD)


def test_secrets_file_keeps_a_quote_inside_a_value(tmp_path):
    f = tmp_path / "secrets.env"
    f.write_text("VLLM_API_KEY=abcdefg\"\nOCR_API='it''s'\nexport BACKEND_INTERNAL_TOKEN=\"x y z w v u\"\n")
    f.chmod(0o600)
    with pytest.raises(ConfigError, match=r"OCR_API: unbalanced quote"):
        config.read_secrets_file(f)
    f.write_text("VLLM_API_KEY=abcdefg\"\nOCR_API='#not a comment'\nexport BACKEND_INTERNAL_TOKEN=\"x y z w\"\n")
    assert config.read_secrets_file(f) == {"VLLM_API_KEY": 'abcdefg"', "OCR_API": "#not a comment",
                                           "BACKEND_INTERNAL_TOKEN": "x y z w"}


# -- 4. downloads ---------------------------------------------------------------------------------


def test_downloads_need_https_or_a_pinned_digest():
    pin = "a" * 64
    ok = config.parse_settings({"monitoring": {"dcgm": {"cuda_keyring_url": "http://mirror/k.deb",
                                                        "cuda_keyring_sha256": pin},
                                               "node_exporter": {"url": "http://mirror/ne.tgz", "sha256": pin}}})
    assert ok.monitoring.node_exporter.sha256 == pin
    for bad in ({"dcgm": {"cuda_keyring_url": "http://mirror/k.deb"}},
                {"dcgm": {"apt_repo": "deb [ Trusted = yes ] https://mirror/cuda /"}},
                {"dcgm": {"apt_repo": "deb [allow-insecure=yes] https://mirror/cuda /"}},
                {"promtail": {"checksums_url": "http://mirror/SHA256SUMS"}},
                {"promtail": {"alloy": {"url": "http://mirror/alloy.zip"}}}):
        with pytest.raises(ConfigError):
            config.parse_settings({"monitoring": bad})


# -- 5. patterns and quoting for what reaches a unit, env file, YAML or shell ----------------------


def test_revision_is_one_quoted_word_in_the_unit():
    unit = vllm.unit_file(cfg_with("good-key-1234"))
    assert '--revision "e949c91dec92095908d34e6b560af77dd0c993f8"' in unit
    with pytest.raises(ConfigError, match="vllm.revision"):
        config.parse_settings({"vllm": {"revision": "main --api-key visible"}})


def test_host_label_is_a_yaml_string_whatever_it_looks_like():
    from runbook.sections.log_shipper_config import promtail_yaml
    from runbook.sections.promtail import shipping

    settings = config.parse_settings({"monitoring": {"promtail": {"host_label": "yes"}}})
    cfg = config.Config(settings=settings, root=REPO, secrets=cfg_with("good-key-1234").secrets)
    text = promtail_yaml(shipping(cfg))
    assert 'host: "yes"' in text and "host: yes" not in text


# -- 7. world-open is judged by the address space covered -----------------------------------------


@pytest.mark.parametrize(("ranges", "world"), [
    (["0.0.0.0/0"], True), (["0.0.0.0/1", "128.0.0.0/1"], True), (["8.0.0.0/7"], True), (["::/0"], True),
    (["8.0.0.0/8"], False), (["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"], False),
    (["10.128.0.0/9", "203.0.113.7/32"], False),
])
def test_world_open_by_covered_public_space(ranges, world):
    assert config.world_open(ranges) is world


def test_split_world_range_is_refused_for_the_monitoring_ports():
    settings = config.parse_settings({"firewall": {"monitoring": {"source_ranges": ["0.0.0.0/1", "128.0.0.0/1"]}}})
    (spec,) = [s for s in firewall.specs(settings) if s.kind == "monitoring"]
    assert "refusing 0.0.0.0/1, 128.0.0.0/1" in firewall.refusal(spec, settings)


# -- 8. locks -------------------------------------------------------------------------------------


def test_a_second_run_is_refused_naming_the_first_or_waits_for_it():
    first, second = LocalTransport("first"), LocalTransport("second")
    first.lock_run()
    try:
        with pytest.raises(RunbookError, match=r"another run is using this host \(l4-runbook run by .* pid "):
            second.lock_run()
        threading.Timer(1.0, first.close).start()
        started = time.monotonic()
        second.lock_run(wait=20)
        assert time.monotonic() - started >= 0.8
    finally:
        first.close()
        second.close()
    third = LocalTransport("third")
    third.lock_run()  # free again once the holder is gone
    third.close()


def _record_many(root: str, worker: int, count: int) -> None:
    for i in range(count):
        state.record(Path(root), f"vm-{worker}-{i}", "zone-a", f"10.0.{worker}.{i}")


def test_concurrent_state_writers_lose_nothing(tmp_path):
    workers, each = 8, 25
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_record_many, args=(str(tmp_path), w, each)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(state.instances(tmp_path)) == workers * each


# -- 9. masking of short values, TOFU default, exit codes (test_cli) ------------------------------


def test_short_values_never_garble_output():
    secrets.clear()
    secrets.register("a", "1234567")
    assert secrets.mask("a cat at 1234567") == "a cat at 1234567"
    secrets.clear()


def test_trust_on_first_use_is_off_for_hand_listed_hosts():
    hosts = {"inventory": {"target": "hosts", "hosts": [{"name": "h", "address": "203.0.113.10"}]},
             "monitoring": {"promtail": {"loki_url": "http://loki:3100"}}}
    assert config.parse_settings(hosts).ssh.trust_on_first_use is False
    assert config.parse_settings({**hosts, "ssh": {"trust_on_first_use": True}}).ssh.trust_on_first_use is True
    assert config.parse_settings({"inventory": {"target": "gcp"}, "gcp": {"project_id": "demo-project"},
                                  "monitoring": {"promtail": {"loki_url": "http://loki:3100"}}}
                                 ).ssh.trust_on_first_use is True


def test_report_files_are_private_even_when_they_existed(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("old")
    os.chmod(path, 0o666)
    secrets.write_private(path, "new\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "new\n"
