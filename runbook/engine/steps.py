"""Steps are data: what a step reads (its probe), what it wants, what it runs.

The engine gathers every probe of a section in one remote script, compares
each fact with the desired state (a :class:`Plan`, with a diff), and only
then runs the changes. Dry-run, the docs and the real run all read these
same objects, so they cannot disagree.
"""

from __future__ import annotations

import base64
import difflib
import re
import shlex
from dataclasses import dataclass, field

from ..secrets import env_file_diff, mask

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
    # Re-read the fact (one extra command) when one of these units changed, restarted or became
    # ready after the fact was gathered: the batch may predate e.g. a service restart.
    refresh_on: tuple[str, ...] = ()
    # Units this step's change restarts by itself (a command that runs `systemctl restart X`).
    restarts: tuple[str, ...] = ()

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

    def restarted(self, plan: Plan) -> tuple[str, ...]:
        """Units that applying *plan* started or restarted: facts about them read before are stale."""
        return self.restarts

    def watches(self) -> tuple[str, ...]:
        """Units whose restart or readiness makes this step's fact stale."""
        return self.refresh_on


def key_values(fact: str) -> dict[str, str]:
    """``key=value`` lines of a probe (the first ``=`` splits; later lines win)."""
    return dict(line.split("=", 1) for line in fact.splitlines() if "=" in line)


def version_probe(command: str) -> str:
    """Shell printing ``version=<first line the program prints>``; a hung program is cut off."""
    return f"printf 'version=%s\\n' \"$(timeout 10 {command} 2>&1 </dev/null | head -1)\""


def reported_version(line: str, pattern: str) -> str:
    """The version a program reports, by *pattern*'s first group ('' when the line does not match).

    An exit code proves nothing (``/bin/true --version`` exits 0): the line must be the program's own.
    """
    match = re.search(pattern, line)
    return match.group(1).removeprefix("v") if match else ""


# The file's identity as the kernel keeps it: device, inode, size and change time. The change time is set
# by the kernel on every write, chmod, chown or rename and cannot be set back by hand (touch sets mtime).
STAT_KEY = "stat -Lc '%d:%i:%s:%z'"


def sha256_probe(path: str, record: str) -> str:
    """Shell printing ``sha256=<hex>`` of *path*, hashed (or '' when it is missing).

    A speed-up, not a stamp: where *record* (written by :func:`record_sha256_script` right after the
    install) holds exactly the file's current identity, the file has not been touched since it was
    hashed, and the digest recorded then is printed instead of hashing tens of megabytes again.
    """
    return (f"k=$({STAT_KEY} {q(path)} 2>/dev/null)\n"
            f"if [ -n \"$k\" ] && [ \"$(sed -n 's/^key=//p' {q(record)} 2>/dev/null)\" = \"$k\" ]; then\n"
            f"  printf 'sha256=%s\\n' \"$(sed -n 's/^sha256=//p' {q(record)})\"\n"
            f"else printf 'sha256=%s\\n' \"$(sha256sum {q(path)} 2>/dev/null | cut -d' ' -f1)\"; fi")


def record_sha256_script(path: str, record: str) -> str:
    """Shell run right after installing *path*: its identity and digest, for :func:`sha256_probe`."""
    directory = record.rsplit("/", 1)[0] or "/"
    return (f"mkdir -p {q(directory)}\n"
            f"printf 'key=%s\\nsha256=%s\\n' \"$({STAT_KEY} {q(path)})\" \"$(sha256sum {q(path)} | cut -d' ' -f1)\" "
            f"> {q(record + '.new')}\nmv -f {q(record + '.new')} {q(record)}\n")


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
        if current != self.content and self.secret:  # masked by key name on both sides, not only by value
            diff = env_file_diff(self.path, current, self.content)
            changes.append(f"create {self.path}" if current is None else f"update {self.path}")
        elif current != self.content:
            old = [] if current is None else current.splitlines(keepends=True)
            lines = difflib.unified_diff(
                old, self.content.splitlines(keepends=True),
                fromfile="/dev/null" if current is None else self.path, tofile=self.path,
            )
            diff = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
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


