"""Appendix B items about monitoring (guide section 7): B-6, B-7, B-8, B-9, B-17, B-19.

Detection reads what the host itself says, whichever way the monitoring sections install things:
dpkg and apt's policy for DCGM, the libdcgm.so.N the linker knows against the one the exporter
binary asks for, `command -v make`, the exporter's /metrics, the shipper's configuration and
journal, and whether Loki answers from the host.
"""

from __future__ import annotations

import dataclasses
import re

from runbook.config import Settings
from runbook.engine.steps import Command, Step
from runbook.sections import dcgm
from runbook.sections.metrics_wait import MetricsWait
from runbook.verify.batch import Probe
from runbook.verify.probes import Line, journal, search, unit
from runbook.verify.rows import PUSH_ERRORS, PUSH_WINDOW_S, dcgm_probe, shipper_unit

from . import host_probes as hp
from .context import Evidence, Repair
from .fixes import manual, section_fix
from .model import Diagnostic, Finding, Outcome, found, ok, unknown
from .registry import register
from .shipper_config import YamlError, alloy_journal_jobs, promtail_journal_jobs

EXPORTER = dcgm.UNIT
FIRST_COLLECTION_S = 30  # dcgm-exporter's first collection takes ~10 s (B-9); after this long it is not that


def _everything(step: Step) -> bool:
    return True


def _quote(line: Line | None) -> str:
    return f"journal: {line.message.strip()[:300]}" if line else ""


def _majors(text: str) -> list[str]:
    return sorted(set(re.findall(r"libdcgm\.so\.(\d+)", text)), key=int)


# -- B-6 DCGM package not found -----------------------------------------------------------------

def detect_b6(ev: Evidence) -> Finding:
    facts = ev.kv("dcgm:packages")
    package = ev.settings.monitoring.dcgm.package
    installed = facts.get("installed", "").split()
    if facts.get("status") == "installed" or installed:
        return ok(f"DCGM is installed: {', '.join(installed) or package}")
    candidate = facts.get("candidate", "").strip()
    repo = (f"cuda-keyring: {facts.get('keyring') or 'not installed'}; CUDA apt sources: "
            f"{facts.get('sources', '').strip() or 'none'}")
    if candidate and candidate != "(none)":
        return ok(f"{package} is not installed yet; apt can install {candidate} (run: inv dcgm)", repo)
    if facts.get("sources", "").strip():
        why = "a CUDA source is configured, but apt's package lists do not have it (apt-get update not run?)"
    else:
        why = "the CUDA apt repository is not registered (guide 7-1)"
    return found(f"apt does not know {package} (`apt-get install` says 'Unable to locate package'): {why}", repo)


def _wait_after_dcgm(step: Step) -> Step:
    """Restarting nvidia-dcgm restarts dcgm-exporter too (Requires=): then the /metrics wait must look again."""
    if isinstance(step, MetricsWait) and dcgm.DCGM_UNIT not in step.refresh_on:
        return dataclasses.replace(step, refresh_on=(*step.refresh_on, dcgm.DCGM_UNIT))
    return step


def fix_dcgm(item: str):
    def fix(r: Repair, finding: Finding) -> Outcome:
        return section_fix(r, item, "dcgm", _everything, adjust=_wait_after_dcgm)

    return fix


# -- B-7 libdcgm.so.N ---------------------------------------------------------------------------

def _exporter_serves(ev: Evidence) -> bool:
    return ev.unit(EXPORTER).active and ev.http(dcgm_probe(ev.settings)).ok


