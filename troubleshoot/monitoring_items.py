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
from runbook.engine.steps import Command, Step, q
from runbook.facts import Fact
from runbook.facts import host as hp
from runbook.facts.apt import Apt, dcgm_apt, usable
from runbook.facts.journal import Line, journal, search
from runbook.facts.shipper import ALLOY_CONFIG, PROMTAIL_CONFIG, ShipperConfig, judge_jobs, shipper_config
from runbook.facts.unit import unit
from runbook.sections import dcgm
from runbook.sections.metrics_wait import MetricsWait
from runbook.verify.rows import PUSH_ERRORS, PUSH_WINDOW_S, dcgm_probe, shipper_unit

from .context import Evidence, Repair
from .fixes import manual, section_fix
from .model import Diagnostic, Finding, Outcome, found, ok, unknown
from .model import Diagnostic as _Diagnostic

ITEMS: list[_Diagnostic] = []
register = ITEMS.append  # this module's items, in order; troubleshoot.registry collects them

EXPORTER = dcgm.UNIT
FIRST_COLLECTION_S = 30  # dcgm-exporter's first collection takes ~10 s (B-9); after this long it is not that


def _everything(step: Step) -> bool:
    return True


def _quote(line: Line | None) -> str:
    return f"journal: {line.message.strip()[:300]}" if line else ""


def _majors(text: str) -> list[str]:
    return sorted(set(re.findall(r"libdcgm\.so\.(\d+)", text)), key=int)


# -- B-6 DCGM package not found -----------------------------------------------------------------

def _apt(ev: Evidence) -> Apt:
    return ev.get(dcgm_apt(ev.settings.monitoring.dcgm))


def _wanted(ev: Evidence, facts: Apt) -> tuple[str, ...]:
    """The DCGM packages step 7-2 installs on this host: the installed major's, else the one it would pick."""
    try:
        return dcgm.dcgm_packages(ev.settings.monitoring.dcgm).choose(facts)[1]
    except ValueError:  # a newer major is installed than monitoring.dcgm.major asks for: the installed one's
        d = ev.settings.monitoring.dcgm
        return (d.package_4,) if (facts.dcgm_major or 0) >= 4 else (d.package,)


def detect_b6(ev: Evidence) -> Finding:
    facts = _apt(ev)
    wanted = _wanted(ev, facts)
    package = " and ".join(wanted)
    installed = [f"{k} {v}" for k, v in facts.installed.items()]
    have = f"installed: {', '.join(installed)}" if installed else ""
    repo = (f"cuda-keyring: {facts.keyring or 'not installed'}; CUDA apt sources: "
            f"{' '.join(facts.sources) or 'none'}")
    if facts.errors:
        conflict = any("Conflicting values" in e or "configured multiple times" in e for e in facts.errors)
        why = ("the CUDA repository is configured twice with different options, so apt refuses its sources"
               if conflict else "apt cannot read its sources")
        return found(f"apt fails before it can install {package}: {why}", *(f"apt: {e}" for e in facts.errors),
                     repo, have, kind="sources",
                     errors=list(facts.errors))
    if installed and all(p in facts.installed for p in wanted[:1]):
        return ok(f"DCGM is installed: {', '.join(installed)}")
    major = "4" if wanted[0] == ev.settings.monitoring.dcgm.package_4 else "3"
    candidate = facts.candidates.get(major, "")
    if usable(candidate):
        return ok(f"{package} is not installed yet; apt can install {candidate} (run: inv dcgm)", repo)
    if facts.sources:
        why = "a CUDA source is configured, but apt's package lists do not have it (apt-get update not run?)"
    else:
        why = "the CUDA apt repository is not registered (guide 7-1)"
    return found(f"apt does not know {package} (`apt-get install` says 'Unable to locate package'): {why}", repo,
                 have, kind="missing")


