"""Live, readable output: one line per step, diffs on request, a summary table.

Plain lines rather than a live-redrawn screen, so logs of CI jobs and of
several hosts in parallel stay readable. Everything passes through mask().
"""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..secrets import mask
from .results import CHANGED, FAILED, OK, SectionResult, StepResult

STYLE = {OK: "green", CHANGED: "yellow", FAILED: "bold red", "skipped": "dim", "would change": "cyan"}


class Output:
    def __init__(self, console: Console | None = None, show_diff: bool = False, progress_every: float = 5.0):
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.show_diff = show_diff
        self.progress_every = progress_every
        self._lock = threading.Lock()
        self._last_progress: dict[str, float] = {}

    def line(self, text: str, style: str = "") -> None:
        with self._lock:
            self.console.print(escape(mask(text)), style=style or None)

    def info(self, text: str) -> None:
        self.line(text)

    def warn(self, text: str) -> None:
        self.line(f"warning: {text}", "yellow")

    def error(self, text: str) -> None:
        self.line(f"error: {text}", "bold red")

    def section(self, host: str, section: str, guide: str, dry_run: bool) -> None:
        self.line(f"[{host}] {section} (guide §{guide})" + (" — dry run, nothing is changed" if dry_run
                                                             else ""), "bold")

    def step(self, result: StepResult, dry_run: bool) -> None:
        status = "would change" if dry_run and result.status == CHANGED else result.status
        summary = f" — {result.summary}" if result.summary else ""
        self.line(f"  [{result.host}] {result.guide:<5} {result.title}: {status}{summary}",
                  STYLE.get(status, ""))
        if result.diff and (dry_run or self.show_diff):
            for diff_line in result.diff.rstrip("\n").splitlines():
                style = "green" if diff_line.startswith("+") else "red" if diff_line.startswith("-") else "dim"
                self.line(f"      {diff_line}", style)
        if result.error:
            for err_line in result.error.rstrip().splitlines():
                self.line(f"      {err_line}", "red")
        if result.hint:
            self.line(f"      hint: {result.hint}", "yellow")

    def progress(self, host: str, message: str, force: bool = False) -> None:
        """Throttled progress for long waits: a line every few seconds, not a flood."""
        now = time.monotonic()
        if force or now - self._last_progress.get(host, 0) >= self.progress_every:
            self._last_progress[host] = now
            self.line(f"      [{host}] … {message}", "dim")

    def summary(self, results: list[SectionResult]) -> None:
        table = Table(title="Summary", show_lines=False)
        for column in ("host", "section", "ok", "changed", "failed", "time", "remote commands"):
            table.add_column(column)
        for r in results:
            label = "would change" if r.dry_run else "changed"
            changed = f"{r.count(CHANGED)} {label}" if r.dry_run else str(r.count(CHANGED))
            table.add_row(escape(r.host), escape(r.section), str(r.count(OK)), changed,
                          f"[red]{r.count(FAILED)}[/red]" if r.count(FAILED) else "0",
                          f"{r.seconds:.1f}s", str(r.commands))
        with self._lock:
            self.console.print(table)
            total_changed = sum(r.count(CHANGED) for r in results)
            if any(r.status == FAILED for r in results):
                self.console.print("[bold red]FAILED[/bold red]")
            elif total_changed == 0:
                self.console.print("[green]Nothing to change: every step was already as wanted.[/green]")
