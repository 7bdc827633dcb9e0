"""`inv verify`: the section 6 checklist on every targeted host, as a table and as JSON.

Per host: one batch of probes over SSH, while the controller tests the external ports in parallel;
then every row is judged. Hosts run side by side. Any red row makes the exit code non-zero.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from rich.markup import escape
from rich.table import Table

from ..config import Settings
from ..engine.output import Output
from ..errors import RunbookError
from ..facts import HostFacts, gather
from ..secrets import mask
from ..transport import Transport
from .reach import Reach
from .rows import FAIL, OK, ROWS, SKIP, Facts

STYLE = {OK: "green", FAIL: "bold red", SKIP: "yellow"}


@dataclass
class RowResult:
    check: str
    title: str
    guide: str
    status: str
    detail: str


@dataclass
class HostReport:
    host: str
    address: str
    rows: list[RowResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.status != FAIL for r in self.rows)


def verify_host(transport: Transport, settings: Settings) -> HostReport:
    """Never raises for the host: an unreachable host is one red row."""
    started = time.monotonic()
    address = getattr(transport, "address", "") or ""
    report = HostReport(transport.name, address)
    reach = Reach(address) if address else None
    prefetch = None
    if reach:
        targets = [(settings.ai_server.port, settings.ai_server.health_path), (settings.vllm.port, "/health")]
        prefetch = threading.Thread(target=reach.prefetch, args=(targets,), daemon=True)
        prefetch.start()
    try:
        raw = HostFacts(gather(transport, [p for row in ROWS for p in row.probes(settings)]))
    except RunbookError as err:
        report.rows.append(RowResult("connect", "reach the host", "-", FAIL, mask(str(err))))
        return _done(report, started)
    finally:
        transport.close()
        if prefetch:
            prefetch.join()
    facts = Facts(settings, raw, reach)
    for row in ROWS:
        status, detail = row.judge(facts)
        report.rows.append(RowResult(row.key, row.title, row.guide, status, mask(detail)))
    return _done(report, started)


def _done(report: HostReport, started: float) -> HostReport:
    report.seconds = round(time.monotonic() - started, 2)
    return report


def verify_all(transports: list[Transport], settings: Settings) -> list[HostReport]:
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(transports)))) as pool:
        return list(pool.map(lambda t: verify_host(t, settings), transports))


def render(out: Output, reports: list[HostReport]) -> None:
    table = Table(title="Guide §6 checklist", show_lines=False)
    for column in ("host", "check", "guide", "status", "detail"):
        table.add_column(column, overflow="fold")
    for report in reports:
        for row in report.rows:
            out.line(f"[{report.host}] {row.guide:<5} {row.title}: {row.status} — {row.detail}",
                     STYLE.get(row.status, ""))
    for report in reports:
        for row in report.rows:
            style = STYLE.get(row.status, "")
            table.add_row(escape(report.host), escape(row.title), row.guide,
                          f"[{style}]{row.status}[/{style}]", escape(row.detail))
    out.console.print(table)
    failed = [f"{r.host}: {row.title}" for r in reports for row in r.rows if row.status == FAIL]
    if failed:
        out.console.print(f"[bold red]FAILED[/bold red]: {escape('; '.join(failed))}")
    else:
        out.console.print("[green]Every checklist row is green.[/green]")


def as_json(reports: list[HostReport]) -> dict:
    return {
        "hosts": [{"host": r.host, "address": r.address, "ok": r.ok, "seconds": r.seconds,
                   "rows": [asdict(row) for row in r.rows]} for r in reports],
        "ok": all(r.ok for r in reports),
        "failed": [{"host": r.host, "check": row.check, "detail": row.detail}
                   for r in reports for row in r.rows if row.status == FAIL],
    }
