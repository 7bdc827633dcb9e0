"""The runner judges a check by facts read after its unit's last restart or readiness, never before.

A fake host stands in for the transport: it keeps a service that takes a few polls to come up after
a start, answers the engine's batch scripts probe by probe, and records every gather, change and
poll in order, so the tests can say which fact each step was judged by.
"""

from __future__ import annotations

import base64
import io
import re
import tarfile
from dataclasses import dataclass

from rich.console import Console

from runbook.engine import facts as facts_mod
from runbook.engine.output import Output
from runbook.engine.results import CHANGED, FAILED, OK
from runbook.engine.runner import run_steps
from runbook.engine.steps import Command, Plan, RunState, Service, Step
from runbook.engine.wait import HttpWait
from runbook.transport import Result, Transport

UNIT = "demo.service"
HEALTH = "http://127.0.0.1:9/health"


def _archive(answers: dict[int, str]) -> str:
    """A batch's answers as the host sends them: a tar archive of one file per probe, in base64."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for index, text in answers.items():
            data = text.encode()
            info = tarfile.TarInfo(f"./{index}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(buf.getvalue()).decode()


@dataclass(frozen=True, kw_only=True)
class ListsModels(Step):
    """A check like guide 3-7: passes only when the service lists its models."""

    def probe(self) -> str:
        return "list-models"

    def plan(self, fact: str, state: RunState) -> Plan:
        if fact.strip() != "base,adapter":
            return Plan(False, "no model list", error=f"got {fact!r}")
        return Plan(False, "2 models")


class FakeHost(Transport):
    """One service on a pretend host; it answers only after *polls_to_ready* health polls once started."""

    def __init__(self, active: bool, polls_to_ready: int = 2) -> None:
        super().__init__(name="fake", login_user="root")
        self.active = active
        self.ready = active
        self.polls_left = 0
        self.polls_to_ready = polls_to_ready
        self.log: list[str] = []

    def _health(self) -> str:
        return "200" if self.ready else "000"

    def _probe(self, probe: str) -> str:
        if probe == "list-models":
            return "base,adapter" if self.ready else ""
        if "is-enabled" in probe:
            return f"enabled\n{'active' if self.active else 'inactive'}\n"
        if "curl" in probe and HEALTH in probe:
            return self._health() + "\n"
        return "1\n"  # a Command's check: not satisfied

    def run(self, script: str, exclusive: bool = False) -> Result:
        self.commands += 1
        if facts_mod.MARK in script:
            # each probe runs in the background into its own file: ( PROBE\n) >"$__l4rb_d/INDEX" ... &
            found = re.findall(r'\( (.*?)\n\) >"\$__l4rb_d/(\d+)" 2>/dev/null </dev/null &', script, re.S)
            probes = [(int(i), p) for p, i in found]
            self.log.append("gather " + ",".join(self._name(p) for _, p in probes))
            return Result(0, f"{facts_mod.MARK} tar {_archive({i: self._probe(p) for i, p in probes})}\n", "")
        if "systemctl restart" in script:
            self.log.append("restart")
            self.active, self.ready, self.polls_left = True, False, self.polls_to_ready
            return Result(0, "", "")
        if "InvocationID" in script:  # a health wait's poll
            self.polls_left -= 1
            if self.polls_left <= 0:
                self.ready = True
            self.log.append(f"poll {self._health()}")
            return Result(0, f"{self._health()}\ninv-1\nActiveState=active NRestarts=0\n", "")
        self.log.append("run " + script.splitlines()[0])
        return Result(0, "", "")

    @staticmethod
    def _name(probe: str) -> str:
        if probe == "list-models":
            return "models"
        if "is-enabled" in probe:
            return "service"
        return "health" if HEALTH in probe else "command"


def out() -> Output:
    return Output(Console(file=io.StringIO(), width=200, color_system=None))


def service() -> Service:
    return Service(guide="t", title="service running", unit=UNIT)


def late() -> list[Step]:
    return [
        HttpWait(guide="t", title="health", url=HEALTH, unit=UNIT, timeout=30),
        ListsModels(guide="t", title="models", refresh_on=(UNIT,)),
    ]


def test_continued_part_reads_the_models_again_once_the_wait_is_over():
    """A stopped service started by the first part is still starting when the late part's batch is read."""
    host = FakeHost(active=False)
    first = run_steps(host, "demo", "t", [service()], out())
    assert [s.status for s in first.steps] == [CHANGED]
    result = run_steps(host, "demo", "t", late(), out(), into=first)
    assert [s.status for s in result.steps] == [CHANGED, OK, OK], result.steps[-1].error
    assert host.log == ["gather service", "restart", "gather health,models", "poll 000", "poll 200",
                        "gather models"]


