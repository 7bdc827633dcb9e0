"""The fact layer on recorded output: journals, the unit as systemd holds it, env files as systemd and
python-dotenv read them, journal matches, listeners, apt, and the parallel probe batch itself."""

import json

import pytest

from runbook import facts as batch
from runbook.engine.steps import RunState
from runbook.errors import RunbookError
from runbook.facts import apt, env, listeners, shipper
from runbook.facts import unit as unit_facts
from runbook.facts.batch import Fact, gather, parse_tar
from runbook.facts.http import Http
from runbook.facts.journal import Journal, search
from runbook.facts.shipper import Match
from runbook.sections.dropins import DropInsAside
from runbook.sections.log_shipper_config import Shipping, alloy_config, promtail_yaml
from runbook.transport import LocalTransport


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


def test_the_last_crash_is_the_newest_start_that_wrote_an_error():
    """Two faults in a row with no good start between them: the older one's text is not this crash's cause."""
    text = "\n".join([
        jline(1, "vllm serve: error: argument --max-model-len: invalid human_readable_int value: '1 # x'", "a"),
        jline(2, "vllm serve: error: unrecognized arguments: --bogus-flag", "b"),
        jline(3, "Started vllm.service - vLLM Server.", "c", pid1=True),  # starting again, nothing failed yet
    ])
    log = Journal.parse(text)
    assert [line.invocation for line in log.last_crash()] == ["b"]
    assert search(log.last_crash(), r"error: argument --") is None
    assert search(log.recent(3), r"error: argument --") is not None
    assert Journal.parse(jline(1, "Application startup complete.", "a")).last_crash() == []


def test_unit_state_from_systemctl_show():
    state = unit_facts.parse("vllm.service",
        "LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nNRestarts=2\nInvocationID=abc\n"
        "ActiveEnterTimestamp=@1700000000\nExecMainStartTimestamp=@1700000005\nUnitFileState=enabled\n"
        "NOW=1700000030\n")
    assert state.installed and not state.active and state.state == "activating (auto-restart)"
    assert state.age() == 30 and state.crash_looping
    assert not unit_facts.parse("x", "LoadState=not-found\n").installed
    assert unit_facts.parse("x", "ActiveEnterTimestamp=\n").age() is None


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


BUS_EXEC = json.dumps({"type": "a(sasbttttuii)", "data": [["/app/vllm-server/venv/bin/vllm", [
    "/app/vllm-server/venv/bin/vllm", "serve", "${VLLM_MODEL}", "--enforce-eager", "--lora-modules",
    '{"name": "easycontract", "path": "temdy/a"}', '{"name":"checklist","path":"imyj1013/b"}'], False, 0, 0, 0, 0, 0,
    0, 0]]})


def recorded_unit(dropin: str = "") -> str:
    """What the unit fact prints on a host (systemctl show, busctl --json, the files), recorded."""
    files = "@@L4RB-UNIT-FILE /etc/systemd/system/vllm.service\n" + UNIT_CAT + "\n"
    paths = "/etc/systemd/system/vllm.service.d/x.conf" if dropin else ""
    if dropin:
        files += f"@@L4RB-UNIT-FILE {paths}\n{dropin}\n"
    return (f"LoadState=loaded\nActiveState=activating\nSubState=auto-restart\nNRestarts=3\nExecMainStatus=2\n"
            f"FragmentPath=/etc/systemd/system/vllm.service\nDropInPaths={paths}\nNOW=1\n"
            f"@@L4RB-UNIT-BUS ExecStart {BUS_EXEC}\n"
            '@@L4RB-UNIT-BUS Environment {"type":"as","data":["PATH=/usr/bin","LD_LIBRARY_PATH=/usr/lib/x"]}\n'
            '@@L4RB-UNIT-BUS EnvironmentFiles {"type":"a(sb)","data":[["/app/vllm-server/vllm.env",false]]}\n'
            + files)


