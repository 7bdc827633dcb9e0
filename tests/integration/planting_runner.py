"""How one case of the planting table (plantings.py) runs against a converged sandbox host: plant,
check, fix, verify, restore; and the check that the host is converged again after a share of the table.

For every case `inv troubleshoot` must find exactly the case's items, with evidence that names the real
source; `--fix` must clear them where the guide has a remedy, after which `inv verify` is green. Files
the cases touch are restored from a snapshot taken on the converged host, so each case starts from
the same state; at the end `fab deploy` changes nothing.
"""

from __future__ import annotations

import json
import os

import pytest
from plantings import Planting, share
from test_troubleshoot_stack import Stack, evidence, record_seconds, run_checks, stack_for

from helpers import inv

SNAPSHOT = "/root/l4rb-plantings.tar"
FILES = ("/app/vllm-server/vllm.env", "/app/ai-server/.env", "/etc/alloy/config.alloy",
         "/etc/dcgm-exporter/default-counters.csv")
HEALTHY = ("for i in $(seq 240); do curl -sf -o /dev/null http://127.0.0.1:8001/health && "
           "curl -sf -o /dev/null http://127.0.0.1:8000/health && exit 0; sleep 0.5; done; exit 1")


def planting_stack(state_dir) -> Stack:
    """The worker's deployed host, with a snapshot of the files the cases touch."""
    made = stack_for(state_dir)
    made.sh(f"sudo tar -cpf {SNAPSHOT} {' '.join(FILES)} 2>/dev/null")
    return made


def root(stack: Stack, command: str, check: bool = True) -> str:
    r = stack.host.ssh("sudo bash -s", input=command, check=False, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"on the host: {command}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def restore(stack: Stack, case: Planting) -> None:
    if case.restore:
        root(stack, case.restore, check=False)
    root(stack, f"tar -xpf {SNAPSHOT} -C / && systemctl reset-failed vllm ai-server dcgm-exporter 2>/dev/null; true",
         check=False)
    for unit in ("vllm", "ai-server", "dcgm-exporter", "alloy"):
        root(stack, f"systemctl is-active -q {unit} || systemctl restart {unit}", check=False)
    root(stack, HEALTHY)


def run_case(stack: Stack, case: Planting) -> None:
    try:
        _run_case(stack, case)
    except BaseException as err:
        if os.environ.get("L4RB_PLANTINGS_LOG"):  # failures as they happen, for long runs
            with open(os.environ["L4RB_PLANTINGS_LOG"], "a") as log:
                log.write(f"=== {case.id}: {err}\n")
        raise


def _run_case(stack: Stack, case: Planting) -> None:
    root(stack, case.plant)
    try:
        if case.settle:
            root(stack, case.settle)
        rc, data, log = stack.troubleshoot()
        found = set(data["found"])
        assert found == set(case.found), f"{case.id}: found {sorted(found)}, expected {case.found}\n{log}"
        assert rc == (1 if case.found else 0), log
        if not case.found:
            return
        (first,) = [i for i in data["items"] if i["id"] == case.found[0]]
        assert case.evidence in evidence(first), f"{case.id}: {case.evidence!r} not in:\n{evidence(first)}"
        rc, fixed, log = stack.troubleshoot("--only", ",".join(case.found), "--fix")
        if case.fix:
            for item in fixed["items"]:
                assert item["after"] and item["after"]["verdict"] == "ok", f"{case.id}: {item['id']} not cleared\n{log}"
            assert rc == 0, log
            if case.after:
                root(stack, case.after)
            root(stack, HEALTHY)
            r = run_checks("verify", "--config", str(stack.config), "--json")
            assert r.returncode == 0, f"{case.id}: verify after the fix\n{r.stdout[-3000:]}\n{r.stderr[-2000:]}"
        else:
            assert rc == 1, log
            assert any(i["fix"] and (i["fix"]["manual"] or i["fix"]["applied"]) for i in fixed["items"]), log
    finally:
        restore(stack, case)


def share_tests(index: int):
    """The module fixture and the parametrized test that run one share of the table on one host: a test
    module takes them as `stack, test_planting = share_tests(N)`."""

    @pytest.fixture(scope="module")
    def stack(sandbox_state_dir) -> Stack:
        return planting_stack(sandbox_state_dir)

    @pytest.mark.parametrize("case", share(index), ids=lambda c: c.id)
    def test_planting(stack: Stack, case: Planting):
        run_case(stack, case)

    return stack, test_planting


def converged(stack: Stack, label: str) -> None:
    """Every case fixed or restored: verify is green, troubleshoot finds nothing and a deploy changes nothing."""
    r = run_checks("verify", "--config", str(stack.config), "--json")
    assert r.returncode == 0, r.stdout[-3000:]
    rc, data, log = stack.troubleshoot()
    assert rc == 0 and not data["found"], log
    record_seconds(f"after the plantings ({label})", data)
    report = stack.config.parent / f"deploy-after-plantings-{label}.json"
    r = inv("deploy", "--config", str(stack.config), "--report", str(report))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    changed = [(s["section"], s["title"]) for sec in json.loads(report.read_text())["sections"]
               for s in sec["steps"] if s["status"] == "changed"]
    assert changed == [], changed
