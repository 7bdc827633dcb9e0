"""The readers behind verify and troubleshoot, on recorded output: journals, units, ExecStart, promtail YAML,
and the parallel probe batch itself."""

import json

import pytest

from runbook.sections.log_shipper_config import Shipping, alloy_config, promtail_yaml
from runbook.transport import LocalTransport
from runbook.verify import batch
from runbook.verify.probes import Http, Journal, UnitState, search
from troubleshoot.shipper_config import YamlError, alloy_journal_jobs, parse_yaml, promtail_journal_jobs
from troubleshoot.unitfile import exec_start, has_flag, option_values, words


def jline(ts: float, message, invocation: str | None = None, pid1: bool = False) -> str:
    entry = {"__REALTIME_TIMESTAMP": str(int(ts * 1e6)), "MESSAGE": message}
    if invocation:
        entry["INVOCATION_ID" if pid1 else "_SYSTEMD_INVOCATION_ID"] = invocation
    return json.dumps(entry)


def test_journal_lines_of_a_process_that_died_at_once_belong_to_the_start_before_them():
    text = "\n".join([
        jline(100, "Started vllm.service - vLLM Server.", "a", pid1=True),
        jline(101, "(APIServer pid=9) INFO:     Application startup complete.", "a"),
        jline(200, "Started vllm.service - vLLM Server.", "b", pid1=True),
        jline(200.5, "vllm serve: error: Invalid JSON format for --lora-modules: {..."),  # no invocation id
        jline(201, "vllm.service: Main process exited, code=exited, status=2/INVALIDARGUMENT", "b", pid1=True),
        "not json",
        jline(202, [104, 105, 255], "b"),  # journald's byte-array form of a non-UTF-8 message
    ])
    log = Journal.parse(text)
    assert log.invocations() == ["a", "b"]
    assert [line.invocation for line in log.lines] == ["a", "a", "b", "b", "b", "b"]
    assert log.lines[-1].message.startswith("hi")
    after_good = log.since_ready(r"Application startup complete")
    assert [line.ts for line in after_good] == [200, 200.5, 201, 202]
    assert search(after_good, r"Invalid JSON").ts == 200.5
    assert log.since(201) == list(log.lines[4:])


def test_a_crash_before_the_last_good_start_is_history():
    text = "\n".join([jline(1, "ImportError: cannot import name 'RopeParameters'", "a"),
                      jline(2, "Application startup complete.", "b"), jline(3, "Starting to load model", "c")])
    assert search(Journal.parse(text).since_ready("Application startup complete"), "RopeParameters") is None
    assert search(Journal.parse(text).recent(3), "RopeParameters") is not None


def test_unit_state_from_systemctl_show():
    state = UnitState.parse(
        "LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nNRestarts=2\nInvocationID=abc\n"
        "ActiveEnterTimestamp=@1700000000\nExecMainStartTimestamp=@1700000005\nUnitFileState=enabled\n"
        'Environment=PATH=/usr/bin LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu "HF_HOME=/a b"\nNOW=1700000030\n')
    assert state.installed and not state.active and state.state == "activating (auto-restart)"
    assert state.age() == 30
    assert state.environment() == {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/usr/lib/x86_64-linux-gnu",
                                   "HF_HOME": "/a b"}
    assert not UnitState.parse("LoadState=not-found\n").installed
    assert UnitState.parse("ActiveEnterTimestamp=\n").age() is None


def test_http_probe_output():
    assert Http.parse("200 1234\nDCGM_FI_DEV_GPU_TEMP\n") == Http("200", 1234, "DCGM_FI_DEV_GPU_TEMP\n")
    gone = Http.parse("000 0\n")
    assert not gone.ok and gone.describe() == "no answer"
    assert Http.parse("").code == "000"