def detect_b7(ev: Evidence) -> Finding:
    facts = ev.kv("dcgm:exporter")
    if facts.get("binary") != "present":
        return unknown("dcgm-exporter is not installed (run: inv dcgm)")
    stamp = dict(p.split("=", 1) for p in facts.get("stamp", "").split() if "=" in p)
    wants = _majors(facts.get("wants", "")) or ([stamp["dcgm"]] if stamp.get("sha256") == facts.get("sha") and
                                                stamp.get("dcgm") else [])
    libs = _majors(facts.get("libs", ""))
    line = None if _exporter_serves(ev) else search(ev.journal(EXPORTER).since_ready(r"Starting webserver"),
                                                    r"libdcgm\.so\.\d+ library was not found")
    built = (f"built by the runbook from tag {stamp.get('tag')}" if stamp.get("sha256") == facts.get("sha")
             else "not the binary the runbook built (or changed since)")
    have = ", ".join(f"libdcgm.so.{m}" for m in libs) or "no libdcgm.so at all (DCGM not installed?)"
    dcgm_installed = ev.kv("dcgm:packages").get("installed", "").strip() or "no DCGM package"
    if not wants and not line:
        return unknown("cannot tell which libdcgm.so the dcgm-exporter binary loads", built, f"the host has {have}")
    if line or not set(wants) & set(libs):
        need = ", ".join(f"libdcgm.so.{w}" for w in wants) or "another libdcgm"
        return found(f"dcgm-exporter needs {need}; the host has {have}", _quote(line), built,
                     f"installed: {dcgm_installed}")
    return ok(f"dcgm-exporter loads libdcgm.so.{wants[-1]}, which the host has ({built})")


# -- B-8 make / build-essential -----------------------------------------------------------------

def detect_b8(ev: Evidence) -> Finding:
    facts = ev.kv("build-tools")
    packages = f"make: {facts.get('pkg:make') or 'not-installed'}, build-essential: " \
               f"{facts.get('pkg:build-essential') or 'not-installed'}"
    missing = [tool for tool in ("make", "gcc") if not facts.get(tool)]
    if not missing:
        return ok(f"make and gcc are installed ({facts['make']}, {facts['gcc']})", packages)
    built = ev.kv("dcgm:exporter").get("binary") == "present"
    return found(f"{' and '.join(missing)} not installed: `make binary` (guide 7-4) fails with "
                 f"'{missing[0]}: command not found'", packages,
                 "dcgm-exporter is built already, but rebuilding it (B-7) would fail" if built else "")


# -- B-9 empty /metrics -------------------------------------------------------------------------

def detect_b9(ev: Evidence) -> Finding:
    state = ev.unit(EXPORTER)
    if not state.installed:
        return unknown(f"{EXPORTER} is not installed (run: inv dcgm)")
    port = ev.settings.monitoring.dcgm.port
    answer = ev.http(dcgm_probe(ev.settings))
    if not answer.ok:
        return unknown(f"nothing answers on :{port}/metrics ({answer.describe()}; {EXPORTER} is {state.state}): "
                       "not an empty answer, a service that is down (see B-7)")
    want = dcgm.counter_names()
    have = set(answer.body.split())
    missing = [n for n in want if n not in have]
    if not missing:
        return ok(f":{port}/metrics carries all {len(want)} GPU series")
    counters = ev.text("dcgm:counters").split()
    age = state.age()
    shown = f"{answer.size} bytes, missing {', '.join(missing)}"
    if counters == ["MISSING"] or not set(want) <= set(counters):
        listed = "is missing" if counters == ["MISSING"] else f"lists {len(set(want) & set(counters))} of them"
        return found(f":{port}/metrics lacks GPU series: the counters file {dcgm.COUNTERS} {listed}", shown,
                     kind="counters")
    if age is not None and age < FIRST_COLLECTION_S:
        return found(f":{port}/metrics is empty {age:.0f} s after dcgm-exporter started: the first collection takes "
                     "about 10 s (normal, guide B-9)", shown, kind="first")
    tail = ev.journal(EXPORTER).current(state.get("InvocationID"))[-3:]
    return found(f":{port}/metrics still lacks GPU series {age or 0:.0f} s after dcgm-exporter started", shown,
                 *(_quote(line) for line in tail), kind="stuck")


def fix_b9(r: Repair, finding: Finding) -> Outcome:
    kind = finding.data.get("kind")
    if kind == "counters":
        return section_fix(r, "B-9", "dcgm", _everything, adjust=_wait_after_dcgm)
    extra = []
    if kind == "stuck":
        extra = [Command(guide="7-4", title=f"restart {EXPORTER}", check="false", run=f"systemctl restart {EXPORTER}",
                         notify=(EXPORTER,))]
    return section_fix(r, "B-9", "dcgm", lambda s: isinstance(s, MetricsWait), extra=extra)


# -- B-17 Loki unreachable ----------------------------------------------------------------------

def loki_fallback(s: Settings) -> str:
    return s.monitoring.promtail.loki_url  # the sandbox's own receiver comes in through its settings


