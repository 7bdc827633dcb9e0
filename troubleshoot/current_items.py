"""Items beyond the guide's appendix B: components the guide set up the way that has since become a risk.

C-1: promtail still ships the logs. It reached end of life on 2026-03-02 (Grafana's Promtail docs);
the fix moves the host to Grafana Alloy with a cut-over that loses and doubles nothing (below).
C-2: VLLM_PORT (or VLLM_HOST) in vllm.service's environment, as the guide's vllm.env sets it. Every
VLLM_* name belongs to vLLM, and VLLM_PORT is its internal communication port, not the API server's
(vLLM's environment-variable docs; a Kubernetes-style ``tcp://...`` value aborts the start).
"""

from __future__ import annotations

from runbook.engine.steps import Command, Service, Step
from runbook.engine.wait import HttpWait
from runbook.facts.env import process_environment, unit_env_files
from runbook.facts.unit import unit
from runbook.sections import HOST_SECTIONS, vllm
from runbook.sections.loki_check import LokiReachable
from runbook.sections.promtail import ALLOY_UNIT, PROMTAIL_EOL, PROMTAIL_UNIT

from .context import Evidence, Repair
from .fixes import apply_steps, manual, section_fix
from .model import Diagnostic, Finding, Outcome, found, ok, unknown

RESERVED = vllm.RESERVED_NAMES

# -- C-1 promtail still shipping ------------------------------------------------------------------


def detect_c1(ev: Evidence) -> Finding:
    promtail, alloy = ev.unit(PROMTAIL_UNIT), ev.unit(ALLOY_UNIT)
    enabled = promtail.get("UnitFileState") == "enabled"
    if not promtail.active and not enabled:
        return ok(f"{PROMTAIL_UNIT} is not running" + (f"; {ALLOY_UNIT} is {alloy.state}" if alloy.installed else ""))
    shown = [f"{PROMTAIL_UNIT}: {promtail.state}, {promtail.get('UnitFileState') or 'not installed'}",
             f"{ALLOY_UNIT}: {alloy.state if alloy.installed else 'not installed'}"]
    if ev.settings.monitoring.promtail.log_shipper == "promtail":
        return found(f"promtail ships the logs and is end of life since {PROMTAIL_EOL} (log_shipper = promtail "
                     "in hosts.toml)", *shown, kind="config")
    twice = " beside alloy: every line is pushed twice" if alloy.active else ""
    return found(f"promtail still runs{twice} (end of life since {PROMTAIL_EOL}; log_shipper is alloy)", *shown,
                 kind="migrate")


def _is_promtail_stop(step: Step) -> bool:
    return isinstance(step, Command) and step.title.startswith(f"{PROMTAIL_UNIT} stopped")


def migration_steps(section: list[Step]) -> list[Step]:
    """The promtail section (Alloy) reordered for a host that runs promtail now.

    1. Green first, while promtail still ships: Alloy downloaded and checksum-verified, its config
       written only after `alloy fmt` and `alloy validate` pass, the unit checked by systemd-analyze,
       Loki answering from the host.
    2. The cut-over, one command: promtail stopped (it records its journal cursors and file offsets
       in its positions file) and disabled, Alloy enabled and (re)started.
    3. Alloy ready on its HTTP port.
    No gap, no double: the file job takes promtail's offsets over (``legacy_positions_file``), so
    every app log line is read once; the journal sources start ``max_age`` (1m) back, which covers
    the cut-over, and the lines both read are identical (labels, the journal's timestamp, text),
    which Loki ignores as exact duplicates.
    """
    prepare = [s for s in section if not isinstance(s, Service | HttpWait | LokiReachable) and not _is_promtail_stop(s)]
    loki = [s for s in section if isinstance(s, LokiReachable)]
    waits = [s for s in section if isinstance(s, HttpWait)]
    cut = Command(guide="7-6", title=f"cut-over: {PROMTAIL_UNIT} stopped and disabled, {ALLOY_UNIT} started",
                  check=f"! systemctl is-active -q {PROMTAIL_UNIT} && ! systemctl is-enabled -q {PROMTAIL_UNIT} "
                        f"&& systemctl is-active -q {ALLOY_UNIT} && systemctl is-enabled -q {ALLOY_UNIT}",
                  run=f"systemctl disable --now {PROMTAIL_UNIT} && systemctl enable {ALLOY_UNIT} "
                      f"&& systemctl restart {ALLOY_UNIT}",
                  notify=(ALLOY_UNIT,))
    return [*prepare, *loki, cut, *waits]


