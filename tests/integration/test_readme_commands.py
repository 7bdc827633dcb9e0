"""The README's first command, `make sandbox`, on a clean clone: it sets itself up, ends all green, and its
output reads as CI reads it (piped).

CI runs on a fresh machine, so this is the "fresh machine to running" path exactly as a new user
takes it: a `git clone` of the committed tree (no `.venv`, no `secrets.env`), then `make sandbox`
(`make deps`, the venv, throwaway secrets, `fab deploy` through the local Compute API, which boots a
sandbox host as the VM), then the same command again, which must change nothing, then the same deploy
with `--output json`. Uncommitted changes of a working checkout are not in the clone: the tests check
what a user would get from the repository.

The cold run is also the piped output's test: a line per step, a start line only for a step that runs
long, the checklist once, no colour; the JSON run's every line is valid against the documented schema.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest

from runbook.verify.run import ROWS

from helpers import REPO, assert_no_secret

pytestmark = pytest.mark.integration
SUMMARY = re.compile(r"^\[[^\]]+\]\s+(?P<ok>\d+) ok, (?P<changed>\d+) changed, (?P<failed>\d+) failed", re.M)
SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())
RESULT = re.compile(r"^\[(?P<host>[^\]]+)\] (?P<guide>\S+)\s+(?P<title>.+): "
                    r"(?P<status>ok|changed|failed|would change)(?: — .*?)?(?: \((?P<took>\d+[\dmhs]*)\))?$")
HEADER = re.compile(r"^\[[^\]]+\] [\w-]+(?: \(continued\))? \(guide §[\w-]+\)")
ABOVE_THE_STEPS = 3  # warnings a deploy may print (world-open firewall rule, first contact), fixed
DEPLOY = ".venv/bin/fab deploy"  # the line make echoes before the deploy's own output


@dataclass
class Runs:
    clone: Path
    first: subprocess.CompletedProcess
    again: subprocess.CompletedProcess
    as_json: subprocess.CompletedProcess
    report: Path


def user_env() -> dict[str, str]:
    """A user's shell: none of the test run's own secrets or venv leak into the clone's commands."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("VLLM_API_KEY", "OCR_API", "BACKEND_INTERNAL_TOKEN", "VIRTUAL_ENV", "PYTHONPATH", "NO_COLOR")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p)
    return env


def make(clone: Path, *targets: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(clone), *targets], capture_output=True, text=True, env=user_env(),
                          timeout=timeout)


