"""The registry: every diagnostic, B-1 .. B-19, the S-items and the C-items, looked up by id.

Each item module lists its items (ITEMS); the registry imports them at the top like any other module,
so importing the package in any way fills it, with no import inside a function.
"""

from __future__ import annotations

from . import app_items, cloud_items, current_items, monitoring_items, service_items, vllm_items
from .model import Diagnostic

REGISTRY: dict[str, Diagnostic] = {}


def register(diagnostic: Diagnostic) -> Diagnostic:
    if diagnostic.id in REGISTRY:
        raise ValueError(f"{diagnostic.id} registered twice")
    REGISTRY[diagnostic.id] = diagnostic
    return diagnostic


for _module in (cloud_items, vllm_items, app_items, monitoring_items, service_items, current_items):
    for _item in _module.ITEMS:
        register(_item)


def ordered() -> list[Diagnostic]:
    return sorted(REGISTRY.values(), key=lambda d: d.order)


def select(only: str = "") -> list[Diagnostic]:
    """--only "B-3,B-10,S-1,C-1" (or "3,10", any case); unknown ids are refused, never silently skipped."""
    wanted = [w.strip().upper() for w in only.split(",") if w.strip()]
    wanted = [w if "-" in w else f"B-{w}" for w in wanted]
    unknown = [w for w in wanted if w not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown item(s) {unknown}; known: {', '.join(d.id for d in ordered())}")
    return [d for d in ordered() if not wanted or d.id in wanted]
