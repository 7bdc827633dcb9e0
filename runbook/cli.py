"""What the tasks share: load config, pick hosts, run sections on them in parallel, report.

Tasks in tasks.py stay one-liners over these functions, so ``inv`` and
``fab`` behave the same and errors are reported the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from invoke.exceptions import Exit

from . import config as config_mod
from .engine.output import Output
from .engine.results import FAILED, SectionResult, StepResult, write_report
from .engine.runner import run_steps
from .errors import RunbookError
from .inventory import transports
from .sections import HOST_SECTIONS, promtail
from .sections.common import HostInfo
from .transport import Transport


@dataclass
class Options:
    """The flags every section task takes."""

    config: str = config_mod.DEFAULT_CONFIG
    dry_run: bool = False
    local: bool = False
    hosts: str = ""
    report: str = ""
    diff: bool = False

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
}


def load(opts: Options, out: Output) -> config_mod.Config:
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
    """
    results: list[SectionResult] = []
    pending: list[tuple[str, list, SectionResult]] = []
    host = HostInfo(name=transport.name, login_user=transport.login_user)
    names = list(names)
    try:
        for name in names:
            section = HOST_SECTIONS[name]
            try:
                steps = section.build(cfg, host)
                late = section.late(cfg, host) if section.late else []
                if name == names[-1]:  # nothing left to overlap with: one batch, one round trip
                    steps, late = steps + late, []
            except RunbookError as err:
                out.error(f"[{transport.name}] {name}: {err}")
                results.append(SectionResult(transport.name, name, [StepResult(
                    transport.name, name, section.guide, "prepare steps", FAILED, error=str(err))]))
                return results
            result = run_steps(transport, name, section.guide, steps, out, opts.dry_run, section.hints)
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
        results.append(SectionResult(transport.name, "connect", [StepResult(
            transport.name, "connect", "-", "reach the host", FAILED, error=str(err))]))
    finally:
        transport.close()
    return results


def run_host_sections(names: list[str], opts: Options, out: Output | None = None,
                      prior: Iterable[SectionResult] = ()) -> list[SectionResult]:
    """Run *names* on every targeted host in parallel; exit non-zero if any step failed.

    *prior* results (the cloud sections of a deploy) go into the same summary and report.
    """
    out = out or Output(show_diff=opts.diff)
    cfg = load(opts, out)
    if "promtail" in names and (eol := promtail.eol_warning(cfg.settings)):
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
    out.summary(results)
    if opts.report:
        write_report(Path(opts.report), results)
        out.info(f"report written to {opts.report}")
    if any(r.status == FAILED for r in results):
        raise Exit(code=1)


def select_sections(all_names: list[str], only: str = "", skip: str = "", first: str = "") -> list[str]:
    """--only / --skip / --from, with unknown names refused (a typo must not run everything)."""
    def split(value: str) -> list[str]:
        return [v.strip() for v in value.split(",") if v.strip()]

    wanted_only, wanted_skip = split(only), split(skip)
    unknown = sorted({*wanted_only, *wanted_skip, *([first] if first else [])} - set(all_names))
    if unknown:
        Output().error(f"unknown section(s) {unknown}; sections are: {', '.join(all_names)}")
        raise Exit(code=2)
    names = all_names[all_names.index(first):] if first else list(all_names)
    if wanted_only:
        names = [n for n in names if n in wanted_only]
    return [n for n in names if n not in wanted_skip]
