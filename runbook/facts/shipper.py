"""What a log shipper's journal jobs actually select: its config read with a YAML parser (PyYAML,
promtail's config is YAML), and each `matches` read with the journal's match semantics.

Promtail and Alloy hand `matches` to the journal as whitespace-separated FIELD=VALUE terms (promtail's
journal target; Alloy's loki.source.journal documents "systemd journal match syntax", and `+`
disjunctions are not supported). sd_journal_add_match(3): terms on the same field are ORed, terms on
different fields are ANDed, and a value matches only the field's exact value, so
``_SYSTEMD_UNIT=vllm`` selects nothing (the field holds ``vllm.service``).

Alloy's config language has no Python reader; its journal blocks are located by their documented
block shape (``loki.source.journal "LABEL" { matches = "..." }``) and read no further than that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from ..engine.steps import q
from .batch import Fact

PROMTAIL_CONFIG = "/etc/promtail/config.yml"
ALLOY_CONFIG = "/etc/alloy/config.alloy"


@dataclass(frozen=True)
class Match:
    """A journal match string as the journal reads it: field -> the values any of which selects an entry."""

    text: str | None
    terms: dict[str, tuple[str, ...]] = field(default_factory=dict)
    malformed: tuple[str, ...] = ()  # words that are not FIELD=VALUE (the journal refuses them)

    @classmethod
    def parse(cls, text: str | None) -> Match:
        terms: dict[str, list[str]] = {}
        bad = []
        for word in (text or "").split():
            fieldname, sep, value = word.partition("=")
            if not sep or not fieldname or not re.fullmatch(r"[A-Z0-9_]+", fieldname):
                bad.append(word)
                continue
            terms.setdefault(fieldname, []).append(value)
        return cls(text, {k: tuple(v) for k, v in terms.items()}, tuple(bad))

    @property
    def empty(self) -> bool:
        return not self.terms and not self.malformed

    def units(self) -> tuple[str, ...]:
        """The units whose entries this match lets through (OR of the _SYSTEMD_UNIT terms)."""
        return self.terms.get("_SYSTEMD_UNIT", ())


@dataclass(frozen=True)
class JournalJob:
    name: str
    match: Match


@dataclass(frozen=True)
class ShipperConfig:
    path: str
    exists: bool
    jobs: tuple[JournalJob, ...] = ()
    error: str = ""  # the config could not be read (its reader would refuse it too)
    push_url: str = ""  # where the shipper sends its lines (promtail: the first client's url)


def parse_promtail(path: str, text: str) -> ShipperConfig:
    if not text.strip():
        return ShipperConfig(path, False)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        return ShipperConfig(path, True, error=f"not valid YAML: {err}")
    jobs = []
    for scrape in (data.get("scrape_configs") or []) if isinstance(data, dict) else []:
        if isinstance(scrape, dict) and "journal" in scrape:
            journal = scrape.get("journal") if isinstance(scrape.get("journal"), dict) else {}
            matches = journal.get("matches")
            jobs.append(JournalJob(str(scrape.get("job_name", "?")), Match.parse(str(matches) if matches else None)))
    clients = data.get("clients") if isinstance(data, dict) else None
    url = clients[0].get("url", "") if isinstance(clients, list) and clients and isinstance(clients[0], dict) else ""
    return ShipperConfig(path, True, tuple(jobs), push_url=str(url or ""))


def parse_alloy(path: str, text: str) -> ShipperConfig:
    if not text.strip():
        return ShipperConfig(path, False)
    jobs = []
    for block in re.finditer(r'loki\.source\.journal\s+"([^"]+)"\s*\{(.*?)\n\}', text, re.S):
        found = re.search(r'^\s*matches\s*=\s*"([^"]*)"', block.group(2), re.M)
        jobs.append(JournalJob(block.group(1), Match.parse(found.group(1) if found else None)))
    endpoint = re.search(r'loki\.write\s+"[^"]+"\s*\{.*?endpoint\s*\{[^}]*?\burl\s*=\s*"([^"]+)"', text, re.S)
    return ShipperConfig(path, True, tuple(jobs), push_url=endpoint.group(1) if endpoint else "")


def shipper_config(shipper: str) -> Fact:
    """The shipper's configuration file as its reader parses it."""
    if shipper == "promtail":
        return Fact("shipper:config", f"cat {q(PROMTAIL_CONFIG)}",
                    parser=lambda text: parse_promtail(PROMTAIL_CONFIG, text))
    return Fact("shipper:config", f"cat {q(ALLOY_CONFIG)}", parser=lambda text: parse_alloy(ALLOY_CONFIG, text))


def judge_jobs(config: ShipperConfig, units: list[str]) -> list[str]:
    """What is wrong with the journal jobs for these units ([] when every unit has a job of its own)."""
    problems = []
    for job in config.jobs:
        m = job.match
        if m.malformed:
            problems.append(f"job {job.name}: matches {m.text!r} has terms the journal refuses: "
                            f"{', '.join(m.malformed)}")
        elif m.empty:
            problems.append(f"job {job.name} has no `matches`: it reads every unit's log")
        elif len(m.units()) > 1:
            problems.append(f"job {job.name}: matches {m.text!r} is an OR of {', '.join(m.units())} (same field): "
                            "their logs mix in one job")
        elif not m.units():
            problems.append(f"job {job.name}: matches {m.text!r} has no _SYSTEMD_UNIT term: it reads every unit")
        elif m.units()[0] not in {f"{u}.service" for u in units} and not m.units()[0].endswith(".service"):
            problems.append(f"job {job.name}: _SYSTEMD_UNIT={m.units()[0]} matches no entry: the journal field "
                            f"holds the full unit name ({m.units()[0]}.service)")
    selected = [u for job in config.jobs for u in job.match.units() if len(job.match.units()) == 1]
    for unit in units:
        name = f"{unit}.service"
        if name not in selected and not any(name in p or unit in p for p in problems):
            problems.append(f"no journal job reads {name} alone (`matches: _SYSTEMD_UNIT={name}`)")
    seen: dict[str, str] = {}
    for job in config.jobs:
        units_of = job.match.units()
        if len(units_of) == 1 and seen.setdefault(units_of[0], job.name) != job.name:
            problems.append(f"jobs {seen[units_of[0]]} and {job.name} both read {units_of[0]}: every line twice")
    return problems
