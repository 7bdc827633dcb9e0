"""Items outside appendix B that every broken host shows first: a service that does not run (S-1), a
vllm.env value that vLLM's argument parser refuses (S-2), and what the app needs to run (S-3: the
verify rows for its .env, its port and resources/s3, read from the same facts).

S-1 reads each managed unit as systemd reports it (state, restarts, last exit status), quotes the last
error lines of its journal and names the appendix-B item whose text they match; when such an item
covers the crash, S-1 leaves the finding to it (one cause, one item). S-2 reads vllm.env as systemd
loads it and checks every ``${VARIABLE}`` of the effective ExecStart against the type vLLM's parser
gives that option, so a trailing ``# note`` or an empty value is caught before (and while) it crashes.
"""

from __future__ import annotations

import re

from runbook.config import Settings
from runbook.facts import Fact
from runbook.facts.env import Secret, unit_env_files
from runbook.facts.journal import Line, journal, search
from runbook.facts.unit import unit
from runbook.sections import ai_server, dcgm
from runbook.sections import vllm as vllm_section
from runbook.verify import rows
from runbook.verify.rows import shipper_unit

from . import app_items, vllm_items
from .context import Evidence, Repair
from .fixes import by_guide, manual, merge, section_fix
from .model import Diagnostic, Finding, Outcome, found, ok, unknown
from .model import Diagnostic as _Diagnostic

ITEMS: list[_Diagnostic] = []
register = ITEMS.append  # this module's items, in order; troubleshoot.registry collects them

VLLM = vllm_section.UNIT
APP = ai_server.UNIT
# argparse's refusal of an option's value (vLLM 0.15: "invalid ... value" or "Value X cannot be converted to ...").
ARG_ERROR_RE = r"error: argument (--[a-z-]+): [^\n]*"

# Journal texts and the item that owns them (the same patterns those items detect with).
EXPLAINED = (
    (vllm_items.LIBCUDA_RE, "B-2"), (vllm_items.LORA_RE, "B-3"), (vllm_items.OOM_RE, "B-4"),
    (vllm_items.SM_RE, "B-10"), (vllm_items.ROPE_RE, "B-11"), (app_items.MODULE_RE, "B-14"),
    (app_items.HTTPX_RE, "B-15"), (r"cannot open log file", "B-18"),
    (r"libdcgm\.so\.\d+ library was not found", "B-7"), (ARG_ERROR_RE, "S-2"),
    (r"(?i)address already in use|Permission denied: '[^']*\.env'", "S-3"),
)


def units(s: Settings) -> list[str]:
    return [VLLM, APP, dcgm.UNIT, shipper_unit(s)]


def probes(s: Settings) -> list[Fact]:
    return [*(f for u in units(s) for f in (unit(u), journal(u, 200))), vllm_items.health(s),
            app_items.app_health(s), unit_env_files(VLLM)]


def _serving(ev: Evidence, name: str) -> bool | None:
    if name == VLLM:
        return ev.http(vllm_items.health(ev.settings)).ok
    if name == APP:
        return ev.http(app_items.app_health(ev.settings)).ok
    return None


def _trouble(ev: Evidence, name: str) -> tuple[str, list[Line]] | None:
    """Why *name* is not running, and its last error lines; None when it runs (or is not installed)."""
    u = ev.unit(name)
    if not u.installed:
        return None
    errors = ev.journal(name).last_errors(3)
    serving = _serving(ev, name)
    if u.get("SubState") == "auto-restart" or u.get("ActiveState") == "failed":
        why = f"crash-looping: {u.state}, {u.restarts} restart(s), last exit status {u.get('ExecMainStatus') or '?'}"
    elif u.get("ActiveState") == "inactive":
        why = f"stopped: {u.state} (enabled: {u.get('UnitFileState') or '?'})"
    elif u.restarts and serving is False and errors and (u.age() or 0) < 120:
        why = (f"restarting after crashes: {u.state}, {u.restarts} restart(s), last exit status "
               f"{u.get('ExecMainStatus') or '?'}")
    else:
        return None
    return why, errors


def _owner(lines: list[Line]) -> tuple[str, Line] | None:
    for pattern, item in EXPLAINED:
        if (line := search(lines, pattern)) is not None:
            return item, line
    return None


