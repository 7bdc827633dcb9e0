"""The rows of the guide's section 6 checklist: what each reads on the host and how it is judged.

Each row is a read-only step over the fact layer: it names its facts (all rows of a host are read in
one batch, shared with troubleshoot) and a judge that turns them into ok / failed / skipped (the
engine's vocabulary, runbook.engine.status) with one line saying what was seen. Besides the guide's
rows, the checklist covers what the app needs to work: its .env readable by its user, its port held
by itself, resources/s3, and the key vLLM enforces equal to the one the app sends. The external row
is the only one that looks from the controller instead of the host, as the guide's 5-2 does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Settings
from ..engine.status import FAILED, OK, SKIPPED, WARN  # noqa: F401 - WARN: for current_rows
from ..facts import Fact, HostFacts
from ..facts.env import DotEnv, EnvView, Secret, dotenv_file, unit_env_files, unit_environment
from ..facts.files import PathInfo, path_info
from ..facts.http import Http, authed_get, http
from ..facts.journal import Journal, journal, search
from ..facts.listeners import holders, listeners
from ..facts.unit import Unit, unit
from ..sections.ai_server import UNIT as APP_UNIT
from ..sections.dcgm import counter_names
from ..sections.promtail import ALLOY_UNIT, PROMTAIL_UNIT
from ..sections.vllm import UNIT as VLLM_UNIT
from . import gpu
from .reach import Reach

Probe = Fact
FAIL, SKIP = FAILED, SKIPPED  # the older names
# What Promtail (and Alloy) log when a push to Loki fails (guide B-17).
PUSH_ERRORS = r"context deadline exceeded|error sending batch|final error sending batch|failed to send batch"
PUSH_WINDOW_S = 600


@dataclass(frozen=True)
class Facts:
    """What a judge gets: the host's probe answers, the settings, and the controller's view."""

    settings: Settings
    host: HostFacts
    reach: Reach | None  # None: no address to test from outside (--local)

    @property
    def raw(self) -> dict[str, str]:
        return self.host.raw

    def get(self, fact: Fact):
        return self.host.get(fact)

    def http(self, probe: Probe) -> Http:
        return self.host.get(probe)

    def env(self, name: str) -> EnvView:
        return unit_environment(self.get(unit(name)), self.get(unit_env_files(name)))


@dataclass(frozen=True)
class Row:
    key: str
    title: str
    guide: str
    probes: Callable[[Settings], list[Probe]]
    judge: Callable[[Facts], tuple[str, str]]


def shipper_unit(s: Settings) -> str:
    return PROMTAIL_UNIT if s.monitoring.promtail.log_shipper == "promtail" else ALLOY_UNIT


# -- probes -----------------------------------------------------------------------------------------

def _gpu(s: Settings) -> list[Probe]:
    return [Probe("gpu:query", gpu.QUERY), Probe("gpu:xml", gpu.XML)]


def _vllm_health(s: Settings) -> Probe:
    return http(f"http://127.0.0.1:{s.vllm.port}/health")


def models_probe(s: Settings) -> Probe:
    """/v1/models with the key vLLM itself enforces (its unit's environment as systemd loads it)."""
    return authed_get("vllm:models", f"http://127.0.0.1:{s.vllm.port}/v1/models", VLLM_UNIT)


def _app_health(s: Settings) -> Probe:
    return http(f"http://127.0.0.1:{s.ai_server.port}{s.ai_server.health_path}")


def _node(s: Settings) -> Probe:
    return http(f"http://127.0.0.1:{s.monitoring.node_exporter.port}/metrics", grep="^node_[a-zA-Z0-9_]+")


def dcgm_probe(s: Settings) -> Probe:
    return http(f"http://127.0.0.1:{s.monitoring.dcgm.port}/metrics", grep="^DCGM_FI_[A-Z0-9_]+")


# -- judges -----------------------------------------------------------------------------------------

def _judge_gpu(f: Facts) -> tuple[str, str]:
    query, xml = f.raw.get("gpu:query", ""), f.raw.get("gpu:xml", "")
    if not query.strip() and not xml.strip():
        return FAIL, "nvidia-smi gave no answer (no driver, or not installed)"
    verdicts = []
    for name, parser, text in (("query", gpu.parse_query, query), ("xml", gpu.parse_xml, xml)):
        try:
            verdicts.append(gpu.judge(parser(text)))
        except (ValueError, SyntaxError) as err:  # ET.ParseError is a SyntaxError
            verdicts.append((False, f"nvidia-smi {name} output unreadable: {err}"))
    bad = [line for ok, line in verdicts if not ok]
    return (FAIL, bad[0]) if bad else (OK, verdicts[0][1])


def _judge_vllm_health(f: Facts) -> tuple[str, str]:
    h = f.http(_vllm_health(f.settings))
    return (OK if h.ok else FAIL), f"localhost:{f.settings.vllm.port}/health: {h.describe()}"


def expected_models(s: Settings) -> list[str]:
    return [s.vllm.model, *(a.name for a in s.vllm.adapters)]


def _judge_models(f: Facts) -> tuple[str, str]:
    text = f.raw.get("vllm:models", "")
    try:
        listed = [m["id"] for m in json.loads(text)["data"]]
    except (ValueError, KeyError, TypeError):
        return FAIL, f"/v1/models gave no model list: {text[:120]!r}" if text else "/v1/models: no answer"
    want = expected_models(f.settings)
    missing = [m for m in want if m not in listed]
    extra = [m for m in listed if m not in want]
    if missing or extra:
        return FAIL, f"lists {listed}" + (f"; missing {missing}" if missing else "") + (
            f"; not configured {extra}" if extra else "")
    return OK, f"base + {len(want) - 1} adapter(s): {', '.join(listed)}"


def _judge_app(f: Facts) -> tuple[str, str]:
    a = f.settings.ai_server
    h = f.http(_app_health(f.settings))
    return (OK if h.ok else FAIL), f"localhost:{a.port}{a.health_path}: {h.describe()}"


def _judge_external(f: Facts) -> tuple[str, str]:
    if f.reach is None:
        return SKIP, "--local: this run is on the VM; test 8000/8001 from another machine (guide 5-2)"
    s = f.settings
    answers = [f.reach.get(s.ai_server.port, s.ai_server.health_path), f.reach.get(s.vllm.port, "/health")]
    line = "; ".join(a.describe() for a in answers)
    return (OK if all(a.ok for a in answers) else FAIL), f"from this machine: {line}"


def _judge_node(f: Facts) -> tuple[str, str]:
    port = f.settings.monitoring.node_exporter.port
    h = f.http(_node(f.settings))
    series = [s for s in h.body.split() if s]
    if h.ok and series:
        return OK, f":{port}/metrics: {len(series)} node_* series"
    return FAIL, f":{port}/metrics: {h.describe()}" + (", no node_* series" if h.ok else "")


def _judge_dcgm(f: Facts) -> tuple[str, str]:
    port = f.settings.monitoring.dcgm.port
    h = f.http(dcgm_probe(f.settings))
    want = counter_names()
    have = set(h.body.split())
    missing = [n for n in want if n not in have]
    if h.ok and not missing:
        return OK, f":{port}/metrics: all {len(want)} GPU series"
    if not h.ok:
        return FAIL, f":{port}/metrics: {h.describe()}"
    return FAIL, f":{port}/metrics: missing {', '.join(missing)}" + (" (empty body: B-9)" if not h.size else "")


def _shipper_probes(s: Settings) -> list[Probe]:
    return [unit(shipper_unit(s)), journal(shipper_unit(s), 200)]


def _judge_shipper(f: Facts) -> tuple[str, str]:
    name = shipper_unit(f.settings)
    state: Unit = f.get(unit(name))
    if not state.installed:
        return FAIL, f"{name} is not installed"
    if not state.active:
        return FAIL, f"{name} is {state.state}"
    log: Journal = f.get(journal(name, 200))
    now = float(state.get("NOW") or 0)
    recent = [line for line in log.current(state.get("InvocationID")) if line.ts >= now - PUSH_WINDOW_S]
    error = search(recent, PUSH_ERRORS)
    if error:
        count = sum(1 for line in recent if re.search(PUSH_ERRORS, line.message))
        return FAIL, f"{name} active, {count} Loki push error(s) in the last {PUSH_WINDOW_S // 60} min: " \
                     f"{error.message.strip()[:160]} (B-17)"
    return OK, f"{name} active, no Loki push errors"


# -- what the app needs -----------------------------------------------------------------------------

def _app_env(s: Settings) -> Fact:
    return dotenv_file(f"{s.ai_server.dir}/.env")


def _app_env_access(s: Settings) -> Fact:
    return path_info(f"{s.ai_server.dir}/.env", unit=APP_UNIT, access="-r")


def _judge_app_env(f: Facts) -> tuple[str, str]:
    env: DotEnv = f.get(_app_env(f.settings))
    info: PathInfo = f.get(_app_env_access(f.settings))
    if not env.exists:
        return FAILED, f"{env.path} does not exist (inv ai-server writes it)"
    if not info.user_ok:
        return FAILED, f"{info.describe()}: {info.user or 'the service user'} of {APP_UNIT} cannot read it"
    return OK, f"{info.describe()}, readable by {info.user}; {len(env.view.values)} variables (python-dotenv)"


def _port_row(port_of, unit_name: str):
    def judge(f: Facts) -> tuple[str, str]:
        port = port_of(f.settings)
        held = holders(f.get(listeners()), port)
        if not held:
            return FAILED, f"nothing listens on :{port}"
        wrong = [h for h in held if h.unit != unit_name]
        if wrong:
            return FAILED, f":{port} is held by {wrong[0].describe()}, not {unit_name}"
        return OK, f":{port} held by {unit_name} ({held[0].process}, pid {held[0].pid})"
    return judge


def _resources(s: Settings) -> Fact:
    return path_info(f"{s.ai_server.dir}/resources/s3", unit=APP_UNIT, access="-w")


def _judge_resources(f: Facts) -> tuple[str, str]:
    info: PathInfo = f.get(_resources(f.settings))
    if not info.is_dir:
        return FAILED, f"{info.describe()} (guide 4-1: the app keeps its S3 files there)"
    if not info.user_ok:
        return FAILED, f"{info.describe()}: {info.user or 'the service user'} cannot write to it"
    return OK, info.describe()


def _key_facts(s: Settings) -> list[Fact]:
    return [unit(VLLM_UNIT), unit_env_files(VLLM_UNIT), unit(APP_UNIT), unit_env_files(APP_UNIT), _app_env(s)]


def app_key(f: Facts) -> tuple[object, str]:
    """VLLM_API_KEY as the app reads it: the unit's environment wins (load_dotenv does not override), else .env."""
    from_unit = f.env(APP_UNIT).get("VLLM_API_KEY")
    if from_unit is not None:
        return from_unit, f"{APP_UNIT} environment"
    env: DotEnv = f.get(_app_env(f.settings))
    return env.view.get("VLLM_API_KEY"), f"{env.path} (python-dotenv)"


def _judge_key(f: Facts) -> tuple[str, str]:
    served = f.env(VLLM_UNIT)
    enforced = served.get("VLLM_API_KEY")
    sent, where = app_key(f)
    if served.error:
        return FAILED, f"systemd cannot load {VLLM_UNIT}'s environment files: {served.error}"
    if not isinstance(sent, Secret) or sent.empty:
        return FAILED, f"the app sends no key: VLLM_API_KEY in {where} is {'empty' if sent is not None else 'absent'}"
    if not isinstance(enforced, Secret) or enforced.empty:
        return FAILED, f"vLLM enforces no key: VLLM_API_KEY in {VLLM_UNIT}'s environment is " \
                       f"{'empty' if enforced is not None else 'absent'}"
    if sent.digest != enforced.digest:
        where_served = served.where("VLLM_API_KEY") or f"{VLLM_UNIT}'s environment"
        return FAILED, f"the key the app sends ({where}) differs from the one vLLM enforces ({where_served})"
    return OK, f"the app ({where}) sends the key vLLM enforces ({VLLM_UNIT}'s environment, as systemd loads it)"


ROWS: tuple[Row, ...] = (
    Row("gpu", "GPU is an NVIDIA L4 with ~24 GB", "2-4", _gpu, _judge_gpu),
    Row("vllm-health", "vLLM /health answers 200", "3-7", lambda s: [_vllm_health(s)], _judge_vllm_health),
    Row("vllm-models", "vLLM /v1/models = base + LoRA adapters", "3-7", lambda s: [models_probe(s)], _judge_models),
    Row("app-health", "FastAPI /health answers 200", "4-6", lambda s: [_app_health(s)], _judge_app),
    Row("external", "8000 and 8001 answer from outside", "5-2", lambda s: [], _judge_external),
    Row("node-exporter", "node_exporter :9100/metrics", "7-5", lambda s: [_node(s)], _judge_node),
    Row("dcgm-exporter", "dcgm-exporter :9400/metrics with the 6 GPU series", "7-4", lambda s: [dcgm_probe(s)],
        _judge_dcgm),
    Row("promtail", "log shipper active, no Loki push errors", "7-6", _shipper_probes, _judge_shipper),
    Row("app-env", ".env readable by the app's user", "4-3", lambda s: [_app_env(s), _app_env_access(s)],
        _judge_app_env),
    Row("app-port", "port 8000 held by ai-server", "4-5", lambda s: [listeners()],
        _port_row(lambda s: s.ai_server.port, APP_UNIT)),
    Row("vllm-port", "port 8001 held by vllm", "3-5", lambda s: [listeners()],
        _port_row(lambda s: s.vllm.port, VLLM_UNIT)),
    Row("app-resources", "resources/s3 present and writable by the app", "4-1", lambda s: [_resources(s)],
        _judge_resources),
    Row("api-key", "the key vLLM enforces is the key the app sends", "4-3", _key_facts, _judge_key),
)
