"""`inv firewall`, `inv vm`, `inv cleanup`: guide sections 1, 2 (with 5-1) and 8 on Compute Engine.

Same flags and output as the host tasks (--config, --dry-run, --report, --diff). `deploy`
calls `run_cloud_sections(["firewall", "vm"], ...)` before the host sections. google-cloud-compute
is imported when a cloud section runs, never to list the tasks or for a deploy of host sections only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from invoke import task
from invoke.exceptions import Exit

from . import cli
from .cloud import CLOUD_SECTIONS, run
from .engine.results import CHANGED, FAILED, SectionResult
from .errors import RunbookError

if TYPE_CHECKING:
    from .cloud.context import CloudContext
    from .config import Settings
    from .engine.output import Output

CLOUD_HELP = {k: v for k, v in cli.COMMON_HELP.items() if k in ("config", "dry-run", "report", "diff", "output")}


def _settings(opts: cli.Options, out: Output) -> tuple[Settings, Path]:
    from .cloud.context import load_settings

    try:
        return load_settings(opts.config)
    except RunbookError as err:
        out.error(str(err))
        raise Exit(code=2) from None


def _context(opts: cli.Options, out: Output, loaded: tuple[Settings, Path] | None = None) -> CloudContext:
    from .cloud.context import open_context
    from .cloud.steps import describe

    settings, root = loaded or _settings(opts, out)
    try:
        return open_context(settings, root, out, opts.dry_run)
    except Exception as exc:  # no local API, no credentials: one line, not a traceback
        out.error(describe(exc))
        raise Exit(code=2) from None


def run_cloud_sections(names: list[str], opts: cli.Options, out: Output) -> list[SectionResult]:
    """For deploy: the cloud sections in *names*, unless there is no cloud VM to manage
    (--local runs on the VM itself; inventory.target = "hosts" lists machines by hand)."""
    names = [n for n in names if n in CLOUD_SECTIONS]
    if not names:
        return []
    if opts.local:
        out.info(f"--local: skipping {', '.join(names)} (this machine is the VM)")
        return []
    loaded = _settings(opts, out)
    if loaded[0].inventory.target == "hosts":
        out.info(f"inventory.target = \"hosts\": skipping {', '.join(names)} (hosts are listed by hand)")
        return []
    return run(_context(opts, out, loaded), names)


def _section(name: str, config: str, dry_run: bool, report: str, diff: bool,
             output: str = "text") -> list[SectionResult]:
    opts = cli.Options(config=config, dry_run=dry_run, report=report, diff=diff, output=output)
    out = cli.make_output(opts)
    results = run(_context(opts, out), [name])
    cli.finish(results, opts, out)
    return results


@task(help=CLOUD_HELP)
def firewall(c, config=cli.Options.config, dry_run=False, report="", diff=False, output="text"):
    """Guide §1: firewall rules for the service ports (1-1) and monitoring ports (1-2). Idempotent."""
    return _section("firewall", config, dry_run, report, diff, output)


@task(help=CLOUD_HELP)
def vm(c, config=cli.Options.config, dry_run=False, report="", diff=False, output="text"):
    """Guide §2 + 5-1: check image/zones/quota, create or start the L4 VM, record its IP, pin its host key."""
    return _section("vm", config, dry_run, report, diff, output)


def confirm(question: str, out: Output, stdin: TextIO | None = None) -> bool:
    """Ask on a terminal; without one, refuse (a script must say --yes)."""
    stdin = stdin or sys.stdin
    if not stdin.isatty():
        out.error("refusing to change anything unconfirmed, and there is no terminal to ask on: pass --yes")
        return False
    sys.stdout.write(f"{question} [y/N] ")
    sys.stdout.flush()
    return stdin.readline().strip().lower() in ("y", "yes")


def run_cleanup(opts: cli.Options, stop: bool = False, delete: bool = False, firewall: bool = False,
                yes: bool = False, stdin: TextIO | None = None, out: Output | None = None) -> list[SectionResult]:
    """Guide §8. With no flag the VM is stopped; a real run shows its plan and asks first unless --yes."""
    from .cloud import cleanup as cleanup_mod
    from .cloud.steps import run_section

    out = out or cli.make_output(opts)
    if stop and delete:
        out.error("choose one of --stop and --delete")
        raise Exit(code=2)
    action = "delete" if delete else "stop" if stop or not firewall else ""
    ctx = _context(opts, out)
    steps = cleanup_mod.steps(ctx.settings, action, firewall)
    host = ctx.settings.gcp.instance_name

    def once(dry_run: bool) -> SectionResult:
        ctx.dry_run, ctx.notes = dry_run, {}
        return run_section(ctx, host, "cleanup", "8", steps)

    if opts.dry_run or yes:
        results = [once(opts.dry_run)]
    else:
        preview = once(True)
        if preview.status == FAILED or not preview.count(CHANGED):
            results = [preview]
        else:
            what = ", ".join(s.summary for s in preview.steps if s.status == CHANGED)
            if not confirm(f"Cleanup will {what}. Go ahead?", out, stdin):
                out.info("nothing was changed")
                raise Exit(code=2)
            results = [once(False)]
    cli.finish(results, opts, out)
    return results


@task(help={**CLOUD_HELP, "stop": "stop the VM (the default): its disk stays, and is billed",
            "delete": "delete the VM and its boot disk", "firewall": "also delete the two firewall rules",
            "yes": "do not ask for confirmation"})
def cleanup(c, config=cli.Options.config, dry_run=False, report="", diff=False, stop=False, delete=False,
            firewall=False, yes=False, output="text"):
    """Guide §8: stop (default) or delete the VM; --firewall deletes the rules (alone: only them). Asks unless --yes."""
    opts = cli.Options(config=config, dry_run=dry_run, report=report, diff=diff, output=output)
    return run_cleanup(opts, stop, delete, firewall, yes)
