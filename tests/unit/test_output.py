"""What a person and a program read: exact diffs, one line per step, live progress, JSON lines.

Diffs are checked for every file step of every host section, against difflib over the real old
and new contents; the step log runs real steps on this machine's shell; the JSON lines are
validated against the schema in docs/ that promises their shape.
"""

from __future__ import annotations

import difflib
import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from runbook import config, secrets
from runbook.engine.output import Output, _Activity, duration
from runbook.engine.results import CHANGED, FAILED, OK, SectionResult, StepResult, report_data
from runbook.engine.runner import run_steps
from runbook.engine.steps import Command, File, RunState
from runbook.sections import HOST_SECTIONS
from runbook.sections.common import HostInfo
from runbook.transport import LocalTransport
from runbook.verify.run import HostReport, RowResult, check_record, render

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())
SECRETS = {"VLLM_API_KEY": "vllm-k3y-for-the-diff-test", "OCR_API": "ocr-k3y-for-the-diff-test",
           "BACKEND_INTERNAL_TOKEN": "t0ken-for-the-diff-test"}


def validator(definition: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{definition}"})


def pipe(**kwargs) -> tuple[Output, io.StringIO]:
    """An Output as on a pipe or in CI: not a terminal, 80 columns."""
    buf = io.StringIO()
    return Output(Console(file=buf, width=80, color_system=None), **kwargs), buf


def file_steps() -> list[File]:
    cfg = config.load(REPO / "hosts.toml", SECRETS)
    host = HostInfo(name="h", login_user=cfg.settings.ssh.user)
    steps = []
    for section in HOST_SECTIONS.values():
        steps += section.build(cfg, host) + (section.late(cfg, host) if section.late else [])
    return [s for s in steps if isinstance(s, File)]


def older(content: str) -> str:
    """An earlier version of a file: every third line edited, one dropped, one added."""
    lines = content.split("\n")
    edited = [f"{line} # old" if i % 3 == 0 and line else line for i, line in enumerate(lines)]
    return "\n".join(["# an earlier header", *edited[:-2], *edited[-1:]])


def printed_diff(step: File, old: str | None) -> list[str]:
    meta = "MISSING" if old is None else f"regular file|{step.owner}|{step.group or step.owner}|{step.mode:o}"
    plan = step.plan(meta + ("" if old is None else "\n" + old), RunState())
    assert plan.changed
    out, buf = pipe()
    out.step(StepResult("h", "s", step.guide, step.title, CHANGED, plan.summary, plan.diff), dry_run=True)
    lines = buf.getvalue().split("\n")
    assert lines[0].startswith(f"[h] {step.guide:<5} {step.title}: would change") and lines[-1] == ""
    assert all(line.startswith("      ") for line in lines[1:-1])
    return [line[6:] for line in lines[1:-1]]


def expected_diff(step: File, old: str | None) -> list[str]:
    if step.secret:  # masked by key name on both sides (runbook.secrets), then printed as it is
        return secrets.env_file_diff(step.path, old, step.content).splitlines()
    lines = difflib.unified_diff([] if old is None else old.splitlines(keepends=True),
                                 step.content.splitlines(keepends=True),
                                 fromfile="/dev/null" if old is None else step.path, tofile=step.path)
    return [line.rstrip("\n") for line in lines]


def test_the_dry_run_diff_of_every_file_step_is_the_file_byte_for_byte():
    steps = file_steps()
    units = [s for s in steps if s.path.endswith(".service")]
    assert len(steps) >= 8 and len(units) >= 4
    continued = 0
    for step in steps:
        for old in (None, older(step.content)):
            assert printed_diff(step, old) == expected_diff(step, old), step.path
        continued += sum(1 for line in printed_diff(step, None) if line.endswith(" \\"))
    assert continued >= 10  # unit lines continued with a backslash, each printed with exactly one
    for value in SECRETS.values():  # secret files: masked on both sides, never shown
        assert all(value not in "\n".join(printed_diff(s, older(s.content))) for s in steps)


def test_text_from_hosts_is_never_read_as_markup():
    out, buf = pipe()
    tricky = "[bold]not bold[/bold] \\[x] ends in a backslash \\\n\ttab\x1b[2Jclear"
    out.step(StepResult("h", "s", "1-1", "t", FAILED, error=tricky), dry_run=False)
    assert buf.getvalue().split("\n")[1:4] == [
        "      [bold]not bold[/bold] \\[x] ends in a backslash \\",
        "      \ttab\\x1b[2Jclear",
        "",
    ]


def test_a_result_line_says_what_changed_once(tmp_path):
    out, buf = pipe()
    steps = [Command(guide="t-1", title="make the marker", check=f"test -e {tmp_path}/m", run=f"touch {tmp_path}/m"),
             File(guide="t-2", title="config", path=f"{tmp_path}/c.conf", content="a=1\n", owner="root")]
    run_steps(LocalTransport(), "demo", "9", steps, out)
    assert buf.getvalue().splitlines() == [
        "[localhost] demo (guide §9)",
        "[localhost] t-1   make the marker: changed",
        f"[localhost] t-2   config: changed — create {tmp_path}/c.conf",
    ]


def test_on_a_pipe_only_a_step_running_long_gets_a_start_line(tmp_path):
    out, buf = pipe(long_after=1.0, progress_every=60)
    steps = [Command(guide="t-1", title="quick", check="false", run="true"),
             Command(guide="t-2", title="slow", check="false", run="sleep 2.5"),
             Command(guide="t-3", title="broken", check="false", run="echo it broke >&2; exit 3")]
    result = run_steps(LocalTransport(), "demo", "9", steps, out, hints={"t-3": "see B-99"})
    lines = buf.getvalue().splitlines()
    assert [s.status for s in result.steps] == [CHANGED, CHANGED, FAILED]
    assert lines[:2] == ["[localhost] demo (guide §9)", "[localhost] t-1   quick: changed"]
    assert re.fullmatch(r"\[localhost\] t-2   slow: running — [12]s", lines[2])
    assert re.fullmatch(r"\[localhost\] t-2   slow: changed \(\d+s\)", lines[3])
    assert lines[4] == "[localhost] t-3   broken: failed"
    assert lines[5:] == ["      exit code 3; last output:", "      it broke", "      hint: see B-99"]


def test_on_a_terminal_the_status_line_shows_phase_elapsed_and_limit_then_its_result():
    buf = io.StringIO()
    out = Output(Console(file=buf, width=120, force_terminal=True, color_system=None))
    assert out.live
    out.begin("ai-server-l4", "3-6", "vLLM start")
    out.progress("ai-server-l4", "compiling", limit=900)
    time.sleep(1.0)  # the live region refreshes 8 times a second
    out.step(StepResult("ai-server-l4", "vllm", "3-6", "vLLM start", OK, "answers 200"), dry_run=False)
    text = buf.getvalue()
    assert re.search(r"\[ai-server-l4\] 3-6   vLLM start: compiling — [01]s of up to 15m", text)
    assert text.rstrip().endswith("[ai-server-l4] 3-6   vLLM start: ok — answers 200")
    assert out._live is None  # the status line is gone, replaced by the result


def test_status_line_wording():
    activity = _Activity(label="[vm] 3-6   vLLM start", started=time.monotonic() - 72, message="compiling",
                         limit=900)
    assert activity.text() == "[vm] 3-6   vLLM start: compiling — 1m12s of up to 15m"
    assert [duration(s) for s in (0.4, 59, 60, 72, 900, 3725)] == ["0s", "59s", "1m", "1m12s", "15m", "1h02m"]


@pytest.mark.parametrize(("env", "coloured"), [({}, False), ({"FORCE_COLOR": "1"}, True),
                                               ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False)])
