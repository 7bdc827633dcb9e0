"""The drift comparison's own logic: reading each tool's answer per host, and the table cells it makes.

The answers are fed in the shapes the tools print or write (our --report JSON, ansible-playbook's
task lines, pyinfra's dry-run listing); no figure of a real run is asserted here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from testbed.drift import DRIFTS, Drift

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from compare import drift, ours, playbook, pyinfra_twin  # noqa: E402

CASE = Drift("app file edited", "true", (), "echo ok")
NODE_CASE = Drift("node unit edited", "true", (), "echo ok", section="node-exporter")
ELSEWHERE = Drift("vllm unit edited", "true", (), "echo ok", section="vllm")


def _report(host_steps: dict[str, list[dict]]) -> dict:
    return {"failed": False, "sections": [
        {"host": host, "section": "ai-server", "changed": sum(s["status"] == "changed" for s in steps),
         "commands": 1, "seconds": 0.5, "steps": steps} for host, steps in host_steps.items()]}


def test_ours_names_each_changed_step_with_the_first_line_of_its_diff_per_host():
    data = _report({
        "h1": [{"title": "application code", "status": "changed", "summary": "/app differs (1 to put back)",
                "diff": "\n~ app/main.py: content differs\n~ app/x.py: missing\n"},
               {"title": "ai-server.service enabled and running", "status": "changed",
                "summary": "restart (notified)", "diff": ""},
               {"title": "uv installed", "status": "ok", "summary": "uv 0.8.3", "diff": ""}],
        "h2": [{"title": "application code", "status": "ok", "diff": "",
                "summary": "3 paths match; not managed, left alone at the top of /app: NOTES.txt"}],
        "h3": [{"title": "application code", "status": "ok", "summary": "3 paths match", "diff": ""}],
    })
    run = ours.read_report(ours.OursRun(1.0, 0, ""), data)
    assert run.changed == 2 and run.commands == 3
    assert drift.ours_verdict(run, "h1", CASE) == drift.Verdict(True, (
        "application code: ~ app/main.py: content differs",
        "ai-server.service enabled and running: restart (notified)"))
    left = drift.ours_verdict(run, "h2", CASE)
    assert left.seen and left.note == "reported, left alone" and "NOTES.txt" in left.said[0]
    assert drift.ours_verdict(run, "h3", CASE) == drift.Verdict(False)


ANSIBLE_CHECK = """\
TASK [ai_server : 4-1 application code] ****************************************
--- before: /app/ai-server/app/main.py
+++ after: /tmp/files/app-source/app/main.py
@@ -1,3 +1,2 @@
-# hotfix
changed: [h1]
ok: [h2]

TASK [ai_server : 4-4 unit file] ***********************************************
ok: [h1] => (item=/etc/systemd/system/ai-server.service)
changed: [h2] => (item=/etc/systemd/system/ai-server.service)

