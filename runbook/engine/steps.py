"""Steps are data: what a step reads (its probe), what it wants, what it runs.

The engine gathers every probe of a section in one remote script, compares
each fact with the desired state (a :class:`Plan`, with a diff), and only
then runs the changes. Dry-run, the docs and the real run all read these
same objects, so they cannot disagree.
"""

from __future__ import annotations

import base64
import difflib
import shlex
from dataclasses import dataclass, field

from ..secrets import mask

q = shlex.quote


@dataclass(frozen=True)
class Plan:
    """The outcome of comparing a fact with the desired state."""

    changed: bool
    summary: str = ""
    diff: str = ""
    data: object = None
    error: str = ""  # a check that found the host wrong and cannot repair it itself


@dataclass(frozen=True)
class RunState:
    """What earlier steps of this section did: handlers listen to it."""

    notified: frozenset[str] = frozenset()


@dataclass(frozen=True, kw_only=True)
class Step:
    """One idempotent unit of the guide, e.g. "4-1 create /app/ai-server"."""

    guide: str
    title: str
    notify: tuple[str, ...] = ()
    # Re-read the fact (one extra command) when an earlier step notified one of these:
    # the batch was gathered before that change, e.g. before a service restart.
    refresh_on: tuple[str, ...] = ()

    def probe(self) -> str:
        """Shell that prints the fact; it must not change anything."""
        raise NotImplementedError

    def plan(self, fact: str, state: RunState) -> Plan:
        raise NotImplementedError

    def script(self, plan: Plan) -> str:
        """Shell that makes the change planned."""
        raise NotImplementedError

    def doc(self) -> dict[str, str]:
        """What the docs say: checks, changes, runs (the same strings the run uses)."""
        return {"checks": self.probe().strip(), "changes": self.title, "runs": ""}


def _meta_probe(path: str) -> str:
    return f"stat -c '%F|%U|%G|%a' {q(path)} 2>/dev/null || echo MISSING"


def _meta_diff(path: str, have: list[str], owner: str, group: str, mode: int) -> list[str]:
    changes = []
    if have[1:3] != [owner, group]:
        changes.append(f"{path}: owner {have[1]}:{have[2]} -> {owner}:{group}")
    if int(have[3], 8) != mode:
        changes.append(f"{path}: mode {int(have[3], 8):04o} -> {mode:04o}")
    return changes


@dataclass(frozen=True, kw_only=True)
class Directory(Step):
    path: str
    owner: str = "root"
    group: str = ""
    mode: int = 0o755

    @property
    def _group(self) -> str:
        return self.group or self.owner

    def probe(self) -> str:
        # Through a symbolic link: a link to a directory is a directory to everyone who uses the path.
        return _meta_probe(self.path).replace("stat -c", "stat -L -c", 1)

    def plan(self, fact: str, state: RunState) -> Plan:
        have = fact.strip().split("|")
        if have[0] == "MISSING":
            return Plan(True, f"create {self.path}", f"+ directory {self.path} {self.owner}:{self._group} "
                        f"{self.mode:04o}")
        if have[0] != "directory":
            return Plan(True, f"{self.path} is a {have[0]}, not a directory", "", data="notdir")
        changes = _meta_diff(self.path, have, self.owner, self._group, self.mode)
        return Plan(bool(changes), "; ".join(changes), "\n".join(changes))

    def script(self, plan: Plan) -> str:
        if plan.data == "notdir":
            return f"echo {q(self.path + ' exists and is not a directory; move it away')} >&2; exit 1"
        return f"install -d -o {q(self.owner)} -g {q(self._group)} -m {self.mode:04o} {q(self.path)}"

    def doc(self) -> dict[str, str]:
        return {
            "checks": f"`{self.path}` is a directory, {self.owner}:{self._group}, mode {self.mode:04o}",
            "changes": f"directory `{self.path}`",
            "runs": self.script(Plan(True)),
        }


def write_file_script(path: str, content: bytes, owner: str, group: str, mode: int, validate: str = "") -> str:
    """Atomic write: a 0600 temp file in the same directory, optionally validated, then renamed."""
    payload = base64.encodebytes(content).decode()
    directory, name = path.rsplit("/", 1)
    directory = directory or "/"
    check = ""
    if validate:
        # Validators often care about the file name (systemd-analyze wants *.service).
        command = validate.replace("{path}", '"$vdir"/' + q(name))
        check = (f"vdir=$(mktemp -d)\ncp \"$tmp\" \"$vdir\"/{q(name)}\n"
                 f"( {command} ) || "
                 f"{{ rc=$?; rm -rf \"$vdir\"; echo {q('validation of ' + path + ' failed; file left unchanged')} >&2;"
                 f" exit $rc; }}\nrm -rf \"$vdir\"\n")
    return (
        "set -e\n"
        f"tmp=$(mktemp -p {q(directory)} .l4rb.XXXXXX)\n"
        f"trap 'rm -f \"$tmp\"' EXIT\n"
        f"base64 -d > \"$tmp\" <<'L4RB_EOF'\n{payload}L4RB_EOF\n"
        f"{check}"
        f"chown {q(owner)}:{q(group)} \"$tmp\"\nchmod {mode:04o} \"$tmp\"\n"
        f"mv -f \"$tmp\" {q(path)}\ntrap - EXIT\n"
    )


