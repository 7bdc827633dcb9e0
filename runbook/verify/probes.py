"""The probes verify and troubleshoot share, and the parsers that turn their output into facts.

Probes print machine formats (``systemctl show`` key=value, ``journalctl -o json``, curl's status
code), never text meant for people, so the parsers stay small and the facts exact.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..engine.steps import q
from .batch import Probe

UNIT_PROPS = ("LoadState,ActiveState,SubState,Result,NRestarts,InvocationID,ActiveEnterTimestamp,"
              "ExecMainStartTimestamp,UnitFileState,User,Environment")


def now() -> Probe:
    return Probe("now", "date +%s")


def unit(name: str) -> Probe:
    """systemd's view of a unit, times as unix seconds."""
    return Probe(f"unit:{name}", f"systemctl show --timestamp=unix -p {UNIT_PROPS} {q(name)}; echo NOW=$(date +%s)")


def unit_file(name: str) -> Probe:
    """The unit as systemd reads it: the fragment and its drop-ins."""
    return Probe(f"cat:{name}", f"systemctl cat --no-pager {q(name)}")


def journal(name: str, lines: int = 300) -> Probe:
    """The unit's last lines with their time and invocation (which start of the unit wrote them)."""
    return Probe(f"journal:{name}", f"journalctl -u {q(name)} -n {lines} -o json --no-pager")


def http(url: str, grep: str = "", timeout: int = 5) -> Probe:
    """The status code of GET *url* from the host; then the body's lines matching *grep*, or its start."""
    body = f"grep -oE {q(grep)} \"$b\" | sort -u" if grep else "head -c 4096 \"$b\""
    return Probe(
        f"http:{url}" + (f"|{grep}" if grep else ""),
        f"b=$(mktemp)\ncode=$(curl -s --noproxy '*' -o \"$b\" -w '%{{http_code}}' -m {timeout} {q(url)} 2>/dev/null)\n"
        f"echo \"${{code:-000}} $(wc -c < \"$b\")\"\n{body}\nrm -f \"$b\"",
        timeout=timeout + 5,
    )


def key_value(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def seconds(value: str) -> float | None:
    """'@1700000000' (systemctl --timestamp=unix) -> 1700000000.0; None when unset or unreadable."""
    value = value.strip()
    if value.startswith("@") and value[1:].replace(".", "", 1).isdigit():
        return float(value[1:])
    return None


@dataclass(frozen=True)
class UnitState:
    props: dict[str, str]

    @classmethod
    def parse(cls, text: str) -> UnitState:
        return cls(key_value(text))

    def get(self, key: str) -> str:
        return self.props.get(key, "").strip()

    @property
    def installed(self) -> bool:
        return self.get("LoadState") == "loaded"

    @property
    def active(self) -> bool:
        return self.get("ActiveState") == "active"

    @property
    def state(self) -> str:
        return f"{self.get('ActiveState') or 'unknown'} ({self.get('SubState') or '?'})"

    def age(self) -> float | None:
        """Seconds since the unit last became active (or started its main process)."""
        now = seconds("@" + self.get("NOW"))
        started = seconds(self.get("ActiveEnterTimestamp")) or seconds(self.get("ExecMainStartTimestamp"))
        return None if now is None or started is None else max(0.0, now - started)

    def environment(self) -> dict[str, str]:
        """Environment= of the unit (systemctl prints it space-separated, quoting values with spaces)."""
        out = {}
        for word in re.findall(r'"[^"]*"|\S+', self.get("Environment")):
            word = word.strip('"')
            if "=" in word:
                key, value = word.split("=", 1)
                out[key] = value
        return out


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


def search(lines: list[Line], pattern: str) -> Line | None:
    """The last line matching *pattern* (a regular expression)."""
    regex = re.compile(pattern)
    for line in reversed(lines):
        if regex.search(line.message):
            return line
    return None


@dataclass(frozen=True)
class Http:
    code: str
    size: int
    body: str

    @classmethod
    def parse(cls, text: str) -> Http:
        head, _, body = text.partition("\n")
        parts = head.split()
        code = parts[0] if parts else "000"
        size = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        return cls(code, size, body)

    @property
    def ok(self) -> bool:
        return self.code == "200"

    def describe(self) -> str:
        return f"HTTP {self.code}" if self.code != "000" else "no answer"
