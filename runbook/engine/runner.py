"""check -> diff -> apply for one section on one host.

Facts come in one batch; each step is then planned against its fact and, if
it must change and this is not a dry run, applied. A changed step notifies
its handlers (a unit file change makes the service restart once). The first
failure stops the host with the command's exit code and last output lines.

A fact is only as fresh as the moment it was gathered, and the batch is
gathered before any step of this part runs. The runner notes each unit that a
step of this part changed, restarted or finished waiting for; a step that
watches such a unit is gathered again before it is judged, so a check never
reads a service from before its last restart or before it became ready.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..errors import RunbookError
from ..transport import Transport
from .facts import gather
from .output import Output
from .results import CHANGED, FAILED, OK, SKIPPED, SectionResult, StepResult
from .steps import Plan, RunState, Step
from .wait import HttpWait


def run_steps(
    transport: Transport,
    section: str,
    guide: str,
    steps: list[Step],
    out: Output,
    dry_run: bool = False,
    hints: dict[str, str] | None = None,
    into: SectionResult | None = None,
    read: Callable[[], list[str]] | None = None,
) -> SectionResult:
    """Run *steps* on *transport*; never raises for a step failure, it is reported.

    *into* continues an earlier part of the same section (its late steps, run after other
    sections so long waits overlap), with the handlers that part notified. Either part
    re-reads a step's fact when a unit it watches moved after the part's batch was read.
    *read* returns the batch of *steps* already sent (one remote command, counted as this
    section's), e.g. side by side with other sections' batches; without it the batch is read here.
    """
    started, commands_before = time.monotonic(), transport.commands - (read is not None)
    result = into or SectionResult(host=transport.name, section=section, dry_run=dry_run)
    elapsed_before, commands_earlier = result.seconds, result.commands
    out.section(transport.name, section + (" (continued)" if into else ""), guide, dry_run)
    out.begin(transport.name, "", f"{section}: reading the host's state", quiet=True)
    try:
        facts = read() if read else gather(transport, steps)
    except RunbookError as err:
        result.steps.append(StepResult(transport.name, section, guide, "gather facts", FAILED, error=str(err)))
        out.step(result.steps[-1], dry_run)
        return _finish(result, started, transport, commands_before, elapsed_before, commands_earlier)
    state = RunState(notified=frozenset(result.notified))
    # Units changed, restarted or newly ready since the batch was read: facts about them are stale.
    moved: set[str] = set()
    failed = False
    for step, fact in zip(steps, facts, strict=True):
        if failed:
            result.steps.append(StepResult(transport.name, section, step.guide, step.title, SKIPPED))
            continue
        step_started = time.monotonic()
        out.begin(transport.name, step.guide, step.title)
        if dry_run and state.notified & set(step.refresh_on):
            # the fact would only be known after the changes above
            record = StepResult(transport.name, section, step.guide, step.title, OK,
                                summary="would check after the changes above")
            result.steps.append(record)
            out.step(record, dry_run)
            continue
        if not dry_run and moved & set(step.watches()):
            try:
                fact = gather(transport, [step])[0]
            except RunbookError as err:
                failed = True
                record = StepResult(transport.name, section, step.guide, step.title, FAILED,
                                    summary="could not read its fact again", error=str(err))
                result.steps.append(record)
                out.step(record, dry_run)
                continue
        plan = step.plan(fact, state)
        record = _apply(transport, step, plan, out, dry_run)
        record.section = section
        record.seconds = round(time.monotonic() - step_started, 3)
        if record.status == FAILED:
            failed = True
            record.hint = (hints or {}).get(step.guide, "")
        if record.status == CHANGED and not dry_run:
            moved |= {*step.notify, *step.restarted(plan)}
        if isinstance(step, HttpWait) and plan.data == "wait" and record.status == OK and not dry_run:
            moved.add(step.unit)  # it became ready just now: what was read while it started is stale
        if record.status == CHANGED and step.notify:
            state = RunState(notified=state.notified | set(step.notify))
        result.steps.append(record)
        out.step(record, dry_run)
    result.notified = sorted(state.notified)
    return _finish(result, started, transport, commands_before, elapsed_before, commands_earlier)


def _apply(transport: Transport, step: Step, plan: Plan, out: Output, dry_run: bool) -> StepResult:
    base = dict(host=transport.name, section="", guide=step.guide, title=step.title)
    if isinstance(step, HttpWait) and plan.data == "wait":
        if dry_run:
            return StepResult(**base, status=OK, summary=f"would {plan.summary}")
        healthy, detail = step.wait(
            lambda script: transport.run(script).stdout,
            lambda message: out.progress(transport.name, message, limit=step.timeout),
        )
        if healthy:
            return StepResult(**base, status=OK, summary=f"{step.url} answers {detail}")
        journal = transport.run(step.journal_script()).stdout
        return StepResult(**base, status=FAILED, summary=f"{step.url}: {detail}",
                          error=f"last lines of the {step.unit} journal:\n{journal}")
    if plan.error:
        return StepResult(**base, status=FAILED, summary=plan.summary, error=plan.error)
    if not plan.changed:
        return StepResult(**base, status=OK, summary=plan.summary)
    if dry_run:
        script = step.script(plan)
        diff = plan.diff or f"+ run: {script}\n"
        return StepResult(**base, status=CHANGED, summary=plan.summary, diff=diff)
    doing = plan.summary if plan.summary != step.title else ""  # the status line shows the title already
    out.progress(transport.name, doing)
    run = _run_with_heartbeat(transport, step.script(plan), out, doing)
    if not run.ok:
        return StepResult(**base, status=FAILED, summary=plan.summary,
                          error=f"exit code {run.rc}; last output:\n{run.tail()}")
    return StepResult(**base, status=CHANGED, summary=plan.summary, diff=plan.diff)


def _run_with_heartbeat(transport: Transport, script: str, out: Output, doing: str, every: float = 15.0):
    """Long installs (apt, pip, builds) keep their status line moving, so a wait never looks like a hang."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(every):
            out.progress(transport.name, doing)

    threading.Thread(target=beat, daemon=True).start()
    try:
        return transport.run(script, exclusive=True)
    finally:
        done.set()


def _finish(result: SectionResult, started: float, transport: Transport, before: int,
            elapsed_before: float = 0.0, commands_earlier: int = 0) -> SectionResult:
    for step in result.steps:
        step.section = result.section
    result.seconds = round(elapsed_before + time.monotonic() - started, 3)
    result.commands = commands_earlier + transport.commands - before
    return result
