"""A cgroup of its own for each container when no systemd runs this machine.

With --keep-unit, systemd-nspawn puts the container into "payload" and "supervisor" cgroups below
its own cgroup. Where systemd is PID 1 it allocates a scope per container; without systemd every
nspawn starts in the same cgroup (often "/") and two containers would share "payload", so one
guest's systemd could stop the other's services. We move each nspawn into l4rb/<name> first, in
every hierarchy nspawn uses: the name=systemd v1 hierarchy and the cgroup v2 one.
"""

from __future__ import annotations

from pathlib import Path

SYSFS = Path("/sys/fs/cgroup")


def hierarchies() -> list[Path]:
    """Mount points of the name=systemd and cgroup2 hierarchies on this machine."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, fs = left.split(), right.split()
        if len(fields) < 5 or len(fs) < 3:
            continue
        mount, fstype, options = Path(fields[4]), fs[0], fs[2]
        if fstype == "cgroup2" or (fstype == "cgroup" and "name=systemd" in options.split(",")):
            found.append(mount)
    return found


def create(name: str) -> list[Path]:
    """Make l4rb/<name> in each hierarchy; nspawn's launcher writes its pid into their cgroup.procs."""
    groups = []
    for hierarchy in hierarchies():
        group = hierarchy / "l4rb" / name
        for attempt in range(5):
            try:
                group.mkdir(parents=True, exist_ok=True)
                break
            except FileNotFoundError:  # another host's remove() took away the empty l4rb/ just then
                if attempt == 4:
                    raise
        groups.append(group)
    return groups


def remove(name: str) -> None:
    """Remove the container's cgroups bottom-up once it has exited (empty cgroups only)."""
    for hierarchy in hierarchies():
        group = hierarchy / "l4rb" / name
        if not group.is_dir():
            continue
        for sub in sorted((p for p in group.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _rmdir(sub)
        _rmdir(group)
        _rmdir(group.parent)  # l4rb/ itself, once no host is left


def _rmdir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
