"""Appendix B items about the Python side and the FastAPI app: B-13, B-14, B-15, B-18.

The app's failures show in two places: the state of the files it depends on (venv modules, .env,
the log directory) and its own journal (ModuleNotFoundError, httpx's header error, "cannot open
log file"). Both are evidence; only the current start of the app counts for its journal, so an
error that a restart already cured is not reported again.
"""

from __future__ import annotations

import dataclasses
import re

from runbook.config import Settings
from runbook.engine.steps import AptPackages, Command, Directory, PythonPackages, Service, Step
from runbook.engine.wait import HttpWait
from runbook.sections import ai_server
from runbook.verify.batch import Probe
from runbook.verify.probes import Line, http, journal, search, unit

from . import host_probes as hp
from .context import Evidence, Repair
from .fixes import apply_steps, manual, merge, secrets_missing, section_fix, section_steps
from .model import Diagnostic, Finding, Outcome, found, ok, unknown
from .registry import register

APP = ai_server.UNIT
MODULE_RE = r"ModuleNotFoundError: No module named '([^']+)'"
HTTPX_RE = r"(Invalid|Illegal) header value b'Bearer\s*'"
READY_RE = r"Application startup complete"
GUIDE_MODULES = ("prometheus_fastapi_instrumentator", "pythonjsonlogger")


def app_health(s: Settings) -> Probe:
    return http(f"http://127.0.0.1:{s.ai_server.port}{s.ai_server.health_path}")


def app_probes(s: Settings) -> list[Probe]:
    return [unit(APP), journal(APP, 300), app_health(s)]


def _current(ev: Evidence) -> list[Line]:
    return ev.journal(APP).current(ev.unit(APP).get("InvocationID"))


def _quote(line: Line | None) -> str:
    return f"journal: {line.message.strip()[:300]}" if line else ""


# -- B-13 python3-venv --------------------------------------------------------------------------

def detect_b13(ev: Evidence) -> Finding:
    facts = ev.kv("venv")
    version = facts.get("python", "")
    if not version:
        return unknown("python3 is not installed on the host")
    packages = ", ".join(f"{k[4:]}: {v or 'not-installed'}" for k, v in facts.items() if k.startswith("pkg:"))
    if facts.get("ensurepip") == "ok":
        return ok(f"python3 -m venv works: ensurepip is available (Python {version})", packages)
    return found(f"`python3 -m venv` fails with 'ensurepip is not available': python{version}-venv is not installed",
                 f"import ensurepip: {facts.get('ensurepip')}", packages, version=version)


def fix_b13(r: Repair, finding: Finding) -> Outcome:
    names = ("python3-venv", f"python{finding.data['version']}-venv")
    return apply_steps(r, "python3-venv (fix B-13)", "3-2",
                       [AptPackages(guide="3-2", title=f"{' and '.join(names)} (B-13)", names=names)])


# -- B-14 modules missing from the app's venv ---------------------------------------------------

def detect_b14(ev: Evidence) -> Finding:
    facts = ev.kv("app:modules")
    venv = f"{ev.settings.ai_server.dir}/.venv"
    if facts.get("venv") != "present":
        return unknown(f"{venv} does not exist (run: inv ai-server)")
    missing = [m for m in hp.MODULES if facts.get(m) == "missing"]
    serving = ev.http(app_health(ev.settings)).ok
    line = None if serving else search(ev.journal(APP).since_ready(READY_RE), MODULE_RE)
    if line:
        name = re.search(MODULE_RE, line.message).group(1).split(".")[0]
        missing = list(dict.fromkeys([*missing, name]))
    if not missing:
        return ok(f"{venv} has {', '.join(GUIDE_MODULES)} and the app's other imports")
    packages = [hp.MODULES.get(m, m) for m in missing]
    return found(f"modules missing from {venv}: {', '.join(missing)}", _quote(line),
                 f"to install: {' '.join(packages)}", packages=packages)


