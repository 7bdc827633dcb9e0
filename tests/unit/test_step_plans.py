"""Step plans from data: {settings, step, fact} -> plan (changed or not, what it says, the diff) and script.

Each row is what a host answered to the step's probe and what the step must make of it; the section rows
build their steps from settings (hosts.toml values) the way a run does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook import config
from runbook.docs import PLACEHOLDERS
from runbook.engine.steps import AptPackages, Command, Directory, File, PythonPackages, RunState, Service, Step
from runbook.sections import vllm
from runbook.sections.common import HostInfo
from runbook.sections.dropins import DropInsAside

REPO = Path(__file__).resolve().parents[2]
UNIT = "@@L4RB-UNIT-FILE /etc/systemd/system/vllm.service\n[Service]\nExecStart=/bin/vllm serve x\n"
DROPIN_PATHS = "DropInPaths=/etc/systemd/system/vllm.service.d/x.conf\nLoadState=loaded\n"


def section_step(settings: dict, title_part: str) -> Step:
    cfg = config.load(REPO / "hosts.toml", PLACEHOLDERS)
    s = cfg.settings
    updated = s.model_copy(update={"vllm": s.vllm.model_copy(update=settings)})
    cfg = cfg.model_copy(update={"settings": updated})
    steps = vllm.steps(cfg, HostInfo(name="h", login_user="ubuntu"))
    (step,) = [st for st in steps if title_part in st.title]
    return step


@dataclass(frozen=True)
class Row:
    id: str
    step: Step
    fact: str
    changed: bool
    says: str = ""  # in the plan's summary
    runs: str = ""  # in the script (when changed)
    diff: str = ""  # in the diff
    notified: frozenset[str] = frozenset()


DIR = Directory(guide="4-1", title="d", path="/var/log/app", owner="ubuntu")
FILE = File(guide="3-3", title="f", path="/etc/x.conf", content="a=1\n")
APT = AptPackages(guide="3-2", title="p", names=("python3-venv", "curl"))
CMD = Command(guide="4-2", title="venv", check="test -f /v/ok", run="make-venv")
PIP = PythonPackages(guide="4-2", title="pp", python="/v/bin/python", packages=("httpx", "fastapi==0.110.0"),
                     install="uv pip install")
SVC = Service(guide="3-5", title="s", unit="vllm.service")
ASIDE = DropInsAside(guide="3-4", title="a", unit="vllm.service", keys=("ExecStart", "EnvironmentFile"),
                     variables=("VLLM_MAX_MODEL_LEN",))

ROWS = (
    Row("dir-missing", DIR, "MISSING", True, "create /var/log/app", "install -d -o ubuntu"),
    Row("dir-ok", DIR, "directory|ubuntu|ubuntu|755", False),
    Row("dir-owner", DIR, "directory|root|root|755", True, "owner root:root -> ubuntu:ubuntu"),
    Row("dir-mode", DIR, "directory|ubuntu|ubuntu|777", True, "mode 0777 -> 0755"),
    Row("dir-is-a-file", DIR, "regular file|ubuntu|ubuntu|644", True, "not a directory", "exit 1"),
    Row("file-same", FILE, "regular file|root|root|644\na=1\n", False),
    Row("file-differs", FILE, "regular file|root|root|644\na=2\n", True, "update /etc/x.conf", "mv", "+a=1"),
    Row("file-missing", FILE, "MISSING\n", True, "create /etc/x.conf", diff="+a=1"),
    Row("file-mode", FILE, "regular file|root|root|600\na=1\n", True, "mode 0600 -> 0644"),
    Row("apt-one-missing", APT, "python3-venv installed\ncurl \n", True, "install curl", "apt-get"),
    Row("apt-all-there", APT, "python3-venv installed\ncurl installed\n", False),
    Row("cmd-check-passes", CMD, "0\n", False),
    Row("cmd-check-fails", CMD, "1\n", True, "venv", "make-venv"),
    # The probe prints name, version, files of its RECORD gone or changed, and which (tab-separated).
    Row("pip-missing-and-pin", PIP, "httpx\t0.27.0\t0\nfastapi\t0.109.0\t0\n", True, "install fastapi==0.110.0",
        "uv pip install fastapi==0.110.0"),
    Row("pip-half-removed", PIP, "httpx\t0.27.0\t12\thttpx/__init__.py\nfastapi\t0.110.0\t0\n", True,
        "reinstall httpx", "--force-reinstall --no-deps httpx"),
    Row("pip-all-there", PIP, "httpx\t0.27.0\t0\nfastapi\t0.110.0\t0\n", False),
    Row("svc-stopped", SVC, "enabled\ninactive\n", True, "start", "systemctl"),
    Row("svc-running", SVC, "enabled\nactive\n", False),
    Row("svc-restart-on-notify", SVC, "enabled\nactive\n", True, "restart", "restart",
        notified=frozenset({"vllm.service"})),
    Row("dropin-resets-execstart", ASIDE, DROPIN_PATHS + UNIT + "@@L4RB-UNIT-FILE "
        "/etc/systemd/system/vllm.service.d/x.conf\n[Service]\nExecStart=\nExecStart=/bin/vllm serve y\n",
        True, "line 3: ExecStart=/bin/vllm serve y", "l4rb-aside-$stamp", "-ExecStart=/bin/vllm serve y"),
    Row("dropin-sets-a-managed-variable", ASIDE, DROPIN_PATHS + UNIT + "@@L4RB-UNIT-FILE "
        "/etc/systemd/system/vllm.service.d/x.conf\n[Service]\nEnvironment=VLLM_MAX_MODEL_LEN=1\n", True,
        "Environment=VLLM_MAX_MODEL_LEN=1", "mv -f"),
    Row("dropin-harmless", ASIDE, DROPIN_PATHS + UNIT + "@@L4RB-UNIT-FILE "
        "/etc/systemd/system/vllm.service.d/x.conf\n[Service]\nNice=5\n", False),
    Row("dropin-vendor-kept", ASIDE, "DropInPaths=/usr/lib/systemd/system/vllm.service.d/v.conf\n" + UNIT
        + "@@L4RB-UNIT-FILE /usr/lib/systemd/system/vllm.service.d/v.conf\n[Service]\nExecStart=\n", False),
)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_plan_from_fact(row: Row):
    plan = row.step.plan(row.fact, RunState(notified=row.notified))
    assert plan.changed == row.changed, plan
    assert row.says in plan.summary, plan.summary
    assert row.diff in plan.diff, plan.diff
    if row.changed:
        assert row.runs in row.step.script(plan)


@pytest.mark.parametrize(("settings", "title", "want", "unwanted"), [
    ({"enforce_eager": True}, "/etc/systemd/system/vllm.service", "--enforce-eager", ""),
    ({"enforce_eager": False}, "/etc/systemd/system/vllm.service", "--revision", "--enforce-eager"),
    ({"max_model_len": 4096}, "vllm.env", "SERVE_MAX_MODEL_LEN=4096", "4096 #"),
], ids=["eager", "not-eager", "env-scalars-without-comments"])
def test_section_plan_from_settings(settings: dict, title: str, want: str, unwanted: str):
    step = section_step(settings, title)
    plan = step.plan("MISSING\n", RunState())
    assert plan.changed and want in plan.diff
    if unwanted:
        body = "".join(line for line in plan.diff.splitlines(keepends=True) if line.startswith("+") and "=" in line)
        assert unwanted not in body


def test_the_vllm_section_moves_conflicting_drop_ins_aside_before_writing_the_unit():
    step = section_step({}, "no drop-in overrides vllm.service")
    assert "SERVE_MAX_MODEL_LEN" in step.variables and "ExecStart" in step.keys
    assert "VLLM_PORT" in step.variables  # vLLM's own name (C-2): a drop-in setting it is moved aside too


def test_a_directory_is_read_through_a_symbolic_link():
    """A working symlink for the log directory is that directory (no refusal that stops the host)."""
    assert "stat -L -c" in DIR.probe()