# Run by the venv's own interpreter: importlib.metadata is the reader of the installed RECORD files.
# For each name it prints "name<TAB>version<TAB>count of files that are gone or have another size
# than RECORD says<TAB>the first few of them" ("name<TAB>-" when the package is not installed).
RECORD_CHECK = (
    "import importlib.metadata as m,os,sys\n"
    "def bad(f):\n"
    "    try: return os.path.getsize(f.locate())!=f.size\n"
    "    except OSError: return True\n"
    "for n in sys.argv[1:]:\n"
    "    try: d=m.distribution(n)\n"
    "    except m.PackageNotFoundError: print(n+'\\t-'); continue\n"
    "    b=[str(f) for f in d.files or () if f.size is not None and bad(f)]\n"
    "    print('\\t'.join([n,d.version,str(len(b)),' '.join(b[:5])]))\n"
)


@dataclass(frozen=True, kw_only=True)
class PythonPackages(Step):
    """Packages in a venv: installed, at the pinned version, and every file their RECORD lists still there
    with the size it was installed with (a half-deleted package is reinstalled, not trusted)."""

    python: str
    packages: tuple[str, ...]
    install: str  # shell prefix that takes package specs, e.g. "uv pip install --python X"
    # How to force a reinstall of broken packages: "{name}" is replaced per package (uv's
    # --reinstall-package NAME); without it the flags are given once (pip's --force-reinstall --no-deps).
    reinstall: str = "--force-reinstall --no-deps"

    @staticmethod
    def _name(spec: str) -> str:
        for sep in "<>=!~[; @":
            spec = spec.split(sep, 1)[0]
        return spec.strip().lower().replace("_", "-").replace(".", "-")

    def probe(self) -> str:
        names = " ".join(q(self._name(s)) for s in self.packages)
        return f"[ -x {q(self.python)} ] && {q(self.python)} -c {q(RECORD_CHECK)} {names}"

    def plan(self, fact: str, state: RunState) -> Plan:
        have: dict[str, list[str]] = {}
        for line in fact.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                have[self._name(parts[0])] = parts[1:]
        missing, broken, lines = [], [], []
        for spec in self.packages:
            name = self._name(spec)
            got = have.get(name, ["-"])
            pinned = spec.split("==", 1)[1].strip() if "==" in spec else None
            if got[0] == "-":
                missing.append(spec)
                lines.append(f"+ python package {spec}")
            elif pinned and got[0] != pinned:
                missing.append(spec)
                lines.append(f"~ python package {name} {got[0]} -> {pinned}")
            elif len(got) >= 2 and got[1] not in ("", "0"):
                broken.append(spec)
                lines.append(f"~ python package {name} {got[0]}: {got[1]} installed files gone or changed "
                             f"({got[2] if len(got) > 2 else ''}): reinstall")
        summary = "; ".join(filter(None, [missing and f"install {' '.join(missing)}",
                                          broken and f"reinstall {' '.join(broken)} (files gone or changed)"]))
        return Plan(bool(missing or broken), summary, "".join(line + "\n" for line in lines),
                    data=(tuple(missing), tuple(broken)))

    def script(self, plan: Plan) -> str:
        missing, broken = plan.data
        lines = []
        if missing:
            lines.append(f"{self.install} {' '.join(q(s) for s in missing)}")
        if broken:
            if "{name}" in self.reinstall:
                flags = " ".join(self.reinstall.replace("{name}", q(self._name(s))) for s in broken)
            else:
                flags = self.reinstall
            lines.append(f"{self.install} {flags} {' '.join(q(s) for s in broken)}")
        return "\n".join(lines)

    def doc(self) -> dict[str, str]:
        return {
            "checks": f"`{self.python}` finds " + ", ".join(self.packages)
            + " (importlib.metadata), at the pinned version, with every file of their RECORD present at its size",
            "changes": "Python packages " + ", ".join(f"`{p}`" for p in self.packages),
            "runs": self.script(Plan(True, data=(self.packages, ()))),
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

    def restarted(self, plan: Plan) -> tuple[str, ...]:
        return (self.unit,) if {"start", "restart"} & set(plan.data or ()) else self.restarts

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