@dataclass(frozen=True, kw_only=True)
class File(Step):
    """A whole file with owner and mode. ``secret`` files are masked in every diff."""

    path: str
    content: str
    owner: str = "root"
    group: str = ""
    mode: int = 0o644
    secret: bool = False
    # Shell run on a copy with the same base name before the rename; non-zero keeps the old file.
    validate: str = ""

    @property
    def _group(self) -> str:
        return self.group or self.owner

    def probe(self) -> str:
        return f"{_meta_probe(self.path)}\n[ -f {q(self.path)} ] && cat {q(self.path)}"

    def plan(self, fact: str, state: RunState) -> Plan:
        meta, _, current = fact.partition("\n")
        have = meta.split("|")
        if have[0] == "MISSING":
            current = None
        elif have[0] != "regular file" and have[0] != "regular empty file":
            return Plan(True, f"{self.path} is a {have[0]}, not a file", "", data="notfile")
        changes = []
        diff = ""
        if current != self.content:
            old = [] if current is None else current.splitlines(keepends=True)
            lines = difflib.unified_diff(
                old, self.content.splitlines(keepends=True),
                fromfile="/dev/null" if current is None else self.path, tofile=self.path,
            )
            diff = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
            if self.secret:
                diff = mask(diff)
            changes.append(f"create {self.path}" if current is None else f"update {self.path}")
        if current is not None:
            meta_changes = _meta_diff(self.path, have, self.owner, self._group, self.mode)
            changes += meta_changes
            diff += "".join(c + "\n" for c in meta_changes)
        return Plan(bool(changes), "; ".join(changes), diff)

    def script(self, plan: Plan) -> str:
        if plan.data == "notfile":
            return f"echo {q(self.path + ' exists and is not a regular file')} >&2; exit 1"
        return write_file_script(self.path, self.content.encode(), self.owner, self._group, self.mode,
                                 self.validate)

    def doc(self) -> dict[str, str]:
        body = mask(self.content) if self.secret else self.content
        return {
            "checks": f"`{self.path}` content, {self.owner}:{self._group}, mode {self.mode:04o}",
            "changes": f"file `{self.path}`" + (" (secret: contents masked)" if self.secret else ""),
            "runs": "atomic write (temp file in the same directory, then rename)"
            + (f"; validated first with `{self.validate}`" if self.validate else ""),
            "content": body,
        }


@dataclass(frozen=True, kw_only=True)
class AptPackages(Step):
    names: tuple[str, ...]

    def probe(self) -> str:
        return "".join(
            f"printf '%s %s\\n' {q(n)} \"$(dpkg-query -W -f='${{db:Status-Status}}' {q(n)} 2>/dev/null)\"\n"
            for n in self.names
        )

    def plan(self, fact: str, state: RunState) -> Plan:
        installed = {line.split(" ", 1)[0] for line in fact.splitlines() if line.endswith(" installed")}
        missing = [n for n in self.names if n not in installed]
        return Plan(bool(missing), f"install {' '.join(missing)}" if missing else "",
                    "".join(f"+ package {n}\n" for n in missing), data=tuple(missing))

    def script(self, plan: Plan) -> str:
        names = " ".join(q(n) for n in plan.data)
        # A fresh VM's unattended-upgrades may hold the dpkg lock for minutes: wait for it.
        install = ("DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q "
                   f"--no-install-recommends {names}")
        # An interrupted earlier run may have left dpkg half-configured; stale or empty package
        # lists (fresh VMs) get one update and a retry.
        return (f"if [ -n \"$(ls -A /var/lib/dpkg/updates 2>/dev/null)\" ]; then dpkg --configure -a; fi\n"
                f"{install} || {{ apt-get -o DPkg::Lock::Timeout=300 update -q && {install}; }}")

    def doc(self) -> dict[str, str]:
        return {
            "checks": "dpkg status of " + ", ".join(f"`{n}`" for n in self.names),
            "changes": "Debian packages " + ", ".join(f"`{n}`" for n in self.names),
            "runs": self.script(Plan(True, data=self.names)),
        }


