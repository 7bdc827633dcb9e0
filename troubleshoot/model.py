"""What a diagnostic is and what it answers: a verdict with evidence, and what a fix did.

A verdict is one of three, never a guess: ``ok`` (looked, and the guide's problem is not there),
``found`` (it is there: the evidence says where), ``unknown`` (could not look: the summary says
why, e.g. "vllm.service not installed", "no Compute API configured").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from runbook.engine.status import FOUND, OK, UNKNOWN  # the engine's one vocabulary

if TYPE_CHECKING:
    from runbook.config import Settings
    from runbook.engine.results import StepResult
    from runbook.facts import Fact as Probe


@dataclass(frozen=True)
class Finding:
    """One diagnostic's verdict on one host (or on the cloud project)."""

    verdict: str
    summary: str
    evidence: tuple[str, ...] = ()
    # Facts the fix needs (which branch of the remedy applies); not shown.
    data: dict[str, Any] = field(default_factory=dict, compare=False)


def ok(summary: str, *evidence: str, **data: Any) -> Finding:
    return Finding(OK, summary, tuple(e for e in evidence if e), data)


def found(summary: str, *evidence: str, **data: Any) -> Finding:
    return Finding(FOUND, summary, tuple(e for e in evidence if e), data)


def unknown(why: str, *evidence: str, **data: Any) -> Finding:
    return Finding(UNKNOWN, why, tuple(e for e in evidence if e), data)


@dataclass
class Outcome:
    """What --fix did: engine steps it ran, or the steps a person has to take."""

    applied: bool = False
    manual: list[str] = field(default_factory=list)
    steps: list[StepResult] = field(default_factory=list)
    error: str = ""


@dataclass(frozen=True)
class Diagnostic:
    """One item of the guide's appendix B, with its detection and its remedy."""

    id: str  # "B-3"
    title: str
    symptom: str  # as the guide states it
    cause: str
    detection: str  # how detect() tells (for the docs)
    remedy: str  # what --fix does, or what it tells a person to do (for the docs)
    detect: Callable[..., Finding]
    scope: Literal["host", "cloud"] = "host"
    # The host facts detect() reads; all items of a run are gathered in one batch per host.
    probes: Callable[[Settings], list[Probe]] = lambda settings: []
    fix: Callable[..., Outcome] | None = None

    @property
    def number(self) -> int:
        return int(self.id.split("-", 1)[1])

    @property
    def order(self) -> tuple[int, int]:
        """Appendix B first (B-1 .. B-19), then the items outside it: services (S-1, ...), current components
        (C-1, ...)."""
        return ({"B": 0, "S": 1}.get(self.id.split("-", 1)[0], 2), self.number)
