"""Putting the application's code on the host: from a local directory or from git.

A local directory is packed into a deterministic tarball (sorted names, fixed times, owners and
modes), so the same tree always has the same bytes. The check does not trust a stamp: the host's
files are listed and hashed in the section's batched fact script and compared, file by file, with
the tarball's manifest (path, type, mode, owner, sha256). What differs, is missing or is extra is
named in the diff.

Which directories are fully managed: every directory the source tree ships (e.g. ``app/``) belongs
to the runbook, so a file there that the tree does not have is removed by a run. The top of the
destination is shared with other steps and with the operator (``.venv``, ``.env``, ``resources/``,
logs), so an unknown entry there is reported and left alone. Python's own byte-code caches
(``__pycache__``, ``*.pyc``) are never counted: the interpreter writes them when it imports.
"""

from __future__ import annotations

import base64
import hashlib
import io
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ..engine.steps import Plan, RunState, Step, q
from ..errors import ConfigError

STAMP = ".l4rb-source"  # the digest of the tree last shipped: for people, the check reads the files
# Never shipped: local state, caches and secrets of the developer's checkout.
EXCLUDE = {".git", ".venv", "venv", "__pycache__", ".env", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
# Written by Python itself next to the code it imports: not drift.
RUNTIME = ("__pycache__", "*.pyc")


def _mode(path: Path) -> int:
    """0755 for directories and executables, 0644 for the rest: the checkout's umask must not matter."""
    if path.is_dir() or path.stat().st_mode & 0o111:
        return 0o755
    return 0o644


def pack(directory: Path) -> bytes:
    """A reproducible .tar.gz of *directory* (same tree, same bytes)."""
    if not directory.is_dir():
        raise ConfigError(f"ai_server.source.path: {directory} is not a directory")
    import tarfile  # only where the tree is packed: not on every import of the sections

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if any(part in EXCLUDE or part.endswith(".pyc") for part in rel.parts):
                continue
            if not (path.is_file() or path.is_dir()) or path.is_symlink():
                continue
            info = tar.gettarinfo(str(path), arcname=str(rel))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = _mode(path)
            if path.is_file():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    # gzip stores a timestamp in its header; zero it so the bytes are reproducible.
    data = bytearray(buf.getvalue())
    data[4:8] = b"\0\0\0\0"
    return bytes(data)


@dataclass(frozen=True)
class Entry:
    """One path of the tree as the host should have it (or has it)."""

    kind: str  # "f" file, "d" directory (find's %y letters)
    mode: int
    sha256: str = ""


def manifest(tarball: bytes) -> dict[str, Entry]:
    """path -> Entry for every member of the shipped tarball."""
    import tarfile

    out: dict[str, Entry] = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.isdir():
                out[member.name] = Entry("d", member.mode & 0o7777)
            elif member.isfile():
                data = tar.extractfile(member).read()
                out[member.name] = Entry("f", member.mode & 0o7777, hashlib.sha256(data).hexdigest())
    return out


def parse_listing(fact: str) -> tuple[bool, dict[str, tuple[Entry, str]], list[str]]:
    """(destination exists, path -> (Entry, "user:group"), top-level names) from the probe's output."""
    if not fact.startswith("#dest"):
        return False, {}, []
    found: dict[str, tuple[Entry, str]] = {}
    sums: dict[str, str] = {}
    top: list[str] = []
    part = ""
    for line in fact.splitlines()[1:]:
        if line.startswith("#") and line[1:] in ("meta", "sha", "top"):
            part = line[1:]
            continue
        if part == "meta" and line.count("|") >= 3:
            kind, mode, owner, path = line.split("|", 3)
            found[path] = (Entry(kind, int(mode, 8)), owner)
        elif part == "sha" and "  " in line:
            digest, path = line.split("  ", 1)
            sums[path] = digest
        elif part == "top" and line:
            top.append(line)
    for path, digest in sums.items():
        if path in found:
            entry, owner = found[path]
            found[path] = (Entry(entry.kind, entry.mode, digest), owner)
    return True, found, top


@dataclass(frozen=True)
class TreeDiff:
    """What a run would change in the tree, and what it only reports."""

    changed: list[str] = field(default_factory=list)  # paths re-extracted (content, mode, owner, missing)
    extra: list[str] = field(default_factory=list)  # in a fully managed directory: removed
    lines: list[str] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)  # at the shared top: reported only


def _runtime(path: str) -> bool:
    return any(part == "__pycache__" or part.endswith(".pyc") for part in path.split("/"))


