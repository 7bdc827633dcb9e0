"""Waiting for a service to answer, with progress, instead of a blind ``sleep``.

A wait is a step that never changes anything: when the service already answers
(and nothing restarted it) it costs no extra command; otherwise it polls with
tenacity until the deadline and, on timeout, shows the unit's last journal lines.
"""

from __future__ import annotations

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

    def probe(self) -> str:
        return f"curl -s -o /dev/null -w '%{{http_code}}' -m 5 {q(self.url)} 2>/dev/null; echo"

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
        """Poll until healthy; returns (healthy, last answer). *run* executes a script on the host."""
        started = time.monotonic()
        last = {"code": ""}

        def poll() -> bool:
            last["code"] = run(self.probe()).strip()
            progress(f"waiting for {self.url}: {last['code'] or 'no answer'} after "
                     f"{time.monotonic() - started:.0f}s (up to {self.timeout}s)")
            return last["code"] == str(self.expect)

        retrying = Retrying(
            stop=stop_after_delay(self.timeout),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_result(lambda healthy: not healthy),
        )
        try:
            retrying(poll)
        except RetryError:
            return False, last["code"]
        return True, last["code"]