TASK [node_exporter : 7-5 node_exporter: download, checked against the release's checksum list] ***
fatal: [h2]: FAILED! => {"msg": "The task includes an option with an undefined variable."}

RUNNING HANDLER [ai_server : restart ai-server] ********************************
changed: [h1]

PLAY RECAP *********************************************************************
h1                         : ok=20   changed=2    unreachable=0    failed=0    skipped=3    rescued=0    ignored=0
h2                         : ok=18   changed=1    unreachable=0    failed=1    skipped=3    rescued=0    ignored=0
"""


def test_ansible_check_mode_is_read_per_host_and_a_failed_check_says_where():
    recap, changed = playbook.parse(ANSIBLE_CHECK)
    run = playbook.AnsibleRun(1.0, 2, ANSIBLE_CHECK, recap, changed, playbook.failures(ANSIBLE_CHECK))
    assert drift.ansible_verdict(run, "h1", CASE) == drift.Verdict(
        True, ("4-1 application code", "restart ai-server"))
    h2 = drift.ansible_verdict(run, "h2", NODE_CASE)
    assert h2.seen and h2.said == ("4-4 unit file",)
    assert h2.note == ("check mode failed at \"7-5 node_exporter: download, checked against the release's "
                       "checksum list\"")
    assert drift.ansible_verdict(run, "h1", ELSEWHERE) == drift.Verdict(False, (), "not managed by the playbook")


@pytest.mark.parametrize("verdict, text", [
    (drift.Verdict(False), "no"),
    (drift.Verdict(False, (), "not managed by the playbook"), "not managed by the playbook"),
    (drift.Verdict(True, ("a", "b")), "**yes**: a; b"),
    (drift.Verdict(True, ("a", "b", "c", "d", "e")), "**yes**: a; b; c; +2 more"),
    (drift.Verdict(True, ("NOTES.txt",), "reported, left alone"), "**yes**: NOTES.txt (reported, left alone)"),
    (drift.Verdict(False, (), "check mode failed at 'x'"), "check mode failed at 'x'"),
    (drift.Verdict(True, ("a|b `c`",)), "**yes**: a\\|b 'c'"),
])
def test_a_cell_says_yes_or_no_and_what_was_named(verdict, text):
    assert drift.cell(verdict) == text


def test_a_long_item_is_clipped_to_one_short_line():
    item = "application code: ~ app/main.py: content differs (sha256 0123456789ab -> ba9876543210) and more"
    text = drift.cell(drift.Verdict(True, (item,)))
    assert text.startswith("**yes**: application code: ~ app/main.py") and text.endswith("…")
    assert len(text) <= len("**yes**: ") + drift.ITEM_CHARS


def test_the_table_has_one_row_per_case_and_counts_what_each_tool_saw():
    seen, unseen = drift.Verdict(True, ("x",)), drift.Verdict(False)
    rows = [drift.Row(DRIFTS[0], seen, seen, unseen, True), drift.Row(DRIFTS[1], seen, unseen, unseen, False)]
    table = drift.markdown(rows, {"ansible": "ansible-core 2.19.14", "pyinfra": "pyinfra 3.10.0"})
    lines = table.splitlines()
    assert lines[0].startswith("| breakage | ours `--dry-run` | Ansible `--check --diff` (ansible-core 2.19.14)")
    assert lines[0].endswith("| pyinfra `--dry --diff` (pyinfra 3.10.0) |")
    assert lines[2] == f"| {DRIFTS[0].name} | **yes**: x | **yes**: x | no |"
    assert "Seen: ours 2/2, Ansible 1/2, pyinfra 0/2. Put back by ours' run: 1/2." in table


def test_every_drift_case_names_a_section_that_the_twins_manage():
    # Cases of other sections would be reported as "not managed"; today's table has none.
    assert {d.section for d in DRIFTS} <= set(drift.SECTIONS)


# pyinfra 3.10's dry run (--dry --diff), cut down: a file diff while preparing, then the change table.
PYINFRA_DRY = """\
--> Preparing operation files...
    Loading: deploy.py
    [h1] Will modify /app/ai-server/app/main.py
      @@ -53,3 +53,2 @@
      - # hotfix

    [h1] Ready: deploy.py
    [h2] Ready: deploy.py

--> Detected changes:
    Operation                                                     Change           Conditional Change
    4-2 uv on the PATH                                            1 (h2)           -
    4-1 application code: app/main.py                             2 (h1, h2)       -
    4-1 application code: app/hotfix.py (not in the source)       1 (h1)           -
    4-5 restart ai-server.service if anything above changed       -                2 (h1, h2)
    7-5 curl and ca-certificates                                  -                -

    Detected changes may not include every change pyinfra will execute.

--> Disconnecting from hosts...
"""


def test_pyinfra_dry_run_is_read_per_host_from_its_change_table():
    changes, conditional, errors = pyinfra_twin.parse(PYINFRA_DRY)
    assert changes == {"h1": ["4-1 application code: app/main.py",
                              "4-1 application code: app/hotfix.py (not in the source)"],
                       "h2": ["4-2 uv on the PATH", "4-1 application code: app/main.py"]}
    assert conditional == {h: ["4-5 restart ai-server.service if anything above changed"] for h in ("h1", "h2")}
    assert errors == {}
    run = pyinfra_twin.PyinfraRun(1.0, 0, PYINFRA_DRY, changes, conditional, errors)
    assert drift.pyinfra_verdict(run, "h2", CASE) == drift.Verdict(
        True, ("4-2 uv on the PATH", "4-1 application code: app/main.py"))
    assert drift.pyinfra_verdict(run, "h3", CASE) == drift.Verdict(False)


def test_pyinfra_errors_are_kept_per_host_and_a_shortened_host_list_is_refused():
    _, _, errors = pyinfra_twin.parse("    [h1] Error: command failed: cat /nope\n")
    assert errors == {"h1": "command failed: cat /nope"}
    shortened = PYINFRA_DRY.replace("2 (h1, h2)       -", "2 (h1, h...)     -")
    with pytest.raises(ValueError, match="shortened"):
        pyinfra_twin.parse(shortened)
