"""`fab deploy` from nothing on the sandbox, read as CI reads it (piped): a line per step, the checklist
once; then the same command with `--output json`, every line valid against the documented schema.

The VM comes from the local Compute API (it boots a sandbox host), as in `make sandbox`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import jsonschema
import pytest

from runbook.verify.run import ROWS

from helpers import OCR, REPO, SECRET, TOKEN, assert_no_secret

pytestmark = pytest.mark.integration
SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())
RESULT = re.compile(r"^\[(?P<host>[^\]]+)\] (?P<guide>\S+)\s+(?P<title>.+): "
                    r"(?P<status>ok|changed|failed|would change)(?: — .*)?(?: \(\d+[\dmhs]*\))?$")
HEADER = re.compile(r"^\[[^\]]+\] [\w-]+(?: \(continued\))? \(guide §[\w-]+\)")
ABOVE_THE_STEPS = 3  # warnings a deploy may print (world-open firewall rule, first contact), fixed


@pytest.fixture(scope="module")
def project(private_sandbox_dir: Path, tmp_path_factory) -> Path:
    """The user's folder; the VM's host and the local Compute API live in the module's own state dir,
    and both are gone after the module."""
    root = tmp_path_factory.mktemp("deploy-output")
    text = (REPO / "hosts.toml").read_text().replace('path = "tests/fixtures/ai_app"',
                                                     f'path = "{REPO / "tests/fixtures/ai_app"}"')
    (root / "hosts.toml").write_text(text.replace('secrets_file = "secrets.env"', 'secrets_file = "none.env"'))
    return root


def fab(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "VLLM_API_KEY": SECRET, "OCR_API": OCR, "BACKEND_INTERNAL_TOKEN": TOKEN}
    env.pop("NO_COLOR", None)
    return subprocess.run([sys.executable, "-m", "fabric", "-r", str(REPO), "deploy", "--config",
                           str(root / "hosts.toml"), *args], capture_output=True, text=True, env=env, timeout=1800)


def checklist_once(text: str) -> list[str]:
    lines = text.splitlines()
    assert sum("Guide §6 checklist" in line for line in lines) == 1, text
    table = lines[[i for i, line in enumerate(lines) if "Guide §6 checklist" in line][0]:]
    assert all(len(line) <= 80 for line in table), text
    return table


def test_a_cold_deploy_piped_prints_a_line_per_step_and_the_checklist_once(project: Path):
    run = fab(project, "--report", str(project / "cold.json"))
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((project / "cold.json").read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    steps = [s for section in report["sections"] for s in section["steps"] if s["status"] != "skipped"]
    assert len(steps) >= 40 and any(s["status"] == "changed" for s in steps)
    lines = run.stdout.splitlines()
    assert "\x1b[" not in run.stdout  # a pipe gets no colour and no live region

    summary_at = next(i for i, line in enumerate(lines) if re.match(r"^\[[^\]]+\]\s+\d+ ok, ", line))
    body = lines[:summary_at]
    results = [m for m in map(RESULT.match, body) if m]
    # Every step has exactly one result line.
    assert Counter((m["host"], m["guide"], m["title"], m["status"]) for m in results) == Counter(
        (s["host"], s["guide"], s["title"], s["status"]) for s in steps)
    # The rest: a header per section (and per continued section), a start line only for a step that
    # ran past 2 s plus one a minute while it ran, and a few warnings.
    headers = [line for line in body if HEADER.match(line)]
    started = [line for line in body if not RESULT.match(line) and not HEADER.match(line)
               and re.search(r": .+ — \d+(?:m\d*)?s?(?: of up to \S+)?$", line)]
    long_steps = [s for s in steps if s["seconds"] > 2]
    allowance = sum(1 + int((s["seconds"] - 2) // 60) for s in long_steps)
    assert len(started) <= allowance, "\n".join(started)
    for line in started:
        assert any(line.startswith(f"[{s['host']}] {s['guide']:<5} {s['title']}: ") for s in long_steps), line
    assert len(headers) <= 2 * len(report["sections"])
    assert len(body) <= len(steps) + len(report["sections"]) * 2 + allowance + ABOVE_THE_STEPS, run.stdout

    footer = lines[summary_at:]
    hosts = {s["host"] for s in report["sections"]}
    table = checklist_once(run.stdout)
    assert len(footer) <= len(hosts) + 2 + len(table) and len(table) <= 4 * len(ROWS) + 8, run.stdout
    assert "Every checklist row is green." in table
    assert_no_secret(run.stdout + run.stderr)


def test_the_same_deploy_again_with_output_json_streams_one_valid_object_per_result(project: Path):
    run = fab(project, "--output", "json", "--report", str(project / "again.json"))
    assert run.returncode == 0, run.stdout + run.stderr
    line_schema = jsonschema.Draft202012Validator({**SCHEMA, "$ref": "#/$defs/line"})
    objects = [json.loads(line) for line in run.stdout.splitlines()]
    for obj in objects:
        line_schema.validate(obj)
    report = json.loads((project / "again.json").read_text())
    steps = [s for section in report["sections"] for s in section["steps"]]
    # One line per step result, the same object the report holds (the order is the run's).
    assert Counter(json.dumps(o, sort_keys=True) for o in objects if o["type"] == "step") == Counter(
        json.dumps(s, sort_keys=True) for s in steps if s["status"] != "skipped")
    assert {o["status"] for o in objects if o["type"] == "step"} == {"ok"}
    checks = [o for o in objects if o["type"] == "check"]
    assert len(checks) == len(ROWS) and {c["status"] for c in checks} <= {"ok", "skipped"}
    assert "Nothing to change" in run.stderr
    checklist_once(run.stderr)
    assert_no_secret(run.stdout + run.stderr)
