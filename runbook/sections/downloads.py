"""Release downloads that are verified before anything is installed.

The guide installs node_exporter and promtail with a bare ``curl``; we fetch into a private temp
directory, compare the sha256 with the release's own checksum list (and/or a pinned digest), and
only then install, atomically. A mismatch stops the run with both digests and leaves the host as it
was. A stamp records where the installed file came from, the release checksum it was verified
against and the installed file's own digest, so a no-op run needs no network. The check does not
take the stamp's word alone: the file on the host is hashed against the digest recorded at install
time, and the program is asked for its version, which must be the configured one (an older release
put back by hand, or a ``/bin/true`` in its place, is noticed even when the stamp was rewritten).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Literal

from ..engine.steps import (
    Plan,
    RunState,
    Step,
    key_values,
    q,
    record_sha256_script,
    reported_version,
    sha256_probe,
    version_probe,
)

STAMP_DIR = "/var/lib/l4-runbook/downloads"


def archive_kind(url: str) -> str:
    name = url.rsplit("/", 1)[-1].lower()
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    if name.endswith(".zip"):
        return "zip"
    return "file"


def fetch_and_verify_script(url: str, checksums_url: str, sha256: str) -> str:
    """Shell: download *url* into $work/$name and fail loudly unless its sha256 is the expected one."""
    work = '"$work"'
    name = url.rsplit("/", 1)[-1]
    lines = [
        f"name={q(name)}",
        f"curl -fsSL --retry 3 -o {work}/\"$name\" {q(url)} "
        f"|| {{ echo {q('download failed: ' + url)} >&2; exit 1; }}",
        f"got=$(sha256sum {work}/\"$name\" | cut -d' ' -f1)",
    ]
    if checksums_url:
        lines += [
            f"curl -fsSL --retry 3 -o {work}/checksums {q(checksums_url)} "
            f"|| {{ echo {q('could not fetch the checksum list ' + checksums_url + '; nothing was installed')} >&2;"
            " exit 1; }",
            # sha256sum lines: "<hex>  name" or "<hex> *name", possibly with a ./ or a directory.
            f"listed=$(awk -v n=\"$name\" '{{f=$2; sub(/^\\*/, \"\", f); sub(/^.*\\//, \"\", f)}} "
            f"f == n {{print tolower($1); exit}}' {work}/checksums)",
            f"[ -n \"$listed\" ] || {{ echo \"$name is not listed in {checksums_url}: refusing to install an "
            "unverified file; nothing was installed\" >&2; exit 1; }",
            "[ \"$got\" = \"$listed\" ] || { echo \"checksum mismatch for $name: "
            f"{checksums_url} lists $listed, the download is $got. Nothing was installed.\" >&2; exit 1; }}",
        ]
    if sha256:
        lines.append(
            f"[ \"$got\" = {q(sha256)} ] || {{ echo \"checksum mismatch for $name: pinned sha256 {sha256}, "
            "the download is $got. Nothing was installed.\" >&2; exit 1; }"
        )
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, kw_only=True)
class VerifiedDownload(Step):
    """Install *member* of the archive at *url* as *dest* (a file, or a whole tree), verified first."""

    name: str  # stamp name, e.g. "node_exporter"
    url: str
    checksums_url: str = ""
    sha256: str = ""
    member: str = ""  # path inside the archive; for a tree, its top directory
    dest: str
    install: Literal["file", "tree"] = "file"
    # For a tree: the file whose digest stands for the tree (drift check), relative to dest.
    tree_marker: str = ""
    mode: int = 0o755
    stamp_dir: str = STAMP_DIR
    # The version the installed program must report: *version_command* (relative to dest for a tree)
    # prints a line whose *version_pattern* group 1 is *version* (a leading "v" ignored).
    version: str = ""
    version_command: str = ""
    version_pattern: str = ""

    def __post_init__(self) -> None:
        if not (self.checksums_url or self.sha256):
            raise ValueError(f"{self.name}: a download needs a checksum list or a pinned sha256")

    @property
    def stamp(self) -> str:
        return f"{self.stamp_dir}/{self.name}"

    @property
    def _marker(self) -> str:
        return posixpath.join(self.dest, self.tree_marker) if self.install == "tree" else self.dest

    @property
    def _version_command(self) -> str:
        """For a file: dest plus the arguments; for a tree: its first word is a path inside dest."""
        if self.install == "tree":
            program, _, args = self.version_command.partition(" ")
            return f"{q(posixpath.join(self.dest, program))} {args}".strip()
        return f"{q(self.dest)} {self.version_command}"

    def probe(self) -> str:
        return (f"printf 'stamp=%s\\n' \"$(cat {q(self.stamp)} 2>/dev/null)\"\n"
                + sha256_probe(self._marker, self.stamp + ".key")
                + (f"\n{version_probe(self._version_command)}" if self.version_command else ""))

    def plan(self, fact: str, state: RunState) -> Plan:
        facts = key_values(fact)
        stamp = dict(part.split("=", 1) for part in facts.get("stamp", "").split() if "=" in part)
        current = facts.get("sha256", "").strip()
        line = facts.get("version", "").strip()
        reported = reported_version(line, self.version_pattern) if self.version_command else ""
        why = ""
        if not current:
            why = f"install {self.dest} from {self.url}"
        elif not stamp:
            why = f"{self.dest} has no verified origin: reinstall it from {self.url}"
        elif stamp.get("url") != self.url:
            why = f"{self.dest} came from {stamp.get('url')}; install {self.url}"
        elif self.sha256 and stamp.get("sha256") != self.sha256:
            why = f"{self.dest}: pinned sha256 changed; reinstall from {self.url}"
        elif stamp.get("installed") != current:
            why = f"{self.dest} was changed since it was installed; reinstall from {self.url}"
        elif self.version_command and reported != self.version:
            why = (f"{self.dest} reports version {reported or '(none)'}, not {self.version}; "
                   f"reinstall from {self.url}")
        if not why:
            return Plan(False, f"{self.dest} from {self.url} (sha256 {stamp.get('sha256', '')[:12]}"
                        + (f", version {reported})" if self.version_command else ")"))
        have = (f"sha256 {current[:12] or '(none)'}" + (f", installed as {stamp['installed'][:12]}"
                                                         if stamp.get("installed") else "")
                + (f", says {line!r}" if self.version_command else ""))
        return Plan(True, why, f"- {self.dest}: {stamp.get('url', '(unknown origin)')}, {have}\n"
                               f"+ {self.dest}: {self.url}" + (f", version {self.version}" if self.version else "")
                               + "\n")

    def _extract(self) -> str:
        kind = archive_kind(self.url)
        if self.install == "tree":
            return (f"mkdir \"$work\"/tree && tar -xzf \"$work\"/\"$name\" -C \"$work\"/tree\n"
                    f"[ -e \"$work\"/tree/{q(self.member)}/{q(self.tree_marker)} ] "
                    f"|| {{ echo {q(self.member + '/' + self.tree_marker + ' is not in the archive')} >&2; "
                    "exit 1; }\n")
        if kind == "tar.gz":
            get = f"tar -xzOf \"$work\"/\"$name\" {q(self.member)} > \"$work\"/payload"
        elif kind == "zip":
            get = f"unzip -p \"$work\"/\"$name\" {q(self.member)} > \"$work\"/payload"
        else:
            get = "cp \"$work\"/\"$name\" \"$work\"/payload"
        return (f"{get} && [ -s \"$work\"/payload ] "
                f"|| {{ echo {q(self.member + ' is not in the archive ' + self.url)} >&2; exit 1; }}\n")

    def _place(self) -> str:
        dest = q(self.dest)
        if self.install == "tree":
            return (f"rm -rf {dest}.l4rb-old; [ -e {dest} ] && mv {dest} {dest}.l4rb-old\n"
                    f"mv \"$work\"/tree/{q(self.member)} {dest} && rm -rf {dest}.l4rb-old\n")
        return (f"install -D -m {self.mode:04o} -o root -g root \"$work\"/payload {q(self.dest + '.l4rb-new')}\n"
                f"mv -f {q(self.dest + '.l4rb-new')} {dest}\n")

    def script(self, plan: Plan) -> str:
        return (
            "set -e\n"
            "work=$(mktemp -d /var/tmp/l4rb-download.XXXXXX)\n"
            "trap 'rm -rf \"$work\"' EXIT\n"
            + fetch_and_verify_script(self.url, self.checksums_url, self.sha256)
            + self._extract()
            + self._place()
            + f"mkdir -p {q(self.stamp_dir)}\n"
            f"printf 'url=%s sha256=%s installed=%s\\n' {q(self.url)} \"$got\" "
            f"\"$(sha256sum {q(self._marker)} | cut -d' ' -f1)\" > {q(self.stamp + '.new')}\n"
            f"mv -f {q(self.stamp + '.new')} {q(self.stamp)}\n"
            + record_sha256_script(self._marker, self.stamp + ".key")
        )

    def doc(self) -> dict[str, str]:
        against = " and ".join(filter(None, [self.checksums_url and f"the list at {self.checksums_url}",
                                             self.sha256 and f"the pinned sha256 {self.sha256}"]))
        return {
            "checks": f"`{self.stamp}` (origin, release checksum and installed digest of `{self.dest}`) against "
                      f"`sha256sum {self._marker}`"
                      + (f"; `{self._version_command}` must report version {self.version}"
                         if self.version_command else ""),
            "changes": f"`{self.dest}` from {self.url}",
            "runs": f"curl to a temp dir; sha256 checked against {against}; nothing installed on a mismatch; "
                    "then an atomic install",
        }
