"""What a Prometheus server needs to scrape the inventory: file_sd targets and a scrape-config snippet.

The guide opens :9100 and :9400 for "your Prometheus" (1-2) but never says what to scrape. Here
every host gets four targets: node_exporter (:9100), dcgm-exporter (:9400), vLLM's own /metrics on
its port (request counts, latency, KV-cache use; vLLM's API key guards /v1 only) and the app's
/metrics (prometheus-fastapi-instrumentator, guide 4-2). Each target carries ``host`` (the
inventory name) and ``instance`` (<host>:<port>, so dashboards show names, not addresses). The
targets live in file_sd JSON files (Prometheus re-reads them without a reload); the snippet is a
complete config that ``promtool check config`` accepts, to merge into prometheus.yml.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .config import Settings


@dataclass(frozen=True)
class Job:
    suffix: str
    port: int
    path: str = "/metrics"


@dataclass(frozen=True)
class Host:
    name: str
    address: str


def jobs(s: Settings) -> list[Job]:
    m = s.monitoring
    return [Job("node", m.node_exporter.port), Job("dcgm", m.dcgm.port), Job("vllm", s.vllm.port),
            Job("app", s.ai_server.port)]


def job_name(s: Settings, job: Job) -> str:
    return f"{s.monitoring.prometheus_job_prefix}-{job.suffix}"


def targets(s: Settings, hosts: list[Host]) -> dict[str, list[dict]]:
    """job name -> its file_sd content (one group per host, with host and instance labels)."""
    return {job_name(s, job): [{"targets": [f"{h.address}:{job.port}"],
                                "labels": {"host": h.name, "instance": f"{h.name}:{job.port}"}} for h in hosts]
            for job in jobs(s)}


def scrape_config(s: Settings, targets_dir: str, interval: str = "15s") -> str:
    if not re.fullmatch(r"\d+(ms|s|m|h)", interval):
        raise ValueError(f"scrape interval {interval!r}: a Prometheus duration like 15s or 1m")
    """A prometheus.yml fragment (valid alone) whose jobs read the file_sd files in *targets_dir*."""
    lines = ["# Written by l4-runbook (inv monitoring-config): merge these jobs into your prometheus.yml.",
             "scrape_configs:"]
    base = targets_dir.rstrip("/")
    for job in jobs(s):
        name = job_name(s, job)
        lines += [f"  - job_name: {json.dumps(name)}",
                  f"    scrape_interval: {interval}",
                  f"    metrics_path: {json.dumps(job.path)}",
                  "    file_sd_configs:",
                  f"      - files: [{json.dumps(base + '/' + name + '.json')}]"]
    return "\n".join(lines) + "\n"


def write(s: Settings, hosts: list[Host], out: Path, targets_dir: str = "", interval: str = "15s") -> list[Path]:
    """The file_sd files and prometheus-scrape.yml in *out*; the snippet points at *targets_dir*
    (where the files will be on the Prometheus server; default: *out* itself)."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, groups in targets(s, hosts).items():
        path = out / f"{name}.json"
        path.write_text(json.dumps(groups, indent=2) + "\n")
        written.append(path)
    snippet = out / "prometheus-scrape.yml"
    snippet.write_text(scrape_config(s, targets_dir or str(out.resolve()), interval))
    return [*written, snippet]
