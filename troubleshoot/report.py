"""How troubleshoot results look: a line per item with its evidence, what a fix did, a table, JSON.

Everything goes through the runbook's Output (and so through secret masking); the JSON has the
same content for machines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from runbook.engine.output import Output
from runbook.secrets import mask

from .model import FOUND, OK, UNKNOWN, Diagnostic, Finding, Outcome

if TYPE_CHECKING:
    from .run import ItemResult

STYLE = {OK: "green", FOUND: "bold red", UNKNOWN: "yellow"}


def finding(out: Output, host: str, d: Diagnostic, f: Finding, after: bool = False) -> None:
    label = "after the fix: " if after else ""
    out.line(f"[{host}] {d.id:<5} {d.title}: {label}{f.verdict} — {f.summary}", STYLE.get(f.verdict, ""))
    if f.verdict != OK or after:
        for line in f.evidence:
            out.line(f"      - {line}", "dim")


def outcome(out: Output, host: str, d: Diagnostic, o: Outcome) -> None:
    for line in o.manual:
        out.line(f"[{host}] {d.id:<5} to do: {line}", "yellow")
    if o.error:
        out.line(f"[{host}] {d.id:<5} fix failed: {o.error}", "bold red")


def table(out: Output, results: list[ItemResult]) -> None:
    t = Table(title="Appendix B", show_lines=False)
    for column in ("host", "item", "title", "verdict", "after fix"):
        t.add_column(column, overflow="fold")
    for r in results:
        style = STYLE.get(r.finding.verdict, "")
        after = ""
        if r.after is not None:
            after = f"[{STYLE.get(r.after.verdict, '')}]{r.after.verdict}[/]"
        elif r.outcome is not None and r.outcome.manual:
            after = "[yellow]manual steps above[/]"
        t.add_row(escape(r.host), r.diagnostic.id, escape(r.diagnostic.title), f"[{style}]{r.finding.verdict}[/]",
                  after)
    out.console.print(t)
    counts = {v: sum(1 for r in results if r.final == v) for v in (OK, FOUND, UNKNOWN)}
    line = f"{counts[OK]} ok, {counts[FOUND]} found, {counts[UNKNOWN]} cannot tell"
    out.console.print(f"[bold red]{line}[/]" if counts[FOUND] else f"[green]{line}[/]")


def _finding(f: Finding | None) -> dict | None:
    if f is None:
        return None
    return {"verdict": f.verdict, "summary": mask(f.summary), "evidence": [mask(e) for e in f.evidence]}


def _outcome(o: Outcome | None) -> dict | None:
    if o is None:
        return None
    return {"applied": o.applied, "manual": [mask(m) for m in o.manual], "error": mask(o.error),
            "steps": [{"guide": s.guide, "title": s.title, "status": s.status, "summary": s.summary, "error": s.error}
                      for s in o.steps]}


def as_json(results: list[ItemResult], seconds: float) -> dict:
    items = [{"id": r.diagnostic.id, "title": r.diagnostic.title, "host": r.host, **_finding(r.finding),
              "fix": _outcome(r.outcome), "after": _finding(r.after), "final": r.final} for r in results]
    return {
        "items": items,
        "counts": {v: sum(1 for r in results if r.final == v) for v in (OK, FOUND, UNKNOWN)},
        "found": [d.id for d in sorted({r.diagnostic for r in results if r.final == FOUND}, key=lambda d: d.order)],
        "seconds": round(seconds, 2),
    }