def detect_s1(ev: Evidence) -> Finding:
    installed = [u for u in units(ev.settings) if ev.unit(u).installed]
    if not installed:
        return unknown("none of the services is installed (run: fab deploy)")
    problems, covered, data = [], [], {}
    for name in installed:
        trouble = _trouble(ev, name)
        if trouble is None:
            continue
        why, errors = trouble
        owner = _owner(ev.journal(name).last_crash())
        source = ev.unit(name).exec_source()
        # A clean stop is a stop: crash lines of earlier starts in the journal do not explain it.
        if owner and not why.startswith("stopped"):
            covered.append(f"{name} is {why}; {owner[0]} covers it (journal: {owner[1].message.strip()[:160]})")
            continue
        problems.append(f"{name} is {why}")
        problems += [f"{name} journal: {line.message.strip()[:240]}" for line in errors]
        if source:
            problems.append(f"{name} ExecStart set in {source}")
        data.setdefault("units", []).append(name)
    if problems:
        return found(problems[0], *problems[1:], *covered, **data)
    if covered:
        return ok("every service that does not run is covered by its own item", *covered)
    return ok(f"{', '.join(installed)} run")


def fix_s1(r: Repair, finding: Finding) -> Outcome:
    outcomes = []
    for name in finding.data.get("units", []):
        if name == VLLM:
            outcomes.append(section_fix(r, "S-1", "vllm", vllm_items.VLLM_FIX))
        elif name == APP:
            outcomes.append(section_fix(r, "S-1", "ai-server", by_guide("4-3", "4-4", "4-5", "4-6")))
        else:
            outcomes.append(manual(f"{name}: see its journal (journalctl -u {name} -n 50), then run the section that "
                                   "installs it (inv dcgm / inv promtail)"))
    if not outcomes:
        return manual("nothing to restart")
    return merge(*outcomes)


# -- S-2 vllm.env values vLLM refuses ---------------------------------------------------------------

def _human_int(value: str) -> bool:
    """vLLM's --max-model-len accepts an integer with an optional k/m/g suffix (e.g. 32k)."""
    return bool(re.fullmatch(r"\d+(\.\d+)?[kKmMgG]?|-1", value))


def _float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


# The option each variable feeds, and whether vLLM's parser accepts a value for it.
TYPES = {
    "--port": ("an integer", lambda v: v.isdigit()),
    "--max-model-len": ("an integer (or 32k)", _human_int),
    "--gpu-memory-utilization": ("a number", _float),
    "--max-lora-rank": ("an integer", lambda v: v.isdigit()),
    "--dtype": ("one of auto, half, float16, bfloat16, float, float32",
                lambda v: v in ("auto", "half", "float16", "bfloat16", "float", "float32")),
    "--host": ("a host name or address", lambda v: bool(v) and " " not in v),
}