def test_colours_only_on_a_terminal_and_never_with_no_color(env, coloured):
    """A pipe gets no colour; FORCE_COLOR makes rich treat it as a terminal; NO_COLOR wins over both."""
    code = ("from runbook.engine.output import Output\nfrom runbook.engine.results import StepResult\n"
            "Output().step(StepResult('h', 's', '1-1', 't', 'failed', 'it failed'), dry_run=False)\n")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**clean, **env},
                       cwd=REPO, timeout=60)
    assert r.returncode == 0 and "[h] 1-1   t: failed — it failed" in r.stdout, r.stderr
    assert bool(re.search(r"\x1b\[[0-9;]*3[0-7]m", r.stdout)) is coloured


def test_output_json_lines_and_the_report_validate_against_the_documented_schema(tmp_path):
    stream = io.StringIO()
    out, _ = pipe(json_stream=stream)
    steps = [Command(guide="t-1", title="marker", check=f"test -e {tmp_path}/m", run=f"touch {tmp_path}/m"),
             File(guide="t-2", title="config", path=f"{tmp_path}/c.conf", content="a=1\n", owner="root"),
             Command(guide="t-3", title="broken", check="false", run="exit 4"),
             Command(guide="t-4", title="never", check="false", run="true")]
    result = run_steps(LocalTransport(), "demo", "9", steps, out, hints={"t-3": "see B-99"})
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    line = validator("line")
    for obj in lines:
        line.validate(obj)
    assert [(o["guide"], o["status"], o["diff_present"]) for o in lines] == [
        ("t-1", "changed", True), ("t-2", "changed", True), ("t-3", "failed", False)]
    assert lines[2]["hint"] == "see B-99" and lines[2]["section"] == "demo"
    report = report_data([result])
    validator("report").validate(report)
    assert report["schema_version"] == 2 and [s["status"] for s in report["sections"][0]["steps"]] == [
        "changed", "changed", "failed", "skipped"]
    check = check_record("vm", RowResult("vllm_health", "vLLM /health", "6-1", "failed", "no answer"))
    line.validate(check)
    with pytest.raises(jsonschema.ValidationError):  # the schema is strict: an unknown status fails
        line.validate({**check, "status": "maybe"})


