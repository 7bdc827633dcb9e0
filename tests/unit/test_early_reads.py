"""A host's facts are read side by side, never at the cost of a stale read.

On this machine's real shell (LocalTransport): a section's probes run at the same time, every
section's batch goes out at once, and a section whose earlier sections changed something reads
its facts again instead of trusting the batch it sent before those changes.
"""

import io

import pytest
from rich.console import Console

from runbook import cli
from runbook.engine import facts
from runbook.engine.output import Output
from runbook.engine.results import CHANGED, OK
from runbook.engine.steps import Command
from runbook.errors import RunbookError
from runbook.sections import Section
from runbook.transport import LocalTransport


def quiet() -> Output:
    return Output(Console(file=io.StringIO(), width=200, color_system=None))


def test_probes_of_one_batch_run_at_the_same_time_and_answer_in_step_order(tmp_path):
    flag = tmp_path / "flag"
    # The first probe waits (up to 10 s) for a file that only the second probe creates: one after
    # the other it would give up before the second ever ran.
    waits = Command(guide="t", title="waits", run="true",
                    check=f"for i in $(seq 200); do [ -e {flag} ] && exit 0; sleep 0.05; done; exit 1")
    makes = Command(guide="t", title="makes", run="true", check=f"touch {flag}")
    # A probe that reads stdin gets nothing (the script itself arrives on bash's stdin).
    reads_stdin = Command(guide="t", title="stdin", run="true", check='test -z "$(cat)"')
    answers = facts.gather(LocalTransport(), [waits, makes, reads_stdin])
    assert [a.strip() for a in answers] == ["0", "0", "0"]


def test_no_temp_dir_means_no_facts_rather_than_everything_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "does-not-exist"))
    step = Command(guide="t", title="x", run="true", check="true")
    with pytest.raises(RunbookError, match="could not read facts"):
        facts.gather(LocalTransport(), [step])


def _sections(tmp_path):
    """Two sections: the first makes a marker when it is missing, the second checks that marker."""
    marker = tmp_path / "marker"

    def first(cfg, host):
        return [Command(guide="a", title="make marker", check=f"test -e {marker}", run=f"touch {marker}")]

    def second(cfg, host):
        return [Command(guide="b", title="marker seen", check=f"test -e {marker}", run="false")]

    return {"first": Section("first", "a", "first", first), "second": Section("second", "b", "second", second)}


def test_later_section_reads_again_after_an_earlier_one_changed_the_host(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "HOST_SECTIONS", _sections(tmp_path))
    opts = cli.Options(wait=60)
    results = cli.run_on_host(None, LocalTransport(), ["first", "second"], opts, quiet())
    # Its early batch (sent before the marker existed) would have said "missing" and run `false`.
    assert [(r.section, r.status, r.commands) for r in results] == [("first", CHANGED, 2), ("second", OK, 2)]

    again = cli.run_on_host(None, LocalTransport(), ["first", "second"], opts, quiet())
    # Nothing to change: each section used the one batch it sent up front.
    assert [(r.section, r.status, r.commands) for r in again] == [("first", OK, 1), ("second", OK, 1)]
