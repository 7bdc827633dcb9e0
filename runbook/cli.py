"""What the tasks share: load config, pick hosts, run sections on them in parallel, report.

Tasks in tasks.py stay one-liners over these functions, so ``inv`` and
``fab`` behave the same and errors are reported the same way. Importing this module costs
nothing: config (pydantic), the output (rich), SSH (Fabric/Paramiko) and the sections are
imported by the function that uses them, so `inv --list` loads none of them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from invoke.exceptions import Exit

from .engine.results import FAILED, SectionResult, StepResult
from .errors import RunbookError
from .sections import HOST_SECTIONS

if TYPE_CHECKING:
    from . import config as config_mod
    from .engine.output import Output
    from .transport import Transport

DEFAULT_CONFIG = "hosts.toml"  # config.DEFAULT_CONFIG, without importing pydantic to list the tasks


@dataclass
class Options:
    """The flags every section task takes."""

    config: str = DEFAULT_CONFIG
    dry_run: bool = False
    local: bool = False
    hosts: str = ""
    report: str = ""
    diff: bool = False
    wait: int = 0  # seconds to wait for another run holding a host
    output: str = "text"  # "json": one JSON object per step result on stdout, the log on stderr

    @property
    def host_list(self) -> list[str]:
        return [h.strip() for h in self.hosts.split(",") if h.strip()]


COMMON_HELP = {
    "config": "hosts.toml to read (default: ./hosts.toml)",
    "dry-run": "show every change (with diffs) and the commands it would run; change nothing",
    "local": "run on this machine instead of over SSH (e.g. on the VM itself)",
    "hosts": "comma-separated host names to limit the run to",
    "report": "also write the results as JSON to this file",
    "diff": "show file diffs for changes, not only in dry-run",
    "wait": "seconds to wait when another run is using a host (default: refuse at once, naming it)",
    "output": "text (default) or json: one JSON object per step result on stdout "
              "(docs/report-schema.md), the log on stderr",
}

CONNECT = "connect"  # the section name of a host that could not be reached (or was busy): exit 2


def make_output(opts: Options) -> Output:
    """The Output for these flags: with --output json the log goes to stderr, step objects to stdout."""
    from .engine.output import Output, console

    if opts.output not in ("text", "json"):
        Output(console=console(stderr=True)).error(f"--output must be text or json, not {opts.output!r}")
        raise Exit(code=2)
    if opts.output == "json":
        return Output(console=console(stderr=True), show_diff=opts.diff, json_stream=sys.stdout)
    return Output(show_diff=opts.diff)


def load(opts: Options, out: Output) -> config_mod.Config:
    from . import config as config_mod

    try:
        return config_mod.load(opts.config)
    except RunbookError as err:
        out.error(str(err))
        raise Exit(code=2) from None


def run_on_host(cfg: config_mod.Config, transport: Transport, names: Iterable[str], opts: Options,
                out: Output) -> list[SectionResult]:
    """Sections in order on one host; the first failed section stops this host only.

    A section's late steps (waits) run after all the other sections, so e.g. vLLM's
    first start (minutes) overlaps with installing the app and the monitoring.

    Connecting and taking the run lock (waits on the network and the host) happen while the
    steps are prepared here. Then every section's fact batch is sent at once, side by side (still
    one remote command per section); a section uses its early batch only when the sections before
    it on this host ran nothing but their own batch (no change, no wait, no re-read), so what it
    read is what it would read now. Otherwise it reads its facts again when its turn comes.
    """
    from functools import partial

    from .engine.facts import answers, batch_script
    from .engine.runner import run_steps
    from .sections.common import HostInfo

    results: list[SectionResult] = []
    pending: list[tuple[str, list, SectionResult]] = []
    host = HostInfo(name=transport.name, login_user=transport.login_user)
    names = list(names)
    try:
        # From the first fact gathered to the last change, no other run acts on this host.
        locked = _in_thread(transport.lock_run, opts.wait, out.warn)
        prepared = [(name, *_prepare(cfg, host, name, last=name == names[-1])) for name in names]
        locked()
        early: dict[str, partial] = {}
        for name, steps, _late, error in prepared:
            if error:
                break  # nothing is read for a section that cannot run, nor after it
            early[name] = partial(answers, transport, transport.start(batch_script(steps)), len(steps))
        quiet = True  # every section so far ran only its own batch
        for name, steps, late, error in prepared:
            section = HOST_SECTIONS[name]
            if error:
                out.error(f"[{transport.name}] {name}: {error}")
                results.append(SectionResult(transport.name, name, [StepResult(
                    transport.name, name, section.guide, "prepare steps", FAILED, error=error)]))
                return results
            read = early.pop(name) if quiet else None
            result = run_steps(transport, name, section.guide, steps, out, opts.dry_run, section.hints,
                               read=read)
            if not quiet:
                result.commands += 1  # its early batch was sent but is stale: read again above
            quiet = quiet and result.commands == 1
            results.append(result)
            if result.status == FAILED:
                return results
            if late:
                pending.append((name, late, result))
        for name, late, result in pending:
            section = HOST_SECTIONS[name]
            run_steps(transport, name, section.guide, late, out, opts.dry_run, section.hints, into=result)
            if result.status == FAILED:
                break
    except RunbookError as err:  # the host itself: unreachable, sudo, host key
        out.error(str(err))
        results.append(SectionResult(transport.name, CONNECT, [StepResult(
            transport.name, CONNECT, "-", "reach the host", FAILED, error=str(err))]))
    finally:
        out.end(transport.name)
        transport.close()
    return results


def _prepare(cfg: config_mod.Config, host, name: str, last: bool) -> tuple[list, list, str]:
    """A section's steps and late steps, or the error that stops it (reported when its turn comes)."""
    section = HOST_SECTIONS[name]
    try:
        steps = section.build(cfg, host)
        late = section.late(cfg, host) if section.late else []
    except RunbookError as err:
        return [], [], str(err)
    if last:  # nothing left to overlap with: one batch, one round trip
        return steps + late, [], ""
    return steps, late, ""


