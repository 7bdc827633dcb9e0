"""`make deps`: one list of system packages, installed by testbed/install-deps.sh, refusing loudly."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from testbed.sandbox import preflight

REPO = Path(__file__).resolve().parents[2]
LIST = REPO / "testbed" / "system-packages.txt"
SCRIPT = REPO / "testbed" / "install-deps.sh"


def listed() -> set[str]:
    return {line.split("#")[0].strip() for line in LIST.read_text().splitlines()} - {""}


def test_the_one_list_covers_what_the_sandbox_checks_for():
    assert set(preflight.TOOLS.values()) - {"coreutils"} <= listed()
    assert {"prometheus", "python3-venv", "make", "git", "gcc"} <= listed()


def test_ci_runs_only_the_readme_path():
    commands = [line for line in (REPO / ".ci/run").read_text().splitlines()
                if line.strip() and not line.startswith(("#", "set ", "cd "))]
    assert commands[-2:] == ["make deps", "make test"]
    makefile = (REPO / "Makefile").read_text()
    assert "\nsandbox: deps " in makefile and "\ntest: deps " in makefile


def _as_nobody(packages: str) -> subprocess.CompletedProcess:
    """The script with *packages* as its list, run by an unprivileged user (nobody)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:  # pytest's tmp_path is private to root
        Path(folder).chmod(0o755)
        shutil.copy(SCRIPT, folder)
        (Path(folder) / "system-packages.txt").write_text(packages)
        return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               "sh", f"{folder}/install-deps.sh"], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("dpkg-query"),
                    reason="needs root (to drop to an unprivileged user) and dpkg")
def test_not_root_with_a_package_missing_names_the_command_and_exits_2():
    done = _as_nobody("coreutils\nl4rb-no-such-package  # missing everywhere\n")
    assert done.returncode == 2, done.stderr
    assert "missing packages: l4rb-no-such-package" in done.stderr
    assert "sudo make deps" in done.stderr and "apt-get install -y l4rb-no-such-package" in done.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("dpkg-query"),
                    reason="needs root (to drop to an unprivileged user) and dpkg")
def test_quiet_when_everything_is_installed():
    done = _as_nobody("coreutils\ndpkg\n")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
