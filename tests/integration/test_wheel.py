"""The package as a user gets it: `pip wheel .`, a fresh venv, `pip install '<wheel>[sandbox]'`, then
the sandbox and a deploy from a folder that holds only the user's own hosts.toml and app.

Nothing of the checkout is importable there: the test bed's stand-ins (C sources, scripts, Go files,
unit files) must come from the wheel's package data, and the tasks from the installed package.
"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import OCR, REPO, SECRET, TOKEN, assert_no_secret

pytestmark = pytest.mark.integration
WHEEL_SECTIONS = "firewall,vm,vllm"
NON_PYTHON = ("testbed/standins/gpu/libcuda.c", "testbed/standins/gpu/nvidia-smi",
              "testbed/standins/dcgm/nvidia-dcgm.service", "testbed/standins/dcgm_exporter/template/go.mod",
              "testbed/standins/dcgm_exporter/template/etc/default-counters.csv",
              "testbed/standins/vllm/pyproject.toml", "testbed/system-packages.txt", "testbed/install-deps.sh")


def run(args: list, cwd: Path, timeout: int = 900, env: dict | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory, private_sandbox_dir) -> Path:
    """A fresh venv with the wheel and its `sandbox` extra; returns its bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(REPO)], work)
    (wheel,) = (work / "dist").glob("l4_runbook-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert set(NON_PYTHON) <= names, sorted(set(NON_PYTHON) - names)
    assert not [n for n in names if n.startswith("tests/") or n in ("tasks.py", "fabfile.py")]
    run([sys.executable, "-m", "venv", str(work / "venv")], work)
    run([str(work / "venv/bin/pip"), "install", "-q", f"{wheel}[sandbox]"], work)
    return work / "venv/bin"


def user_folder(tmp_path: Path) -> Path:
    """What a user keeps: hosts.toml as shipped (target = "sandbox") and the application it deploys."""
    shutil.copy(REPO / "hosts.toml", tmp_path / "hosts.toml")
    shutil.copytree(REPO / "tests/fixtures/ai_app", tmp_path / "tests/fixtures/ai_app")
    return tmp_path


def test_the_installed_package_lists_its_tasks_everywhere(installed, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = run([str(installed / "python"), "-c", "import runbook, testbed; print(runbook.__file__, testbed.__file__)"],
                tmp_path, env=env)
    assert str(REPO) not in where and "site-packages" in where
    listed = run([str(installed / "l4rb"), "--list"], tmp_path, env=env)
    assert "deploy" in listed and "sandbox.up" in listed and "troubleshoot" in listed
    # inv and fab find a one-line tasks.py / fabfile.py next to hosts.toml, as the README says.
    (tmp_path / "tasks.py").write_text("from runbook.tasks import ns  # noqa: F401\n")
    (tmp_path / "fabfile.py").write_text("from runbook.tasks import ns  # noqa: F401\n")
    assert "sandbox.up" in run([str(installed / "inv"), "--list"], tmp_path, env=env)
    assert "sandbox.up" in run([str(installed / "fab"), "--list"], tmp_path, env=env)


def test_sandbox_up_and_deploy_from_the_wheel(installed, tmp_path):
    folder = user_folder(tmp_path)
    (folder / "fabfile.py").write_text("from runbook.tasks import ns  # noqa: F401\n")
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
           "VLLM_API_KEY": SECRET, "OCR_API": OCR, "BACKEND_INTERNAL_TOKEN": TOKEN, "COLUMNS": "160"}
    try:
        up = run([str(installed / "l4rb"), "sandbox.up"], folder, env=env)
        assert "ssh -i" in up
        # The VM through the local Compute API and vLLM from the stand-in's index, both from the wheel. The
        # other sections' stand-ins were built by sandbox.up above; a whole deploy is `make sandbox`'s test.
        out = run([str(installed / "fab"), "deploy", "--only", WHEEL_SECTIONS, "--report",
                   str(folder / "report.json")], folder, timeout=1800, env=env)
        assert_no_secret(out)
        report = json.loads((folder / "report.json").read_text())
        assert report["failed"] is False
        assert {s["section"] for s in report["sections"]} == set(WHEEL_SECTIONS.split(",")), report["sections"]
    finally:
        subprocess.run([str(installed / "l4rb"), "sandbox.down"], cwd=folder, env=env, timeout=300)
