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


def cleanup_plan(ctx: CloudContext, action: str, firewall: bool, instance: str = "",
                 lb: bool = False) -> list[tuple[CloudContext, str, list]]:
    """What cleanup does, as (context, row label, steps) in dependency order: the load balancer's forwarding rule,
    backend service, health check and instance groups; then the VMs; then the firewall rules.

    The single VM of the guide keeps its one row (VM and rules together). *instance* limits it to one VM
    (a replica, or one no longer in the settings); *lb* tears down only the load balancer."""
    from .cloud import cleanup as cleanup_mod
    from .cloud import replicas

    g = ctx.settings.gcp
    if lb:
        return [(ctx, g.lb.name, cleanup_mod.lb_steps(ctx.settings)),
                (ctx, ctx.project, cleanup_mod.firewall_steps(ctx.settings, firewall, health_rule=True))]
    fleet = g.replicas is not None or bool(g.instances)
    if not fleet and instance in ("", g.instance_name):
        return [(ctx, g.instance_name, cleanup_mod.steps(ctx.settings, action, firewall))]
    listed = dict(g.replica_list())
    if instance:
        chosen = [(instance, listed.get(instance, ""))]
    else:
        chosen = [*listed.items(), *((r["name"], "") for r in replicas.unlisted(ctx))]
    teardown = action == "delete" and not instance and g.lb_wanted
    plan = [(ctx, g.lb.name, cleanup_mod.lb_steps(ctx.settings))] if teardown else []
    plan += [(ctx.for_replica(name, zone, i), name, cleanup_mod.vm_steps(action, leave_group=not teardown))
             for i, (name, zone) in enumerate(chosen)]
    plan.append((ctx, ctx.project, cleanup_mod.firewall_steps(ctx.settings, firewall, health_rule=teardown)))
    return [entry for entry in plan if entry[2]]


def _batches(plan: list[tuple[CloudContext, str, list]]) -> list[list[tuple[CloudContext, str, list]]]:
    """Consecutive replica entries together (independent of each other), every other entry alone."""
    out: list[list] = []
    for entry in plan:
        replica = bool(entry[0].instance)
        if out and replica and out[-1][0][0].instance:
            out[-1].append(entry)
        else:
            out.append([entry])
    return out


def run_cleanup(opts: cli.Options, stop: bool = False, delete: bool = False, firewall: bool = False,
                yes: bool = False, stdin: TextIO | None = None, out: Output | None = None, instance: str = "",
                lb: bool = False) -> list[SectionResult]:
    """Guide §8. With no flag the VM is stopped; a real run shows its plan and asks first unless --yes."""
    from .cloud.steps import run_section

    out = out or cli.make_output(opts)
    if stop and delete:
        out.error("choose one of --stop and --delete")
        raise Exit(code=2)
    if lb and (stop or delete or instance):
        out.error("--lb deletes the load balancer only: leave out --stop, --delete and --instance")
        raise Exit(code=2)
    action = "delete" if delete else "stop" if stop or not (firewall or lb) else ""
    ctx = _context(opts, out)
    plan = cleanup_plan(ctx, action, firewall, instance, lb)

    def once(dry_run: bool) -> list[SectionResult]:
        """The plan in order; the VMs of a fleet (consecutive entries of their own) side by side."""
        from concurrent.futures import ThreadPoolExecutor

        results = []
        for batch in _batches(plan):
            for each, _, _ in batch:
                each.dry_run, each.notes = dry_run, {}
            with ThreadPoolExecutor(max_workers=min(8, len(batch))) as pool:
                results += list(pool.map(lambda entry: run_section(entry[0], entry[1], "cleanup", "8", entry[2]),
                                         batch))
            if any(r.status == FAILED for r in results):
                break
        return results

    if opts.dry_run or yes:
        results = once(opts.dry_run)
    else:
        preview = once(True)
        if any(r.status == FAILED for r in preview) or not sum(r.count(CHANGED) for r in preview):
            results = preview
        else:
            what = ", ".join(s.summary for r in preview for s in r.steps if s.status == CHANGED)
            if not confirm(f"Cleanup will {what}. Go ahead?", out, stdin):
                out.info("nothing was changed")
                raise Exit(code=2)
            results = once(False)
    cli.finish(results, opts, out)
    return results


@task(help={**CLOUD_HELP, "stop": "stop the VM (the default): its disk stays, and is billed",
            "delete": "delete the VM and its boot disk (all replicas: the load balancer first)",
            "firewall": "also delete the two firewall rules", "yes": "do not ask for confirmation",
            "instance": "only this VM (a replica, or one no longer in hosts.toml); default: all",
            "lb": "delete only the load balancer (forwarding rule, backend service, health check, groups, rule)"})
def cleanup(c, config=cli.Options.config, dry_run=False, report="", diff=False, stop=False, delete=False,
            firewall=False, yes=False, output="text", instance="", lb=False):
    """Guide §8: stop (default) or delete the VM(s); --firewall deletes the rules (alone: only them); asks first."""
    opts = cli.Options(config=config, dry_run=dry_run, report=report, diff=diff, output=output)
    return run_cleanup(opts, stop, delete, firewall, yes, instance=instance, lb=lb)


@task(help=CLOUD_HELP)
def lb(c, config=cli.Options.config, dry_run=False, report="", diff=False, output="text"):
    """One endpoint for the replicas: Google's passthrough load balancer (groups, health check, backend service,
    forwarding rule, health-check firewall rule). Idempotent; part of deploy with more than one replica."""
    return _section("lb", config, dry_run, report, diff, output)