def fix_c1(r: Repair, finding: Finding) -> Outcome:
    if finding.data.get("kind") == "config":
        return manual('Set monitoring.promtail.log_shipper = "alloy" in hosts.toml (same jobs and labels), then run: '
                      "inv troubleshoot --only C-1 --fix   (Alloy installed and checked first, then the cut-over)")
    section = HOST_SECTIONS["promtail"].build(r.loaded.skeleton(), r.host)
    return apply_steps(r, "promtail (fix C-1: to Alloy)", "7", migration_steps(section))


# -- C-2 VLLM_PORT in vllm.service's environment --------------------------------------------------

def _reserved_lines(ev: Evidence) -> list[str]:
    """Where vllm.service gets VLLM_PORT/VLLM_HOST from, as systemd reads it: an Environment= line (file:line),
    its EnvironmentFile= files (file:line), and the running process' own environment (what systemd passed)."""
    service, env = ev.unit(vllm.UNIT), ev.env(vllm.UNIT)
    process = ev.get(process_environment(vllm.UNIT))
    lines = []
    for name in RESERVED:
        if (source := service.env_source(name)) is not None:
            lines.append(f"environment: {source}")
        if env.where(name) and env.has(name):
            lines.append(f"file: {env.where(name)}: {name}={env.get(name)}")
        elif env.has(name) and source is None:
            lines.append(f"environment: {name}={env.get(name)}")
        if process.has(name):
            lines.append(f"process: {name}={process.get(name)}")
    return lines


def detect_c2(ev: Evidence) -> Finding:
    if not ev.unit(vllm.UNIT).installed:
        return ok(f"{vllm.UNIT} is not installed: nothing sets vLLM's reserved names")
    lines = _reserved_lines(ev)
    if [line for line in lines if "VLLM_PORT=" in line]:
        return found("VLLM_PORT reaches vllm.service: it is vLLM's internal communication port, not the API "
                     "server's (the unit passes --port from it as the guide does; it works only while vLLM "
                     "skips the busy port, and a tcp://... value aborts the start)", *lines)
    if lines:
        return found("vLLM's own VLLM_HOST/VLLM_HOST_IP reach vllm.service (every VLLM_* name is vLLM's)", *lines)
    if ev.env(vllm.UNIT).error:
        return unknown(f"systemd could not load {vllm.UNIT}'s environment files: {ev.env(vllm.UNIT).error}")
    return ok("no VLLM_PORT/VLLM_HOST in vllm.service's environment (SERVE_HOST/SERVE_PORT carry --host/--port)")


def fix_c2(r: Repair, finding: Finding) -> Outcome:
    return section_fix(r, "C-2", "vllm", lambda s: s.guide in ("3-3", "3-4", "3-5", "3-6", "3-7"))


C1 = Diagnostic(
    "C-1", "Promtail still ships the logs (end of life)",
    f"promtail.service runs; Promtail reached end of life on {PROMTAIL_EOL} (no fixes, no security updates).",
    "The guide's 7-6 installs Promtail; Grafana Alloy replaces it.",
    "systemd's state of promtail.service and alloy.service (active, enabled), and the configured log_shipper.",
    "With log_shipper = alloy: Alloy installed, its config validated (`alloy validate`) and Loki reachable while "
    "promtail still ships; then one cut-over command (promtail stopped and disabled, Alloy started); then Alloy "
    "ready. File offsets are taken over from promtail's positions file (legacy_positions_file); the journal is "
    "read from 1 minute back, and the lines both read are exact duplicates that Loki ignores. With log_shipper "
    "= promtail: says to set it to alloy first.",
    detect_c1, probes=lambda s: [unit(PROMTAIL_UNIT), unit(ALLOY_UNIT)], fix=fix_c1)

C2 = Diagnostic(
    "C-2", "VLLM_PORT in vllm.service's environment",
    "vllm.env sets VLLM_PORT=8001 (and VLLM_HOST) as the guide's 3-3 does.",
    "Every VLLM_* variable is vLLM's: VLLM_PORT is its internal communication port, not the API server's "
    "(vLLM's environment-variable docs); a tcp://host:port value (Kubernetes service links) aborts the start.",
    "vllm.service's Environment=, the lines of its EnvironmentFile= files (file:line) and the running "
    "process' environment (/proc/PID/environ), for VLLM_PORT, VLLM_HOST and VLLM_HOST_IP.",
    "Rewrites vllm.env and vllm.service from the vllm section (SERVE_HOST/SERVE_PORT carry --host/--port), "
    "restarts vLLM and waits for /health.",
    detect_c2, probes=lambda s: [unit(vllm.UNIT), unit_env_files(vllm.UNIT), process_environment(vllm.UNIT)],
    fix=fix_c2)

ITEMS = (C1, C2)
