"""Promtail's config file: parsed strictly (unknown fields are errors, as in Promtail) into jobs.

Covers what guide 7-6 uses and a little more: server, positions, clients, scrape_configs with
journal or static_configs (file ``__path__`` globs), relabel_configs and pipeline_stages (match,
static_labels, drop). Other scrape kinds and stages are reported as unsupported by this stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pipeline
import selector
import yamlmini

ANY = "any"
STR, INT, BOOL, MAP = "str", "int", "bool", "map"

RELABEL = {"__type__": "relabel.Config", "source_labels": [STR], "separator": STR, "regex": STR,
           "modulus": INT, "target_label": STR, "replacement": STR, "action": STR}
SCHEMA = {
    "__type__": "config.Config",
    "server": {"__type__": "server.Config", "http_listen_port": INT, "grpc_listen_port": INT,
               "http_listen_address": STR, "grpc_listen_address": STR, "log_level": STR,
               "register_instrumentation": BOOL, "disable": BOOL},
    "positions": {"__type__": "positions.Config", "filename": STR, "sync_period": STR,
                  "ignore_invalid_yaml": BOOL},
    "clients": [{"__type__": "client.Config", "url": STR, "batchwait": STR, "batchsize": INT,
                 "timeout": STR, "tenant_id": STR, "external_labels": MAP, "backoff_config": ANY,
                 "basic_auth": ANY, "bearer_token": STR, "tls_config": ANY}],
    "scrape_configs": [{
        "__type__": "scrapeconfig.Config", "job_name": STR,
        "journal": {"__type__": "scrapeconfig.JournalTargetConfig", "max_age": STR, "json": BOOL,
                    "labels": MAP, "path": STR, "matches": STR},
        "static_configs": [{"__type__": "targetgroup.Group", "targets": [STR], "labels": MAP}],
        "relabel_configs": [RELABEL],
        "pipeline_stages": [ANY],
    }],
    "limits_config": ANY, "target_config": ANY, "options": ANY, "tracing": ANY, "global": ANY,
}


class ConfigError(ValueError):
    pass


def _check(value, spec, where: str, line: int, errors: list[str]) -> None:
    if spec == ANY or value is None:
        return
    if isinstance(spec, list):
        if not isinstance(value, list):
            errors.append(f"line {line}: cannot unmarshal {type(value).__name__} into {where} (a list)")
            return
        for item in value:
            _check(item, spec[0], where, getattr(item, "line", line), errors)
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            errors.append(f"line {line}: cannot unmarshal !!{type(value).__name__} `{value}` into {spec['__type__']}")
            return
        for key, item in value.items():
            key_line = getattr(value, "lines", {}).get(key, line)
            if key not in spec or key == "__type__":
                errors.append(f"line {key_line}: field {key} not found in type {spec['__type__']}")
            else:
                _check(item, spec[key], key, key_line, errors)
        return
    ok = {STR: isinstance(value, (str, int, float)) and not isinstance(value, bool),
          INT: isinstance(value, int) and not isinstance(value, bool),
          BOOL: isinstance(value, bool),
          MAP: isinstance(value, dict)}[spec]
    if not ok:
        errors.append(f"line {line}: cannot unmarshal {value!r} into {where} ({spec})")


def duration_s(text: str, default: int) -> int:
    if not text:
        return default
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    total, number = 0, ""
    for ch in str(text):
        if ch.isdigit():
            number += ch
        elif ch in units and number:
            total, number = total + int(number) * units[ch], ""
        else:
            raise ConfigError(f"time: invalid duration \"{text}\"")
    return total


def stages(raw: list, where: str) -> list[pipeline.Stage]:
    out = []
    for item in raw or []:
        if not isinstance(item, dict) or len(item) != 1:
            raise ConfigError(f"{where}: each pipeline stage is a mapping with one stage name")
        (name, body), = item.items()
        if name == "static_labels":
            out.append(pipeline.static_labels(body or {}))
        elif name == "match":
            unknown = set(body) - {"selector", "stages", "pipeline_name", "action", "drop_counter_reason"}
            if unknown:
                raise ConfigError(f"{where}: unknown match stage field(s) {sorted(unknown)}")
            if "selector" not in body:
                raise ConfigError(f"{where}: match stage: selector is required")
            try:
                selector.parse(body["selector"])
            except selector.SelectorError as err:
                raise ConfigError(f"{where}: invalid match stage selector {body['selector']!r}: {err}") from None
            out.append(pipeline.match_stage(body["selector"], stages(body.get("stages"), where)))
        elif name == "drop":
            out.append(pipeline.drop_stage((body or {}).get("expression", "")))
        else:
            raise ConfigError(f"{where}: pipeline stage {name!r} is not supported by this promtail stand-in")
    return out


@dataclass
class Job:
    name: str
    kind: str  # "journal" or "file"
    labels: dict[str, str]
    rules: list[pipeline.Rule] = field(default_factory=list)
    stages: list[pipeline.Stage] = field(default_factory=list)
    matches: str = ""
    path: str = ""
    max_age_s: int = 7 * 3600
    glob: str = ""

    def process(self, labels: dict[str, str], line: str) -> tuple[dict[str, str], str] | None:
        """Promtail's order: relabel the source's labels, drop __ labels, add the job's, run the stages."""
        relabeled = pipeline.relabel(labels, self.rules)
        if relabeled is None:
            return None
        return pipeline.apply(self.stages, {**pipeline.public(relabeled), **self.labels}, line)


