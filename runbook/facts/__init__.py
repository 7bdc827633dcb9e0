"""The fact layer: every fact about a host defined once, as a probe plus its parser.

A fact reads what the host's real reader sees: a unit is what systemd reports after its drop-ins
(``systemctl show`` and the D-Bus properties ``busctl`` prints as JSON), a unit's environment file
is what systemd itself loads into a transient unit, the app's ``.env`` is what python-dotenv parses,
a log shipper's config is what a YAML parser reads, a Python package is there when it imports, a
port belongs to the process ``ss`` names. Steps, verify rows and troubleshoot items all gather their
facts through :func:`gather` (one batched script per host) and read them through :class:`HostFacts`.
"""

from __future__ import annotations

from .batch import Fact, HostFacts, Probe, gather, gather_facts, script, unique

__all__ = ["Fact", "HostFacts", "Probe", "gather", "gather_facts", "script", "unique"]