@pytest.fixture(scope="module")
def runs(sandbox_state_dir: Path, tmp_path_factory) -> Runs:
    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("the README path is tested from a git clone: this checkout is not a git repository")
    where = tmp_path_factory.mktemp("readme") / "l4-runbook"
    done = subprocess.run(["git", "clone", "-q", str(REPO), str(where)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    guide = REPO.parent / "shared"  # the guide lives beside the checkout; a clone beside it sees it too
    if guide.is_dir():
        (where.parent / "shared").symlink_to(guide)
    try:
        first = make(where, "sandbox")
        report = where.parent / "again.json"
        if first.returncode != 0:  # no venv or no host to run again on: every test reports make's own output
            yield Runs(where, first, first, first, report)
            return
        again = make(where, "sandbox")
        as_json = subprocess.run([str(where / ".venv/bin/fab"), "deploy", "--output", "json", "--report", str(report)],
                                 cwd=where, capture_output=True, text=True, env=user_env(), timeout=1800)
        yield Runs(where, first, again, as_json, report)
    finally:
        subprocess.run([str(where / ".venv/bin/inv"), "sandbox.down"], cwd=where, capture_output=True, timeout=300)


def totals(text: str) -> tuple[int, int, int]:
    """The summary lines' ok, changed and failed counts, added up over hosts and the cloud sections."""
    found = [tuple(int(m[k]) for k in ("ok", "changed", "failed")) for m in SUMMARY.finditer(text)]
    assert found, text[-3000:]
    return tuple(sum(column) for column in zip(*found, strict=True))


def no_secret(runs: Runs, text: str) -> None:
    """None of the throwaway secrets `make sandbox` wrote may show in any output."""
    values = tuple(v for line in (runs.clone / "secrets.env").read_text().splitlines() if "=" in line
                   for v in [line.split("=", 1)[1]] if v)
    assert values
    assert_no_secret(text, values)


def seconds(took: str) -> int:
    """'1m05s' -> 65 (the output's duration, duration() in runbook/engine/output.py)."""
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in re.findall(r"(\d+)([hms])", took))


def checklist_once(text: str) -> list[str]:
    lines = text.splitlines()
    assert sum("Guide §6 checklist" in line for line in lines) == 1, text
    table = lines[[i for i, line in enumerate(lines) if "Guide §6 checklist" in line][0]:]
    assert all(len(line) <= 80 for line in table), text
    return table


def test_make_sandbox_on_a_clean_clone_ends_green_and_a_second_run_changes_nothing(runs: Runs):
    out = runs.first.stdout + runs.first.stderr
    assert runs.first.returncode == 0, out[-6000:]
    assert (runs.clone / ".venv/bin/fab").exists() and (runs.clone / "secrets.env").stat().st_mode & 0o077 == 0
    ok, changed, failed = totals(runs.first.stdout)
    assert failed == 0 and changed > 0, out[-4000:]
    assert "Guide §6 checklist" in runs.first.stdout  # verify ran; a red row would have made the exit 1

    assert runs.again.returncode == 0, (runs.again.stdout + runs.again.stderr)[-6000:]
    ok_again, changed_again, failed_again = totals(runs.again.stdout)
    assert (changed_again, failed_again) == (0, 0), runs.again.stdout[-4000:]
    assert ok_again >= ok  # the same steps, now all found as they should be
    no_secret(runs, out + runs.again.stdout + runs.again.stderr)


def test_the_cold_deploy_piped_prints_a_line_per_step_and_the_checklist_once(runs: Runs):
    assert runs.first.returncode == 0 and runs.as_json.returncode == 0, runs.as_json.stderr[-3000:]
    lines = runs.first.stdout.splitlines()
    # What make printed around the deploy is make's: the commands before it, "make: Leaving directory" after.
    lines = [line for line in lines[lines.index(DEPLOY) + 1:] if not re.match(r"make(\[\d+\])?: ", line)]
    text = "\n".join(lines)
    assert "\x1b[" not in text  # a pipe gets no colour and no live region
    report = json.loads(runs.report.read_text())
    steps = [s for section in report["sections"] for s in section["steps"] if s["status"] != "skipped"]
    assert len(steps) >= 40

    summary_at = next(i for i, line in enumerate(lines) if re.match(r"^\[[^\]]+\]\s+\d+ ok, ", line))
    body = lines[:summary_at]
    results = [m for m in map(RESULT.match, body) if m]
    # Every step has exactly one result line (the JSON run of the same deploy lists the steps).
    assert Counter((m["host"], m["guide"], m["title"]) for m in results) == Counter(
        (s["host"], s["guide"], s["title"]) for s in steps)
    assert {m["status"] for m in results} <= {"ok", "changed"} and any(m["status"] == "changed" for m in results)
    # The rest: a header per section (and per continued section), a start line only for a step that ran
    # past 2 s (its result line shows how long it took) plus one a minute while it ran, and a few warnings.
    headers = [line for line in body if HEADER.match(line)]
    started = [line for line in body if not RESULT.match(line) and not HEADER.match(line)
               and re.search(r": .+ — \d+(?:m\d*)?s?(?: of up to \S+)?$", line)]
    long_steps = [m for m in results if m["took"]]
    allowance = sum(1 + max(0, seconds(m["took"]) - 2) // 60 for m in long_steps)
    assert len(started) <= allowance, "\n".join(started)
    for line in started:
        assert any(line.startswith(f"[{m['host']}] {m['guide']:<5} {m['title']}: ") for m in long_steps), line
    assert len(headers) <= 2 * len(report["sections"])
    assert len(body) <= len(steps) + len(report["sections"]) * 2 + allowance + ABOVE_THE_STEPS, text

    footer = lines[summary_at:]
    hosts = {s["host"] for s in report["sections"]}
    table = checklist_once(text)
    assert len(footer) <= len(hosts) + 2 + len(table) and len(table) <= 4 * len(ROWS) + 8, text
    assert "Every checklist row is green." in table


def test_the_same_deploy_with_output_json_streams_one_valid_object_per_result(runs: Runs):
    run = runs.as_json
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    line_schema = jsonschema.Draft202012Validator({**SCHEMA, "$ref": "#/$defs/line"})
    objects = [json.loads(line) for line in run.stdout.splitlines()]
    for obj in objects:
        line_schema.validate(obj)
    report = json.loads(runs.report.read_text())
    jsonschema.Draft202012Validator(SCHEMA).validate(report)
    steps = [s for section in report["sections"] for s in section["steps"]]
    # One line per step result, the same object the report holds (the order is the run's).
    assert Counter(json.dumps(o, sort_keys=True) for o in objects if o["type"] == "step") == Counter(
        json.dumps(s, sort_keys=True) for s in steps if s["status"] != "skipped")
    assert {o["status"] for o in objects if o["type"] == "step"} == {"ok"}
    checks = [o for o in objects if o["type"] == "check"]
    assert len(checks) == len(ROWS) and {c["status"] for c in checks} <= {"ok", "skipped"}
    assert "Nothing to change" in run.stderr
    checklist_once(run.stderr)
    no_secret(runs, run.stdout + run.stderr)
