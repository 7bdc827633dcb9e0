"""Many read-only probes in one remote script, run side by side, each answer framed on its own line.

verify and troubleshoot read dozens of facts per host (units, journals, HTTP answers, files). One
round trip with the probes running in parallel keeps a whole run to a few seconds; each probe has
its own time limit, so a service that hangs (a Loki that never answers) costs seconds, not the run.
The framing is the engine's (runbook.engine.facts), so one parser reads every batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..engine.facts import MARK, parse
from ..engine.steps import q
from ..errors import RunbookError
from ..transport import Transport


def _text(raw: str) -> str:
    return raw


@dataclass(frozen=True)
class Fact:
    """A named piece of read-only shell and the parser that turns what it prints into a typed value.

    Two facts with the same key are the same fact: a batch runs it once, whoever asked for it.
    """

    key: str
    shell: str
    timeout: int = 15  # seconds before the probe is cut off (its output so far still counts)
    parser: Callable[[str], Any] = field(default=_text, compare=False)


Probe = Fact  # the older name: a fact whose value is the text it printed


def unique(facts: Iterable[Fact]) -> list[Fact]:
    """One probe per key, first definition wins, in first-seen order."""
    seen: dict[str, Fact] = {}
    for fact in facts:
        seen.setdefault(fact.key, fact)
    return list(seen.values())


def script(facts: list[Fact]) -> str:
    """Start every probe in the background, wait for all, then print the framed answers in order."""
    lines = ["set +e", "d=$(mktemp -d)", "trap 'rm -rf \"$d\"' EXIT"]
    for index, fact in enumerate(facts):
        lines.append(f"timeout -k 2 {fact.timeout} bash -c {q(fact.shell)} >\"$d/{index}\" 2>/dev/null </dev/null &")
    lines.append("wait")
    for index in range(len(facts)):
        lines.append(f"printf '{MARK} {index} '; base64 -w0 < \"$d/{index}\"; echo")
    return "\n".join(lines) + "\n"


def gather(transport: Transport, facts: Iterable[Fact]) -> dict[str, str]:
    """All *facts* in one round trip: key -> what the probe printed."""
    facts = unique(facts)
    if not facts:
        return {}
    result = transport.run(script(facts))
    if MARK not in result.stdout:
        raise RunbookError(f"{transport.name}: could not read facts:\n{result.tail()}")
    return dict(zip((f.key for f in facts), parse(result.stdout, len(facts)), strict=True))


class HostFacts:
    """The answers of one batch, parsed on first use (each fact once, however many readers ask)."""

    def __init__(self, raw: dict[str, str]):
        self.raw = raw
        self._parsed: dict[str, Any] = {}

    def text(self, key: str) -> str:
        return self.raw.get(key, "")

    def get(self, fact: Fact) -> Any:
        if fact.key not in self._parsed:
            self._parsed[fact.key] = fact.parser(self.raw.get(fact.key, ""))
        return self._parsed[fact.key]


def gather_facts(transport: Transport, facts: Iterable[Fact]) -> HostFacts:
    return HostFacts(gather(transport, facts))
