"""The registry: one diagnostic per guide item, B-1 .. B-19, looked up by id."""

from __future__ import annotations

from .model import Diagnostic

REGISTRY: dict[str, Diagnostic] = {}


def register(diagnostic: Diagnostic) -> Diagnostic:
    if diagnostic.id in REGISTRY:
        raise ValueError(f"{diagnostic.id} registered twice")
    REGISTRY[diagnostic.id] = diagnostic
    return diagnostic


def _load() -> None:
    """The item modules register themselves on import; importing them here (not only in the package's
    __init__) fills the registry however the package itself was imported."""
    from . import app_items, cloud_items, current_items, monitoring_items, vllm_items  # noqa: F401


def ordered() -> list[Diagnostic]:
    _load()
    return sorted(REGISTRY.values(), key=lambda d: (not d.id.startswith("B-"), d.number))  # B-1..19, C-1..


def select(only: str = "") -> list[Diagnostic]:
    """--only "B-3,B-10,C-1" (or "3,10", any case); unknown ids are refused, never silently skipped."""
    _load()
    wanted = [w.strip().upper() for w in only.split(",") if w.strip()]
    wanted = [w if "-" in w else f"B-{w}" for w in wanted]
    unknown = [w for w in wanted if w not in REGISTRY]
    if unknown:
        raise KeyError(f"unknown item(s) {unknown}; known: {', '.join(d.id for d in ordered())}")
    return [d for d in ordered() if not wanted or d.id in wanted]