def test_the_checklist_is_one_table_in_80_columns_red_rows_first():
    long = ("http://127.0.0.1:8001/health: no answer (connection refused); last journal line: RuntimeError: "
            "Not enough SMs to use max_autotune_gemm mode")
    reports = [HostReport("ai-server-l4", "10.231.1.2", [
        RowResult("gpu", "GPU is an NVIDIA L4 with ~24 GB", "2-4", "ok",
                  "NVIDIA L4, driver 580.95.05, CUDA 13.0"),
        RowResult("vllm_health", "vLLM /health answers 200", "6-1", "failed", long),
        RowResult("app", "FastAPI /health", "6-3", "ok", "200"),
    ])]
    out, buf = pipe()
    render(out, reports)
    lines = buf.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert sum("Guide §6 checklist" in line for line in lines) == 1
    rows = [line for line in lines if re.match(r"^\s*(ok|failed|skipped|warn)\s", line)]
    assert [r.split()[0] for r in rows] == ["failed", "ok", "ok"]
    assert "see [1]" in rows[0] and rows[2].rstrip().endswith("200")
    details = " ".join(line.strip() for line in lines[lines.index(next(x for x in lines if x.startswith("[1]"))):])
    assert long in details and "FAILED: ai-server-l4: vLLM /health answers 200" in details


def test_the_summary_is_a_line_per_host():
    out, buf = pipe()
    ok = StepResult("vm", "vllm", "3-1", "a", OK)
    changed = StepResult("vm", "vllm", "3-2", "b", CHANGED)
    out.summary([SectionResult("vm", "vllm", [ok, changed], seconds=3.0, commands=2),
                 SectionResult("vm", "ai-server", [ok], seconds=1.0, commands=1),
                 SectionResult("proj", "firewall", [ok], seconds=0.5, commands=3)])
    assert buf.getvalue().splitlines() == [
        "[vm]   2 ok, 1 changed, 0 failed in 2 sections (4s, 3 remote commands)",
        "[proj] 1 ok, 0 changed, 0 failed in 1 section (0s, 3 remote commands)",
    ]


def test_a_host_that_stops_mid_step_leaves_no_start_line_behind():
    out, buf = pipe(long_after=0.2)
    out.begin("gone", "3-2", "venv")
    out.end("gone")  # e.g. the SSH connection broke: no result line will come
    time.sleep(0.6)
    assert buf.getvalue() == ""
    out.begin("slow", "3-2", "venv")
    time.sleep(0.6)
    assert buf.getvalue() == "[slow] 3-2   venv: running — 0s\n"