def detect_b17(ev: Evidence) -> Finding:
    name = shipper_unit(ev.settings)
    state = ev.unit(name)
    if not state.installed:
        return unknown(f"{name} is not installed (run: inv promtail)")
    loki = ev.kv("loki")
    url, code = loki.get("url", ""), loki.get("code", "000")
    if not url:
        return unknown(f"no Loki URL in the {name} configuration nor in monitoring.promtail.loki_url")
    now = float(state.get("NOW") or 0) or ev.now()
    errors = [line for line in ev.journal(name).since(now - PUSH_WINDOW_S) if re.search(PUSH_ERRORS, line.message)]
    pushed = (f"{name}: {len(errors)} push error(s) in the last {PUSH_WINDOW_S // 60} min"
              + (f", last: {errors[-1].message.strip()[:200]}" if errors else ""))
    port = re.search(r":(\d+)", url.split("//", 1)[-1])
    if code.isdigit() and code != "000":
        note = "; they should stop now" if errors else ""
        return ok(f"Loki at {url} answers HTTP {code} from the host", pushed + note)
    return found(f"Loki at {url} does not answer from this host, so {name} cannot push its logs",
                 f"curl {url}/ready from the host: {loki.get('error', '').strip() or 'no answer'}", pushed,
                 url=url, port=port.group(1) if port else "3100")


def fix_b17(r: Repair, finding: Finding) -> Outcome:
    url, port = finding.data["url"], finding.data["port"]
    ip = r.cloud.external_ip() or r.address
    source = f"{ip}/32" if ip else "this VM's external IP (gcloud compute instances describe ... natIP, guide 5-1)"
    return manual(
        f"Allow inbound TCP {port} from {source} in the firewall in front of Loki at {url} (the guide's AWS security "
        f"group: EC2 > Security Groups > the Loki server's group > Edit inbound rules > Custom TCP, port {port}, "
        f"source {source})",
        "When the VM's external IP changes (another project, a recreated VM), change that rule as well",
        f"Check from the VM: curl -sS {url}/ready   then run: inv troubleshoot --only B-17",
    )


# -- B-19 journal logs mixed --------------------------------------------------------------------

def detect_b19(ev: Evidence) -> Finding:
    shipper = ev.settings.monitoring.promtail.log_shipper
    path = hp.PROMTAIL_CONFIG if shipper == "promtail" else hp.ALLOY_CONFIG
    text = ev.text("shipper:config")
    if not text.strip():
        return unknown(f"{path} does not exist (run: inv promtail)")
    try:
        jobs = promtail_journal_jobs(text) if shipper == "promtail" else alloy_journal_jobs(text)
    except YamlError as err:
        return unknown(f"{path} is not YAML this check can read: {err}")
    shown = [f"job {job}: matches {matches or '(none)'}" for job, matches in jobs]
    unfiltered = [job for job, matches in jobs if not matches]
    seen: dict[str, str] = {}
    doubled = [f"{job} and {seen[m]} both match {m}" for job, m in jobs if m and seen.setdefault(m, job) != job]
    wanted = [f"_SYSTEMD_UNIT={u}.service" for u in ev.settings.monitoring.promtail.journal_units]
    absent = [w for w in wanted if w not in {m for _, m in jobs}]
    if unfiltered or doubled:
        what = (f"journal job(s) {', '.join(unfiltered)} have no `matches`: they read every unit's log" if unfiltered
                else doubled[0])
        return found(f"{path}: {what}, so ai-server and vllm logs mix in Loki", *shown, *doubled)
    if not jobs:
        return ok(f"{path} has no journal jobs (nothing to mix)", *shown)
    return ok(f"every journal job in {path} reads one unit", *shown,
              f"no job reads {', '.join(absent)}" if absent else "")


def fix_promtail(r: Repair, finding: Finding) -> Outcome:
    return section_fix(r, "B-19", "promtail", _everything)


def _dcgm_probes(s: Settings) -> list[Probe]:
    return [hp.dcgm_packages(s)]


def _exporter_probes(s: Settings) -> list[Probe]:
    return [hp.exporter_build(s), hp.dcgm_packages(s), unit(EXPORTER), journal(EXPORTER, 100), dcgm_probe(s)]


