"""Running our side: `fab deploy --only ai-server,node-exporter` as a user would, timed, report read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cpu
from .config import REPO, SECTIONS

FAB = Path(sys.executable).parent / "fab"  # the venv this script runs in


@dataclass
class OursRun:
    seconds: float
    rc: int
    output: str
    changed: int = 0
    failed: bool = True
    commands: int = 0
    in_sections: float = 0.0  # the sections' own time; the rest is start-up, connecting, the summary
    cpu_seconds: float = 0.0  # busy CPU of the whole machine (controller and sandbox hosts) during the run
    changed_steps: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # summaries of unchanged steps that report something left alone
    # host -> (title, summary, first diff line) of each step the run changed (or a dry run would change)
    changes: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    left_alone: dict[str, list[str]] = field(default_factory=dict)  # host -> "left alone" summaries

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.failed


def run(config: Path, report: Path, hosts: str = "", dry_run: bool = False) -> OursRun:
    """One whole `fab deploy` process, from start to exit, like Ansible's ansible-playbook."""
    report.unlink(missing_ok=True)
    command = [str(FAB), "deploy", "--only", ",".join(SECTIONS), "--config", str(config), "--report", str(report)]
    if hosts:
        command += ["--hosts", hosts]
    if dry_run:
        command.append("--dry-run")
    busy, started = cpu.busy_seconds(), time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900,
                          env={**os.environ, "COLUMNS": "120"})
    result = OursRun(time.perf_counter() - started, proc.returncode, proc.stdout + proc.stderr)
    result.cpu_seconds = cpu.busy_seconds() - busy
    if report.exists():
        read_report(result, json.loads(report.read_text()))
    return result


def read_report(result: OursRun, data: dict) -> OursRun:
    """Fill *result* from our --report JSON (schema 2): counts, changed steps with their diffs, notes."""
    sections = data["sections"]
    result.failed = data["failed"]
    result.changed = sum(s["changed"] for s in sections)
    result.commands = sum(s["commands"] for s in sections)
    result.in_sections = max((sum(s["seconds"] for s in sections if s["host"] == h)
                              for h in {s["host"] for s in sections}), default=0.0)
    result.changed_steps = tuple(f"{s['host']}: {s['section']}: {step['title']}" for s in sections
                                 for step in s["steps"] if step["status"] == "changed")
    result.notes = tuple(step["summary"] for s in sections for step in s["steps"]
                         if step["status"] == "ok" and "left alone" in step["summary"])
    for s in sections:
        for step in s["steps"]:
            if step["status"] == "changed":
                first = next((line for line in (step.get("diff") or "").splitlines() if line.strip()), "")
                result.changes.setdefault(s["host"], []).append((step["title"], step["summary"], first))
            elif step["status"] == "ok" and "left alone" in step["summary"]:
                result.left_alone.setdefault(s["host"], []).append(step["summary"])
    return result
