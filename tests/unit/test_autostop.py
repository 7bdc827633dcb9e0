"""Idle auto-stop: the idle decision as data, the metrics reader against prometheus_client's, the steps, the row.

The decision table is what the host script must make of a sample given the state it kept: each row is
(previous state, sample, clock) -> verdict and when the quiet began. The exposition-format reader is the
script's own (it runs on the host's bare python3); prometheus_client's parser is the reference it must agree
with, on the vLLM stand-in's real output and on what prometheus_client itself writes for the app's counter.
"""

from __future__ import annotations

import ast
import fcntl
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runbook import config
from runbook.docs import PLACEHOLDERS
from runbook.engine.steps import Command, File, RunState, Service
from runbook.errors import ConfigError
from runbook.facts import HostFacts
from runbook.sections import HOST_SECTIONS, autostop, autostop_agent
from runbook.sections.autostop_agent import BUSY, DOWN, HELD, IDLE, OK, RESET, STOP, UNKNOWN, judge
from runbook.sections.autostop_row import STATE, span
from runbook.sections.autostop_row import judge as judge_row
from runbook.sections.common import HostInfo
from runbook.verify.rows import FAILED, SKIPPED, WARN, Facts

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "testbed" / "standins" / "vllm"))
from vllm._double import metrics as vllm_metrics  # noqa: E402 - the stand-in package lives in the test bed

BOOT = "boot-1"
LIMIT, PERIOD = 60.0, 10.0


def vllm(running=0.0, waiting=0.0, success=0.0) -> dict:
    return {"status": OK, "running": running, "waiting": waiting, "success": success}


def app(requests=0.0) -> dict:
    return {"status": OK, "requests": requests}


def down(what: str) -> dict:
    return {"status": DOWN, "why": f"{what}: connection refused"}


def unknown(why: str) -> dict:
    return {"status": UNKNOWN, "why": why}


def kept(idle_since=100.0, checked=150.0, success=5.0, requests=7.0, boot=BOOT) -> dict:
    """A state the script wrote at *checked*: quiet since *idle_since*, with these counters."""
    return {"boot_id": boot, "checked": checked, "idle_since": idle_since, "idle_limit": LIMIT, "period": PERIOD,
            "verdict": IDLE, "why": "", "counters": {"vllm_success": success, "app_requests": requests}}


@dataclass(frozen=True)
class Case:
    id: str
    previous: dict | None
    vllm: dict
    app: dict
    now: float
    verdict: str
    idle_since: float
    why: str = ""  # part of the reason given


CASES = (
    Case("first-check", None, vllm(success=5), app(7), 150, RESET, 150, "first check"),
    Case("quiet", kept(), vllm(success=5), app(7), 158, IDLE, 100, "no requests"),
    Case("quiet-long-enough", kept(), vllm(success=5), app(7), 160, STOP, 100),
    Case("running-request", kept(), vllm(running=1, success=5), app(7), 158, BUSY, 158, "1 running"),
    Case("waiting-request", kept(), vllm(waiting=2, success=5), app(7), 158, BUSY, 158, "2 waiting"),
    Case("vllm-finished-one", kept(), vllm(success=6), app(7), 158, BUSY, 158, "finished 1"),
    Case("app-served-one", kept(), vllm(success=5), app(8), 158, BUSY, 158, "app served 1"),
    # A counter below its last value was reset (the service restarted): its new value counts as requests.
    Case("vllm-restarted-with-requests", kept(), vllm(success=2), app(7), 158, BUSY, 158, "finished 2"),
    Case("vllm-restarted-quiet", kept(), vllm(success=0), app(7), 158, IDLE, 100),
    # Nothing listening serves nothing; the kept counters stay for when it is back.
    Case("vllm-down", kept(), down("vllm"), app(7), 160, STOP, 100, "vLLM not listening"),
    Case("both-down", kept(), down("vllm"), down("app"), 158, IDLE, 100, "app not listening"),
    # Answering but unreadable: cannot tell, the clock is held at zero.
    Case("vllm-unreadable", kept(), unknown("vLLM /metrics has no vllm:num_requests_running"), app(7), 170,
         HELD, 170, "no vllm:num_requests_running"),
    Case("app-timeout", kept(), vllm(success=5), unknown("timed out"), 170, HELD, 170, "timed out"),
    Case("requests-beat-unknown", kept(), vllm(running=1, success=5), unknown("timed out"), 170, BUSY, 170),
    Case("runbook-run-in-progress", kept(), vllm(success=5), app(7), 170, BUSY, 170, "l4-runbook run"),
    Case("new-boot", kept(boot="boot-0"), vllm(success=0), app(0), 400, RESET, 400, "since boot"),
    Case("gap-after-timer-stopped", kept(checked=150), vllm(success=5), app(7), 181, RESET, 181, "no check for 31s"),
    Case("gap-within-three-periods", kept(checked=150), vllm(success=5), app(7), 179, STOP, 100),
)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_idle_decision(case: Case):
    sample = {"vllm": case.vllm, "app": case.app, "run_lock_held": case.id == "runbook-run-in-progress"}
    state = judge(case.previous, sample, case.now, BOOT, LIMIT, PERIOD)
    assert (state["verdict"], state["idle_since"]) == (case.verdict, case.idle_since), state
    assert case.why in state["why"]
    assert state["checked"] == case.now and state["boot_id"] == BOOT
    for key, source, field in (("vllm_success", case.vllm, "success"), ("app_requests", case.app, "requests")):
        expected = source[field] if source["status"] == OK else (case.previous or {}).get("counters", {}).get(key)
        assert state["counters"].get(key) == expected  # a source that could not be read keeps the last value