@dataclass(frozen=True, kw_only=True)
class Command(Step):
    """A command guarded by a check, like Ansible's ``creates``: runs only if the check fails."""

    check: str
    run: str

    def probe(self) -> str:
        return f"( {self.check} ) >/dev/null 2>&1; echo $?"

    def plan(self, fact: str, state: RunState) -> Plan:
        satisfied = fact.strip() == "0"
        return Plan(not satisfied, "" if satisfied else self.title, "" if satisfied else f"+ run: {self.run}\n")

    def script(self, plan: Plan) -> str:
        return self.run

    def doc(self) -> dict[str, str]:
        return {"checks": f"`{self.check}`", "changes": self.title, "runs": self.run}


@dataclass(frozen=True, kw_only=True)
class PythonPackages(Step):
    """Packages in a venv, checked by name against ``uv pip freeze``."""

    python: str
    packages: tuple[str, ...]
    install: str  # shell prefix that takes package specs, e.g. "uv pip install --python X"
    freeze: str = ""  # shell listing name==version lines; default: uv pip freeze

    @staticmethod
    def _name(spec: str) -> str:
        for sep in "<>=!~[; @":
            spec = spec.split(sep, 1)[0]
        return spec.strip().lower().replace("_", "-").replace(".", "-")

    def probe(self) -> str:
        freeze = self.freeze or f"uv pip freeze --python {q(self.python)}"
        return f"[ -x {q(self.python)} ] && {freeze} 2>/dev/null"

    def plan(self, fact: str, state: RunState) -> Plan:
        have = {}
        for line in fact.splitlines():
            if "==" in line:
                name, version = line.split("==", 1)
                have[self._name(name)] = version.strip()
        missing = []
        for spec in self.packages:
            name = self._name(spec)
            pinned = spec.split("==", 1)[1].strip() if "==" in spec else None
            if name not in have or (pinned and have[name] != pinned):
                missing.append(spec)
        return Plan(bool(missing), f"install {' '.join(missing)}" if missing else "",
                    "".join(f"+ python package {s}\n" for s in missing), data=tuple(missing))

    def script(self, plan: Plan) -> str:
        return f"{self.install} {' '.join(q(s) for s in plan.data)}"

    def doc(self) -> dict[str, str]:
        return {
            "checks": f"`{self.freeze or 'uv pip freeze --python ' + self.python}` lists "
            + ", ".join(self.packages),
            "changes": "Python packages " + ", ".join(f"`{p}`" for p in self.packages),
            "runs": self.script(Plan(True, data=self.packages)),
        }


@dataclass(frozen=True, kw_only=True)
class Service(Step):
    """A systemd unit enabled and running; restarted once if anything it listens to changed."""

    unit: str
    listens: tuple[str, ...] = field(default=())

    def probe(self) -> str:
        return f"systemctl is-enabled {q(self.unit)} 2>/dev/null; systemctl is-active {q(self.unit)} 2>/dev/null"

    def plan(self, fact: str, state: RunState) -> Plan:
        lines = (fact.splitlines() + ["", ""])[:2]
        enabled, active = lines[0].strip(), lines[1].strip()
        restart = any(name in state.notified for name in (self.unit, *self.listens))
        todo = []
        if enabled != "enabled":
            todo.append("enable")
        if active != "active":
            todo.append("start")
        elif restart:
            todo.append("restart")
        return Plan(bool(todo), f"{' + '.join(todo)} {self.unit}" if todo else "",
                    "".join(f"+ systemctl {t} {self.unit}\n" for t in todo), data=tuple(todo))

    def script(self, plan: Plan) -> str:
        # reset-failed clears the restart counter too: crashes from before this restart
        # must not make the next health wait think the new start is crash-looping.
        lines = ["systemctl daemon-reload", f"systemctl reset-failed {q(self.unit)} 2>/dev/null || true"]
        if "enable" in plan.data:
            lines.append(f"systemctl enable {q(self.unit)}")
        if "restart" in plan.data or "start" in plan.data:
            lines.append(f"systemctl restart {q(self.unit)}")
        return "\n".join(lines)

    def doc(self) -> dict[str, str]:
        return {
            "checks": f"`systemctl is-enabled/is-active {self.unit}`",
            "changes": f"`{self.unit}` enabled and running; restarted once when its files change",
            "runs": f"systemctl daemon-reload; systemctl reset-failed {self.unit}; systemctl enable {self.unit}; "
                    f"systemctl restart {self.unit}",
        }
