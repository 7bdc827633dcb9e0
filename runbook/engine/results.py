"""What happened, per host, section and step: the data behind the log, --report and --output json.

The JSON shapes are a contract with the machines that read them: docs/report-schema.json
describes them (schema_version below), and a change to their fields is a new schema_version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..secrets import mask, write_private
from .status import CHANGED, FAILED, OK, SKIPPED  # noqa: F401 - the one vocabulary, re-exported here

SCHEMA_VERSION = 2  # 2: checklist rows say failed/skipped/warn (the one vocabulary), not FAIL/skip


@dataclass
class StepResult:
    host: str
    section: str
    guide: str
    title: str
    status: str
    summary: str = ""
    diff: str = ""
    seconds: float = 0.0
    error: str = ""
    hint: str = ""

    def __post_init__(self) -> None:
        self.summary, self.diff, self.error = mask(self.summary), mask(self.diff), mask(self.error)


@dataclass
class SectionResult:
    host: str
    section: str
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0
    commands: int = 0
    dry_run: bool = False
    notified: list[str] = field(default_factory=list)  # handlers its changes triggered

    def count(self, status: str) -> int:
        return sum(1 for s in self.steps if s.status == status)

    @property
    def status(self) -> str:
        if self.count(FAILED):
            return FAILED
        return CHANGED if self.count(CHANGED) else OK


def step_record(step: StepResult, dry_run: bool = False) -> dict:
    """One step result as JSON: an --output json line, and an entry of a report section's steps."""
    return {
        "type": "step", "host": step.host, "section": step.section, "guide": step.guide, "title": step.title,
        "status": step.status, "dry_run": dry_run, "summary": step.summary, "diff_present": bool(step.diff),
        "diff": step.diff, "seconds": step.seconds, "error": step.error, "hint": step.hint,
    }


def section_record(section: SectionResult) -> dict:
    return {
        "host": section.host, "section": section.section, "status": section.status, "dry_run": section.dry_run,
        "ok": section.count(OK), "changed": section.count(CHANGED), "failed": section.count(FAILED),
        "skipped": section.count(SKIPPED), "seconds": section.seconds, "commands": section.commands,
        "notified": list(section.notified),
        "steps": [step_record(s, section.dry_run) for s in section.steps],
    }


def report_data(results: list[SectionResult]) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "failed": any(r.status == FAILED for r in results),
        "sections": [section_record(r) for r in results],
    }


def write_report(path: Path, results: list[SectionResult]) -> None:
    """Machine-readable results; secrets are already masked in every field."""
    write_private(path, mask(json.dumps(report_data(results), indent=2)) + "\n")
