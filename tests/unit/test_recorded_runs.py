"""README's "What you will see" is printed from recorded runs by today's output code: never stale."""

import json
from pathlib import Path

import jsonschema

from runbook import recorded_runs

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "report-schema.json").read_text())


def test_readme_shows_the_recorded_runs_as_the_output_code_prints_them_today():
    assert (REPO / "README.md").read_text() == recorded_runs.updated_readme(REPO), \
        "README.md's What you will see is stale: run `inv docs`"


def test_the_recorded_runs_are_reports_of_the_current_schema():
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for run in recorded_runs.RUNS:
        validator.validate(json.loads((REPO / "docs" / "recorded" / f"{run.name}.json").read_text()))


def test_the_recorded_runs_show_a_cold_deploy_a_quiet_rerun_and_a_failure_with_its_hint():
    section = recorded_runs.readme_section(REPO)
    cold, again, failure = section.split("```console")[1:]
    assert "changed — create /etc/systemd/system/vllm.service" in cold and "Guide §6 checklist" in cold
    assert cold.count("Guide §6 checklist") == 1 and "echo $?\n0" in cold
    assert "Nothing to change: every step was already as wanted." in again and " changed" not in again.replace(
        "0 changed", "")
    assert "failed" in failure and "B-10" in failure and "echo $?\n1" in failure
    assert all(len(line) <= 80 for line in section.splitlines() if "│" in line or line.startswith(" ─"))
