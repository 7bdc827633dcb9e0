"""Many read-only probes in one remote script, run side by side, each answer framed on its own line.

verify and troubleshoot read dozens of facts per host (units, journals, HTTP answers, files). One
round trip with the probes running in parallel keeps a whole run to a few seconds; each probe has
its own time limit, so a service that hangs (a Loki that never answers) costs seconds, not the run.
The framing is the engine's (runbook.engine.facts), so its parser reads the answers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..engine.facts import MARK, parse
from ..engine.steps import q
from ..errors import RunbookError
from ..transport import Transport


@dataclass(frozen=True)
class Probe:
    """A named piece of shell that prints a fact; it must not change anything."""

    key: str
    shell: str
    timeout: int = 15  # seconds before the probe is cut off (its output so far still counts)


def unique(probes: Iterable[Probe]) -> list[Probe]:
    """One probe per key, first definition wins, in first-seen order."""
    seen: dict[str, Probe] = {}
    for probe in probes:
        seen.setdefault(probe.key, probe)
    return list(seen.values())


def script(probes: list[Probe]) -> str:
    """Start every probe in the background, wait for all, then print the framed answers in order."""
    lines = ["set +e", "d=$(mktemp -d)", "trap 'rm -rf \"$d\"' EXIT"]
    for index, probe in enumerate(probes):
        lines.append(f"timeout -k 2 {probe.timeout} bash -c {q(probe.shell)} >\"$d/{index}\" 2>/dev/null </dev/null &")
    lines.append("wait")
    for index in range(len(probes)):
        lines.append(f"printf '{MARK} {index} '; base64 -w0 < \"$d/{index}\"; echo")
    return "\n".join(lines) + "\n"


def gather(transport: Transport, probes: list[Probe]) -> dict[str, str]:
    """All *probes* in one round trip: key -> what the probe printed."""
    probes = unique(probes)
    if not probes:
        return {}
    result = transport.run(script(probes))
    if MARK not in result.stdout:
        raise RunbookError(f"{transport.name}: could not read facts:\n{result.tail()}")
    return dict(zip((p.key for p in probes), parse(result.stdout, len(probes)), strict=True))