def test_a_sequence_of_checks_stops_one_period_after_the_limit():
    """Checks every PERIOD from t=0; one request at t=25: the clock restarts at the next check (30) and the
    VM is stopped at the first check at least LIMIT later (90), within one period of the limit."""
    state, verdicts, served = None, [], 0
    for t in range(0, 200, int(PERIOD)):
        if t == 30:
            served += 1  # the request of t=25, seen by the check at 30
        state = judge(state, {"vllm": vllm(success=3), "app": app(10 + served)}, float(t), BOOT, LIMIT, PERIOD)
        verdicts.append((t, state["verdict"]))
        if state["verdict"] == STOP:
            break
    assert verdicts[0] == (0, RESET) and (30, BUSY) in verdicts
    assert verdicts[-1] == (90, STOP) and all(v == IDLE for t, v in verdicts if t not in (0, 30, 90))


def test_a_runbook_run_is_seen_through_the_kernels_lock_list(tmp_path):
    """The run lock as the kernel lists it (/proc/locks), held by a real flock, and never taken by the check."""
    lock = tmp_path / "run.lock"
    lock.touch()
    assert not autostop_agent.lock_held(str(lock)) and not autostop_agent.lock_held(str(tmp_path / "absent"))
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as the run's `flock -n 8` holds it
        assert autostop_agent.lock_held(str(lock))
        assert subprocess.run(["flock", "-n", str(lock), "true"]).returncode == 1  # held, by us
    assert not autostop_agent.lock_held(str(lock))
    # The check only read it: a run that comes now gets the lock at once.
    assert subprocess.run(["flock", "-n", str(lock), "true"]).returncode == 0


# -- the exposition-format reader against prometheus_client's -----------------------------------------

def reference(text: str) -> list[tuple[str, list, float]]:
    return sorted((s.name, sorted(s.labels.items()), s.value)
                  for f in text_string_to_metric_families(text) for s in f.samples)


def ours(text: str) -> list[tuple[str, list, float]]:
    return sorted((name, sorted(labels.items()), value) for name, labels, value in
                  autostop_agent.parse_exposition(text)[1])


def app_exposition(requests: dict[tuple[str, str, str], int]) -> str:
    """What prometheus_client (under prometheus-fastapi-instrumentator) writes for the app's counter."""
    registry = CollectorRegistry()
    counter = Counter("http_requests_total", "Total number of requests by method, status and handler.",
                      ("method", "status", "handler"), registry=registry)
    gauge = Gauge("odd_labels", "Label values with escapes.", ("path",), registry=registry)
    gauge.labels(path='C:\\dir "quoted"\nnext').set(float("inf"))
    for labels, count in requests.items():
        counter.labels(*labels).inc(count)
    return generate_latest(registry).decode()


