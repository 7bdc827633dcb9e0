"""The rows of the guide's section 6 checklist: what each reads on the host and how it is judged.

Each row names its probes (all rows of a host are read in one batch) and a judge that turns the
facts into ok / fail / skip with one line saying what was seen. The external row is the only one
that looks from the controller instead of the host, as the guide's 5-2 does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Settings
from ..engine.steps import q
from ..sections.dcgm import counter_names
from ..sections.promtail import ALLOY_UNIT, PROMTAIL_UNIT
from . import gpu
from .batch import Probe
from .probes import Http, Journal, UnitState, http, journal, search, unit
from .reach import Reach

OK, FAIL, SKIP, WARN = "ok", "FAIL", "skip", "warn"  # warn: not red, but look
# What Promtail (and Alloy) log when a push to Loki fails (guide B-17).
PUSH_ERRORS = r"context deadline exceeded|error sending batch|final error sending batch|failed to send batch"
PUSH_WINDOW_S = 600


@dataclass(frozen=True)
class Facts:
    """What a judge gets: the host's probe answers, the settings, and the controller's view."""

    settings: Settings
    raw: dict[str, str]
    reach: Reach | None  # None: no address to test from outside (--local)

    def http(self, probe: Probe) -> Http:
        return Http.parse(self.raw.get(probe.key, ""))


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
    """/v1/models with the key from vllm.env, passed on curl's stdin (never on a command line)."""
    env = f"{s.vllm.dir}/vllm.env"
    url = f"http://127.0.0.1:{s.vllm.port}/v1/models"
    return Probe("vllm:models", (
        f"key=$(sed -n 's/^VLLM_API_KEY=//p' {q(env)} 2>/dev/null | tail -1)\n"
        f"printf 'Authorization: Bearer %s\\n' \"$key\" | curl -s --noproxy '*' -m 10 -H @- {q(url)}"))


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
    state = UnitState.parse(f.raw.get(f"unit:{name}", ""))
    if not state.installed:
        return FAIL, f"{name} is not installed"
    if not state.active:
        return FAIL, f"{name} is {state.state}"
    log = Journal.parse(f.raw.get(f"journal:{name}", ""))
    now = float(state.get("NOW") or 0)
    recent = [line for line in log.current(state.get("InvocationID")) if line.ts >= now - PUSH_WINDOW_S]
    error = search(recent, PUSH_ERRORS)
    if error:
        count = sum(1 for line in recent if re.search(PUSH_ERRORS, line.message))
        return FAIL, f"{name} active, {count} Loki push error(s) in the last {PUSH_WINDOW_S // 60} min: " \
                     f"{error.message.strip()[:160]} (B-17)"
    return OK, f"{name} active, no Loki push errors"


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
)
