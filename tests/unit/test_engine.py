"""The step engine on this machine's real shell: facts, plans, diffs, atomic writes, idempotence."""

import io
import os
import pwd
import stat
from dataclasses import dataclass

from rich.console import Console

from runbook import secrets
from runbook.engine import facts
from runbook.engine.output import Output
from runbook.engine.results import CHANGED, FAILED, OK, SKIPPED
from runbook.engine.runner import run_steps
from runbook.engine.steps import AptPackages, Command, Directory, File, Step, q
from runbook.transport import LocalTransport

ME = pwd.getpwuid(os.getuid()).pw_name


def output() -> tuple[Output, io.StringIO]:
    buf = io.StringIO()
    return Output(Console(file=buf, width=200, color_system=None)), buf


def make_steps(tmp_path, content="hello\n", secret_value="s3cr3t-value"):
    root = str(tmp_path / "app")
    return [
        AptPackages(guide="t", title="bash present", names=("bash",)),
        Directory(guide="t", title="dir", path=root, owner=ME, mode=0o750),
        File(guide="t", title="plain", path=f"{root}/plain.txt", content=content, owner=ME),
        File(
            guide="t",
            title="secret",
            path=f"{root}/.env",
            content=f"KEY={secret_value}\n",
            owner=ME,
            mode=0o600,
            secret=True,
        ),
        Command(guide="t", title="marker", check=f"test -e {root}/marker", run=f"touch {root}/marker"),
    ]


def statuses(result):
    return [s.status for s in result.steps]


def test_first_run_changes_second_run_is_noop_in_one_command(tmp_path):
    secrets.register("s3cr3t-value")
    t = LocalTransport()
    out, buf = output()
    first = run_steps(t, "demo", "0", make_steps(tmp_path), out)
    assert statuses(first) == [OK, CHANGED, CHANGED, CHANGED, CHANGED]
    env = tmp_path / "app" / ".env"
    assert env.read_text() == "KEY=s3cr3t-value\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "app").stat().st_mode) == 0o750
    second = run_steps(t, "demo", "0", make_steps(tmp_path), out)
    assert statuses(second) == [OK] * 5
    assert second.commands == 1  # one batched fact-gathering script, nothing else
    assert "s3cr3t-value" not in buf.getvalue()
    assert not list((tmp_path / "app").glob(".l4rb.*"))  # no temp files left behind


def test_dry_run_shows_unified_diff_and_changes_nothing(tmp_path):
    t = LocalTransport()
    run_steps(t, "demo", "0", make_steps(tmp_path), output()[0])
    before = (tmp_path / "app" / "plain.txt").read_text()
    out, buf = output()
    out_steps = make_steps(tmp_path, content="hello\nworld\n", secret_value="n3w-s3cret")
    secrets.register("n3w-s3cret")
    result = run_steps(t, "demo", "0", out_steps, out, dry_run=True)
    assert statuses(result) == [OK, OK, CHANGED, CHANGED, OK]
    text = buf.getvalue()
    assert "+world" in text and "would change" in text and "dry run" in text
    assert "n3w-s3cret" not in text and "s3cr3t-value" not in text
    assert (tmp_path / "app" / "plain.txt").read_text() == before
    assert result.commands == 1


def test_mode_drift_is_repaired(tmp_path):
    t = LocalTransport()
    run_steps(t, "demo", "0", make_steps(tmp_path), output()[0])
    os.chmod(tmp_path / "app" / ".env", 0o644)
    result = run_steps(t, "demo", "0", make_steps(tmp_path), output()[0])
    assert statuses(result) == [OK, OK, OK, CHANGED, OK]
    assert "mode 0644 -> 0600" in result.steps[3].summary
    assert stat.S_IMODE((tmp_path / "app" / ".env").stat().st_mode) == 0o600


def test_failure_stops_the_section_with_exit_code_and_output(tmp_path):
    t = LocalTransport()
    steps = [
        Command(guide="t", title="boom", check="false", run="echo about to fail; echo details >&2; exit 7"),
        Directory(guide="t", title="never", path=str(tmp_path / "never")),
    ]
    out, buf = output()
    result = run_steps(t, "demo", "0", steps, out, hints={"t": "inv troubleshoot --only B-99"})
    assert statuses(result) == [FAILED, SKIPPED]
    assert "exit code 7" in result.steps[0].error and "details" in result.steps[0].error
    assert "B-99" in buf.getvalue()
    assert not (tmp_path / "never").exists()


@dataclass(frozen=True, kw_only=True)
class Prints(Step):
    """A step whose probe prints a fixed text."""

    text: str

    def probe(self) -> str:
        return f"printf %s {q(self.text)}"


def test_facts_framing_survives_any_probe_output():
    """A probe may print anything (our own marker, NUL bytes, no final newline): the batch still parses."""
    weird = "line\n@@L4RB-FACT tar fake\n@@L4RB-FACT 9 fake\n\x01binary\n\nlast"
    steps = [Prints(guide="t", title="x", text=weird), Prints(guide="t", title="y", text="plain\n")]
    script = facts.batch_script(steps)
    assert script.startswith("set +e")
    assert facts.gather(LocalTransport(), steps) == [weird, "plain\n"]
