"""What happened, per host, section and step: the data behind the table and --report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..secrets import mask
from .status import CHANGED, FAILED, OK, SKIPPED  # noqa: F401 - the one vocabulary, re-exported here


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


def write_report(path: Path, results: list[SectionResult]) -> None:
    """Machine-readable results; secrets are already masked in every field."""
    data = {
        "sections": [
            {**{k: v for k, v in asdict(r).items() if k != "steps"}, "status": r.status,
             "changed": r.count(CHANGED), "failed": r.count(FAILED), "ok": r.count(OK),
             "steps": [asdict(s) for s in r.steps]}
            for r in results
        ],
        "failed": any(r.status == FAILED for r in results),
    }
    path.write_text(mask(json.dumps(data, indent=2)) + "\n")
