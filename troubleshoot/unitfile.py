"""Reading a unit's effective ExecStart out of ``systemctl cat`` (fragment plus drop-ins).

Enough of systemd's syntax for the vLLM unit: backslash continuations, comment lines, a drop-in
that resets ExecStart with an empty assignment, and quoting close to the shell's, which is how
systemd splits the command into words.
"""

from __future__ import annotations

import shlex


def exec_start(cat: str) -> str | None:
    """The ExecStart= value systemd runs (the last assignment after any reset); None if there is none."""
    joined, pending = [], ""
    for raw in cat.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    value = None
    for line in joined:
        stripped = line.strip()
        if stripped.startswith(("#", ";")) or not stripped.startswith("ExecStart="):
            continue
        assigned = stripped[len("ExecStart="):].strip()
        value = assigned or None
    return value


def words(command: str) -> list[str]:
    try:
        return shlex.split(command.lstrip("-@:+!"))
    except ValueError:
        return command.split()


def option_values(argv: list[str], option: str) -> list[str] | None:
    """The words after *option* up to the next option; None when the option is absent."""
    if option not in argv:
        return None
    out = []
    for word in argv[argv.index(option) + 1:]:
        if word.startswith("--"):
            break
        out.append(word)
    return out


def has_flag(argv: list[str], flag: str) -> bool:
    return flag in argv
