"""A systemd unit as systemd runs it: after its drop-ins, with the file and line that set each value.

Three readers, all systemd's own: ``systemctl show`` for the state (ActiveState, SubState, NRestarts,
ExecMainStatus, the fragment and its drop-in paths); ``busctl --json`` for the properties whose text
form loses information (ExecStart's argv, Environment=, EnvironmentFile=: D-Bus gives them as typed
arrays, see org.freedesktop.systemd1(5)); and the unit's files themselves, printed with their paths,
only to point at the line that sets a value. Nothing here decides what a value is: systemd did.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..engine.steps import q
from .batch import Fact
from .common import key_value, seconds

PROPS = ("LoadState,ActiveState,SubState,Result,NRestarts,InvocationID,ActiveEnterTimestamp,"
         "ExecMainStartTimestamp,ExecMainStatus,ExecMainCode,MainPID,UnitFileState,User,FragmentPath,DropInPaths")
FILE_MARK = "@@L4RB-UNIT-FILE "
BUS_MARK = "@@L4RB-UNIT-BUS "
BUS_PROPS = ("ExecStart", "Environment", "EnvironmentFiles")


def _shell(name: str) -> str:
    n = q(name)
    return (
        f"s=$(systemctl show --timestamp=unix -p {PROPS} {n})\nprintf '%s\\n' \"$s\"; echo NOW=$(date +%s)\n"
        # A unit systemd does not know has no properties or files to read (and LoadUnit would only load a stub).
        "case \"$s\" in *LoadState=not-found*) exit 0;; esac\n"
        # The unit's object path from systemd (LoadUnit loads it when it is not yet), then its typed properties
        # in one call (busctl prints one JSON document per property, in the order asked).
        f"p=$(busctl --json=short call org.freedesktop.systemd1 /org/freedesktop/systemd1 "
        f"org.freedesktop.systemd1.Manager LoadUnit s {n} 2>/dev/null "
        "| sed -n 's/.*\"data\":\\[\"\\([^\"]*\\)\".*/\\1/p')\n"
        "if [ -n \"$p\" ]; then\n"
        f"  busctl --json=short get-property org.freedesktop.systemd1 \"$p\" org.freedesktop.systemd1.Service "
        f"{' '.join(BUS_PROPS)} 2>/dev/null | {{ for prop in {' '.join(BUS_PROPS)}; do IFS= read -r v; "
        f"echo \"{BUS_MARK}$prop $v\"; done; }}\n"
        "fi\n"
        "for f in $(printf '%s\\n' \"$s\" | sed -n 's/^\\(FragmentPath\\|DropInPaths\\)=//p'); do\n"
        f"  [ -f \"$f\" ] && {{ echo \"{FILE_MARK}$f\"; cat \"$f\"; echo; }}\n"
        "done"
    )


@dataclass(frozen=True)
class Setting:
    """Where a unit setting comes from: the file and line (continuation lines joined) and its text."""

    path: str
    line: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def __str__(self) -> str:
        text = self.text if len(self.text) <= 100 else self.text[:97] + "..."
        return f"{self.where}: {text}"


@dataclass(frozen=True)
class Unit:
    name: str
    props: dict[str, str]
    argv: tuple[str, ...] = ()  # ExecStart's argv as systemd holds it (variables not yet expanded)
    environment: dict[str, str] = field(default_factory=dict)  # Environment= entries, in order
    environment_files: tuple[tuple[str, bool], ...] = ()  # (path, missing-ok)
    files: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (path, lines) fragment first, then drop-ins

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

    @property
    def restarts(self) -> int:
        value = self.get("NRestarts")
        return int(value) if value.isdigit() else 0

    @property
    def crash_looping(self) -> bool:
        """systemd is restarting it after failures (auto-restart), or gave up (failed)."""
        return self.get("SubState") == "auto-restart" or self.get("ActiveState") == "failed" or (
            self.restarts > 0 and not self.active)

    @property
    def fragment(self) -> str:
        return self.get("FragmentPath")

    @property
    def dropins(self) -> list[str]:
        return self.get("DropInPaths").split()

    def age(self) -> float | None:
        """Seconds since the unit last became active (or started its main process)."""
        now = seconds("@" + self.get("NOW"))
        started = seconds(self.get("ActiveEnterTimestamp")) or seconds(self.get("ExecMainStartTimestamp"))
        return None if now is None or started is None else max(0.0, now - started)

    def settings_in(self, only: str = "") -> list[Setting]:
        """Every assignment line of the unit's files (of *only* that file, when given), continuation lines
        joined, in the order systemd reads them: the fragment, then the drop-ins."""
        out = []
        for path, lines in self.files:
            if only and path != only:
                continue
            joined, start = "", 0
            for number, raw in enumerate(lines, 1):
                if not joined:
                    start = number
                if raw.rstrip().endswith("\\"):
                    joined += raw.rstrip()[:-1] + " "
                    continue
                text, joined = (joined + raw).strip(), ""
                if re.match(r"[A-Za-z]+\s*=", text):
                    key, _, value = text.partition("=")
                    value = re.sub(r"\s+", " ", value.strip())
                    out.append(Setting(path, start, f"{key.strip()}={value}"))
        return out

    def _assignments(self, key: str) -> list[Setting]:
        return [s for s in self.settings_in() if s.text.startswith(f"{key}=")]

    def source(self, key: str, contains: str = "") -> Setting | None:
        """The line that sets *key* last (an empty `key=` resets the list: then nothing before it counts)."""
        found = None
        for setting in self._assignments(key):
            value = setting.text.split("=", 1)[1].strip()
            if not value:
                found = None
            elif not contains or contains in value:
                found = setting
        return found

    def exec_source(self) -> Setting | None:
        return self.source("ExecStart")

    def env_source(self, variable: str) -> Setting | None:
        """The Environment= line that sets *variable* last."""
        return self.source("Environment", f"{variable}=")

    def extra_dropins(self) -> list[str]:
        return [d for d in self.dropins if d.endswith(".conf")]


def _bus(value: str) -> object:
    try:
        return json.loads(value).get("data")
    except (ValueError, AttributeError):
        return None


def parse(name: str, text: str) -> Unit:
    head, bus, files = [], {}, []
    current: list[str] | None = None
    for line in text.split("\n"):
        if line.startswith(FILE_MARK):
            current = []
            files.append((line[len(FILE_MARK):], current))
        elif line.startswith(BUS_MARK):
            prop, _, value = line[len(BUS_MARK):].partition(" ")
            bus[prop] = _bus(value)
        elif current is not None:
            current.append(line)
        else:
            head.append(line)
    exec_start = bus.get("ExecStart") or []
    argv = tuple(exec_start[-1][1]) if exec_start and isinstance(exec_start[-1], list) else ()
    environment = {}
    for entry in bus.get("Environment") or []:
        key, _, value = str(entry).partition("=")
        environment[key] = value
    env_files = tuple((str(p), bool(ok)) for p, ok in (bus.get("EnvironmentFiles") or []))
    return Unit(name, key_value("\n".join(head)), argv, environment, env_files,
                tuple((p, tuple(lines[:-1] if lines and not lines[-1] else lines)) for p, lines in files))


def unit(name: str) -> Fact:
    """systemd's view of *name*: state, effective ExecStart and environment, and the files behind them."""
    return Fact(f"unit:{name}", _shell(name), parser=lambda text: parse(name, text))


def option_values(argv: tuple[str, ...] | list[str], option: str) -> list[str] | None:
    """The words after *option* up to the next option; None when the option is absent."""
    if option not in argv:
        return None
    out = []
    for word in list(argv)[list(argv).index(option) + 1:]:
        if word.startswith("--"):
            break
        out.append(word)
    return out
