"""The README's first command, `make sandbox`, on a clean clone: it sets itself up and ends all green.

CI runs on a fresh machine, so this is the "fresh machine to running" path exactly as a new user
takes it: a `git clone` of the committed tree (no `.venv`, no `secrets.env`), then `make sandbox`
(`make deps`, the venv, throwaway secrets, `fab deploy` through the local Compute API), then the same
command again, which must change nothing. Uncommitted changes of a working checkout are not in the
clone: the test checks what a user would get from the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import REPO

pytestmark = pytest.mark.integration
SUMMARY = re.compile(r"^\[[^\]]+\]\s+(?P<ok>\d+) ok, (?P<changed>\d+) changed, (?P<failed>\d+) failed", re.M)


def make(clone: Path, *targets: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    # A user's shell: none of the test run's own secrets or venv leak into the clone's commands.
    env = {k: v for k, v in os.environ.items()
           if k not in ("VLLM_API_KEY", "OCR_API", "BACKEND_INTERNAL_TOKEN", "VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p)
    return subprocess.run(["make", "-C", str(clone), *targets], capture_output=True, text=True, env=env,
                          timeout=timeout)


@pytest.fixture(scope="module")
def clone(sandbox_state_dir: Path, tmp_path_factory) -> Path:
    if not shutil.which("git") or not (REPO / ".git").exists():
        pytest.skip("the README path is tested from a git clone: this checkout is not a git repository")
    where = tmp_path_factory.mktemp("readme") / "l4-runbook"
    done = subprocess.run(["git", "clone", "-q", str(REPO), str(where)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    guide = REPO.parent / "shared"  # the guide lives beside the checkout; a clone beside it sees it too
    if guide.is_dir():
        (where.parent / "shared").symlink_to(guide)
    yield where
    subprocess.run([str(where / ".venv/bin/inv"), "sandbox.down"], cwd=where, capture_output=True, timeout=300)


def totals(text: str) -> tuple[int, int, int]:
    """The summary lines' ok, changed and failed counts, added up over hosts and the cloud sections."""
    found = [tuple(int(m[k]) for k in ("ok", "changed", "failed")) for m in SUMMARY.finditer(text)]
    assert found, text[-3000:]
    return tuple(sum(column) for column in zip(*found, strict=True))


def test_make_sandbox_on_a_clean_clone_ends_green_and_a_second_run_changes_nothing(clone: Path):
    first = make(clone, "sandbox")
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-6000:]
    assert (clone / ".venv/bin/fab").exists() and (clone / "secrets.env").stat().st_mode & 0o077 == 0
    ok, changed, failed = totals(first.stdout)
    assert failed == 0 and changed > 0, out[-4000:]
    assert "Guide §6 checklist" in first.stdout  # verify ran; a red row would have made the exit 1

    again = make(clone, "sandbox")
    assert again.returncode == 0, (again.stdout + again.stderr)[-6000:]
    ok_again, changed_again, failed_again = totals(again.stdout)
    assert (changed_again, failed_again) == (0, 0), again.stdout[-4000:]
    assert ok_again >= ok  # the same steps, now all found as they should be
