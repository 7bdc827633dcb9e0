"""`inv troubleshoot`: appendix B (and the S- and C-items) on every targeted host, with evidence; --fix repairs.

Lives beside the items, not in runbook/: the dependency runs one way (troubleshoot -> runbook); the task
table (runbook.tasks) calls this task's body only when `inv troubleshoot` runs. Exit codes: 0 nothing
found, 1 an item is still found (after --fix: not cleared by it), 2 nothing found but an item could not
tell (or bad input).

    python -m troubleshoot.tasks troubleshoot ...   runs it without tasks.py.
"""

from __future__ import annotations

import time

from invoke import Collection, Program, task
from invoke.exceptions import Exit

from runbook.config import DEFAULT_CONFIG
from runbook.tasks_checks import TROUBLESHOOT_HELP, _emit, _load, _names, _output

from . import cloud_facts, cloud_items
from . import report as ts_report
from . import run as ts_run
from .model import UNKNOWN
from .registry import select


@task(help=TROUBLESHOOT_HELP)
def troubleshoot(c, config=DEFAULT_CONFIG, local=False, hosts="", report="", json=False, fix=False, only=""):
    """Guide appendix B, S- and C-items with evidence; --fix applies the remedies (exit 1: found, 2: cannot tell)."""
    out = _output(json)
    loaded = _load(config, out)
    try:
        items = select(only)
    except KeyError as err:
        out.error(str(err.args[0]))
        raise Exit(code=2) from None
    if any(d in cloud_items.ITEMS for d in items):  # B-1, B-5, B-16 ask the Compute API
        cloud_facts.load_client()
    started = time.monotonic()
    results = ts_run.run(loaded, ts_run.Options(local, _names(hosts), only, fix), out)
    ts_report.table(out, results)
    data = ts_report.as_json(results, time.monotonic() - started)
    _emit(data, report, json, out)
    if data["found"]:
        raise Exit(code=1)
    if data["counts"][UNKNOWN]:
        raise Exit(code=2)


namespace = Collection(troubleshoot)

if __name__ == "__main__":
    Program(namespace=namespace, name="l4-runbook troubleshoot").run()
