"""Putting the application's code on the host: from a local directory or from git.

A local directory is packed into a deterministic tarball (sorted names, fixed
times and owners), so the same tree always has the same hash and a re-run
sends nothing. The hash is stamped on the host next to the code.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..engine.steps import Plan, RunState, Step, q
from ..errors import ConfigError

STAMP = ".l4rb-source"
# Never shipped: local state, caches and secrets of the developer's checkout.
EXCLUDE = {".git", ".venv", "venv", "__pycache__", ".env", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def pack(directory: Path) -> bytes:
    """A reproducible .tar.gz of *directory* (same tree, same bytes)."""
    if not directory.is_dir():
        raise ConfigError(f"ai_server.source.path: {directory} is not a directory")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if any(part in EXCLUDE or part.endswith(".pyc") for part in rel.parts):
                continue
            info = tar.gettarinfo(str(path), arcname=str(rel))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if path.is_file():
                with open(path, "rb") as fh:
                    tar.addfile(info, fh)
            elif path.is_dir():
                tar.addfile(info)
    # gzip stores a timestamp in its header; zero it so the bytes are reproducible.
    data = bytearray(buf.getvalue())
    data[4:8] = b"\0\0\0\0"
    return bytes(data)


@dataclass(frozen=True, kw_only=True)
class LocalSource(Step):
    """Ship a local directory into *dest*, owned by *owner*; files not in the tree are left alone."""

    source: str
    dest: str
    owner: str
    shown_as: str = ""  # the path as hosts.toml says it, for output and docs

    @cached_property
    def _tarball(self) -> tuple[bytes, str]:
        data = pack(Path(self.source))
        return data, "sha256:" + hashlib.sha256(data).hexdigest()

    def probe(self) -> str:
        return f"cat {q(self.dest + '/' + STAMP)} 2>/dev/null"

    def plan(self, fact: str, state: RunState) -> Plan:
        _, digest = self._tarball
        have = fact.strip()
        if have == digest:
            return Plan(False, f"code at {digest[:19]}")
        return Plan(True, f"ship {self.shown_as or self.source} ({digest[:19]})",
                    f"- {STAMP}: {have or '(none)'}\n+ {STAMP}: {digest}\n")

    def script(self, plan: Plan) -> str:
        data, digest = self._tarball
        payload = base64.encodebytes(data).decode()
        as_owner = f"runuser -u {q(self.owner)} --"
        # Extracted as the owner, so the files are theirs without a chown -R over the venv.
        return (
            f"base64 -d <<'L4RB_EOF' | {as_owner} tar -xz -C {q(self.dest)} --no-same-owner\n{payload}L4RB_EOF\n"
            f"printf '%s\\n' {q(digest)} | {as_owner} tee {q(self.dest + '/' + STAMP)} >/dev/null\n"
        )

    def doc(self) -> dict[str, str]:
        return {
            "checks": f"the source hash stamped in `{self.dest}/{STAMP}`",
            "changes": f"application code in `{self.dest}` (from `{self.shown_as or self.source}`)",
            "runs": f"tar -xz -C {self.dest} (a reproducible tarball sent on stdin)",
        }


@dataclass(frozen=True, kw_only=True)
class GitSource(Step):
    """Check out *ref* of *url* into *dest* as *owner*; the commit is the fact."""

    url: str
    ref: str
    dest: str
    owner: str

    def _as_owner(self, command: str) -> str:
        return f"runuser -u {q(self.owner)} -- {command}"

    def probe(self) -> str:
        git = self._as_owner(f"git -C {q(self.dest)}")
        return (f"{git} rev-parse HEAD 2>/dev/null || echo NONE\n"
                f"{self._as_owner('git')} ls-remote {q(self.url)} {q(self.ref)} 2>/dev/null | head -1 | cut -f1")

    def plan(self, fact: str, state: RunState) -> Plan:
        lines = (fact.splitlines() + ["", ""])[:2]
        head, remote = lines[0].strip(), lines[1].strip()
        want = remote or self.ref  # a commit id is not listed by ls-remote
        if head == want or (len(self.ref) >= 7 and head.startswith(self.ref)):
            return Plan(False, f"{self.url}@{self.ref} at {head[:12]}")
        return Plan(True, f"check out {self.url}@{self.ref}", f"- HEAD {head}\n+ HEAD {want}\n")

    def script(self, plan: Plan) -> str:
        git = self._as_owner(f"git -C {q(self.dest)}")
        return (
            f"if [ ! -d {q(self.dest + '/.git')} ]; then {git} init -q && {git} remote add origin {q(self.url)}; fi\n"
            f"{git} fetch -q --depth 1 origin {q(self.ref)}\n"
            f"{git} checkout -q --force FETCH_HEAD\n"
        )

    def doc(self) -> dict[str, str]:
        return {
            "checks": f"`git rev-parse HEAD` in `{self.dest}` against `git ls-remote {self.url} {self.ref}`",
            "changes": f"application code in `{self.dest}` from {self.url}@{self.ref}",
            "runs": self.script(Plan(True)),
        }
