"""Waiting for a service to answer, with progress, instead of a blind ``sleep``.

A wait is a step that never changes anything: when the service already answers
(and nothing restarted it) it costs no extra command; otherwise it polls with
tenacity until the deadline and, on timeout, shows the unit's last journal lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential

from .steps import Plan, RunState, Step, q


@dataclass(frozen=True, kw_only=True)
class HttpWait(Step):
    """GET *url* on the host until it answers *expect*; restarts of *unit* force a fresh check."""

    url: str
    unit: str
    timeout: int = 120
    expect: int = 200
    # (regex, label) read from the unit's journal to show where a slow start is (guide B-12).
    phases: tuple[tuple[str, str], ...] = ()
    # (regex, advice): journal text that means the start failed for a known reason.
    failures: tuple[tuple[str, str], ...] = ()

    def probe(self) -> str:
        return f"curl -s -o /dev/null -w '%{{http_code}}' -m 5 {q(self.url)} 2>/dev/null; echo"

    def poll_script(self, invocations: list[str]) -> str:
        """Health, the unit's invocation, state and restart count, and the journal of its invocations.

        Only invocations seen since the wait began count, so an older crash in the
        journal is never taken for this start's failure.
        """
        unit = q(self.unit)
        matches = " + ".join(f"_SYSTEMD_INVOCATION_ID={q(i)}" for i in invocations)
        current = "_SYSTEMD_INVOCATION_ID=$id" + (f" + {matches}" if matches else "")
        return (
            f"{self.probe()}\n"
            f"id=$(systemctl show -p InvocationID --value {unit}); echo \"$id\"\n"
            f"systemctl show -p ActiveState,NRestarts {unit} | tr '\\n' ' '; echo\n"
            f"[ -n \"$id\" ] && journalctl {current} -o cat --no-pager -n 300 2>/dev/null\n"
        )

    def phase(self, journal: str) -> str:
        """The label of the last phase the journal has reached."""
        reached = ""
        for line in journal.splitlines():
            for pattern, label in self.phases:
                if re.search(pattern, line):
                    reached = label
        return reached

    def known_failure(self, journal: str) -> str:
        """The advice for the first known failure in *journal*, with the line that shows it."""
        for pattern, advice in self.failures:
            for line in journal.splitlines():
                if re.search(pattern, line):
                    return f"{advice}\n      evidence: {line.strip()}"
        return ""

    def watches(self) -> tuple[str, ...]:
        """A wait's fact is about its own unit: a restart of it makes the fact stale."""
        return (*self.refresh_on, self.unit)

    def plan(self, fact: str, state: RunState) -> Plan:
        code = fact.strip()
        if code == str(self.expect) and self.unit not in state.notified:
            return Plan(False, f"{self.url} answers {code}")
        return Plan(False, f"wait for {self.url} (now: {code or 'no answer'})", data="wait")

    def script(self, plan: Plan) -> str:
        return self.probe()

    def journal_script(self, lines: int = 30) -> str:
        return f"journalctl -u {q(self.unit)} -n {lines} --no-pager -o cat 2>&1; systemctl is-active {q(self.unit)}"

    def doc(self) -> dict[str, str]:
        return {
            "checks": f"`curl {self.url}` answers {self.expect}",
            "changes": f"nothing (waits up to {self.timeout}s, polling with backoff)",
            "runs": f"curl -s -o /dev/null -w '%{{http_code}}' {self.url}",
        }

    def wait(self, run: Callable[[str], str], progress: Callable[[str], None]) -> tuple[bool, str]:
        """Poll until healthy; returns (healthy, why not). *run* executes a script on the host.

        Gives up early when the unit failed or restarted with a known error in its journal,
        rather than sitting out the whole timeout on a crash loop.
        """
        last: dict = {"code": "", "why": ""}
        invocations: list[str] = []

        def poll() -> bool:
            code, invocation, state, journal = (run(self.poll_script(invocations)).split("\n", 3) + [""] * 4)[:4]
            if invocation.strip() and invocation.strip() not in invocations:
                invocations.append(invocation.strip())
            last["code"] = code.strip()
            if last["code"] == str(self.expect):
                return True
            restarted = re.search(r"NRestarts=([1-9]\d*)", state)
            advice = self.known_failure(journal)
            if advice or "ActiveState=failed" in state:
                last["why"] = advice or f"{self.unit} failed ({state.strip()})"
                raise _GaveUp()
            if restarted and not self.phases:
                last["why"] = f"{self.unit} keeps restarting ({state.strip()})"
                raise _GaveUp()
            # The status line adds the elapsed time and the limit: "compiling — 1m12s of up to 15m".
            progress(self.phase(journal) or f"waiting for an answer (now: {last['code'] or 'none'})")
            return False

        retrying = Retrying(
            stop=stop_after_delay(self.timeout),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_result(lambda healthy: not healthy),
        )
        try:
            retrying(poll)
        except _GaveUp:
            return False, last["why"]
        except RetryError:
            return False, f"no answer {self.expect} within {self.timeout}s (last: {last['code'] or 'none'})"
        return True, last["code"]


class _GaveUp(Exception):
    """The service failed for a reason waiting longer will not fix."""
