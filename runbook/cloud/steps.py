"""Cloud steps are data too: what a step reads through the API, what it wants, the call that gets there.

Like host steps (engine/steps.py): `read` gathers the fact (API reads only), `plan` compares
it with the settings and returns a Plan with a diff, `apply` makes the calls. Dry-run stops
after `plan`, so it shows every diff and calls nothing that changes anything. Results are the
same StepResult/SectionResult, printed by the same Output, as for hosts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

from .. import gcp
from ..engine.results import CHANGED, FAILED, OK, SKIPPED, SectionResult, StepResult
from ..engine.steps import Plan
from ..errors import RunbookError
from .context import CloudContext


@dataclass(frozen=True, kw_only=True)
class ResourceStep:
    """One idempotent unit of guide sections 1, 2, 5-1 or 8."""

    guide: str
    title: str
    calls: ClassVar[str] = ""  # the API calls that make the change, for the docs

    def read(self, ctx: CloudContext) -> Any:
        """The current state, read through the API; must not change anything."""
        return None

    def plan(self, fact: Any, ctx: CloudContext) -> Plan:
        raise NotImplementedError

    def apply(self, plan: Plan, ctx: CloudContext) -> str | None:
        """Make the planned change; may return a summary of what was done."""
        raise NotImplementedError

    def doc(self) -> dict[str, str]:
        """What the docs say: the class's first docstring line, the title, the calls."""
        checks = (type(self).__doc__ or self.title).strip().splitlines()[0]
        return {"checks": checks, "changes": self.title, "runs": self.calls}


def describe(exc: BaseException) -> str:
    """The one message a person reads for a failed step."""
    return str(exc) if isinstance(exc, RunbookError) else gcp.explain(exc)


def run_section(ctx: CloudContext, host: str, section: str, guide: str,
                steps: list[ResourceStep]) -> SectionResult:
    """read -> plan -> (apply) per step; the first failure skips the rest. Never raises for a step."""
    started, calls_before = time.monotonic(), ctx.api.calls
    result = SectionResult(host=host, section=section, dry_run=ctx.dry_run)
    ctx.out.section(host, section, guide, ctx.dry_run)
    failed = False
    for step in steps:
        base = dict(host=host, section=section, guide=step.guide, title=step.title)
        if failed:
            result.steps.append(StepResult(**base, status=SKIPPED))
            continue
        step_started = time.monotonic()
        ctx.out.begin(host, step.guide, step.title)
        record = _one(ctx, step, base)
        record.seconds = round(time.monotonic() - step_started, 3)
        failed = record.status == FAILED
        result.steps.append(record)
        ctx.out.step(record, ctx.dry_run)
    result.seconds = round(time.monotonic() - started, 3)
    result.commands = ctx.api.calls - calls_before
    return result


def _one(ctx: CloudContext, step: ResourceStep, base: dict) -> StepResult:
    plan = None
    try:
        plan = step.plan(step.read(ctx), ctx)
        if plan.error:
            return StepResult(**base, status=FAILED, summary=plan.summary, diff=plan.diff, error=plan.error)
        if not plan.changed:
            return StepResult(**base, status=OK, summary=plan.summary)
        if ctx.dry_run:
            return StepResult(**base, status=CHANGED, summary=plan.summary, diff=plan.diff)
        done = step.apply(plan, ctx)
        return StepResult(**base, status=CHANGED, summary=done or plan.summary, diff=plan.diff)
    except Exception as exc:  # reported as a failed step with an explanation, never a traceback
        return StepResult(**base, status=FAILED, summary=plan.summary if plan else "",
                          diff=plan.diff if plan else "", error=describe(exc))
