"""Waiting for a service to answer, with progress, instead of a blind ``sleep``.

A wait is a step that never changes anything: when the service already answers
(and nothing restarted it) it costs no extra command; otherwise it polls with
tenacity until the deadline and, on timeout, shows the unit's last journal lines.
"""

from __future__ import annotations

import re
import time
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

    def poll_script(self) -> str:
        """Health, the unit's state and restart count, and the current invocation's journal."""
        unit = q(self.unit)
        return (
            f"{self.probe()}\n"
            f"systemctl show -p ActiveState,NRestarts {unit} | tr '\\n' ' '; echo\n"
            f"id=$(systemctl show -p InvocationID --value {unit})\n"
            f"[ -n \"$id\" ] && journalctl _SYSTEMD_INVOCATION_ID=\"$id\" -o cat --no-pager -n 300 2>/dev/null\n"
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
        for pattern, advice in self.failures:
            if re.search(pattern, journal):
                return advice
        return ""

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
        started = time.monotonic()
        last = {"code": "", "why": ""}

        def poll() -> bool:
            code, _, rest = run(self.poll_script()).partition("\n")
            state, _, journal = rest.partition("\n")
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
            phase = self.phase(journal)
            progress(f"waiting for {self.url}: {last['code'] or 'no answer'}"
                     + (f", phase: {phase}" if phase else "")
                     + f" after {time.monotonic() - started:.0f}s (up to {self.timeout}s)")
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
