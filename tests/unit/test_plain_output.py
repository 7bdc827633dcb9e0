"""Where stdout is no terminal, the lines written without rich are the very bytes rich would write."""

import io

import pytest
from rich.console import Console

from runbook.engine.output import Output
from runbook.engine.results import CHANGED, FAILED, OK, StepResult

LINES = ["[h] 4-1   /app: ok", "unit line ending in a backslash \\", "[bold]not markup[/bold]",
         "tab\there", "escape \x1b[2J and carriage\rreturn", "한국어 ✓"]
RESULTS = [
    StepResult("h", "s", "4-3", "/app/.env", CHANGED, summary="update", diff="--- a\n+++ b\n-old\n+new\n"),
    StepResult("h", "s", "4-6", "/health", FAILED, summary="no answer", error="last lines:\nboom", hint="see B-14"),
    StepResult("h", "s", "4-1", "/app", OK),
]


def _print_all(out: Output) -> None:
    for text in LINES:
        out.line(text, "bold")
    out.warn("careful")
    out.error("broken")
    for result in RESULTS:
        out.step(result, dry_run=False)
    out.summary([])


@pytest.mark.parametrize("env", [{}, {"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}])
def test_plain_lines_are_what_rich_prints_on_a_pipe(capsys, monkeypatch, env):
    for name in ("TTY_COMPATIBLE", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _print_all(Output(show_diff=True))
    plain = capsys.readouterr().out
    buf = io.StringIO()
    _print_all(Output(Console(file=buf, highlight=False, soft_wrap=True, emoji=False), show_diff=True))
    assert plain == buf.getvalue()
    assert "\\x1b[2J" in plain and "[bold]not markup[/bold]" in plain and "      +new" in plain


def test_force_color_keeps_rich(capsys, monkeypatch):
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    out = Output()
    out.line("coloured", "green")
    assert "\x1b[" in capsys.readouterr().out  # rich's colours, as before