def compare(want: dict[str, Entry], have: dict[str, tuple[Entry, str]], top: list[str], owner: str,
            known_top: tuple[str, ...]) -> TreeDiff:
    diff = TreeDiff()
    kinds = {"f": "file", "d": "directory", "l": "symlink"}
    for path, entry in sorted(want.items()):
        if path not in have:
            diff.changed.append(path)
            diff.lines.append(f"+ {path}: missing ({kinds[entry.kind]})")
            continue
        got, got_owner = have[path]
        problems = []
        if got.kind != entry.kind:
            problems.append(f"is a {kinds.get(got.kind, got.kind)}, not a {kinds[entry.kind]}")
        elif entry.kind == "f" and got.sha256 != entry.sha256:
            problems.append(f"content differs (sha256 {got.sha256[:12] or '?'} -> {entry.sha256[:12]})")
        if got.mode != entry.mode:
            problems.append(f"mode {got.mode:04o} -> {entry.mode:04o}")
        if got_owner != f"{owner}:{owner}":
            problems.append(f"owner {got_owner} -> {owner}:{owner}")
        if problems:
            diff.changed.append(path)
            diff.lines.append(f"~ {path}: " + "; ".join(problems))
    for path in sorted(have):
        if path not in want and not _runtime(path):
            diff.extra.append(path)
            diff.lines.append(f"- {path}: not in the source tree (removed: {path.rsplit('/', 1)[0]}/ is "
                              "fully managed)")
    shipped_top = {path.split("/", 1)[0] for path in want}
    diff.unmanaged.extend(sorted(n for n in top if n not in shipped_top and n not in known_top))
    return diff


@dataclass(frozen=True, kw_only=True)
class LocalSource(Step):
    """Ship a local directory into *dest*, owned by *owner*; the host's files are compared one by one."""

    source: str
    dest: str
    owner: str
    shown_as: str = ""  # the path as hosts.toml says it, for output and docs
    # Top-level names of *dest* that other steps manage (the venv, .env, ...): not reported as unknown.
    others: tuple[str, ...] = ()

    @cached_property
    def _tarball(self) -> tuple[bytes, str]:
        data = pack(Path(self.source))
        return data, "sha256:" + hashlib.sha256(data).hexdigest()

    @cached_property
    def _manifest(self) -> dict[str, Entry]:
        return manifest(self._tarball[0])

    @property
    def _tops(self) -> list[str]:
        return sorted({path.split("/", 1)[0] for path in self._manifest})

    def probe(self) -> str:
        # One find lists type, mode, owner and path of every shipped top-level entry (recursively);
        # sha256sum hashes its regular files. Byte-code caches are pruned.
        try:
            tops = " ".join(q(t) for t in self._tops)
        except ConfigError:  # reported by plan(), after the host was reached
            return "true"
        prune = r"\( -name __pycache__ -o -name '*.pyc' \) -prune -o"
        return (f"cd {q(self.dest)} 2>/dev/null || exit 0\necho '#dest'\necho '#meta'\n"
                f"find {tops} {prune} -printf '%y|%m|%u:%g|%p\\n'\necho '#sha'\n"
                f"find {tops} {prune} -type f -print0 | xargs -0 -r sha256sum\necho '#top'\n"
                "find . -mindepth 1 -maxdepth 1 -printf '%P\\n'")

    def plan(self, fact: str, state: RunState) -> Plan:
        _, digest = self._tarball
        exists, have, top = parse_listing(fact)
        source = self.shown_as or self.source
        if not exists:
            return Plan(True, f"ship {source} ({digest[:19]})",
                        "".join(f"+ {p}\n" for p in sorted(self._manifest)), data=())
        diff = compare(self._manifest, have, top, self.owner, (*self.others, STAMP))
        note = (f"; not managed, left alone at the top of {self.dest}: {', '.join(diff.unmanaged)}"
                if diff.unmanaged else "")
        if not diff.changed and not diff.extra:
            return Plan(False, f"{len(self._manifest)} paths match {digest[:19]}{note}")
        counts = ", ".join(f"{n} {what}" for n, what in ((len(diff.changed), "to put back"),
                                                           (len(diff.extra), "extra")) if n)
        return Plan(True, f"{self.dest} differs from {source} ({counts}){note}",
                    "".join(line + "\n" for line in diff.lines), data=tuple(diff.extra))

    def script(self, plan: Plan) -> str:
        data, digest = self._tarball
        payload = base64.encodebytes(data).decode()
        dest = q(self.dest)
        owner = q(f"{self.owner}:{self.owner}")
        remove = "".join(f"rm -rf -- {q(self.dest + '/' + path)}\n" for path in (plan.data or ()))
        # Extracted as root with the archive's modes, then exactly the shipped paths are given to the
        # owner (never a chown -R over the venv); extras in fully managed directories are removed.
        return (
            "set -e\nwork=$(mktemp -d)\ntrap 'rm -rf \"$work\"' EXIT\n"
            f"base64 -d > \"$work\"/app.tgz <<'L4RB_EOF'\n{payload}L4RB_EOF\n"
            f"{remove}"
            f"tar -xzf \"$work\"/app.tgz -C {dest} --no-same-owner --same-permissions\n"
            f"tar -tzf \"$work\"/app.tgz | ( cd {dest} && xargs -r -d '\\n' chown -h {owner} -- )\n"
            f"printf '%s\\n' {q(digest)} > {q(self.dest + '/' + STAMP)}\nchown {owner} {q(self.dest + '/' + STAMP)}\n"
        )

    def doc(self) -> dict[str, str]:
        return {
            "checks": f"every file and directory the source ships, in `{self.dest}`: type, mode, owner and sha256, "
                      "listed and hashed on the host (`find -printf`, `sha256sum`) and compared with the "
                      "tarball's manifest",
            "changes": f"application code in `{self.dest}` (from `{self.shown_as or self.source}`); files not "
                       "in the source are removed from the directories it ships (fully managed), and only "
                       f"reported at the top of `{self.dest}`",
            "runs": f"tar -xz -C {self.dest} (a reproducible tarball sent on stdin), chown of the shipped paths",
        }


