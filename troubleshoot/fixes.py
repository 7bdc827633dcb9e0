"""Applying a remedy: the runbook's own section steps (same engine, same output), or a person's steps.

A fix never writes files of its own: it picks steps out of the section that implements the guide's
remedy (B-3: the vllm unit of 3-4; B-18: the log directories of 4-1) and runs them through the
engine, so the host ends up exactly as ``inv <section>`` would leave it. What needs a person (a
quota, another company's firewall, a value in hosts.toml) comes back as exact instructions.
"""

from __future__ import annotations

from collections.abc import Callable

from runbook.engine.results import FAILED
from runbook.engine.runner import run_steps
from runbook.engine.steps import Command, Service, Step, q
from runbook.engine.wait import HttpWait
from runbook.sections import HOST_SECTIONS

from .context import Repair
from .model import Outcome


def manual(*lines: str) -> Outcome:
    return Outcome(manual=[line for line in lines if line])


def by_guide(*guides: str) -> Callable[[Step], bool]:
    return lambda step: step.guide in guides


def merge(*outcomes: Outcome) -> Outcome:
    out = Outcome()
    for o in outcomes:
        out.applied |= o.applied
        out.manual += o.manual
        out.steps += o.steps
        out.error = out.error or o.error
    return out


def apply_steps(repair: Repair, label: str, guide: str, steps: list[Step]) -> Outcome:
    """Run *steps* on the host like a section: one batch of facts, then only what differs."""
    result = run_steps(repair.transport, label, guide, steps, repair.out)
    failed = next((s for s in result.steps if s.status == FAILED), None)
    return Outcome(applied=True, steps=result.steps,
                   error=f"{failed.title}: {failed.summary} {failed.error}".strip() if failed else "")


def section_steps(repair: Repair, section: str) -> list[Step]:
    """Every step of *section* for this host, its waits included (needs the secrets: some steps write them)."""
    chosen = HOST_SECTIONS[section]
    every = getattr(chosen, "all_steps", chosen.build)
    return every(repair.loaded.full(), repair.host)


def secrets_missing(repair: Repair, item: str, section: str) -> Outcome:
    return manual(
        f"This fix runs steps of `inv {section}`, which need the secrets, and they are not loaded: "
        f"{repair.loaded.secrets_error.strip()}",
        f"Set them (environment, or the secrets file with mode 0600), then run: "
        f"inv troubleshoot --only {item} --fix   (or: inv {section})",
    )


def section_fix(repair: Repair, item: str, section: str, pick: Callable[[Step], bool],
                adjust: Callable[[Step], Step] | None = None, extra: list[Step] | None = None) -> Outcome:
    """The steps of *section* that *pick* selects (changed by *adjust*, plus *extra*), run on the host."""
    if repair.loaded.config is None:
        return secrets_missing(repair, item, section)
    every = section_steps(repair, section)
    steps = [adjust(s) if adjust else s for s in every if pick(s)]
    steps = _with_waits(_insert_before_services(steps, extra or []), every)
    return apply_steps(repair, f"{section} (fix {item})", HOST_SECTIONS[section].guide, steps)


def _with_waits(steps: list[Step], section: list[Step]) -> list[Step]:
    """A fix that may restart a unit ends with the section's wait for that unit, so "after the fix" is judged
    once the service answers again, not while it starts."""
    units = {s.unit for s in steps if isinstance(s, Service)} | {u for s in steps for u in s.restarts}
    waited = {s.unit for s in steps if isinstance(s, HttpWait)}
    return steps + [s for s in section if isinstance(s, HttpWait) and s.unit in units - waited]


def _insert_before_services(steps: list[Step], extra: list[Step]) -> list[Step]:
    """Extra steps go before the first service step, so a restart they trigger happens once; each
    service step is preceded by a reset of the unit's restart counter when it crashed before: the
    wait after the restart would otherwise take those old crashes for a crash loop of the new start."""
    at = next((i for i, s in enumerate(steps) if isinstance(s, Service)), len(steps))
    out = []
    for step in [*steps[:at], *extra, *steps[at:]]:
        if isinstance(step, Service):
            unit = q(step.unit)
            out.append(Command(guide=step.guide, title=f"forget the earlier crashes of {step.unit} (reset-failed)",
                               check=f"[ \"$(systemctl show -p NRestarts --value {unit})\" = 0 ]",
                               run=f"systemctl reset-failed {unit}"))
        out.append(step)
    return out
