"""The steps' probes as one batch (runbook.facts.batch): what each step checks, read in one round trip.

A step's probe is a fact of its own whose key is its place in the section, so the section's steps and
the typed facts of verify and troubleshoot travel in the same script and are read by the same parser:
side by side, each into a file of its own, so the batch takes as long as its slowest probe.
"""

from __future__ import annotations

from ..facts.batch import MARK, Fact, answers, script
from ..transport import Transport
from .steps import Step

__all__ = ["MARK", "answers", "batch_script", "gather"]

# A step's probe reads state (a file's hash, a package's version, a unit's properties): seconds at most.
# The limit only keeps a probe that hangs (a dead NFS mount, a stuck apt lock) from holding the run forever.
STEP_PROBE_LIMIT = 600


def batch_script(steps: list[Step]) -> str:
    """One script that runs every step's probe read-only, side by side; answers come back in step order."""
    return script([Fact(f"step-{index}", step.probe(), timeout=STEP_PROBE_LIMIT) for index, step in enumerate(steps)])


def gather(transport: Transport, steps: list[Step]) -> list[str]:
    """Run all probes in one round trip; the list is in step order."""
    return answers(transport, transport.run(batch_script(steps)), len(steps))
