"""Paths as the host has them: type, owner, group and mode (``stat``), and whether a user may use them."""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.steps import q
from .batch import Fact
from .common import as_user

USER = '"$u"'  # the shell variable the probe sets to the user


@dataclass(frozen=True)
class PathInfo:
    path: str
    kind: str = "missing"  # "directory", "regular file", "symbolic link", ... or "missing"
    owner: str = ""
    group: str = ""
    mode: str = ""
    target_kind: str = ""  # what a symbolic link points at (stat -L), "missing" for a dangling link
    user_ok: bool | None = None  # the access asked for by *user* works (None: not asked)
    user: str = ""  # whom the access was tried as

    @property
    def exists(self) -> bool:
        return self.kind != "missing"

    @property
    def is_dir(self) -> bool:
        return self.kind == "directory" or (self.kind == "symbolic link" and self.target_kind == "directory")

    def describe(self) -> str:
        if not self.exists:
            return f"{self.path}: missing"
        return f"{self.path}: {self.kind}, {self.owner}:{self.group}, mode {self.mode}"


def parse(path: str, text: str) -> PathInfo:
    lines = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    parts = lines.get("stat", "missing").split("|")
    if parts == ["missing"] or len(parts) < 4:
        return PathInfo(path)
    access = {"yes": True, "no": False}.get(lines.get("access", ""))
    return PathInfo(path, parts[0], parts[1], parts[2], parts[3], lines.get("target", ""), access,
                    lines.get("user", ""))


def path_info(path: str, user: str = "", access: str = "-r", unit: str = "") -> Fact:
    """stat of *path*; with *user* (or *unit*: its User= as systemd reports it, root when unset), whether
    `test ACCESS` passes as that user (-r read, -w write): the service's own view of the file."""
    p = q(path)
    shell = (f"echo \"stat=$(stat -c '%F|%U|%G|%a' {p} 2>/dev/null || echo missing)\"\n"
             f"echo \"target=$(stat -L -c '%F' {p} 2>/dev/null || echo missing)\"")
    if unit:
        shell += f"\nu=$(systemctl show -p User --value {q(unit)} 2>/dev/null); u=${{u:-root}}"
    elif user:
        shell += f"\nu={q(user)}"
    if unit or user:
        shell += (f"\necho \"user=$u\"\n{as_user(USER)}test {access} {p} 2>/dev/null && echo access=yes "
                  "|| echo access=no")
    return Fact(f"path:{path}|{user or unit}|{access}", shell, parser=lambda text: parse(path, text))