UNIT_CAT = """\
# /etc/systemd/system/vllm.service
[Service]
ExecStart=/app/vllm-server/venv/bin/vllm serve ${VLLM_MODEL} \\
    --host ${VLLM_HOST} \\
    --enable-lora \\
    --enforce-eager \\
    --revision e949c91dec92095908d34e6b560af77dd0c993f8 \\
    --lora-modules \\
      '{"name":"easycontract","path":"temdy/a"}' \\
      '{"name":"checklist","path":"imyj1013/b"}' \\
    --max-lora-rank ${VLLM_MAX_LORA_RANK}
"""


def test_exec_start_words_as_systemd_splits_them():
    argv = words(exec_start(UNIT_CAT))
    assert argv[:3] == ["/app/vllm-server/venv/bin/vllm", "serve", "${VLLM_MODEL}"]
    assert option_values(argv, "--lora-modules") == ['{"name":"easycontract","path":"temdy/a"}',
                                                     '{"name":"checklist","path":"imyj1013/b"}']
    assert option_values(argv, "--revision") == ["e949c91dec92095908d34e6b560af77dd0c993f8"]
    assert option_values(argv, "--api-key") is None
    assert has_flag(argv, "--enforce-eager")


def test_a_drop_in_resets_and_replaces_exec_start():
    dropin = UNIT_CAT + "\n# /etc/systemd/system/vllm.service.d/x.conf\n[Service]\nExecStart=\nExecStart=/bin/true -x\n"
    assert exec_start(dropin) == "/bin/true -x"
    assert exec_start("[Service]\nType=simple\n") is None
    assert exec_start(UNIT_CAT + "[Service]\nExecStart=\n") is None


SHIP = Shipping("http://loki:3100", "ai-server-l4", ("ai-server", "vllm"), "dojangkok-ai",
                "/var/log/dojangkok/production/*.log")


def test_promtail_config_of_the_section_has_one_filtered_job_per_unit():
    assert promtail_journal_jobs(promtail_yaml(SHIP)) == [("ai-server", "_SYSTEMD_UNIT=ai-server.service"),
                                                         ("vllm", "_SYSTEMD_UNIT=vllm.service")]
    assert alloy_journal_jobs(alloy_config(SHIP)) == [("ai_server", "_SYSTEMD_UNIT=ai-server.service"),
                                                     ("vllm", "_SYSTEMD_UNIT=vllm.service")]


def test_promtail_journal_job_without_matches():
    text = promtail_yaml(SHIP).replace("      matches: _SYSTEMD_UNIT=vllm.service\n", "")
    assert promtail_journal_jobs(text) == [("ai-server", "_SYSTEMD_UNIT=ai-server.service"), ("vllm", None)]


def test_yaml_reader_on_nested_maps_lists_and_quotes():
    data = parse_yaml(promtail_yaml(SHIP))
    assert data["server"] == {"http_listen_port": "9080", "grpc_listen_port": "0"}
    assert data["clients"] == [{"url": "http://loki:3100/loki/api/v1/push"}]
    job = data["scrape_configs"][0]
    assert job["relabel_configs"] == [{"source_labels": "['__journal__systemd_unit']", "target_label": "unit"}]
    assert job["pipeline_stages"][0]["match"]["selector"] == '{unit="ai-server.service"}'
    assert data["scrape_configs"][2]["static_configs"][0]["targets"] == ["localhost"]


def test_the_guides_block_with_its_stray_slash_is_not_read_as_valid():
    guide = "positions:\n  filename: /tmp/positions.yaml\n/\nclients:\n  - url: <LOKI_URL>/loki/api/v1/push\n"
    with pytest.raises(YamlError):
        parse_yaml(guide)


def test_batch_runs_probes_side_by_side_and_cuts_off_a_hanging_one():
    probes = [batch.Probe("slow", "sleep 30; echo never", timeout=1), batch.Probe("one", "echo 1; printf 'x\\0y'"),
              batch.Probe("one", "echo duplicate"), batch.Probe("quotes", "echo \"it's\" '$HOME'")]
    transport = LocalTransport()
    facts = batch.gather(transport, probes)
    assert facts == {"slow": "", "one": "1\nx\0y", "quotes": "it's $HOME\n"}
    assert transport.commands == 1