def detect_s2(ev: Evidence) -> Finding:
    u = ev.unit(VLLM)
    if not u.installed:
        return unknown(f"{VLLM} is not installed (run: inv vllm)")
    env = ev.env(VLLM)
    if env.error:
        return found(f"systemd cannot load {VLLM}'s environment files: {env.error}", *env.files, kind="load")
    argv = list(u.argv)
    problems, checked = [], []
    for index, word in enumerate(argv[:-1]):
        option, nxt = word, argv[index + 1]
        match = re.fullmatch(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", nxt)
        if option not in TYPES or not match:
            continue
        variable = match.group(1)
        value = env.get(variable)
        what, accepts = TYPES[option]
        where = env.where(variable)
        at = f" (set in {where})" if where else ""
        if value is None:
            problems.append(f"{option} ${{{variable}}}: {variable} is not set in {VLLM}'s environment, so vLLM gets an "
                            "empty argument")
        elif isinstance(value, Secret) or not accepts(value):
            problems.append(f"{option} ${{{variable}}}: systemd passes {str(value)!r}{at}, not {what}: vLLM exits "
                            f"with 'argument {option}: invalid ... value'")
        else:
            checked.append(f"{variable}={value}")
    line = search(ev.journal(VLLM).last_crash(), ARG_ERROR_RE)
    if problems:
        return found(problems[0], *problems[1:],
                     f"journal: {line.message.strip()[:240]}" if line and not vllm_items._serving(ev) else "",
                     "systemd keeps everything after '=' on the line (a '# note' too): comments must be lines "
                     "of their own", kind="value")
    return ok(f"every ${{VARIABLE}} of vLLM's ExecStart holds a value vLLM accepts ({', '.join(checked)})")


def fix_s2(r: Repair, finding: Finding) -> Outcome:
    return section_fix(r, "S-2", "vllm", vllm_items.VLLM_FIX)


# -- S-3 what the app needs to run ------------------------------------------------------------------

NEEDS = ("app-env", "app-port", "vllm-port", "app-resources")


def _needs(s: Settings) -> list[Fact]:
    return [f for row in rows.ROWS if row.key in NEEDS for f in row.probes(s)]


def detect_s3(ev: Evidence) -> Finding:
    """The verify rows of what the app needs, as one detection over the same facts."""
    if not ev.unit(APP).installed:
        return unknown(f"{APP} is not installed (run: inv ai-server)")
    facts = rows.Facts(ev.settings, ev.facts, None)
    # A port nobody holds is a service that does not run: S-1's finding, not this one's.
    results = [(row, status if not detail.startswith("nothing listens") else rows.OK, detail)
               for row in rows.ROWS if row.key in NEEDS for status, detail in [row.judge(facts)]]
    bad = [f"{row.title}: {detail}" for row, status, detail in results if status != rows.OK]
    good = [f"{row.title}: {detail}" for row, status, detail in results if status == rows.OK]
    if bad:
        kinds = [row.key for row, status, _ in results if status != rows.OK]
        return found(bad[0], *bad[1:], kinds=kinds)
    return ok("the app can read its .env, holds its port, and has resources/s3", *good)


def fix_s3(r: Repair, finding: Finding) -> Outcome:
    kinds = finding.data.get("kinds", [])
    steps = []
    if {"app-env", "app-resources"} & set(kinds):
        steps.append(section_fix(r, "S-3", "ai-server", by_guide("4-1", "4-3", "4-5", "4-6")))
    for kind in ("app-port", "vllm-port"):
        if kind in kinds:
            steps.append(manual(f"{finding.summary if kinds[0] == kind else 'a port is held by another process'}: "
                                "stop that process (it is not the runbook's to kill), then run: "
                                f"inv {'ai-server' if kind == 'app-port' else 'vllm'}"))
    return merge(*steps) if steps else manual("nothing to do")


register(Diagnostic(
    "S-1", "Service not running or crash-looping",
    "vllm, ai-server, dcgm-exporter or the log shipper is stopped, failed, or restarting over and over.",
    "Anything that makes the process exit: a bad argument, a missing file, a stopped unit.",
    "Each managed unit's state as systemd reports it (ActiveState, SubState, NRestarts, ExecMainStatus) and the "
    "last error lines of its journal; when those lines match an appendix-B item (or S-2), that item reports it "
    "and S-1 names it instead of reporting the same cause twice.",
    "Runs the unit's section from its configuration on (vllm: 3-3 .. 3-7, drop-ins that override it moved "
    "aside; ai-server: 4-3 .. 4-6), which rewrites what differs, starts it and waits for its health check; for "
    "the monitoring units, says which section to run.",
    detect_s1, probes=probes, fix=fix_s1))

register(Diagnostic(
    "S-2", "vllm.env value vLLM refuses",
    "vLLM exits at once with `error: argument --max-model-len: invalid ... value` (or --port, --dtype, ...).",
    "systemd keeps the rest of the line in an EnvironmentFile value (`SERVE_MAX_MODEL_LEN=32768  # note` is "
    "`32768  # note`), or the variable is not set at all.",
    "Loads vllm.service's environment files with systemd itself (a transient unit) and checks each "
    "`${VARIABLE}` of the effective ExecStart against the type vLLM's parser gives that option; names the file "
    "and line that set it.",
    "Rewrites vllm.env from hosts.toml (drop-ins that add another EnvironmentFile moved aside) and restarts vLLM.",
    detect_s2, probes=lambda s: [unit(VLLM), journal(VLLM, 200), unit_env_files(VLLM), vllm_items.health(s)],
    fix=fix_s2))

register(Diagnostic(
    "S-3", "What the app needs: its .env, its port, resources/s3",
    "The app fails on its next start, or another program answers on :8000 / :8001.",
    ".env owned by root or mode 000, another process on the port, resources/s3 deleted.",
    "The verify rows of the same facts: .env as python-dotenv reads it and whether the service's User= can read "
    "it (`runuser -u USER -- test -r`); who listens on 8000 and 8001 (`ss -ltnpH` and the holder's systemd unit "
    "from its cgroup); resources/s3 is a directory the app can write to.",
    "Rewrites .env (owner and mode) and creates resources/s3 with the ai-server section's steps and restarts "
    "the app; a port held by another program is named, not killed.",
    detect_s3, probes=lambda s: [unit(APP), *_needs(s)], fix=fix_s3))