def test_first_part_reads_again_after_the_restart_it_caused():
    host = FakeHost(active=True)
    change = Command(guide="t", title="config", check="false", run="echo config", notify=(UNIT,))
    result = run_steps(host, "demo", "t", [change, service(), *late()], out())
    assert [s.status for s in result.steps] == [CHANGED, CHANGED, OK, OK], result.steps[-1].error
    # The batch saw the old process answer; both checks after the restart read their facts anew.
    assert host.log == ["gather command,service,health,models", "run echo config", "restart",
                        "gather health", "poll 000", "poll 200", "gather models"]


def test_a_command_that_restarts_the_unit_makes_the_wait_look_again():
    """Like a troubleshoot fix that runs `systemctl restart` itself: the wait must not trust the old 200."""
    host = FakeHost(active=True)
    restart = Command(guide="t", title="restart", check="false", run=f"systemctl restart {UNIT}", restarts=(UNIT,))
    result = run_steps(host, "demo", "t", [restart, *late()], out())
    assert [s.status for s in result.steps] == [CHANGED, OK, OK]
    assert host.log == ["gather command,health,models", "restart", "gather health", "poll 000", "poll 200",
                        "gather models"]


def test_nothing_moved_nothing_read_again():
    host = FakeHost(active=True)
    result = run_steps(host, "demo", "t", [service(), *late()], out())
    assert [s.status for s in result.steps] == [OK, OK, OK]
    assert host.log == ["gather service,health,models"]
    assert result.commands == 1


def test_without_reading_again_the_stale_fact_would_fail():
    """The fake is faithful: the models fact read while the service starts is not a model list."""
    host = FakeHost(active=False)
    run_steps(host, "demo", "t", [service()], out())
    stale = ListsModels(guide="t", title="models")  # watches nothing: judged by the batch
    result = run_steps(host, "demo", "t", [late()[0], stale], out())
    assert [s.status for s in result.steps] == [OK, FAILED]


def test_a_troubleshoot_fix_that_restarts_a_unit_ends_with_its_wait():
    """`--fix` picks a few steps of a section; when they can restart a unit, the section's wait for it follows,
    so "after the fix" is judged once the service answers again."""
    from troubleshoot.fixes import _with_waits

    other = HttpWait(guide="t", title="other health", url="http://127.0.0.1:10/health", unit="other.service")
    section = [Command(guide="t", title="config", check="false", run="echo config", notify=(UNIT,)), service(),
               *late(), other]
    picked = _with_waits([section[0], service()], section)
    assert [s.title for s in picked] == ["config", "service running", "health"]
    restart = Command(guide="t", title="restart", check="false", run=f"systemctl restart {UNIT}", restarts=(UNIT,))
    assert [s.title for s in _with_waits([restart], section)] == ["restart", "health"]
    assert _with_waits([section[0]], section) == [section[0]]  # nothing that restarts: nothing to wait for
    host = FakeHost(active=True)
    result = run_steps(host, "fix", "t", picked, out())
    assert [s.status for s in result.steps] == [CHANGED, CHANGED, OK]
    assert host.log[-3:] == ["gather health", "poll 000", "poll 200"]