@dataclass(frozen=True, kw_only=True)
class GitSource(Step):
    """Check out *ref* of *url* into *dest* as *owner*; the commit and git's own view of the tree are the fact."""

    url: str
    ref: str
    dest: str
    owner: str
    others: tuple[str, ...] = ()

    def _as_owner(self, command: str) -> str:
        return f"runuser -u {q(self.owner)} -- {command}"

    @property
    def _pathspec(self) -> str:
        return " ".join(q(f":(exclude){name}") for name in self.others)

    def probe(self) -> str:
        git = self._as_owner(f"git -C {q(self.dest)}")
        return (f"{git} rev-parse HEAD 2>/dev/null || echo NONE\n"
                f"{self._as_owner('git')} ls-remote {q(self.url)} {q(self.ref)} 2>/dev/null | head -1 | cut -f1\n"
                # git itself says which tracked files were edited, deleted or changed mode, and what is untracked.
                f"{git} status --porcelain=v1 --untracked-files=all -- . {self._pathspec} 2>/dev/null")

    def plan(self, fact: str, state: RunState) -> Plan:
        lines = fact.splitlines() + ["", ""]
        head, remote = lines[0].strip(), lines[1].strip()
        status = [line for line in lines[2:] if line.strip()]
        edited = [line for line in status if not line.startswith("??")]
        untracked = [line[3:] for line in status if line.startswith("??")]
        want = remote or self.ref  # a commit id is not listed by ls-remote
        note = f"; untracked, left alone: {', '.join(untracked)}" if untracked else ""
        at_ref = head == want or (len(self.ref) >= 7 and head.startswith(self.ref))
        if at_ref and not edited:
            return Plan(False, f"{self.url}@{self.ref} at {head[:12]}{note}")
        if at_ref:
            return Plan(True, f"{len(edited)} tracked files differ from {head[:12]}{note}",
                        "".join(f"~ {line[3:]}: {line[:2].strip()} (git status)\n" for line in edited))
        return Plan(True, f"check out {self.url}@{self.ref}", f"- HEAD {head}\n+ HEAD {want}\n")

    def script(self, plan: Plan) -> str:
        git = self._as_owner(f"git -C {q(self.dest)}")
        return (
            f"if [ ! -d {q(self.dest + '/.git')} ]; then {git} init -q && {git} remote add origin {q(self.url)}; fi\n"
            f"{git} fetch -q --depth 1 origin {q(self.ref)}\n"
            f"{git} checkout -q --force FETCH_HEAD\n"
            f"{git} reset -q --hard FETCH_HEAD\n"
        )

    def doc(self) -> dict[str, str]:
        return {
            "checks": f"`git rev-parse HEAD` in `{self.dest}` against `git ls-remote {self.url} {self.ref}`, and "
                      "`git status --porcelain` (edited, deleted or re-moded tracked files; untracked files are "
                      "reported and left alone)",
            "changes": f"application code in `{self.dest}` from {self.url}@{self.ref}",
            "runs": self.script(Plan(True)),
        }