def _metrics_probes(s: Settings) -> list[Probe]:
    return [unit(EXPORTER), journal(EXPORTER, 100), dcgm_probe(s), hp.counters(s)]


def _loki_probes(s: Settings) -> list[Probe]:
    name = shipper_unit(s)
    return [unit(name), journal(name, 300), hp.loki(s, loki_fallback(s))]


register(Diagnostic(
    "B-6", "DCGM package not found", "`sudo apt-get install -y datacenter-gpu-manager` -> `Unable to locate package`.",
    "The ubuntu-accelerator image has no NVIDIA CUDA apt repository registered.",
    "dpkg status of the DCGM packages, apt's candidate for monitoring.dcgm.package, cuda-keyring's status and "
    "the CUDA sources under /etc/apt.",
    "Runs the dcgm section: registers the CUDA repository (7-1, cuda-keyring), updates apt's lists, installs "
    "DCGM and starts nvidia-dcgm, then the exporter steps.",
    detect_b6, probes=_dcgm_probes, fix=fix_dcgm("B-6")))

register(Diagnostic(
    "B-7", "dcgm-exporter: libdcgm.so.4 not found",
    "dcgm-exporter fails at start: `the libdcgm.so.4 library was not found`.",
    "DCGM 3.x is installed (libdcgm.so.3); dcgm-exporter's main branch (4.x) needs libdcgm.so.4.",
    "The libdcgm.so.N names inside the exporter binary against those `ldconfig -p` lists; the build stamp "
    "(tag, digest); the error in the exporter's journal while /metrics does not answer.",
    "Runs the dcgm section, whose build step picks the dcgm-exporter tag for the DCGM major the host has "
    "(3 -> 3.3.9-3.6.1) and rebuilds a binary that is not its own.",
    detect_b7, probes=_exporter_probes, fix=fix_dcgm("B-7")))

register(Diagnostic(
    "B-8", "make missing for the dcgm-exporter build", "`make binary` -> `make: command not found`.",
    "The ubuntu-accelerator image has no build-essential.",
    "`command -v make` and `command -v gcc` (cgo needs it), the dpkg status of make and build-essential.",
    "Installs git, make and build-essential (and Go) with the dcgm section's 7-3 steps.",
    detect_b8, probes=lambda s: [hp.build_tools(s), hp.exporter_build(s)],
    fix=lambda r, f: section_fix(r, "B-8", "dcgm", lambda step: step.guide == "7-3")))

register(Diagnostic(
    "B-9", "dcgm-exporter /metrics empty", "`curl localhost:9400/metrics` gives an empty answer.",
    "Right after the start the first collection has not finished yet.",
    "GETs :9400/metrics on the host and looks for the six DCGM_FI_* series of the counters file; how long ago "
    "the exporter started (under 30 s: the first collection); whether the counters file lists the six.",
    "Waits (the dcgm section's /metrics wait, with progress) until the series are there; rewrites the counters "
    "file first when it lacks them; restarts the exporter when it stays empty.",
    detect_b9, probes=_metrics_probes, fix=fix_b9))

register(Diagnostic(
    "B-17", "Promtail cannot reach Loki", "Promtail logs `context deadline exceeded` over and over.",
    "The Loki server's security group (AWS) does not allow the GCP VM's external IP.",
    "Asks Loki's /ready from the host at the URL of the shipper's own configuration; counts push errors in the "
    "shipper's journal of the last 10 minutes.",
    "Manual (another party's firewall): prints the VM's external IP (from the Compute API, else the address "
    "this run used) and the port to allow inbound in the Loki side's security group.",
    detect_b17, probes=_loki_probes, fix=fix_b17))

register(Diagnostic(
    "B-19", "Journal logs mixed in Loki", "In Loki, ai-server and vllm logs are mixed together.",
    "A promtail journal job without a `matches` filter collects every systemd unit's log.",
    "Reads the shipper's configuration on the host (/etc/promtail/config.yml, or Alloy's): every journal job "
    "must have its own `matches: _SYSTEMD_UNIT=<unit>.service`.",
    "Rewrites the configuration from the promtail section (one filtered job per unit) and restarts the shipper.",
    detect_b19, probes=lambda s: [hp.shipper_config(s)], fix=fix_promtail))
