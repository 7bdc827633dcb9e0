"""A unit's journal as journald stores it (``journalctl -o json``): time, which start wrote it, message."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..engine.steps import q
from .batch import Fact

# What a failing process writes last: Python tracebacks' final line, argparse's "error:", systemd's own.
ERROR_RE = r"(?i)\b(error|exception|traceback|failed|fatal|invalid|not found|cannot|denied|refused)\b"


@dataclass(frozen=True)
class Line:
    ts: float  # unix seconds
    invocation: str
    message: str


@dataclass(frozen=True)
class Journal:
    lines: tuple[Line, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> Journal:
        """A line of a process that exited at once may lack its invocation id (journald could not read
        its cgroup in time): it belongs to the start logged just before it."""
        lines: list[Line] = []
        for raw in text.splitlines():
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            message = entry.get("MESSAGE", "")
            if isinstance(message, list):  # journald sends non-UTF-8 messages as byte arrays
                message = bytes(b for b in message if isinstance(b, int)).decode("utf-8", "replace")
            invocation = (entry.get("_SYSTEMD_INVOCATION_ID") or entry.get("INVOCATION_ID")
                          or (lines[-1].invocation if lines else ""))
            try:
                ts = int(entry.get("__REALTIME_TIMESTAMP", "0")) / 1e6
            except ValueError:
                ts = 0.0
            lines.append(Line(ts, invocation, str(message or "")))
        return cls(tuple(lines))

    def invocations(self) -> list[str]:
        """Invocation ids in the order the unit was started (oldest first)."""
        return list(dict.fromkeys(line.invocation for line in self.lines if line.invocation))

    def of(self, invocations: list[str]) -> list[Line]:
        wanted = set(invocations)
        return [line for line in self.lines if line.invocation in wanted]

    def recent(self, starts: int = 3) -> list[Line]:
        """Lines of the last *starts* starts of the unit (a crash loop spans several)."""
        return self.of(self.invocations()[-starts:])

    def since_ready(self, ready: str, starts: int = 3) -> list[Line]:
        """Lines of the starts after the last one that got ready (matched *ready*), at most *starts* of them.

        A crash older than the last good start is history: it must not be taken for today's failure.
        """
        ids = self.invocations()
        good = [i for i, inv in enumerate(ids) if any(re.search(ready, line.message) for line in self.of([inv]))]
        after = ids[good[-1] + 1:] if good else ids
        return self.of(after[-starts:])

    def current(self, invocation: str) -> list[Line]:
        return self.of([invocation]) if invocation else []

    def since(self, ts: float) -> list[Line]:
        return [line for line in self.lines if line.ts >= ts]

    def last_crash(self) -> list[Line]:
        """Lines of the newest start that wrote an error line: what the unit's latest crash left behind.

        Older starts may hold another cause's lines (a fault fixed since, then a new one): they must not
        be taken for this crash's cause.
        """
        for invocation in reversed(self.invocations()):
            lines = self.of([invocation])
            if any(re.search(ERROR_RE, line.message) for line in lines):
                return lines
        return []

    def last_errors(self, count: int = 3, starts: int = 2) -> list[Line]:
        """The last lines that read like an error, from the unit's last starts (what a crash left behind)."""
        lines = self.recent(starts) or list(self.lines)
        return [line for line in lines if re.search(ERROR_RE, line.message)][-count:]


def search(lines: list[Line], pattern: str) -> Line | None:
    """The last line matching *pattern* (a regular expression)."""
    regex = re.compile(pattern)
    for line in reversed(lines):
        if regex.search(line.message):
            return line
    return None


def journal(name: str, lines: int = 300) -> Fact:
    """The unit's last lines with their time and invocation (which start of the unit wrote them)."""
    return Fact(f"journal:{name}", f"journalctl -u {q(name)} -n {lines} -o json --no-pager", parser=Journal.parse)
