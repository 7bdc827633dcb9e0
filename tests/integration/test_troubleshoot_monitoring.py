"""Appendix B items of monitoring (guide section 7), planted on the deployed host one after another.

DCGM, dcgm-exporter, node_exporter and promtail are the test bed's stand-ins, installed by the
monitoring sections from the sandbox's mirror; the faults are real: a package apt cannot find, an
exporter built for the other DCGM, a missing `make`, an exporter still collecting, a Loki that does
not answer, a promtail configuration without `matches`.
"""

from __future__ import annotations

import pytest
from test_troubleshoot_stack import Stack, evidence, stack_for

from runbook.config import DcgmConfig

pytestmark = pytest.mark.integration
TAGS = DcgmConfig().exporter_tags

GO_BUILD = ("env PATH=/usr/lib/go/bin:/usr/local/bin:/usr/bin:/bin HOME=/root GOPATH=/opt/l4-runbook/go "
            "GOCACHE=/opt/l4-runbook/go/cache GOTOOLCHAIN=local make binary")


@pytest.fixture(scope="module")
def stack(sandbox_state_dir) -> Stack:
    return stack_for(sandbox_state_dir)


def test_b6_dcgm_package_unknown_to_apt(stack: Stack):
    # The stack runs today's default, DCGM 4 (dcgm.major = "auto" on a repository that offers it).
    stack.sh("sudo DEBIAN_FRONTEND=noninteractive apt-get remove -y -q datacenter-gpu-manager "
             "datacenter-gpu-manager-4-core >/dev/null && "
             "sudo dpkg -P cuda-keyring >/dev/null && sudo apt-get update -q >/dev/null 2>&1")
    assert "Candidate: (none)" in stack.sh("apt-cache policy datacenter-gpu-manager")
    # Without DCGM, the exporter's libdcgm.so.3 is gone too (B-7 follows from B-6).
    got = stack.detect("B-6", "B-7", "B-9")
    assert "Unable to locate package" in got["summary"]
    assert "the CUDA apt repository is not registered" in got["summary"]
    assert "cuda-keyring: not installed" in evidence(got)
    fixed = stack.fix("B-6")
    assert {"7-1", "7-2"} <= {s["guide"] for s in fixed["fix"]["steps"] if s["status"] == "changed"}
    rc, data, log = stack.troubleshoot("--only", "B-6,B-7,B-9")
    assert rc == 0, log


def test_b7_exporter_built_for_the_other_dcgm(stack: Stack):
    # The guide's B-7 the other way round: on the stack's DCGM 4, an exporter built from the 3.x tag.
    stack.sh(f"sudo rm -rf /tmp/exporter-4 && sudo git clone -q -c advice.detachedHead=false --branch {TAGS['3']} "
             "file:///opt/l4rb-sandbox/monitoring/dcgm-exporter.git /tmp/exporter-4 && cd /tmp/exporter-4 && "
             f"sudo {GO_BUILD} >/dev/null && sudo install -m 0755 cmd/dcgm-exporter/dcgm-exporter "
             "/usr/local/bin/dcgm-exporter && sudo systemctl restart dcgm-exporter")
    got = stack.detect("B-7", "B-9")
    assert got["summary"] == "dcgm-exporter needs libdcgm.so.3; the host has libdcgm.so.4"
    assert "not the binary the runbook built" in evidence(got)
    fixed = stack.fix("B-7")
    assert any(f"rebuild dcgm-exporter {TAGS['4']}" in s["summary"] for s in fixed["fix"]["steps"])
    assert "libdcgm.so.4" in fixed["after"]["summary"]


def test_b8_make_missing(stack: Stack):
    stack.sh("sudo DEBIAN_FRONTEND=noninteractive apt-get remove -y -q make >/dev/null")
    got = stack.detect("B-8")
    assert "make: command not found" in got["summary"] and "make: not-installed" in evidence(got)
    stack.fix("B-8")
    assert stack.sh("command -v make").strip() == "/usr/bin/make"


def test_b9_first_collection_then_missing_counters(stack: Stack):
    # Right after a start the exporter answers with an empty body for ~10 s: one run finds and waits it out.
    # On a loaded machine starting the run alone can take longer, so the stand-in's first wait is stretched
    # to 25 s here (still under the 30 s after which B-9 calls it stuck, not starting).
    knob = "/etc/systemd/system/dcgm-exporter.service.d/first-collection.conf"
    stack.sh(f"sudo mkdir -p {knob.rsplit('/', 1)[0]} && printf '[Service]\\nEnvironment="
             f"DCGM_EXPORTER_DOUBLE_FIRST_COLLECTION_S=25\\n' | sudo tee {knob} >/dev/null && "
             "sudo systemctl daemon-reload && sudo systemctl restart dcgm-exporter")
    try:
        rc, data, log = stack.troubleshoot("--only", "B-9", "--fix")
    finally:
        stack.sh(f"sudo rm -rf {knob.rsplit('/', 1)[0]} && sudo systemctl daemon-reload")
    fixed = data["items"][0]
    assert "the first collection takes about 10 s" in fixed["summary"], log
    assert fixed["after"]["verdict"] == "ok" and rc == 0, log
    assert [s["guide"] for s in fixed["fix"]["steps"]] == ["7-4"]  # only the wait
    stack.sh("sudo sed -i '/^DCGM_FI_DEV_FB_FREE\\|^DCGM_FI_DEV_POWER_USAGE/d' /etc/dcgm-exporter/default-counters.csv"
             " && sudo systemctl restart dcgm-exporter")
    got = stack.detect("B-9")
    assert "the counters file /etc/dcgm-exporter/default-counters.csv lists 4 of them" in got["summary"]
    stack.fix("B-9")


def test_b17_loki_does_not_answer(stack: Stack):
    stack.sh("sudo systemctl kill -s STOP loki-double.service")
    try:
        stack.sh("curl -s -o /dev/null http://127.0.0.1:8000/health; for i in $(seq 60); do "
                 "journalctl -u alloy --since -2min -o cat | grep -q 'context deadline exceeded' && exit 0; "
                 "sleep 0.5; done; exit 1")
        got = stack.detect("B-17")
        assert got["summary"].startswith("Loki at http://127.0.0.1:3100 does not answer from this host")
        assert "context deadline exceeded" in evidence(got)
        manual = stack.fix("B-17", cleared=False)["fix"]["manual"]
        assert manual[0].startswith(f"Allow inbound TCP 3100 from {stack.host.address}/32")
    finally:
        stack.sh("sudo systemctl kill -s CONT loki-double.service")
    rc, data, log = stack.troubleshoot("--only", "B-17")
    assert rc == 0 and data["items"][0]["verdict"] == "ok", log


def test_b19_journal_jobs_without_matches(stack: Stack):
    # The stack ships with Alloy (the default): its journal sources lose their `matches`.
    stack.sh("sudo sed -i '/matches/d' /etc/alloy/config.alloy && sudo systemctl restart alloy")
    try:
        got = stack.detect("B-19")
        said = got["summary"] + "\n" + evidence(got)
        assert "job ai_server has no `matches`" in said, said
    finally:  # the host is shared with the next tests: put it right even when the detection is wrong
        stack.fix("B-19")
    assert stack.sh("grep -c 'matches *= \"_SYSTEMD_UNIT=' /etc/alloy/config.alloy").strip() == "2"
