"""`inv verify`: the section 6 checklist on every targeted host, as a table and as JSON.

Per host: one batch of probes over SSH, while the controller tests the external ports in parallel;
then every row is judged. Hosts run side by side. Any red row makes the exit code non-zero.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from rich import box
from rich.table import Table
from rich.text import Text

from ..config import Settings
from ..engine.output import Output
from ..errors import RunbookError
from ..facts import HostFacts, gather
from ..secrets import mask
from ..sections.autostop_row import AUTOSTOP_ROWS
from ..transport import Transport
from .current_rows import CURRENT_ROWS
from .reach import Reach
from .rows import FAIL, OK, SKIP, WARN, Facts
from .rows import ROWS as GUIDE_ROWS

ROWS = (*GUIDE_ROWS, *CURRENT_ROWS, *AUTOSTOP_ROWS)  # the guide's section 6, current components, autostop

STYLE = {OK: "green", FAIL: "bold red", SKIP: "yellow", WARN: "yellow"}


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


TABLE_WIDTH = 80  # the checklist fits a standard terminal; longer details go under it
MIN_DETAIL = 12  # narrower than this, a detail column is not worth having


def render(out: Output, reports: list[HostReport]) -> None:
    """The checklist once: one table of every host's rows, red rows first, then the long details.

    A detail that fits the room the other columns leave stays in the table; the others are
    numbered and printed in full, wrapped, under it (and are in --report as they are).
    """
    out.close()
    several = len(reports) > 1
    rows = [(r.host, row) for r in reports for row in r.rows]
    rows.sort(key=lambda hr: {FAIL: 0, SKIP: 1}.get(hr[1].status, 2))  # stable: guide order within each
    width = min(out.console.width, TABLE_WIDTH)
    columns = [7, 5, max((len(row.title) for _, row in rows), default=5)]
    columns += [max(len(host) for host, _ in rows)] if several and rows else []
    room = width - sum(columns) - 3 * (len(columns) + 1)  # each column's padding and gap, and the detail's
    table = Table(title="Guide §6 checklist", box=box.SIMPLE_HEAD, pad_edge=False, title_justify="left")
    table.add_column("status", no_wrap=True)
    if several:
        table.add_column("host", overflow="fold")
    table.add_column("guide", no_wrap=True)
    table.add_column("check", overflow="fold")
    if room >= MIN_DETAIL:
        table.add_column("detail", overflow="fold")
    notes: list[tuple[int, str, RowResult]] = []
    for host, row in rows:
        cells = [Text(row.status, style=STYLE.get(row.status, ""))] + ([Text(host)] if several else [])
        cells += [Text(row.guide), Text(row.title)]
        if room >= MIN_DETAIL and len(row.detail) <= room and "\n" not in row.detail:
            cells.append(Text(mask(row.detail)))
        else:
            notes.append((len(notes) + 1, host, row))
            if room >= MIN_DETAIL:
                cells.append(Text(f"see [{len(notes)}]"))
        table.add_row(*cells)
    with out._lock:
        out.console.print(table, width=width, soft_wrap=False)
        for number, host, row in notes:
            head = f"[{number}] " + (f"{host} " if several else "") + f"{row.guide} {row.title}: "
            out.console.print(Text(mask(head + row.detail), style=STYLE.get(row.status, "")),
                              width=width, soft_wrap=False)
    failed = [f"{r.host}: {row.title}" for r in reports for row in r.rows if row.status == FAIL]
    if failed:
        out.line(f"FAILED: {'; '.join(failed)}", "bold red")
    else:
        out.line("Every checklist row is green.", "green")


def check_record(host: str, row: RowResult) -> dict:
    """One checklist row as an --output json line (docs/report-schema.json, "check")."""
    return {"type": "check", "host": host, **asdict(row)}


def stream(reports: list[HostReport], to) -> None:
    for report in reports:
        for row in report.rows:
            to.write(json.dumps(check_record(report.host, row)) + "\n")
    to.flush()


def as_json(reports: list[HostReport]) -> dict:
    return {
        "hosts": [{"host": r.host, "address": r.address, "ok": r.ok, "seconds": r.seconds,
                   "rows": [asdict(row) for row in r.rows]} for r in reports],
        "ok": all(r.ok for r in reports),
        "failed": [{"host": r.host, "check": row.check, "detail": row.detail}
                   for r in reports for row in r.rows if row.status == FAIL],
    }