def _in_thread(action, *args):
    """Start *action(*args)* in a thread; the returned call waits for it and raises what it raised."""
    import threading

    done: list = []

    def work() -> None:
        try:
            done.append((True, action(*args)))
        except BaseException as err:  # handed to whoever waits
            done.append((False, err))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()

    def wait():
        thread.join()
        ok, value = done[0]
        if not ok:
            raise value
        return value

    return wait


def run_host_sections(names: list[str], opts: Options, out: Output | None = None,
                      prior: Iterable[SectionResult] = (), cfg: config_mod.Config | None = None) -> list[SectionResult]:
    """Run *names* on every targeted host in parallel; exit non-zero if any step failed.

    *prior* results (the cloud sections of a deploy) go into the same summary and report. *cfg*: settings
    already loaded (a task that overrides one of them from its own flags); else hosts.toml is read here.
    A section that does not apply to these settings (autostop without autostop.idle) is left out.
    """
    from concurrent.futures import ThreadPoolExecutor

    from .inventory import transports

    out = out or make_output(opts)
    cfg = cfg or load(opts, out)
    left_out = [n for n in names if HOST_SECTIONS[n].applies and not HOST_SECTIONS[n].applies(cfg.settings)]
    names = [n for n in names if n not in left_out]
    if left_out and not names:  # said only when nothing is left to run (a deploy does not mention it)
        out.info(f"{', '.join(left_out)}: not set in {opts.config}, nothing to run")
    if "promtail" in names:
        from .sections import promtail

        if eol := promtail.eol_warning(cfg.settings):
            out.warn(eol)
    try:
        hosts = transports(cfg, opts.local, opts.host_list, notify=out.warn)
    except RunbookError as err:
        out.error(str(err))
        if prior:
            finish(list(prior), opts, out)
        raise Exit(code=2) from None
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(hosts)))) as pool:
        per_host = list(pool.map(lambda t: run_on_host(cfg, t, names, opts, out), hosts))
    results = [*prior, *(r for host_results in per_host for r in host_results)]
    finish(results, opts, out)
    return results


def finish(results: list[SectionResult], opts: Options, out: Output) -> None:
    from pathlib import Path

    from .engine.results import write_report

    out.summary(results)
    if opts.report:
        write_report(Path(opts.report), results)
        out.info(f"report written to {opts.report} (schema: docs/report-schema.md)")
    if any(r.section == CONNECT and r.status == FAILED for r in results):
        raise Exit(code=2)  # a host unreachable or busy: nothing was done on it
    if any(r.status == FAILED for r in results):
        raise Exit(code=1)


def wait_seconds(value) -> int:
    """--wait N: whole seconds, 0 to 86400; anything else is refused before any host is contacted."""
    text = str(value).strip()
    if not text.isdigit() or int(text) > 86400:
        from .engine.output import Output

        Output().error(f"--wait: expected whole seconds from 0 to 86400, got {text!r}")
        raise Exit(code=2)
    return int(text)


def select_sections(all_names: list[str], only: str = "", skip: str = "", first: str = "") -> list[str]:
    """--only / --skip / --from, with unknown names refused (a typo must not run everything)."""
    def split(value: str) -> list[str]:
        return [v.strip() for v in value.split(",") if v.strip()]

    wanted_only, wanted_skip = split(only), split(skip)
    unknown = sorted({*wanted_only, *wanted_skip, *([first] if first else [])} - set(all_names))
    if unknown:
        from .engine.output import Output

        Output().error(f"--only/--skip/--from: unknown section(s) {unknown}; sections are: {', '.join(all_names)}")
        raise Exit(code=2)
    names = all_names[all_names.index(first):] if first else list(all_names)
    if wanted_only:
        names = [n for n in names if n in wanted_only]
    return [n for n in names if n not in wanted_skip]