def fix_b14(r: Repair, finding: Finding) -> Outcome:
    packages = finding.data["packages"]
    a = r.settings.ai_server
    if a.install == "sync":
        return manual(f"Add {', '.join(packages)} to [project.dependencies] of the app's pyproject.toml (the lasting "
                      "fix of guide B-14; a plain `uv pip install` is undone by the next `uv sync`)",
                      "then run: inv ai-server")
    listed = {PythonPackages._name(p) for p in a.packages}
    extra = [p for p in packages if PythonPackages._name(p) not in listed]

    def pick(step: Step) -> bool:
        return isinstance(step, PythonPackages | Service | HttpWait) and step.guide in ("4-2", "4-5", "4-6")

    if r.loaded.config is None:
        return secrets_missing(r, "B-14", "ai-server")
    deps = next((s for s in section_steps(r, "ai-server") if isinstance(s, PythonPackages)), None)
    more = [dataclasses.replace(deps, title="modules named by B-14", packages=tuple(extra))] if extra and deps else []
    out = section_fix(r, "B-14", "ai-server", pick, extra=more)
    if extra:
        out.manual.append(f"{', '.join(extra)} are not in ai_server.packages: add them there, or the next app "
                          "deployment may miss them again")
    return out


# -- B-15 empty VLLM_API_KEY --------------------------------------------------------------------

def detect_b15(ev: Evidence) -> Finding:
    keys = ev.kv("keys")
    app, served = keys.get("app", ""), keys.get("vllm", "")
    env = f"{ev.settings.ai_server.dir}/.env"
    if app == "missing" or not app:
        return unknown(f"{env} does not exist (run: inv ai-server)")
    problems = []
    if app in ("empty", "absent"):
        problems.append(f"{env}: VLLM_API_KEY is {app}: every vLLM call sends 'Authorization: Bearer ' and httpx "
                        "refuses it")
    if served in ("empty", "absent"):
        problems.append(f"vllm.env: VLLM_API_KEY is {served}: vLLM runs without the key")
    if app == "set" and served == "set" and keys.get("same") == "no":
        problems.append("VLLM_API_KEY differs between .env and vllm.env: vLLM answers the app with 401")
    line = search(_current(ev), HTTPX_RE)
    if problems or line:
        return found(problems[0] if problems else "the app's calls to vLLM fail in httpx with an empty bearer token",
                     *problems[1:], _quote(line), vllm=served)
    return ok(".env and vllm.env hold the same non-empty VLLM_API_KEY" if served == "set"
              else ".env holds a non-empty VLLM_API_KEY")


def fix_b15(r: Repair, finding: Finding) -> Outcome:
    if r.loaded.config is None:
        return manual("Give the runbook a non-empty VLLM_API_KEY (environment, or the secrets file with mode 0600); "
                      "a dummy value is fine, an empty one never is (guide B-15)",
                      f"now: {r.loaded.secrets_error.strip()}",
                      "then run: inv vllm && inv ai-server   (both services get the same key)")
    outcomes = []
    if finding.data.get("vllm") not in ("missing", ""):
        outcomes.append(section_fix(r, "B-15", "vllm", lambda s: s.guide in ("3-3", "3-5", "3-6", "3-7")))
    outcomes.append(section_fix(r, "B-15", "ai-server", lambda s: s.guide in ("4-3", "4-5", "4-6")))
    return merge(*outcomes)


# -- B-18 log directory -------------------------------------------------------------------------

def detect_b18(ev: Evidence) -> Finding:
    if not ev.unit(APP).installed:
        return unknown(f"{APP} is not installed (run: inv ai-server)")
    facts = ev.kv("logdir")
    d = ev.settings.ai_server.log_dir
    parent = d.rsplit("/", 1)[0] or "/"
    user = facts.get("user", "root")
    have = facts.get(f"stat:{d}", "missing")
    line = search(_current(ev), r"cannot open log file|No such file or directory: '" + re.escape(d))
    where = f"{parent}: {facts.get(f'stat:{parent}', 'missing')}"
    if have == "missing":
        return found(f"{d} does not exist: the app cannot create its log file (nor can promtail read it)", where,
                     _quote(line), kind="missing")
    kind, owner, group, mode = (have.split("|") + ["", "", "", ""])[:4]
    if kind != "directory":
        return found(f"{d} is a {kind}, not a directory", _quote(line), kind="notdir")
    if facts.get("writable") != "yes":
        return found(f"{d} is not writable by {user}, the ai-server service user (owner {owner}:{group}, mode {mode})",
                     _quote(line), kind="perm")
    if line:
        return found(f"ai-server started before {d} was usable: it writes no log file until it restarts",
                     _quote(line), kind="stale")
    return ok(f"{d} exists and {user} can write to it ({facts.get('logs', '0')} log file(s))")


