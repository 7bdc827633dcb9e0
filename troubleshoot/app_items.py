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
from runbook.engine.steps import AptPackages, Command, Directory, PythonPackages, Service, Step, q
from runbook.engine.wait import HttpWait
from runbook.facts import Fact
from runbook.facts import host as hp
from runbook.facts.env import DotEnv, EnvView, Secret, dotenv_file, unit_env_files
from runbook.facts.http import http
from runbook.facts.journal import Line, journal, search
from runbook.facts.python import imports
from runbook.facts.unit import unit
from runbook.sections import ai_server
from runbook.sections import vllm as vllm_section

from .context import Evidence, Repair
from .fixes import apply_steps, manual, merge, secrets_missing, section_fix, section_steps
from .model import Diagnostic, Finding, Outcome, found, ok, unknown
from .model import Diagnostic as _Diagnostic

ITEMS: list[_Diagnostic] = []
register = ITEMS.append  # this module's items, in order; troubleshoot.registry collects them

APP = ai_server.UNIT
MODULE_RE = r"ModuleNotFoundError: No module named '([^']+)'"
HTTPX_RE = r"(Invalid|Illegal) header value b'Bearer\s*'"
READY_RE = r"Application startup complete"
GUIDE_MODULES = ("prometheus_fastapi_instrumentator", "pythonjsonlogger")
MODULES = {  # module -> the package that provides it (guide B-14's two, and the app's own basics)
    "prometheus_fastapi_instrumentator": "prometheus-fastapi-instrumentator",
    "pythonjsonlogger": "python-json-logger",
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "httpx": "httpx",
    "dotenv": "python-dotenv",
}


def app_health(s: Settings) -> Fact:
    return http(f"http://127.0.0.1:{s.ai_server.port}{s.ai_server.health_path}")


def app_user(s: Settings) -> str:
    """The app's service user as hosts.toml sets it ("" when it is the login user, which facts need not know)."""
    return s.ai_server.user


def app_probes(s: Settings) -> list[Fact]:
    return [unit(APP), journal(APP, 300), app_health(s)]


def app_imports(s: Settings) -> Fact:
    """The modules, imported by the app's own venv python (a package is there when it imports)."""
    return imports(f"{s.ai_server.dir}/.venv/bin/python", MODULES)


def app_dotenv(s: Settings) -> Fact:
    return dotenv_file(f"{s.ai_server.dir}/.env")


def app_key(ev: Evidence) -> tuple[object, str]:
    """VLLM_API_KEY as the app reads it: load_dotenv never overrides a variable the service already has,
    so the unit's own environment wins over .env (python-dotenv's documented default, override=False)."""
    from_unit = ev.env(APP).get("VLLM_API_KEY")
    if from_unit is not None:
        return from_unit, f"{APP} environment"
    env: DotEnv = ev.get(app_dotenv(ev.settings))
    return env.view.get("VLLM_API_KEY"), env.path


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
    found_imports = ev.get(app_imports(ev.settings))
    venv = f"{ev.settings.ai_server.dir}/.venv"
    if not found_imports.exists:
        return unknown(f"{venv} does not exist (run: inv ai-server)")
    broken = {m: r for m, r in found_imports.results.items() if r != "ok"}
    serving = ev.http(app_health(ev.settings)).ok
    line = None if serving else search(ev.journal(APP).since_ready(READY_RE), MODULE_RE)
    if line:
        name = re.search(MODULE_RE, line.message).group(1).split(".")[0]
        broken.setdefault(name, "named by the journal")
    if not broken:
        return ok(f"{venv} imports {', '.join(GUIDE_MODULES)} and the app's other imports")
    packages = [MODULES.get(m, m) for m in broken]
    return found(f"modules that do not import in {venv}: {', '.join(broken)}",
                 *(f"{venv}/bin/python -c 'import {m}': {r}" for m, r in broken.items()), _quote(line),
                 f"to (re)install: {' '.join(packages)}", packages=packages)


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
    if deps is not None:
        # pip's metadata may still list a package whose files are gone: reinstall what does not import.
        venv_python = f"{a.dir}/.venv/bin/python"
        names = " ".join(q(p) for p in packages)
        probe = "; ".join(f"import {m}" for m in _modules(packages))
        more.append(Command(guide="4-2", title=f"reinstall {', '.join(packages)} (they do not import)",
                            check=f"cd / && {q(venv_python)} -c {q(probe)}",
                            run=f"{deps.install} --reinstall {names}", notify=(APP,)))
    out = section_fix(r, "B-14", "ai-server", pick, extra=more)
    if extra:
        out.manual.append(f"{', '.join(extra)} are not in ai_server.packages: add them there, or the next app "
                          "deployment may miss them again")
    return out