def fix_b6(r: Repair, finding: Finding) -> Outcome:
    extra = []
    uris = sorted({m.group(1) for e in finding.data.get("errors", [])
                   if (m := re.search(r"regarding source (\S+)", e))})
    if finding.data.get("kind") == "sources" and uris:
        # The source files that name the repository apt complains about, except the one its keyring package
        # (or the runbook) installed: moved aside to a dated backup, their content shown, never deleted.
        grep = " ".join(f"-e {q(u.rstrip('/'))}" for u in uris)
        extra.append(Command(
            guide="7-1", title=f"duplicate source(s) of {', '.join(uris)} moved aside",
            # apt's own complaints, read from its output: apt-cache exits non-zero when its sources are broken, so
            # the status of a pipeline (under pipefail, as every script runs) would say the opposite.
            check=f"[ -z \"$(apt-cache policy {q(r.settings.monitoring.dcgm.package)} 2>&1 | grep '^E: ')\" ]",
            run=("set -e; stamp=$(date -u +%Y%m%d-%H%M%S)\n"
                 f"for f in $(grep -lsF {grep} /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources); do\n"
                 f"  [ \"$f\" = {q(dcgm.CUDA_LIST)} ] && continue\n"
                 "  dpkg -S \"$f\" >/dev/null 2>&1 && continue  # installed by a package (cuda-keyring): kept\n"
                 "  echo \"--- $f (moved to $f.l4rb-aside-$stamp)\"; sed 's/^/-/' \"$f\"\n"
                 "  mv -f \"$f\" \"$f.l4rb-aside-$stamp\"\n"
                 # An unrelated repository that does not answer must not stop the fix: the re-check below decides.
                 "done\napt-get update -q || true\n"
                 # Checked again the way it was found: apt reading its sources must not complain any more.
                 f"e=$(apt-cache policy {q(r.settings.monitoring.dcgm.package)} 2>&1 | grep -E '^E: ' || true)\n"
                 "if [ -n \"$e\" ]; then\n"
                 "  echo \"apt still refuses its sources: $e\" >&2; exit 1\nfi")))
    return _dcgm_section_fix(r, "B-6", extra)


def _wait_after_dcgm(step: Step) -> Step:
    """Restarting nvidia-dcgm restarts dcgm-exporter too (Requires=): then the /metrics wait must look again."""
    if isinstance(step, MetricsWait) and dcgm.DCGM_UNIT not in step.refresh_on:
        return dataclasses.replace(step, refresh_on=(*step.refresh_on, dcgm.DCGM_UNIT))
    return step


def _dcgm_section_fix(r: Repair, item: str, extra: list[Step] | None = None) -> Outcome:
    """The whole dcgm section: its step 7-2 keeps the installed DCGM major (DcgmPackages, never a downgrade)."""
    return section_fix(r, item, "dcgm", _everything, adjust=_wait_after_dcgm, extra=extra)


