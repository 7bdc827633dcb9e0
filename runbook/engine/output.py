"""What a person sees while the runbook works: one line per step, exact diffs, live progress.

* Text from hosts and files is printed as rich ``Text``, never parsed as markup, so a diff shows
  the bytes that are written (a unit line ending in a backslash keeps its one backslash).
* On a terminal a running step is a live status line (spinner, phase, elapsed time) that its
  result line replaces. Elsewhere (CI logs, pipes) only the result line is printed, plus a start
  line for a step still running after ``long_after`` seconds and a line a minute while it runs,
  so a long wait never looks like a hang and a short step costs one line.
* ``--output json`` streams one JSON object per step result (results.step_record) on stdout;
  the human log then goes to stderr.
* Colours follow rich: off when not a terminal or when NO_COLOR is set. Where rich would see no
  terminal, the lines (plain text, nothing else) are written without importing rich at all: a
  no-op run into a pipe or a CI log does not pay for loading it. Tables (verify, troubleshoot)
  still go through rich, loaded when first printed.

Everything printed passes through mask().
"""

from __future__ import annotations

import atexit
import builtins
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from ..secrets import mask
from .results import CHANGED, FAILED, OK, SKIPPED, SectionResult, StepResult, step_record

if TYPE_CHECKING:
    from rich.console import Console, Group
    from rich.live import Live
    from rich.segment import Segments

STYLE = {OK: "green", CHANGED: "yellow", FAILED: "bold red", SKIPPED: "dim", "would change": "cyan"}


def duration(seconds: float) -> str:
    """`7s`, `1m12s`, `15m`, `1h02m`: short enough for a status line."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s" if secs else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def console(stderr: bool = False) -> Console:
    """The console every task prints through (rich turns colour off for pipes and NO_COLOR)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def _no_terminal(stderr: bool = False) -> bool:
    """True where rich would certainly treat the stream as no terminal (its Console.is_terminal rules:
    TTY_COMPATIBLE=0, or neither TTY_COMPATIBLE=1 nor FORCE_COLOR set and not a tty). Then it prints
    our lines as plain text, exactly what writing them ourselves gives. Jupyter and IDLE go to rich."""
    stream = sys.stderr if stderr else sys.stdout
    if hasattr(builtins, "get_ipython") or getattr(sys.stdin, "__module__", "").startswith("idlelib"):
        return False
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "0"
    if os.environ.get("FORCE_COLOR") is not None:
        return False
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


@dataclass
class _Activity:
    """A step that is running on one host, as its status line shows it."""

    label: str
    host: str = ""
    started: float = field(default_factory=time.monotonic)
    message: str = ""
    limit: float | None = None  # the longest the step may take, when it has a deadline
    quiet: bool = False  # shown live on a terminal, but no start line on a pipe
    announced: float = 0.0  # when its start line was printed (pipes only)
    spinner: Any = None  # rich's Spinner, made when a live region first draws it

    def text(self) -> str:
        """`[host] 3-6   /health on :8001: compiling — 1m12s of up to 15m`"""
        took = duration(time.monotonic() - self.started)
        of = f" of up to {duration(self.limit)}" if self.limit else ""
        return f"{self.label}: {self.message or 'running'} — {took}{of}"


