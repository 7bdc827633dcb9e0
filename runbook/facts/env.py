"""Environment files read by their real readers: systemd for a unit's EnvironmentFile=, python-dotenv
for the app's ``.env``.

systemd: the unit's EnvironmentFile= list (from its D-Bus property) is handed to a transient unit
(``systemd-run --pipe``) whose process prints its environment, so the values are what systemd itself
parsed (its quoting, comments only at line start, a trailing ``# note`` kept in the value, ...).
Environment= entries come first and the files override them (systemd.exec(5), EnvironmentFile=).

python-dotenv: the file's bytes come back in the batch and ``dotenv_values`` parses them on the
controller, the same function the app's ``load_dotenv`` uses (``export KEY=...``, quotes, comments).

Secret values never stay in a fact: they become a :class:`Secret` (set or empty, and a digest to
compare two of them) the moment they are parsed.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field

from dotenv import dotenv_values

from ..engine.steps import q
from .batch import Fact
from .common import as_user, key_value

SECRET_RE = re.compile(r"(?i)(KEY|TOKEN|SECRET|PASSWORD|OCR_API)")
ENV_MARK = "@@L4RB-ENV"


@dataclass(frozen=True)
class Secret:
    """A secret value as far as checks need it: whether it is empty, and a digest to compare with."""

    digest: str
    empty: bool

    @classmethod
    def of(cls, value: str) -> Secret:
        return cls(hashlib.sha256(value.encode()).hexdigest(), value == "")

    def __str__(self) -> str:
        return "(empty)" if self.empty else "(set)"


Value = str | Secret | None


def _guard(values: dict[str, str | None]) -> dict[str, Value]:
    return {k: (Secret.of(v or "") if SECRET_RE.search(k) else v) for k, v in values.items()}


@dataclass(frozen=True)
class EnvView:
    """The variables a reader ends up with, and where that reading failed (empty: it did not)."""

    values: dict[str, Value] = field(default_factory=dict)
    error: str = ""
    files: tuple[str, ...] = ()
    lines: dict[str, str] = field(default_factory=dict)  # variable -> "file:line" of its last assignment

    def get(self, key: str) -> Value:
        return self.values.get(key)

    def has(self, key: str) -> bool:
        return key in self.values

    def where(self, key: str) -> str:
        return self.lines.get(key, "")


# -- systemd -----------------------------------------------------------------------------------------------

def _systemd_shell(unit: str) -> str:
    n = q(unit)
    return (
        "args=()\n"
        # `systemctl show` prints each EnvironmentFile= as "PATH (ignore_errors=yes|no)".
        f"while IFS= read -r f; do p=${{f% (ignore_errors=*}}; case \"$f\" in *ignore_errors=yes*) p=\"-$p\";; esac; "
        "echo \"file=$p\"; args+=(-p \"EnvironmentFile=$p\"); "
        # Where each variable is assigned (file:line), secret values blanked: for evidence, not for values.
        "grep -nE '^[[:space:]]*[A-Za-z_][A-Za-z0-9_.]*[[:space:]]*=' \"${p#-}\" 2>/dev/null | "
        "sed -E 's/^([0-9]+):[[:space:]]*([A-Za-z_][A-Za-z0-9_.]*)[[:space:]]*=.*/\\2 \\1/' "
        "| while read -r k n; do echo \"line=$k ${p#-}:$n\"; done; "
        f"done < <(systemctl show -p EnvironmentFiles --value {n} | grep .)\n"
        "[ ${#args[@]} -gt 0 ] || exit 0\n"
        "e=$(mktemp)\n"
        "systemd-run --quiet --pipe --wait --collect \"${args[@]}\" /usr/bin/env -0 >\"$e.out\" 2>\"$e\"\n"
        "echo \"rc=$?\"; echo \"error=$(tr '\\n' ' ' < \"$e\")\"\n"
        f"echo {ENV_MARK}; cat \"$e.out\"; rm -f \"$e\" \"$e.out\""
    )


def parse_systemd(text: str) -> EnvView:
    head, _, body = text.partition(ENV_MARK + "\n")
    facts = key_value(head)
    files = tuple(line[5:] for line in head.splitlines() if line.startswith("file="))
    values = {}
    for entry in body.split("\0"):
        key, sep, value = entry.partition("=")
        if sep and key:
            values[key] = value
    error = "" if facts.get("rc", "0") == "0" else (facts.get("error", "").strip() or f"exit {facts.get('rc')}")
    lines = {}
    for line in head.splitlines():
        if line.startswith("line="):
            key, _, where = line[5:].partition(" ")
            lines[key] = where
    return EnvView(_guard(values), error, files, lines)


def unit_env_files(unit: str) -> Fact:
    """The variables systemd loads from *unit*'s EnvironmentFile= list, as systemd parses them."""
    return Fact(f"envfiles:{unit}", _systemd_shell(unit), timeout=20, parser=parse_systemd)