def test_reader_agrees_with_prometheus_client_on_the_app_counter():
    text = app_exposition({("GET", "2xx", "/vllm/models"): 3, ("GET", "2xx", "/health"): 40,
                           ("GET", "2xx", "/metrics"): 12, ("GET", "4xx", "none"): 5})
    assert ours(text) == reference(text)
    ignored = autostop.ignored_handlers(config.load(REPO / "hosts.toml", PLACEHOLDERS))
    assert autostop_agent.read_app(text, ignored) == {"status": OK, "requests": 3.0}


def test_reader_agrees_with_prometheus_client_on_the_vllm_stand_in():
    recorder = vllm_metrics.Recorder()
    recorder.request_done(12, 30, "stop", 0.4)
    recorder.request_done(8, 64, "length", 2.5)
    text = recorder.render("LGAI-EXAONE/EXAONE-3.5-2.4B-Instruct")
    assert ours(text) == reference(text)
    assert autostop_agent.read_vllm(text) == {"status": OK, "running": 0.0, "waiting": 0.0, "success": 2.0}


def test_vllm_series_missing_or_garbled_is_unknown():
    text = vllm_metrics.Recorder().render("m")
    without_waiting = "\n".join(line for line in text.splitlines() if "num_requests_waiting" not in line)
    assert autostop_agent.read_vllm(without_waiting)["status"] == UNKNOWN
    assert "vllm:num_requests_waiting" in autostop_agent.read_vllm(without_waiting)["why"]
    assert autostop_agent.read_vllm('vllm:num_requests_running{model_name="m} 1')["status"] == UNKNOWN
    assert autostop_agent.read_app("<html>Not Found</html>", [])["status"] == UNKNOWN
    # A labelled counter declared but not yet incremented has no sample: that is 0, not missing.
    declared = "# HELP http_requests_total x\n# TYPE http_requests_total counter\n"
    assert autostop_agent.read_app(declared, []) == {"status": OK, "requests": 0.0}


def test_the_host_script_runs_on_python_3_10():
    """Ubuntu 22.04's python3 is 3.10: the script must not use anything newer, nor anything outside the stdlib."""
    source = autostop.agent_source()
    tree = ast.parse(source, feature_version=(3, 10))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    python310 = shutil.which("python3.10")
    if python310 and subprocess.run([python310, "-c", "pass"], capture_output=True).returncode == 0:
        r = subprocess.run([python310, "-", "--help"], input=source, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "--idle" in r.stdout, r.stderr


# -- config, steps and the task's section -------------------------------------------------------------

def settings_with(**autostop_table) -> config.Config:
    cfg = config.load(REPO / "hosts.toml", PLACEHOLDERS)
    chosen = config.AutostopConfig.model_validate(autostop_table)
    return cfg.model_copy(update={"settings": cfg.settings.model_copy(update={"autostop": chosen})})


def test_spans_and_their_limits():
    assert [config.span_seconds(t) for t in ("30m", "90s", "1h30m", "2h", "1d")] == [1800, 90, 5400, 7200, 86400]
    assert config.AutostopConfig.model_validate({"idle": "20s", "period": "5s"}).idle_seconds == 20
    for bad in ({"idle": "30"}, {"idle": "30 m"}, {"idle": "-5m"}, {"idle": "5s", "period": "10s"},
                {"period": "0s"}, {"idle": "on"}):
        with pytest.raises(ValueError):
            config.AutostopConfig.model_validate(bad)


def test_hosts_toml_autostop_table(tmp_path):
    text = (REPO / "hosts.toml").read_text()
    assert '\nidle = ""' in text  # the example leaves autostop alone
    (tmp_path / "hosts.toml").write_text(text.replace('\nidle = ""', '\nidle = "45m"').replace(
        '\nperiod = "1m"', '\nperiod = "30s"'))
    settings, _ = config.load_settings(tmp_path / "hosts.toml")
    assert (settings.autostop.idle_seconds, settings.autostop.period_seconds) == (2700, 30)
    (tmp_path / "hosts.toml").write_text(text.replace('\nidle = ""', '\nidle = "45 minutes"'))
    with pytest.raises(ConfigError, match="autostop.idle"):
        config.load_settings(tmp_path / "hosts.toml")


def host() -> HostInfo:
    return HostInfo(name="h", login_user="ubuntu")


def test_steps_install_remove_or_leave_alone():
    on = autostop.steps(settings_with(idle="30m"), host())
    assert [type(s) for s in on] == [File, File, File, Service]
    script, service, timer, running = on
    assert script.path == autostop.SCRIPT and script.content == autostop.agent_source() and script.mode == 0o755
    exec_start = next(line for line in service.content.splitlines() if line.startswith("ExecStart="))
    assert "--idle 1800 --period 60 " in exec_start and "--vllm-metrics http://127.0.0.1:8001/metrics" in exec_start
    assert "--app-metrics http://127.0.0.1:8000/metrics" in exec_start
    assert "--ignore-handler /metrics --ignore-handler /health --ignore-handler none" in exec_start
    assert exec_start.endswith("--run-lock /run/l4-runbook.run.lock")  # the lock every host run holds
    assert "OnActiveSec=60s" in timer.content and "OnUnitActiveSec=60s" in timer.content
    assert service.notify == timer.notify == (autostop.TIMER,) and running.unit == autostop.TIMER
    # The timer is restarted (and systemd reloaded) when either unit file changed.
    plan = running.plan("enabled\nactive\n", RunState(notified=frozenset({autostop.TIMER})))
    assert plan.changed and "daemon-reload" in running.script(plan) and "restart" in plan.summary
    off = autostop.steps(settings_with(idle="off"), host())
    assert [type(s) for s in off] == [Command, Command]
    assert not off[0].plan("0\n", RunState()).changed and off[1].plan("1\n", RunState()).changed
    assert "rm -rf /var/lib/l4rb-autostop" in off[1].run
    assert autostop.steps(settings_with(), host()) == []
    section = HOST_SECTIONS["autostop"]
    assert [section.applies(settings_with(idle=v).settings) for v in ("", "off", "5m")] == [False, True, True]


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_unit_files_pass_systemd_analyze(tmp_path):
    """systemd's own checker reads both units (the timer finds its service beside it)."""
    cfg = settings_with(idle="20s", period="5s")
    _, service, timer, _ = autostop.install_steps(cfg)
    for step in (service, timer):
        (tmp_path / Path(step.path).name).write_text(step.content)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / autostop.TIMER), str(tmp_path / autostop.SERVICE)],
                       capture_output=True, text=True, timeout=60)
    problems = [line for line in r.stderr.splitlines() if "l4rb-autostop" in line]
    assert r.returncode == 0 and not problems, r.stderr