@dataclass
class Settings:
    http_port: int
    positions: str
    clients: list[str]
    jobs: list[Job]


def load(path: str) -> Settings:
    try:
        with open(path) as fh:
            text = fh.read()
    except OSError as err:
        raise ConfigError(f"error loading config file {path}: {err.strerror}") from None
    try:
        data = yamlmini.loads(text) or {}
    except yamlmini.YamlError as err:
        raise ConfigError(f"error loading config file {path}: {err}") from None
    errors: list[str] = []
    _check(data, SCHEMA, "config", 1, errors)
    if errors:
        raise ConfigError(f"error loading config file {path}: yaml: unmarshal errors:\n  " + "\n  ".join(errors))
    clients = [c.get("url") for c in data.get("clients") or []]
    if not clients or not all(clients):
        raise ConfigError(f"error loading config file {path}: at least one client with a url is required")
    jobs, names = [], set()
    for sc in data.get("scrape_configs") or []:
        name = sc.get("job_name")
        if not name:
            raise ConfigError(f"{path}: scrape config without job_name")
        if name in names:
            raise ConfigError(f"{path}: found multiple scrape configs with job name \"{name}\"")
        names.add(name)
        rules = [pipeline.Rule(**{k: v for k, v in r.items() if k != "modulus"})
                 for r in sc.get("relabel_configs") or []]
        job_stages = stages(sc.get("pipeline_stages"), f"job {name}")
        if sc.get("journal") is not None:
            j = sc["journal"]
            jobs.append(Job(name, "journal", {str(k): str(v) for k, v in (j.get("labels") or {}).items()}, rules,
                            job_stages, matches=j.get("matches") or "", path=j.get("path") or "",
                            max_age_s=duration_s(j.get("max_age", ""), 7 * 3600)))
        elif sc.get("static_configs"):
            for group in sc["static_configs"]:
                labels = {str(k): str(v) for k, v in (group.get("labels") or {}).items()}
                pattern = labels.pop("__path__", "")
                if not pattern:
                    raise ConfigError(f"{path}: job {name}: static_configs need a __path__ label")
                jobs.append(Job(name, "file", labels, rules, job_stages, glob=pattern))
        else:
            raise ConfigError(f"{path}: job {name}: only journal and static_configs are supported by this stand-in")
    server = data.get("server") or {}
    return Settings(http_port=int(server.get("http_listen_port", 80)),
                    positions=(data.get("positions") or {}).get("filename", "/var/log/positions.yaml"),
                    clients=clients, jobs=jobs)