def fix_b18(r: Repair, finding: Finding) -> Outcome:
    def pick(step: Step) -> bool:
        return (isinstance(step, Directory) and "(B-18)" in step.title) or step.guide in ("4-5", "4-6")

    def adjust(step: Step) -> Step:
        return dataclasses.replace(step, notify=(APP,)) if isinstance(step, Directory) else step

    extra = []
    if finding.data.get("kind") == "stale":
        extra = [Command(guide="4-5", title=f"restart {APP} (it started before its log directory was usable)",
                         check="false", run=f"systemctl restart {APP}", restarts=(APP,))]
    return section_fix(r, "B-18", "ai-server", pick, adjust, extra)


register(Diagnostic(
    "B-13", "python3-venv not installed", "`python3 -m venv venv` fails with `ensurepip is not available`.",
    "The ubuntu-accelerator image lacks the python3.X-venv package.",
    "`import ensurepip` with the host's python3, and the dpkg status of python3-venv and python3.X-venv.",
    "Installs python3-venv and python3.X-venv with apt (the runbook's package step).",
    detect_b13, probes=lambda s: [hp.venv(s)], fix=fix_b13))

register(Diagnostic(
    "B-14", "Dependencies missing from pyproject.toml",
    "ai-server fails with `ModuleNotFoundError: No module named 'prometheus_fastapi_instrumentator'` / "
    "`'pythonjsonlogger'`.",
    "The app's pyproject.toml lacks them, so `uv sync` does not install them.",
    "Looks the modules up in the app's venv (importlib, nothing imported); ModuleNotFoundError in the journal of "
    "the app's last starts while /health does not answer.",
    "Installs the missing packages into the venv with the ai-server section's package step and restarts the app; "
    "with `install = \"sync\"`, says to add them to pyproject's [project.dependencies].",
    detect_b14, probes=lambda s: [*app_probes(s), hp.app_modules(s)], fix=fix_b14))

register(Diagnostic(
    "B-15", "Empty VLLM_API_KEY breaks httpx",
    "Calling vLLM from FastAPI fails with `httpx.InvalidHeaderValue: Invalid header value b'Bearer '`.",
    "`VLLM_API_KEY=` (empty) in .env sends `Authorization: Bearer ` with an empty token, which httpx refuses.",
    "Whether VLLM_API_KEY is set, empty or absent in .env and vllm.env and whether both are the same (decided on "
    "the host; no value is read out); httpx's header error in the app's current journal.",
    "With the runbook's secrets loaded: rewrites vllm.env and .env with the same key and restarts both; without "
    "them: says to set VLLM_API_KEY (a dummy value is fine, never empty) and run `inv vllm` and `inv ai-server`.",
    detect_b15, probes=lambda s: [*app_probes(s), hp.api_keys(s)], fix=fix_b15))

register(Diagnostic(
    "B-18", "Log directory not created", "Nothing is written to `/var/log/dojangkok/production/*.log`.",
    "The log directory was not created beforehand, so the app cannot create its log file.",
    "The directory's type, owner and mode, and whether the ai-server service user can write to it; the app's "
    "'cannot open log file' error in its current journal (the app then needs a restart even once the directory "
    "exists).",
    "Creates the directories with the ai-server section's steps (owned by the service user) and restarts the app.",
    detect_b18, probes=lambda s: [*app_probes(s), hp.log_dir(s)], fix=fix_b18))