def test_the_unit_is_what_systemd_holds_and_its_lines_say_where():
    u = unit_facts.parse("vllm.service", recorded_unit())
    assert u.argv[2] == "${VLLM_MODEL}" and u.argv[5] == '{"name": "easycontract", "path": "temdy/a"}'
    assert unit_facts.option_values(u.argv, "--lora-modules") == [u.argv[5], u.argv[6]]
    assert u.environment == {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/usr/lib/x"}
    assert u.environment_files == (("/app/vllm-server/vllm.env", False),)
    assert u.crash_looping and u.restarts == 3 and u.state == "activating (auto-restart)"
    assert u.exec_source().where == "/etc/systemd/system/vllm.service:3"
    assert u.env_source("LD_LIBRARY_PATH") is None  # not in the recorded file


def test_a_drop_in_that_resets_exec_start_is_named_as_its_source():
    dropin = "[Service]\nExecStart=\nExecStart=/bin/true --no-enforce-eager\nEnvironment=VLLM_MAX_MODEL_LEN=1\n"
    u = unit_facts.parse("vllm.service", recorded_unit(dropin))
    assert u.dropins == ["/etc/systemd/system/vllm.service.d/x.conf"]
    assert str(u.exec_source()) == \
        "/etc/systemd/system/vllm.service.d/x.conf:3: ExecStart=/bin/true --no-enforce-eager"
    assert u.env_source("VLLM_MAX_MODEL_LEN").line == 4
    step = DropInsAside(guide="3-4", title="t", unit="vllm.service", keys=("ExecStart",),
                        variables=("VLLM_MAX_MODEL_LEN",))
    plan = step.plan(recorded_unit(dropin), RunState())
    assert plan.changed and plan.data == ["/etc/systemd/system/vllm.service.d/x.conf"]
    assert "-ExecStart=/bin/true --no-enforce-eager" in plan.diff and "line 3" in plan.summary
    assert "mv -f" in step.script(plan) and "rm " not in step.script(plan)
    assert not step.plan(recorded_unit(), RunState()).changed
    harmless = "[Service]\nEnvironment=OTHER=1\n"
    assert not step.plan(recorded_unit(harmless), RunState()).changed


def test_env_files_as_systemd_loaded_them_and_secrets_become_digests():
    text = ("file=/app/vllm-server/vllm.env\nline=VLLM_MAX_MODEL_LEN /app/vllm-server/vllm.env:7\nrc=0\nerror=\n"
            "@@L4RB-ENV\nVLLM_MAX_MODEL_LEN=32768   # note\0VLLM_API_KEY=s3cret\0EMPTY_TOKEN=\0")
    view = env.parse_systemd(text)
    assert view.get("VLLM_MAX_MODEL_LEN") == "32768   # note"
    assert view.where("VLLM_MAX_MODEL_LEN") == "/app/vllm-server/vllm.env:7"
    key = view.get("VLLM_API_KEY")
    assert isinstance(key, env.Secret) and not key.empty and "s3cret" not in repr(view)
    assert view.get("EMPTY_TOKEN").empty


def test_dotenv_is_read_by_python_dotenv():
    text = "stat=ubuntu|ubuntu|600\n@@L4RB-DOTENV\nA=1 # note\nexport VLLM_API_KEY=sk-x\nexport VLLM_API_KEY=\"\"\n"
    d = env.parse_dotenv("/app/ai-server/.env", text)
    assert d.exists and d.mode == "600" and d.view.get("A") == "1"  # dotenv drops an inline comment
    assert d.view.get("VLLM_API_KEY").empty  # the last assignment wins, `export` included
    assert not env.parse_dotenv("/x", "stat=missing\n@@L4RB-DOTENV\n").exists


def test_journal_matches_are_read_with_the_journals_semantics():
    m = Match.parse("_SYSTEMD_UNIT=a.service _SYSTEMD_UNIT=b.service PRIORITY=3")
    assert m.units() == ("a.service", "b.service") and m.terms["PRIORITY"] == ("3",)
    assert Match.parse("_SYSTEMD_UNIT=a.service nonsense").malformed == ("nonsense",)
    assert Match.parse(None).empty


def test_listeners_name_their_unit():
    text = ('LISTEN 0 2048 0.0.0.0:8000 0.0.0.0:* users:(("python3",pid=812,fd=6))\n'
            'LISTEN 0 5 [::]:22 [::]:* users:(("sshd",pid=34,fd=4))\n'
            '@@L4RB-CGROUPS\n812 nginx.service\n34 ssh.service\n')
    found = listeners.parse(text)
    assert listeners.holders(found, 8000)[0].describe() == "0.0.0.0:8000 held by python3 (pid 812, nginx.service)"
    assert listeners.holders(found, 22)[0].address == "[::]"


def test_dcgm_major_from_the_installed_packages():
    assert apt.parse("installed=datacenter-gpu-manager-4-core=1:4.2.3-1 \n").dcgm_major == 4
    assert apt.parse("installed=datacenter-gpu-manager=1:3.3.9 \n").dcgm_major == 3
    assert apt.parse("installed=\n").dcgm_major is None
    errors = apt.parse("error=E: Conflicting values set for option Signed-By regarding source x\n").errors
    assert errors == ("E: Conflicting values set for option Signed-By regarding source x",)


SHIP = Shipping("http://loki:3100", "ai-server-l4", ("ai-server", "vllm"), "dojangkok-ai",
                "/var/log/dojangkok/production/*.log")


def test_promtail_config_of_the_section_has_one_filtered_job_per_unit():
    config = shipper.parse_promtail("/etc/promtail/config.yml", promtail_yaml(SHIP))
    assert [(j.name, j.match.text) for j in config.jobs] == [("ai-server", "_SYSTEMD_UNIT=ai-server.service"),
                                                             ("vllm", "_SYSTEMD_UNIT=vllm.service")]
    assert config.push_url == "http://loki:3100/loki/api/v1/push"
    assert shipper.judge_jobs(config, ["ai-server", "vllm"]) == []
    alloy = shipper.parse_alloy("/etc/alloy/config.alloy", alloy_config(SHIP))
    assert [(j.name, j.match.text) for j in alloy.jobs] == [("ai_server", "_SYSTEMD_UNIT=ai-server.service"),
                                                            ("vllm", "_SYSTEMD_UNIT=vllm.service")]
    assert shipper.judge_jobs(alloy, ["ai-server", "vllm"]) == []


def test_promtail_journal_job_without_matches():
    text = promtail_yaml(SHIP).replace("      matches: _SYSTEMD_UNIT=vllm.service\n", "")
    config = shipper.parse_promtail("/p", text)
    assert config.jobs[1].match.empty
    assert "job vllm has no `matches`" in shipper.judge_jobs(config, ["ai-server", "vllm"])[0]


def test_the_guides_block_with_its_stray_slash_is_not_valid_yaml():
    guide = "positions:\n  filename: /tmp/positions.yaml\n/\nclients:\n  - url: <LOKI_URL>/loki/api/v1/push\n"
    assert shipper.parse_promtail("/p", guide).error.startswith("not valid YAML")


def test_every_batch_brings_its_answers_back():
    """The watchdog subshell once took the answers with it (bash ran the inherited EXIT trap when it was
    ended with TERM): about one batch in twelve came back empty. Sixty in a row must all be whole."""
    probes = [Fact("a", "printf x"), Fact("b", "echo y", timeout=5)]
    for _ in range(60):
        assert gather(LocalTransport(), probes) == {"a": "x", "b": "y\n"}


def test_a_broken_archive_is_a_clear_error():
    with pytest.raises(RunbookError, match="no readable archive"):
        parse_tar("@@L4RB-FACT tar \n", 1)


def test_batch_runs_probes_side_by_side_and_cuts_off_a_hanging_one():
    probes = [batch.Probe("slow", "sleep 30; echo never", timeout=1), batch.Probe("one", "echo 1; printf 'x\\0y'"),
              batch.Probe("one", "echo duplicate"), batch.Probe("quotes", "echo \"it's\" '$HOME'")]
    transport = LocalTransport()
    facts = batch.gather(transport, probes)
    assert facts == {"slow": "", "one": "1\nx\0y", "quotes": "it's $HOME\n"}
    assert transport.commands == 1
