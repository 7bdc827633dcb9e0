"""Ansible's inputs, rendered from our own step objects.

The playbook never spells a path, a mode or a file body itself: every value comes from the steps
that ``fab deploy`` runs, so the two tools describe the same state byte for byte and neither ever
"fixes" the other's work. A step this module does not know stops the benchmark: a section that
grew a step must grow its Ansible twin before the figures mean anything again.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

from runbook.config import Config
from runbook.engine.steps import AptPackages, Command, Directory, File, Plan, PythonPackages, Service, q
from runbook.engine.wait import HttpWait
from runbook.sections import HOST_SECTIONS
from runbook.sections.app_source import STAMP, LocalSource
from runbook.sections.common import UV_HOME, HostInfo, uv_install_step
from runbook.sections.downloads import VerifiedDownload
from runbook.sections.dropins import SYSTEM_DIRS, DropInsAside
from runbook.sections.metrics_wait import MetricsWait


class Unmapped(Exception):
    """A step of ours that the playbook has no twin for."""


def _mode(mode: int) -> str:
    return f"{mode:04o}"


def _file(step: File, files: Path) -> dict:
    src = files / step.path.strip("/").replace("/", "__")
    # 0600: the .env holds the real secrets for the run.
    fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(step.content.encode())
    return {"src": str(src), "dest": step.path, "owner": step.owner, "group": step.group or step.owner,
            "mode": _mode(step.mode), "secret": step.secret, "validate": _validate(step)}


def _validate(step: File) -> str:
    """Ansible validates a temp file with a random name; systemd-analyze wants the unit's own name."""
    if not step.validate:
        return ""
    name = q(step.path.rsplit("/", 1)[1])
    command = step.validate.replace("{path}", '"$d"/' + name)
    script = f'd=$(mktemp -d) && cp "$1" "$d"/{name} && {{ {command}; }}; rc=$?; rm -rf "$d"; exit $rc'
    return f"sh -c {q(script)} sh %s"


def _steps(name: str, cfg: Config, host: HostInfo) -> list:
    """Every step a deploy runs for the section, its late ones (waits) included."""
    section = HOST_SECTIONS[name]
    late = getattr(section, "late", None)
    return [*section.build(cfg, host), *(late(cfg, host) if late else [])]


def _unpack(step: LocalSource, files: Path) -> str:
    """The very tarball our run ships, unpacked: Ansible copies the same files (same exclusions)."""
    tree = files / "app-source"
    with tarfile.open(fileobj=io.BytesIO(step._tarball[0]), mode="r:gz") as tar:
        tar.extractall(tree, filter="data")
    return str(tree)


def _tree(step: LocalSource) -> dict:
    """The shipped tree as a list (for tools that put file by file) and the directories it fully manages."""
    entries = [{"path": path, "kind": entry.kind, "mode": _mode(entry.mode)}
               for path, entry in sorted(step._manifest.items())]
    managed = sorted(e["path"] for e in entries if e["kind"] == "d" and "/" not in e["path"])
    return {"tree": entries, "managed_dirs": managed}


def _dropins(step: DropInsAside) -> dict:
    """The same drop-in rule for Ansible's find: a .conf line setting a managed key or variable."""
    keys = "|".join(step.keys)
    variables = "|".join(step.variables)
    pattern = rf"^\s*({keys})\s*=|^\s*Environment\s*=.*\b({variables})="
    return {"dirs": [f"{d}{step.unit}.d" for d in SYSTEM_DIRS], "pattern": pattern}


def ai_server(cfg: Config, host: HostInfo, files: Path) -> dict:
    """Vars of roles/ai_server from the steps of section 4."""
    a = cfg.settings.ai_server
    out: dict = {"directories": [], "files": []}
    python, marker = f"{a.dir}/.venv/bin/python", f"{a.dir}/.venv/.l4rb-complete"
    for step in _steps("ai-server", cfg, host):
        if isinstance(step, AptPackages):
            out["apt"] = list(step.names)
        elif step == uv_install_step(cfg):
            out["uv"] = {"home": UV_HOME, "spec": cfg.settings.python.uv_spec, "link": "/usr/local/bin/uv"}
        elif isinstance(step, Directory):
            out["directories"].append({"path": step.path, "owner": step.owner, "group": step.group or step.owner,
                                       "mode": _mode(step.mode)})
        elif isinstance(step, DropInsAside):
            out["dropins"] = _dropins(step)
        elif isinstance(step, LocalSource):
            out["source"] = {"src": _unpack(step, files) + "/", "dest": step.dest, "owner": step.owner,
                             "stamp": f"{step.dest}/{STAMP}", "stamp_content": step._tarball[1] + "\n",
                             **_tree(step)}
        elif isinstance(step, Command) and step.title == f"venv {a.dir}/.venv":
            out["venv"] = {"path": f"{a.dir}/.venv", "python": python, "marker": marker,
                           "check": step.check, "run": step.run}
        elif isinstance(step, PythonPackages):
            out["packages"] = {"python": step.python, "specs": list(step.packages),
                               "names": [step._name(s) for s in step.packages], "install": step.install}
        elif isinstance(step, File):
            out["files"].append(_file(step, files))
        elif isinstance(step, Service):
            out["service"] = step.unit
        elif isinstance(step, HttpWait) and not isinstance(step, MetricsWait):
            out["health"] = {"url": step.url, "timeout": step.timeout, "status": step.expect}
        else:
            raise Unmapped(f"ai-server: no Ansible twin for step {step.guide} {step.title!r}")
    out["owner"] = a.user or host.login_user
    return out


def node_exporter(cfg: Config, host: HostInfo, files: Path) -> dict:
    """Vars of roles/node_exporter from the steps of guide 7-5."""
    out: dict = {"files": []}
    for step in _steps("node-exporter", cfg, host):
        if isinstance(step, AptPackages):
            out["apt"] = list(step.names)
        elif isinstance(step, VerifiedDownload) and step.install == "file":
            out["download"] = {"url": step.url, "checksums_url": step.checksums_url, "sha256": step.sha256,
                               "name": step.url.rsplit("/", 1)[1], "member": step.member, "dest": step.dest,
                               "mode": _mode(step.mode), "stamp_dir": step.stamp_dir, "stamp": step.stamp,
                               # Our own install script (fetch, verify, install, stamp), for tools that run one.
                               "script": step.script(Plan(True))}
        elif isinstance(step, File):
            out["files"].append(_file(step, files))
        elif isinstance(step, Service):
            out["service"] = step.unit
        elif isinstance(step, MetricsWait):
            out["metrics"] = {"url": step.url, "timeout": step.timeout, "series": list(step.series)}
        else:
            raise Unmapped(f"node-exporter: no Ansible twin for step {step.guide} {step.title!r}")
    return out


def write_vars(cfg: Config, host: HostInfo, workdir: Path) -> Path:
    """vars.json (for ``-e @vars.json``) and the files it names, in *workdir* (kept private)."""
    files = workdir / "files"
    files.mkdir(mode=0o700, exist_ok=True)
    data = {"l4rb_ai_server": ai_server(cfg, host, files), "l4rb_node_exporter": node_exporter(cfg, host, files)}
    path = workdir / "vars.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