class Output:
    def __init__(self, console: Console | None = None, show_diff: bool = False, progress_every: float = 60.0,
                 long_after: float = 2.0, json_stream: TextIO | None = None, live: bool | None = None):
        # No console given and stdout no terminal: plain lines, rich only if a table is printed.
        self._plain = console is None and not live and _no_terminal()
        self._console = console
        self.show_diff = show_diff
        self.progress_every = progress_every
        self.long_after = long_after
        self.json_stream = json_stream
        if live is None:
            live = not self._plain and self.console.is_terminal and not self.console.is_dumb_terminal
        self.live = live
        self._lock = threading.RLock()  # printing
        self._running: dict[str, _Activity] = {}  # host -> its running step
        self._last_progress: dict[str, float] = {}
        self._live: Live | None = None
        self._ticker: threading.Thread | None = None

    @property
    def console(self) -> Console:
        """rich's console on stdout (made on first use where lines go out plain)."""
        if self._console is None:
            self._console = globals()["console"]()
        return self._console

    # -- plain lines -------------------------------------------------------------------------

    def line(self, text: str, style: str = "") -> None:
        """One line of text, printed as it is (no markup, no tab expansion), secrets masked."""
        with self._lock:
            self._print(mask(text), style)

    def _print(self, text: str, style: str) -> None:
        if self._plain:
            sys.stdout.write(_shown(text) + "\n")
            sys.stdout.flush()
        else:
            self.console.print(exact(text, style), end="", soft_wrap=True, crop=False)

    def info(self, text: str) -> None:
        self.line(text)

    def warn(self, text: str) -> None:
        self.line(f"warning: {text}", "yellow")

    def error(self, text: str) -> None:
        self.line(f"error: {text}", "bold red")

    def section(self, host: str, section: str, guide: str, dry_run: bool) -> None:
        self.line(f"[{host}] {section} (guide §{guide})" + (" — dry run, nothing is changed" if dry_run
                                                             else ""), "bold")

    # -- steps -------------------------------------------------------------------------------

    def begin(self, host: str, guide: str, title: str, quiet: bool = False) -> None:
        """A step starts on *host*: a live status line, or (pipes) a start line if it runs long.

        *quiet* work (reading a section's facts) shows on a terminal only: it has no result line.
        """
        self._running[host] = _Activity(label=f"[{host}] {guide:<5} {title}".rstrip(), host=host, quiet=quiet)
        if self.live:
            self._start_live()
        else:
            self._start_ticker()

    def step(self, result: StepResult, dry_run: bool) -> None:
        """The result line (what changed, once), then the diff, error and hint under it."""
        with self._lock:
            self._running.pop(result.host, None)
            if self.live and not self._running:
                self._stop_live()
            for text, style in result_lines(result, dry_run, self.show_diff):
                self._print(mask(text), style)
            if self.json_stream is not None:
                self.json_stream.write(json.dumps(step_record(result, dry_run)) + "\n")
                self.json_stream.flush()

    def progress(self, host: str, message: str, force: bool = False, limit: float | None = None) -> None:
        """Where a long step is (phase, elapsed, limit): the status line on a terminal.

        Without a terminal it shows in the step's start line and once a minute after it. A message
        outside any step (e.g. a wait between steps) prints at most once per ``progress_every``.
        """
        activity = self._running.get(host)
        if activity is not None:
            activity.message, activity.limit = mask(message), limit or activity.limit
            return
        now = time.monotonic()
        if force or now - self._last_progress.get(host, 0) >= self.progress_every:
            self._last_progress[host] = now
            self.line(f"[{host}] … {message}", "dim")

    # -- long steps: a live region on a terminal, a ticker elsewhere ----------------------------

    def _render(self) -> Group:
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        rows = []
        for activity in list(self._running.values()):
            if activity.spinner is None:
                activity.spinner = Spinner("dots")
            activity.spinner.update(text=Text(activity.text()))
            rows.append(activity.spinner)
        return Group(*rows)

    def _start_live(self) -> None:
        with self._lock:
            if self._live is None:
                from rich.live import Live

                self._live = Live(console=self.console, get_renderable=self._render, transient=True,
                                  refresh_per_second=8, redirect_stdout=False, redirect_stderr=False)
                self._live.start()
                atexit.register(self._stop_live)

    def _stop_live(self) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None

    def _start_ticker(self) -> None:
        with self._lock:
            if self._ticker is None or not self._ticker.is_alive():
                self._ticker = threading.Thread(target=self._tick, daemon=True, name="output-ticker")
                self._ticker.start()

    def _tick(self) -> None:
        """Pipes: a start line for a step running past long_after, then one a minute while it runs."""
        while self._running:
            now = time.monotonic()
            for activity in [a for a in list(self._running.values()) if not a.quiet]:
                due = (activity.started + self.long_after if not activity.announced
                       else activity.announced + self.progress_every)
                if now >= due:
                    with self._lock:  # not after its result line: the step may have just ended
                        if self._running.get(activity.host) is activity:
                            activity.announced = now
                            self.line(activity.text(), "dim")
            time.sleep(0.25)

    def end(self, host: str) -> None:
        """*host* stopped without a result line (it became unreachable): its status line goes."""
        with self._lock:
            self._running.pop(host, None)
            if self.live and not self._running:
                self._stop_live()

    def close(self) -> None:
        self._running.clear()
        self._stop_live()

    # -- the end of a run --------------------------------------------------------------------

    def summary(self, results: list[SectionResult]) -> None:
        """One line per host (its sections' counts together), then the verdict."""
        self.close()
        hosts: dict[str, list[SectionResult]] = {}
        for r in results:
            hosts.setdefault(r.host, []).append(r)
        width = max((len(h) for h in hosts), default=0) + 2
        for host, rs in hosts.items():
            count = {status: sum(r.count(status) for r in rs) for status in (OK, CHANGED, FAILED)}
            changed = "would change" if any(r.dry_run for r in rs) else "changed"
            self.line(f"{f'[{host}]':<{width}} {count[OK]} ok, {count[CHANGED]} {changed}, {count[FAILED]} failed"
                      f" in {len(rs)} section{'s' if len(rs) != 1 else ''} ({duration(sum(r.seconds for r in rs))},"
                      f" {sum(r.commands for r in rs)} remote commands)",
                      STYLE[FAILED] if count[FAILED] else "bold")
        total_changed = sum(r.count(CHANGED) for r in results)
        if any(r.status == FAILED for r in results):
            self.line("FAILED", "bold red")
        elif total_changed == 0:
            self.line("Nothing to change: every step was already as wanted.", "green")


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def exact(text: str, style: str = "") -> Segments:
    """*text* and a newline as one renderable that rich prints byte for byte.

    rich's Text would expand tabs and its markup would read `[...]` and double a trailing
    backslash; segments go out untouched. Only terminal control characters (an escape sequence
    in a log line could rewrite the screen) are shown as `\\xNN` instead.
    """
    from rich.segment import Segment, Segments
    from rich.style import Style

    return Segments([Segment(_shown(text), Style.parse(style) if style else None), Segment.line()])


