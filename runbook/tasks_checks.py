"""`inv verify`: the guide's section 6 checklist (troubleshoot's task lives in troubleshoot.tasks).

It reads hosts.toml without needing the secrets (a broken key is exactly what it must be able to
look at), reaches the hosts the section tasks reach, and prints a table; --json prints the results
on stdout instead (the log goes to stderr) and --report writes them to a file. It exits 1 on a red
row. The helpers here (output, loading, emitting) are shared with `inv troubleshoot`.

    python -m runbook.tasks_checks verify ...   runs them without tasks.py.
"""

from __future__ import annotations

import json as json_mod
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection, Program, task
from invoke.exceptions import Exit

from .cli import DEFAULT_CONFIG
from .errors import RunbookError
from .secrets import mask, write_private

if TYPE_CHECKING:  # imported by the task that runs, not to list the tasks
    from .engine.output import Output
    from .verify import loading

HELP = {
    "config": "hosts.toml to read (default: ./hosts.toml)",
    "local": "check this machine instead of the hosts over SSH (e.g. on the VM itself)",
    "hosts": "comma-separated host names to limit the run to",
    "report": "also write the results as JSON to this file",
    "json": "print the results as JSON on stdout (the log goes to stderr)",
}
TROUBLESHOOT_HELP = {
    **HELP, "fix": "apply the remedy of every item found (or print the manual steps), then check again",
    "only": "items to check, e.g. B-3,B-10,S-1,C-1 (default: all)",
}
OUTPUT_HELP = "text (default) or json: one JSON object per checklist row on stdout (docs/report-schema.md)"


def _output(as_json: bool, output: str = "text") -> Output:
    from .engine.output import Output, console

    if output not in ("text", "json"):
        Output(console=console(stderr=True)).error(f"--output must be text or json, not {output!r}")
        raise Exit(code=2)
    if as_json or output == "json":
        return Output(console=console(stderr=True), json_stream=sys.stdout if output == "json" else None)
    return Output()


def _load(config: str, out: Output) -> loading.Loaded:
    from .verify import loading

    try:
        return loading.load(config)
    except RunbookError as err:
        out.error(str(err))
        raise Exit(code=2) from None


def _names(hosts: str) -> list[str]:
    return [h.strip() for h in hosts.split(",") if h.strip()]


def _emit(data: dict, report: str, as_json: bool, out: Output) -> None:
    text = mask(json_mod.dumps(data, indent=2))
    if report:
        write_private(Path(report), text + "\n")
        out.info(f"report written to {report}")
    if as_json:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def _fleet_reports(loaded: loading.Loaded, local: bool, hosts: str, out: Output) -> list:
    """The load balancer's rows (replicas behind gcp.lb), unless the run is limited to this machine or to hosts."""
    if local or hosts or not loaded.settings.gcp.lb_wanted or loaded.settings.inventory.target == "hosts":
        return []
    from .cloud import lb_verify  # google-cloud-compute: only when there is a load balancer to ask

    return lb_verify.reports(loaded.settings, loaded.root, out)


def verify_after_deploy(opts, out: Output) -> None:
    """The last step of a deploy: the §6 checklist on the same hosts, added to the deploy's report."""
    from .verify import loading
    from .verify import run as verify_run

    loaded = _load(opts.config, out)
    try:
        transports = loading.connect(loaded, opts.local, _names(opts.hosts), out.warn)
    except RunbookError as err:
        out.error(str(err))
        raise Exit(code=2) from None
    reports = verify_run.verify_all(transports, loaded.settings) + _fleet_reports(loaded, opts.local, opts.hosts, out)
    verify_run.render(out, reports)
    if out.json_stream is not None:
        verify_run.stream(reports, out.json_stream)
    data = verify_run.as_json(reports)
    if opts.report and Path(opts.report).exists():
        combined = json_mod.loads(Path(opts.report).read_text())
        combined["verify"] = data
        combined["failed"] = combined.get("failed", False) or not data["ok"]
        write_private(Path(opts.report), mask(json_mod.dumps(combined, indent=2)) + "\n")
    if not data["ok"]:
        out.error("verify: at least one row is red (see above); `inv troubleshoot` looks for the known causes")
        raise Exit(code=1)


@task(help={**HELP, "output": OUTPUT_HELP})
def verify(c, config=DEFAULT_CONFIG, local=False, hosts="", report="", json=False, output="text"):
    """Guide §6: the verification checklist as a table; exit code 1 on any red row."""
    from .verify import loading
    from .verify import run as verify_run

    out = _output(json, output)
    loaded = _load(config, out)
    try:
        transports = loading.connect(loaded, local, _names(hosts), out.warn)
    except RunbookError as err:
        out.error(str(err))
        raise Exit(code=2) from None
    reports = verify_run.verify_all(transports, loaded.settings) + _fleet_reports(loaded, local, hosts, out)
    verify_run.render(out, reports)
    if out.json_stream is not None:
        verify_run.stream(reports, out.json_stream)
    data = verify_run.as_json(reports)
    _emit(data, report, json, out)
    if not data["ok"]:
        raise Exit(code=1)


checks = Collection(verify)

if __name__ == "__main__":
    Program(namespace=checks, name="l4-runbook checks").run()