def unit_environment(unit_fact, files: EnvView) -> EnvView:
    """The unit's whole environment: its Environment= entries, overridden by its files (systemd.exec(5))."""
    values: dict[str, Value] = dict(_guard(dict(unit_fact.environment)))
    values.update(files.values)
    return EnvView(values, files.error, files.files, files.lines)


# -- python-dotenv -----------------------------------------------------------------------------------------

DOTENV_MARK = "@@L4RB-DOTENV"


def _dotenv_shell(path: str, user: str) -> str:
    p = q(path)
    return (
        f"echo \"stat=$(stat -c '%U|%G|%a' {p} 2>/dev/null || echo missing)\"\n"
        + (f"{as_user(q(user))}test -r {p} 2>/dev/null && echo readable=yes || echo readable=no\n" if user
           else "")
        + f"echo {DOTENV_MARK}; cat {p} 2>/dev/null"
    )


@dataclass(frozen=True)
class DotEnv:
    path: str
    exists: bool
    owner: str = ""
    group: str = ""
    mode: str = ""
    readable_by_user: bool | None = None  # None: not asked
    view: EnvView = field(default_factory=EnvView)


def parse_dotenv(path: str, text: str) -> DotEnv:
    head, _, body = text.partition(DOTENV_MARK + "\n")
    facts = key_value(head)
    stat = facts.get("stat", "missing")
    if stat == "missing":
        return DotEnv(path, False)
    owner, group, mode = (stat.split("|") + ["", "", ""])[:3]
    readable = {"yes": True, "no": False}.get(facts.get("readable", ""))
    values = dotenv_values(stream=io.StringIO(body))
    return DotEnv(path, True, owner, group, mode, readable, EnvView(_guard(dict(values)), files=(path,)))


def dotenv_file(path: str, user: str = "") -> Fact:
    """*path* as python-dotenv reads it, with its owner and mode and whether *user* can read it."""
    return Fact(f"dotenv:{path}|{user}", _dotenv_shell(path, user), parser=lambda text: parse_dotenv(path, text))


# -- a running process -------------------------------------------------------------------------------------

def _process_shell(unit: str) -> str:
    n = q(unit)
    return (f"pid=$(systemctl show -p MainPID --value {n})\n"
            "[ \"${pid:-0}\" != 0 ] && cat /proc/$pid/environ 2>/dev/null\ntrue")


def parse_process(text: str) -> EnvView:
    values = {}
    for entry in text.split("\0"):
        key, sep, value = entry.partition("=")
        if sep and key:
            values[key] = value
    return EnvView(_guard(values))


def process_environment(unit: str) -> Fact:
    """The environment *unit*'s main process runs with now (/proc/PID/environ): what systemd passed when
    it last started it, which differs from the files until the next restart. Empty when not running."""
    return Fact(f"procenv:{unit}", _process_shell(unit), parser=parse_process)