# -- the verify row ------------------------------------------------------------------------------------

def row(cfg: config.Config, timer: str, state: dict | None, clock: float) -> tuple[str, str]:
    raw = {f"unit:{autostop.TIMER}": timer, STATE.key: json.dumps(state) if state else "", "now": str(clock)}
    return judge_row(Facts(cfg.settings, HostFacts(raw), None))


ACTIVE = "LoadState=loaded\nActiveState=active\nSubState=waiting\n"
INACTIVE = "LoadState=loaded\nActiveState=inactive\nSubState=dead\n"
ABSENT = "LoadState=not-found\nActiveState=inactive\n"


def test_row_shows_state_and_idle_time():
    on = settings_with(idle="1m", period="10s")
    status, detail = row(on, ACTIVE, kept(idle_since=100, checked=150), 152)
    assert status == "ok" and "idle 52s of 1m" in detail and "checked every 10s" in detail
    assert row(on, ACTIVE, None, 5)[0] == "ok"
    assert row(on, ABSENT, None, 5)[0] == FAILED
    assert row(on, INACTIVE, None, 5)[0] == FAILED
    assert row(on, ACTIVE, kept(checked=100), 200)[0] == WARN  # no check for ten periods
    held = {**kept(), "verdict": HELD, "why": "vLLM /metrics has no vllm:num_requests_running"}
    assert row(on, ACTIVE, held, 152) == (WARN, "on, but cannot judge idleness, so it never stops: "
                                                 "vLLM /metrics has no vllm:num_requests_running")
    assert row(settings_with(), ABSENT, None, 5)[0] == SKIPPED
    assert row(settings_with(idle="off"), ACTIVE, None, 5)[0] == FAILED
    assert "hosts.toml has no autostop.idle" in row(settings_with(), ACTIVE, kept(), 152)[1]
    assert [span(s) for s in (0, 59, 90, 5400, 90061)] == ["0s", "59s", "1m30s", "1h30m", "1d1h1m1s"]