def fix_dcgm(item: str):
    def fix(r: Repair, finding: Finding) -> Outcome:
        return _dcgm_section_fix(r, item)

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
    packages = _apt(ev)
    major = packages.dcgm_major
    dcgm_installed = ", ".join(f"{k} {v}" for k, v in packages.installed.items()) or "no DCGM package"
    if not wants and not line:
        return unknown("cannot tell which libdcgm.so the dcgm-exporter binary loads", built, f"the host has {have}")
    if line or not set(wants) & set(libs):
        need = ", ".join(f"libdcgm.so.{w}" for w in wants) or "another libdcgm"
        tag = ev.settings.monitoring.dcgm.exporter_tags.get(str(major)) if major else None
        return found(f"dcgm-exporter needs {need}; the host has {have}", _quote(line), built,
                     f"installed: {dcgm_installed}" + (f" (DCGM {major}: the fix builds exporter tag {tag} and "
                                                      "keeps DCGM {major})".replace("{major}", str(major))
                                                      if major and tag else ""), major=major)
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
        return _dcgm_section_fix(r, "B-9")
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
    answers = ev.get(_loki(ev.settings))
    config: ShipperConfig = ev.get(shipper_config(ev.settings.monitoring.promtail.log_shipper))
    pushed_to = config.push_url.removesuffix("/loki/api/v1/push") if config.push_url else ""
    url = pushed_to or loki_fallback(ev.settings)
    if not url:
        return unknown(f"no Loki URL in the {name} configuration nor in monitoring.promtail.loki_url")
    code, error = answers.get(url, ("000", "not asked"))
    now = float(state.get("NOW") or 0) or ev.now()
    errors = [line for line in ev.journal(name).since(now - PUSH_WINDOW_S) if re.search(PUSH_ERRORS, line.message)]
    pushed = (f"{name}: {len(errors)} push error(s) in the last {PUSH_WINDOW_S // 60} min"
              + (f", last: {errors[-1].message.strip()[:200]}" if errors else ""))
    port = re.search(r":(\d+)", url.split("//", 1)[-1])
    if code.isdigit() and code != "000":
        note = "; they should stop now" if errors else ""
        return ok(f"Loki at {url} answers HTTP {code} from the host", pushed + note)
    return found(f"Loki at {url} does not answer from this host, so {name} cannot push its logs",
                 f"curl {url}/ready from the host: {error or 'no answer'}", pushed,
                 f"push URL from {config.path}" if pushed_to else "push URL from hosts.toml",
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
    config: ShipperConfig = ev.get(shipper_config(ev.settings.monitoring.promtail.log_shipper))
    if not config.exists:
        return unknown(f"{config.path} does not exist (run: inv promtail)")
    if config.error:
        return found(f"{config.path} is {config.error}: the shipper refuses it", kind="config")
    shown = [f"job {job.name}: matches {job.match.text or '(none)'}" for job in config.jobs]
    if not config.jobs:
        return ok(f"{config.path} has no journal jobs (nothing to mix)", *shown)
    problems = judge_jobs(config, list(ev.settings.monitoring.promtail.journal_units))
    if problems:
        return found(f"{config.path}: {problems[0]}, so Loki gets the wrong lines (or none) for ai-server and vllm",
                     *problems[1:], *shown)
    return ok(f"every journal job in {config.path} reads one unit", *shown)


def fix_promtail(r: Repair, finding: Finding) -> Outcome:
    return section_fix(r, "B-19", "promtail", _everything)


def _dcgm_probes(s: Settings) -> list[Fact]:
    return [dcgm_apt(s.monitoring.dcgm)]


def _exporter_probes(s: Settings) -> list[Fact]:
    return [hp.exporter_build(s), dcgm_apt(s.monitoring.dcgm), unit(EXPORTER), journal(EXPORTER, 100),
            dcgm_probe(s)]


def _metrics_probes(s: Settings) -> list[Fact]:
    return [unit(EXPORTER), journal(EXPORTER, 100), dcgm_probe(s), hp.counters(s)]


def _loki(s: Settings) -> Fact:
    path = PROMTAIL_CONFIG if s.monitoring.promtail.log_shipper == "promtail" else ALLOY_CONFIG
    return hp.loki(path, loki_fallback(s))


def _loki_probes(s: Settings) -> list[Fact]:
    name = shipper_unit(s)
    return [unit(name), journal(name, 300), _loki(s), shipper_config(s.monitoring.promtail.log_shipper)]


register(Diagnostic(
    "B-6", "DCGM package not found", "`sudo apt-get install -y datacenter-gpu-manager` -> `Unable to locate package`.",
    "The ubuntu-accelerator image has no NVIDIA CUDA apt repository registered.",
    "dpkg status of the DCGM packages; apt's candidates for the packages step 7-2 installs on this host (the "
    "installed major's: datacenter-gpu-manager-4-core on DCGM 4, datacenter-gpu-manager on DCGM 3; without DCGM "
    "the major 7-2 would pick); apt's own errors while it reads its sources (a duplicate CUDA source with another "
    "Signed-By), cuda-keyring's status and the CUDA sources under /etc/apt.",
    "Moves a duplicate CUDA source aside (dated backup, with a diff) when apt refuses its sources; runs the dcgm "
    "section: registers the CUDA repository (7-1, cuda-keyring), updates apt's lists, installs DCGM of the major "
    "the host has (never a downgrade) and starts nvidia-dcgm, then the exporter steps.",
    detect_b6, probes=_dcgm_probes, fix=fix_b6))

register(Diagnostic(
    "B-7", "dcgm-exporter: libdcgm.so.4 not found",
    "dcgm-exporter fails at start: `the libdcgm.so.4 library was not found`.",
    "DCGM 3.x is installed (libdcgm.so.3); dcgm-exporter's main branch (4.x) needs libdcgm.so.4.",
    "The libdcgm.so.N names inside the exporter binary against those `ldconfig -p` lists; the build stamp "
    "(tag, digest); the error in the exporter's journal while /metrics does not answer.",
    "Runs the dcgm section with the DCGM package of the installed major (DCGM 4 stays 4: "
    "datacenter-gpu-manager-4-core, never a downgrade to 3); its build step picks the dcgm-exporter tag for that "
    "major (3 -> 3.3.9-3.6.1, 4 -> the 4.x tag) and rebuilds a binary that is not its own.",
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
    "Asks Loki's /ready from the host at the push URL of the shipper's own configuration (read with a YAML "
    "parser); counts push errors in the "
    "shipper's journal of the last 10 minutes.",
    "Manual (another party's firewall): prints the VM's external IP (from the Compute API, else the address "
    "this run used) and the port to allow inbound in the Loki side's security group.",
    detect_b17, probes=_loki_probes, fix=fix_b17))

register(Diagnostic(
    "B-19", "Journal logs mixed in Loki", "In Loki, ai-server and vllm logs are mixed together.",
    "A promtail journal job without a `matches` filter collects every systemd unit's log.",
    "Reads the shipper's configuration with a YAML parser (Alloy's by its journal blocks) and each `matches` with "
    "the journal's semantics (whitespace-separated FIELD=VALUE terms; the same field twice is an OR; a value must "
    "be the full unit name): every unit needs a job of its own, `matches: _SYSTEMD_UNIT=<unit>.service`.",
    "Rewrites the configuration from the promtail section (one filtered job per unit) and restarts the shipper.",
    detect_b19, probes=lambda s: [shipper_config(s.monitoring.promtail.log_shipper)], fix=fix_promtail))