def _shown(text: str) -> str:
    """Terminal control characters as `\\xNN`: an escape sequence in a log line must not rewrite the screen."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def result_lines(result: StepResult, dry_run: bool, show_diff: bool = False) -> list[tuple[str, str]]:
    """The lines a step result prints, with their styles: the one source for live runs and replays."""
    status = "would change" if dry_run and result.status == CHANGED else result.status
    summary = result.summary if result.summary and result.summary != result.title else ""
    took = f" ({duration(result.seconds)})" if result.seconds >= 2 else ""
    first, *more = summary.split("\n") if summary else [""]
    lines = [(f"[{result.host}] {result.guide:<5} {result.title}: {status}"
              + (f" — {first}" if first else "") + took, STYLE.get(status, ""))]
    lines += [(line, STYLE.get(status, "")) for line in more]
    if result.diff and (dry_run or show_diff):
        for diff_line in result.diff.rstrip("\n").split("\n"):
            style = "green" if diff_line.startswith("+") else "red" if diff_line.startswith("-") else "dim"
            lines.append((f"      {diff_line}", style))
    if result.error:
        lines += [(f"      {err_line}", "red") for err_line in result.error.rstrip().splitlines()]
    if result.hint:
        lines.append((f"      hint: {result.hint}", "yellow"))
    return lines
