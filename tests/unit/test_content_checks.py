"""Content checks run for real here: probes in bash, plans from their output, repairs applied.

The app tree against its manifest, a download's version banner, uv against its RECORD, and a venv
package's installed files: each is broken by hand and must be seen (and, where the step repairs it,
put back) without trusting a stamp or an exit code.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from runbook.engine.steps import PythonPackages, RunState, reported_version
from runbook.sections.app_source import LocalSource, manifest, pack
from runbook.sections.common import UV_HOME, UV_LINK, UvInstalled, record_sha256
from runbook.sections.downloads import VerifiedDownload

ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="installs files owned by root")


def run(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True)


def plan_of(step):
    return step.plan(run(step.probe()).stdout, RunState())


def test_pack_is_reproducible_and_modes_do_not_follow_the_umask(tmp_path):
    src = tmp_path / "src"
    (src / "app").mkdir(parents=True)
    (src / "app/main.py").write_text("x = 1\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "app/main.py", 0o600)
    os.chmod(src / "run.sh", 0o700)
    (src / "app/__pycache__").mkdir()
    (src / "app/__pycache__/main.cpython-311.pyc").write_bytes(b"\0")
    first = pack(src)
    assert first == pack(src)
    got = manifest(first)
    assert set(got) == {"app", "app/main.py", "run.sh"}
    assert (got["app"].mode, got["app/main.py"].mode, got["run.sh"].mode) == (0o755, 0o644, 0o755)
    assert got["app/main.py"].sha256 == hashlib.sha256(b"x = 1\n").hexdigest()


@ROOT_ONLY
def test_app_tree_is_compared_file_by_file_and_put_back(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "app").mkdir(parents=True)
    (src / "app/main.py").write_text("print('hello')\n")
    (src / "app/__init__.py").write_text("")
    (src / "pyproject.toml").write_text("[project]\nname = 'app'\n")
    dest.mkdir()
    step = LocalSource(guide="t", title="t", source=str(src), dest=str(dest), owner="root", others=(".venv",))

    fresh = plan_of(step)
    assert fresh.changed and "+ app/main.py: missing" in fresh.diff
    assert run(step.script(fresh)).returncode == 0
    assert not plan_of(step).changed

    # Python's own caches and the names other steps own are not drift.
    (dest / "app/__pycache__").mkdir()
    (dest / "app/__pycache__/main.cpython-311.pyc").write_bytes(b"\0")
    (dest / ".venv").mkdir()
    assert not plan_of(step).changed

    with open(dest / "app/main.py", "a") as fh:
        fh.write("# hotfix\n")
    (dest / "app/__init__.py").unlink()
    (dest / "app/extra.py").write_text("")
    os.chmod(dest / "pyproject.toml", 0o600)
    os.chown(dest / "app", 65534, 65534)
    (dest / "NOTES.txt").write_text("mine")
    broken = plan_of(step)
    assert broken.changed
    assert "~ app/main.py: content differs" in broken.diff
    assert "+ app/__init__.py: missing (file)" in broken.diff
    assert "- app/extra.py: not in the source tree (removed: app/ is fully managed)" in broken.diff
    assert "~ pyproject.toml: mode 0600 -> 0644" in broken.diff
    assert "~ app: owner nobody:nogroup -> root:root" in broken.diff
    assert "left alone at the top of" in broken.summary and "NOTES.txt" in broken.summary
    assert ".venv" not in broken.summary

    assert run(step.script(broken)).returncode == 0
    after = plan_of(step)
    assert not after.changed, after.diff
    assert (dest / "app/main.py").read_text() == "print('hello')\n" and not (dest / "app/extra.py").exists()
    assert (dest / "NOTES.txt").read_text() == "mine" and (dest / ".venv").is_dir()


def _release(tmp_path: Path, version: str) -> tuple[Path, str]:
    folder = tmp_path / f"rel-{version}/tool-{version}"
    folder.mkdir(parents=True)
    (folder / "tool").write_text(f"#!/bin/sh\necho 'tool, version {version} (branch: main)'\n")
    (folder / "tool").chmod(0o755)
    archive = tmp_path / f"tool-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=f"tool-{version}")
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


@ROOT_ONLY
def test_a_download_must_report_its_version_even_with_a_forged_stamp(tmp_path):
    archive, digest = _release(tmp_path, "2.0.1")
    older, _ = _release(tmp_path, "1.9.9")
    dest = tmp_path / "bin/tool"
    step = VerifiedDownload(guide="t", title="t", name="tool", url=f"file://{archive}", sha256=digest,
                            member="tool-2.0.1/tool", dest=str(dest), stamp_dir=str(tmp_path / "stamps"),
                            version="2.0.1", version_command="--version", version_pattern=r"^tool, version (\S+)")
    assert run(step.script(plan_of(step))).returncode == 0
    quiet = plan_of(step)
    assert not quiet.changed and "version 2.0.1" in quiet.summary

    shutil.copy("/bin/true", dest)  # exits 0 to --version, with its own banner
    replaced = plan_of(step)
    assert replaced.changed and "changed since it was installed" in replaced.summary
    assert "says 'true (GNU coreutils)" in replaced.diff

    # The older release, with the stamp rewritten to its digest: only its own banner gives it away.
    with tarfile.open(older) as tar:
        dest.write_bytes(tar.extractfile("tool-1.9.9/tool").read())
    stamp = tmp_path / "stamps/tool"
    new_sha = hashlib.sha256(dest.read_bytes()).hexdigest()
    stamp.write_text(" ".join(p if not p.startswith("installed=") else f"installed={new_sha}"
                              for p in stamp.read_text().split()) + "\n")
    forged = plan_of(step)
    assert forged.changed and "reports version 1.9.9, not 2.0.1" in forged.summary
    assert run(step.script(forged)).returncode == 0 and not plan_of(step).changed


def test_version_banners():
    assert reported_version("node_exporter, version 1.9.0 (branch: x, revision: 1.5.0-1)",
                            r"^node_exporter, version (\S+)") == "1.9.0"
    assert reported_version("alloy, version v1.10.2 (branch: x)", r"^alloy, version (\S+)") == "1.10.2"
    assert reported_version("go version go1.24.4 linux/amd64", r"^go version go(\S+)") == "1.24.4"
    assert reported_version("", r"^uv (\S+)") == ""


def _uv_fact(link: str, sha: str, version: str, record_sha: str) -> str:
    b64 = base64.urlsafe_b64encode(bytes.fromhex(record_sha)).decode().rstrip("=")
    return (f"link={link}\nsha256={sha}\nversion={version}\ndist=uv-0.8.3.dist-info\n"
            f"record=../../../bin/uv,sha256={b64},123\n")


def test_uv_is_checked_against_its_record_and_banner():
    step = UvInstalled(guide="t", title="t", spec="uv")
    good_sha = hashlib.sha256(b"uv").hexdigest()
    true_sha = hashlib.sha256(b"true").hexdigest()
    binary = f"{UV_HOME}/bin/uv"
    assert record_sha256(f"x,sha256={base64.urlsafe_b64encode(bytes.fromhex(good_sha)).decode().rstrip('=')},1") \
        == good_sha
    assert not step.plan(_uv_fact(binary, good_sha, "uv 0.8.3 (abc 2025-01-01)", good_sha), RunState()).changed
    # /bin/true linked in: the exit code would pass, the link, digest and banner do not.
    swapped = step.plan(_uv_fact("/bin/true", true_sha, "", good_sha), RunState())
    assert swapped.changed
    assert f"{UV_LINK} points to /bin/true" in swapped.diff and "`uv --version` says ''" in swapped.diff
    overwritten = step.plan(_uv_fact(binary, true_sha, "", good_sha), RunState())
    assert overwritten.changed and f"sha256 {true_sha[:12]} is not the installed {good_sha[:12]}" in overwritten.diff
    pinned = UvInstalled(guide="t", title="t", spec="uv==0.9.0")
    assert "uv 0.8.3 installed, 0.9.0 wanted" in pinned.plan(
        _uv_fact(binary, good_sha, "uv 0.8.3", good_sha), RunState()).diff
    assert step.plan("", RunState()).changed


@pytest.mark.skipif(shutil.which("python3") is None, reason="needs python3 with venv")
def test_a_venv_package_with_files_deleted_is_reinstalled(tmp_path):
    venv = tmp_path / "v"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("venv with pip cannot be made here")
    step = PythonPackages(guide="t", title="t", python=str(venv / "bin/python"), packages=("pip", "nosuch-pkg"),
                          install=f"{venv}/bin/pip install")
    first = plan_of(step)
    assert first.changed and first.data == (("nosuch-pkg",), ()), first.diff
    site = next(venv.glob("lib/python3*/site-packages/pip"))
    shutil.rmtree(site / "_internal/commands")
    broken = plan_of(step)
    assert broken.data == (("nosuch-pkg",), ("pip",)), broken.diff
    assert "~ python package pip" in broken.diff and "installed files gone or changed" in broken.diff
    assert "--force-reinstall --no-deps pip" in step.script(broken)
    uv = PythonPackages(guide="t", title="t", python="p", packages=("pip",), install="uv pip install",
                        reinstall="--reinstall-package {name}")
    assert uv.script(broken).endswith("uv pip install --reinstall-package pip pip")


def test_recorded_digest_is_used_only_while_the_file_is_untouched(tmp_path):
    from runbook.engine.steps import record_sha256_script, sha256_probe

    binary, record = tmp_path / "tool", tmp_path / "state/tool.key"
    binary.write_bytes(b"A" * 4096)
    assert run(record_sha256_script(str(binary), str(record))).returncode == 0
    real = hashlib.sha256(b"A" * 4096).hexdigest()
    assert run(sha256_probe(str(binary), str(record))).stdout.strip() == f"sha256={real}"
    # Proof that the record is read, not the file: a different digest under the same identity is printed ...
    record.write_text(record.read_text().replace(real, "0" * 64))
    assert run(sha256_probe(str(binary), str(record))).stdout.strip() == "sha256=" + "0" * 64
    # ... until the file is touched in any way: same size, same mtime put back, still hashed again.
    mtime = binary.stat().st_mtime_ns
    binary.write_bytes(b"B" * 4096)
    os.utime(binary, ns=(mtime, mtime))
    assert run(sha256_probe(str(binary), str(record))).stdout.strip() == \
        f"sha256={hashlib.sha256(b'B' * 4096).hexdigest()}"
    shutil.copy("/bin/true", tmp_path / "other")
    os.replace(tmp_path / "other", binary)
    assert run(sha256_probe(str(binary), str(record))).stdout.strip() == \
        f"sha256={hashlib.sha256(Path('/bin/true').read_bytes()).hexdigest()}"
    assert run(sha256_probe(str(tmp_path / "missing"), str(record))).stdout.strip() == "sha256="


@ROOT_ONLY
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_source_sees_edited_tracked_files_and_reports_untracked_ones(tmp_path):
    from runbook.sections.app_source import GitSource

    origin, dest = tmp_path / "origin", tmp_path / "dest"
    origin.mkdir()
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "-C", str(origin)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(origin)], check=True)
    (origin / "app.py").write_text("print('v1')\n")
    subprocess.run([*git, "add", "app.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "v1"], check=True)
    dest.mkdir()
    step = GitSource(guide="t", title="t", url=str(origin), ref="main", dest=str(dest), owner="root",
                     others=(".venv", ".env"))
    assert run(step.script(plan_of(step))).returncode == 0
    assert not plan_of(step).changed
    (dest / ".env").write_text("X=1\n")  # another step's file: not git's business
    (dest / "notes.txt").write_text("mine\n")
    (dest / "app.py").write_text("print('hotfix')\n")
    edited = plan_of(step)
    assert edited.changed and "~ app.py: M (git status)" in edited.diff
    assert "untracked, left alone: notes.txt" in edited.summary and ".env" not in edited.summary
    assert run(step.script(edited)).returncode == 0
    assert (dest / "app.py").read_text() == "print('v1')\n" and (dest / "notes.txt").exists()
    assert not plan_of(step).changed
