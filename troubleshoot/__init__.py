"""Appendix B of the guide as diagnostics: one entry per item B-1 .. B-19, plus the S-items.

Each diagnostic carries the guide's symptom and cause, a ``detect`` that reads the host through the
fact layer (runbook.facts, one batch per host) or the Compute API, a verdict (ok / found / unknown,
with why) and a ``fix`` that applies the guide's remedy through the runbook's own steps, or says
exactly what a person has to do. ``inv troubleshoot`` runs them; docs/troubleshooting.md is written
from this registry. The dependency runs one way: troubleshoot imports runbook, never the reverse.
"""

from __future__ import annotations

from .model import FOUND, OK, UNKNOWN, Diagnostic, Finding, Outcome, found, ok, unknown
from .registry import REGISTRY, ordered, register, select

__all__ = ["FOUND", "OK", "REGISTRY", "UNKNOWN", "Diagnostic", "Finding", "Outcome", "found", "ok", "ordered",
           "register", "select", "unknown"]
