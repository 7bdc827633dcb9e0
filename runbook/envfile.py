"""One writer for env files, quoting each value for the program that reads the file.

Two readers, two rule sets; a value either reads back exactly or is refused, never written approximately.

- systemd's ``EnvironmentFile=`` (systemd.exec(5)): a double-quoted value is kept verbatim, except that a
  backslash before one of ``"`` ``\\`` `````` ``$`` yields that character (a backslash before anything else
  is kept with it) and a backslash before a newline continues the line. The file must be UTF-8 and may not
  hold NUL or U+FEFF. ``#`` and ``;`` start a comment only at the start of a line.
- python-dotenv (the app's ``load_dotenv``): a single-quoted value is literal except ``\\\\`` and ``\\'``;
  ``${NAME}`` and ``${NAME:-default}`` are expanded in every value, quoted or not, with no escape, so a value
  holding them cannot be written for it at all (python-dotenv's README, "Variable expansion").

Values made only of characters both readers take literally are written bare, as the guide writes them.
"""

from __future__ import annotations

import re

SYSTEMD = "systemd"
DOTENV = "dotenv"
READERS = (SYSTEMD, DOTENV)

KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Read literally, unquoted, by both readers: no quotes, spaces, backslashes, '$', '#', ';' or '%'.
BARE = re.compile(r"^[A-Za-z0-9_.,:/@+=-]*$")
# python-dotenv's expansion syntax (its docs: POSIX ${VAR} and ${VAR:-default}).
DOTENV_EXPANSION = re.compile(r"\$\{[^}:]*(:-[^}]*)?\}")


class Unrepresentable(ValueError):
    """A value that the file's reader would not give back exactly."""


def problem(value: str, reader: str) -> str:
    """Why *value* cannot be written for *reader* ('' when it can)."""
    if reader not in READERS:
        raise ValueError(f"unknown env-file reader {reader!r}")
    if "\0" in value:
        return "contains a NUL character"
    if "\n" in value or "\r" in value:
        return "contains a line break"
    if reader == SYSTEMD and "\ufeff" in value:
        return "contains U+FEFF, which systemd refuses in environment files"
    if reader == DOTENV and DOTENV_EXPANSION.search(value):
        return "contains ${...}, which python-dotenv always expands (there is no way to quote it)"
    return ""


def quote(value: str, reader: str) -> str:
    """*value* as the right-hand side of KEY=..., so that *reader* reads exactly *value*."""
    why = problem(value, reader)
    if why:
        raise Unrepresentable(why)
    if BARE.match(value):
        return value
    if reader == SYSTEMD:
        return '"' + re.sub(r'(["\\`$])', r"\\\1", value) + '"'
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render(pairs: list[tuple[str, str]], reader: str, header: str = "") -> str:
    """A whole env file: an optional comment header, then one KEY=value line per pair."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key, value in pairs:
        if not KEY.match(key):
            raise Unrepresentable(f"{key!r} is not a valid variable name")
        try:
            lines.append(f"{key}={quote(value, reader)}")
        except Unrepresentable as err:
            raise Unrepresentable(f"{key}: {err}") from None
    return "\n".join(lines) + "\n"
