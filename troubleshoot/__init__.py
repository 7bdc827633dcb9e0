"""Appendix B of the guide as diagnostics: one entry per item B-1 .. B-19.

Each diagnostic has the guide's symptom, a ``detect`` that gathers evidence
(reusing the runbook's batched facts) and a ``fix``. The registry starts
empty and is filled item by item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    """The verdict of one diagnostic: ok, found or cannot tell, with the evidence."""

    id: str
    verdict: str  # "ok" | "found" | "unknown"
    evidence: str = ""


@dataclass(frozen=True)
class Diagnostic:
    id: str
    symptom: str
    cause: str
    detect: Callable[..., Finding]
    fix: Callable[..., str] | None = None


REGISTRY: dict[str, Diagnostic] = {}


def register(diagnostic: Diagnostic) -> Diagnostic:
    if diagnostic.id in REGISTRY:
        raise ValueError(f"{diagnostic.id} registered twice")
    REGISTRY[diagnostic.id] = diagnostic
    return diagnostic
