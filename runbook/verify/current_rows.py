"""Checklist rows beyond the guide's section 6: current components, and the host as Prometheus sees it.

"log shipper is current": promtail reached end of life on 2026-03-02 (Grafana's Promtail docs), so a
host that ships with it, or still runs it beside Alloy (every line pushed twice), is a warning.
"Prometheus scrapes this host": with ``monitoring.prometheus_url`` set, the controller asks that
Prometheus' HTTP API (/api/v1/targets) for the targets at this host's address and whether each is up.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

from ..config import Settings
from ..facts import Fact
from ..facts.unit import unit
from ..sections.promtail import ALLOY_UNIT, PROMTAIL_EOL, PROMTAIL_UNIT
from .rows import FAIL, OK, SKIP, WARN, Facts, Row


def _shipper_probes(s: Settings) -> list[Fact]:
    return [unit(PROMTAIL_UNIT), unit(ALLOY_UNIT)]


def _judge_current_shipper(f: Facts) -> tuple[str, str]:
    promtail = f.get(unit(PROMTAIL_UNIT))
    if f.settings.monitoring.promtail.log_shipper == "promtail":
        return WARN, (f"log_shipper = promtail: end of life since {PROMTAIL_EOL}; set it to \"alloy\" "
                      "and run inv promtail (or inv troubleshoot --fix)")
    if promtail.active:
        return WARN, (f"{PROMTAIL_UNIT} still runs beside {ALLOY_UNIT}: every line is pushed twice; "
                      "inv troubleshoot --only C-1 --fix moves the host to Alloy")
    alloy = f.get(unit(ALLOY_UNIT))
    return OK, f"alloy ({alloy.state if alloy.installed else 'not installed'}); promtail not running"


def targets_up(prometheus_url: str, address: str, timeout: float = 5.0) -> tuple[list[str], list[str]]:
    """(up, down) scrape URLs of the targets at *address* that Prometheus knows; raises OSError/ValueError."""
    with urllib.request.urlopen(prometheus_url.rstrip("/") + "/api/v1/targets?state=active", timeout=timeout) as r:
        body = json.loads(r.read())
    up, down = [], []
    for t in body["data"]["activeTargets"]:
        if urllib.parse.urlsplit(t["scrapeUrl"]).hostname == address:
            (up if t["health"] == "up" else down).append(
                f"{t['labels'].get('job', '?')} {t['scrapeUrl']}" + ("" if t["health"] == "up" else
                                                                     f" ({t.get('lastError') or t['health']})"))
    return up, down


def _judge_prometheus(f: Facts) -> tuple[str, str]:
    url = f.settings.monitoring.prometheus_url
    if not url:
        return SKIP, "monitoring.prometheus_url is not set (inv monitoring-config writes its targets)"
    if f.reach is None:
        return SKIP, "--local: the controller does not know this host's address to look it up in Prometheus"
    try:
        up, down = targets_up(url, f.reach.address)
    except (OSError, ValueError, KeyError) as err:
        return FAIL, f"{url}: no answer from Prometheus' API ({err})"
    if not up and not down:
        return FAIL, f"{url} scrapes no target at {f.reach.address}: add the files of inv monitoring-config"
    total = len(up) + len(down)
    if down:
        return FAIL, f"{len(up)} of {total} targets up; down: {'; '.join(down)}"
    return OK, f"{len(up)} of {total} targets up ({', '.join(u.split()[0] for u in up)})"


CURRENT_ROWS: tuple[Row, ...] = (
    Row("log-shipper", "log shipper is current (Alloy; promtail is end of life)", "7-6", _shipper_probes,
        _judge_current_shipper),
    Row("prometheus", "Prometheus scrapes this host (monitoring.prometheus_url)", "7", lambda s: [],
        _judge_prometheus),
)
