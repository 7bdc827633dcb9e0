"""The log shipper's configuration (guide 7-6), for Promtail and for Grafana Alloy, with the same labels.

Every journal job reads only its own unit (``matches``, guide B-19) and gets job, host, unit and
service labels; the file job reads the application's log directory (B-18) with job and host. The
guide's block also has a stray ``/`` line after ``positions``, which Promtail refuses as invalid
YAML; it is not copied. Positions live under /var/lib (the guide's /tmp is emptied at boot, so
every reboot would send everything again).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

POSITIONS = "/var/lib/promtail/positions.yaml"
JOURNAL_PATH = "/var/log/journal"
# Where Alloy's journal sources start the first time (no position of their own yet): this far back.
# It covers the cut-over from promtail (stop promtail, start Alloy: one command, well under a
# minute) so no line is lost; lines both shippers read are identical (same stream labels, the
# journal's own timestamp, same text), and Loki ignores an exact duplicate of a line it has. Not
# Alloy's 7h default: replaying hours into streams Loki already has would be refused as too old.
JOURNAL_MAX_AGE = "1m"


@dataclass(frozen=True)
class Shipping:
    loki_url: str  # base URL, without /loki/api/v1/push
    host: str
    units: tuple[str, ...]  # unit names without .service; each is a job and a service label
    file_job: str
    log_glob: str
    port: int = 9080

    @property
    def push_url(self) -> str:
        return self.loki_url.rstrip("/") + "/loki/api/v1/push"

    def labels(self) -> dict[str, dict[str, str]]:
        """Job -> the labels every entry of that job carries in Loki (besides `filename` for files)."""
        out = {u: {"job": u, "host": self.host, "unit": f"{u}.service", "service": u} for u in self.units}
        out[self.file_job] = {"job": self.file_job, "host": self.host}
        return out


def promtail_yaml(s: Shipping) -> str:
    lines = [
        "# Managed by l4-runbook (guide 7-6). One journal job per unit, filtered with `matches` (B-19).",
        "server:",
        f"  http_listen_port: {s.port}",
        "  grpc_listen_port: 0",
        "",
        "positions:",
        f"  filename: {POSITIONS}",
        "",
        "clients:",
        f"  - url: {s.push_url}",
        "",
        "scrape_configs:",
    ]
    for unit in s.units:
        lines += [
            f"  - job_name: {unit}",
            "    journal:",
            f"      matches: _SYSTEMD_UNIT={unit}.service",
            "      labels:",
            f"        job: {unit}",
            f"        host: {json.dumps(s.host)}",
            f"      path: {JOURNAL_PATH}",
            "    relabel_configs:",
            "      - source_labels: ['__journal__systemd_unit']",
            "        target_label: 'unit'",
            "    pipeline_stages:",
            "      - match:",
            f"          selector: '{{unit=\"{unit}.service\"}}'",
            "          stages:",
            "            - static_labels:",
            f"                service: {unit}",
            "",
        ]
    lines += [
        f"  - job_name: {s.file_job}",
        "    static_configs:",
        "      - targets:",
        "          - localhost",
        "        labels:",
        f"          job: {s.file_job}",
        f"          host: {json.dumps(s.host)}",
        f"          __path__: {s.log_glob}",
    ]
    return "\n".join(lines) + "\n"


def _ident(name: str) -> str:
    return name.replace("-", "_").replace(".", "_")


def _map(values: dict[str, str], indent: str) -> str:
    width = max(len(k) for k in values)
    return "{\n" + "".join(f"{indent}  {k.ljust(width)} = {json.dumps(v)},\n" for k, v in values.items()) + indent + "}"


def alloy_config(s: Shipping) -> str:
    """The same pipeline in Alloy's syntax: journal -> unit label -> static labels -> Loki."""
    labels = s.labels()
    parts = [
        "// Managed by l4-runbook (guide 7-6, Grafana Alloy instead of the end-of-life Promtail).",
        "// Same jobs and labels as the Promtail configuration; one journal source per unit (B-19).",
        "",
        'loki.write "default" {',
        "  endpoint {",
        f"    url = {json.dumps(s.push_url)}",
        "  }",
        "}",
        "",
        'loki.relabel "journal" {',
        "  forward_to = []",
        "  rule {",
        '    source_labels = ["__journal__systemd_unit"]',
        '    target_label  = "unit"',
        "  }",
        "}",
    ]
    for unit in s.units:
        name = _ident(unit)
        static = {k: v for k, v in labels[unit].items() if k != "unit"}
        parts += [
            "",
            f'loki.source.journal "{name}" {{',
            f"  matches       = {json.dumps(f'_SYSTEMD_UNIT={unit}.service')}",
            f"  path          = {json.dumps(JOURNAL_PATH)}",
            f"  max_age       = {json.dumps(JOURNAL_MAX_AGE)}",
            "  relabel_rules = loki.relabel.journal.rules",
            f"  forward_to    = [loki.process.{name}.receiver]",
            "}",
            "",
            f'loki.process "{name}" {{',
            "  stage.static_labels {",
            f"    values = {_map(static, '    ')}",
            "  }",
            "  forward_to = [loki.write.default.receiver]",
            "}",
        ]
    name = _ident(s.file_job)
    parts += [
        "",
        f'local.file_match "{name}" {{',
        f"  path_targets = [{_map({'__path__': s.log_glob, **labels[s.file_job]}, '  ')}]",
        "}",
        "",
        f'loki.source.file "{name}" {{',
        f"  targets               = local.file_match.{name}.targets",
        f"  legacy_positions_file = {json.dumps(POSITIONS)}",
        "  forward_to            = [loki.write.default.receiver]",
        "}",
    ]
    return "\n".join(parts) + "\n"