def _modules(packages: list[str]) -> list[str]:
    by_package = {v: k for k, v in MODULES.items()}
    return [by_package.get(p, p.replace("-", "_")) for p in packages]


# -- B-15 empty VLLM_API_KEY --------------------------------------------------------------------

def _state(value: object) -> str:
    if value is None:
        return "absent"
    if isinstance(value, Secret):
        return "empty" if value.empty else "set"
    return "set" if value else "empty"


def detect_b15(ev: Evidence) -> Finding:
    env: DotEnv = ev.get(app_dotenv(ev.settings))
    if not env.exists:
        return unknown(f"{env.path} does not exist (run: inv ai-server)")
    app_value, app_from = app_key(ev)
    served_view: EnvView = ev.env(vllm_section.UNIT)
    served_value = served_view.get("VLLM_API_KEY")
    app, served = _state(app_value), _state(served_value)
    vllm_installed = ev.unit(vllm_section.UNIT).installed
    problems = []
    if app in ("empty", "absent"):
        problems.append(f"{app_from} (read with python-dotenv, as the app does): VLLM_API_KEY is {app}: every vLLM "
                        "call sends 'Authorization: Bearer ' and httpx refuses it")
    if vllm_installed and served in ("empty", "absent"):
        problems.append(f"{vllm_section.UNIT} (as systemd loads vllm.env): VLLM_API_KEY is {served}: vLLM runs "
                        "without the key")
    if (app == "set" and served == "set" and isinstance(app_value, Secret) and isinstance(served_value, Secret)
            and app_value.digest != served_value.digest):
        problems.append(f"VLLM_API_KEY differs between {app_from} (the app's) and {vllm_section.UNIT}'s environment "
                        "(the one vLLM enforces): vLLM answers the app with 401")
    if served_view.error:
        problems.append(f"systemd cannot load {vllm_section.UNIT}'s environment files: {served_view.error}")
    line = search(_current(ev), HTTPX_RE)
    if problems or line:
        return found(problems[0] if problems else "the app's calls to vLLM fail in httpx with an empty bearer token",
                     *problems[1:], _quote(line), vllm=served if vllm_installed else "missing")
    return ok(f"{app_from} and vLLM's environment hold the same non-empty VLLM_API_KEY" if served == "set"
              else f"{app_from} holds a non-empty VLLM_API_KEY")


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
    target = facts.get(f"target:{d}", "")
    if kind == "symbolic link" and target == "directory":
        kind = "directory"  # a link to a directory is a directory to the app (it opens files through it)
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
    "Asks the app venv's own python whether each module is importable: found by the import system, and every file "
    "its installer recorded still on disk (a half-removed package whose dist-info is left fails, as its import "
    "does); ModuleNotFoundError in the journal of the app's last starts while /health does not answer.",
    "Installs the missing packages into the venv with the ai-server section's package step, reinstalls those "
    "whose files are gone, and restarts the app; "
    "with `install = \"sync\"`, says to add them to pyproject's [project.dependencies].",
    detect_b14, probes=lambda s: [*app_probes(s), app_imports(s)], fix=fix_b14))

register(Diagnostic(
    "B-15", "Empty VLLM_API_KEY breaks httpx",
    "Calling vLLM from FastAPI fails with `httpx.InvalidHeaderValue: Invalid header value b'Bearer '`.",
    "`VLLM_API_KEY=` (empty) in .env sends `Authorization: Bearer ` with an empty token, which httpx refuses.",
    "VLLM_API_KEY as each side reads it: the app's .env parsed by python-dotenv (`export KEY=...` included; the "
    "unit's own environment wins, as load_dotenv does not override), vLLM's as systemd loads vllm.env into "
    "vllm.service; set, empty or absent, and whether both are the same (compared as digests, never shown); "
    "httpx's header error in the app's current journal.",
    "With the runbook's secrets loaded: rewrites vllm.env and .env with the same key and restarts both; without "
    "them: says to set VLLM_API_KEY (a dummy value is fine, never empty) and run `inv vllm` and `inv ai-server`.",
    detect_b15, probes=lambda s: [*app_probes(s), app_dotenv(s), unit(vllm_section.UNIT),
                                  unit_env_files(vllm_section.UNIT), unit_env_files(APP)], fix=fix_b15))

register(Diagnostic(
    "B-18", "Log directory not created", "Nothing is written to `/var/log/dojangkok/production/*.log`.",
    "The log directory was not created beforehand, so the app cannot create its log file.",
    "The directory's type, owner and mode, and whether the ai-server service user can write to it; the app's "
    "'cannot open log file' error in its current journal (the app then needs a restart even once the directory "
    "exists).",
    "Creates the directories with the ai-server section's steps (owned by the service user) and restarts the app.",
    detect_b18, probes=lambda s: [*app_probes(s), hp.log_dir(s)], fix=fix_b18))
